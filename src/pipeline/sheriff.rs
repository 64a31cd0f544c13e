//! The sheriff: one per destination tested after landing (`post_land_ci`), run by the
//! leading process (a singleton). It records every push it sees on the destination,
//! tests tips with the destination's CI, finds the first push whose tip fails (the
//! culprit of a red tip), backs out Autoland's own culprits and reports anyone else's.
//!
//! **Policy (coalesced; `docs/sheriff.md`).** One CI run at a time per destination, on the
//! newest tip: when landings come slower than a CI run, every tip is tested; faster, they
//! are tested together. A failing tip is run once more: passing then, the failure was
//! intermittent (recorded, nothing backed out); failing again, the tip is red. The culprit
//! is then the first push after the last passing tip whose tip fails, found by bisection
//! over the pushes in between (failures during the search are not run again: the tip
//! above is known red). Bound per red tip: 2 + ⌈log₂ n⌉ runs for n pushes since the last
//! passing tip, plus one run of the tip after the backout.
//!
//! **Crash safety.** Pushes are recorded before their tips are tested; a CI run is a row
//! before it runs; a backout is a row (`pending`) before its commit exists, and the tip its
//! attempt starts from is recorded before the push, so a restart first looks for the
//! backout commit by its trailer (`Autoland-Backout: <id>`) after that tip: exactly one
//! backout commit, whatever the moment of the crash.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::steps::short;
use crate::config::RepoConfig;
use crate::fault;
use crate::request::{Stage, TRAILER_KEY, Transition};
use crate::runtime::{Context, ModuleStatus, Work, metrics};
use crate::store::{
    Backout, BackoutState, CiRun, CiState, Conviction, Effects, NewPush, Push, PushKind,
    StoreError, TipVerdict, tally,
};
use crate::vcs::{CommitInfo, PushTarget, SharedWorkingCopy, VcsError};

/// The trailer key of a backout commit.
pub const BACKOUT_TRAILER: &str = "Autoland-Backout";

/// The most commits read from the destination in one look (older ones form one push).
const HISTORY_LIMIT: usize = 500;

/// Why a look stopped; the sheriff tries again at its next look.
#[derive(Debug, thiserror::Error)]
pub enum SheriffError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The destination could not be read or pushed.
    #[error(transparent)]
    Vcs(#[from] VcsError),
    /// Something to wait for (leadership lost, another process landing).
    #[error("{0}")]
    Waiting(String),
}

/// The trailer line of backout `id` (fixed width, so one never matches another).
pub fn backout_marker(id: i64) -> String {
    format!("{BACKOUT_TRAILER}: {id:010}")
}

/// Runs the sheriff of `repo` until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    repo: String,
    status: ModuleStatus,
    shutdown: CancellationToken,
) {
    let Some(config) = ctx.config.repo(&repo).cloned() else {
        status.error(format!("repository `{repo}` is not configured"));
        shutdown.cancelled().await;
        return;
    };
    let mut sheriff = Sheriff {
        actor: format!("{}/sheriff-{repo}", ctx.instance),
        ctx: &ctx,
        repo: config,
        trouble: None,
        observed: None,
    };
    loop {
        match sheriff.sweep().await {
            Ok(summary) => match &sheriff.trouble {
                Some(why) => status.error(why.clone()),
                None => status.set(summary),
            },
            Err(e) => status.error(format!("sheriff of {repo}: {e}")),
        }
        if !ctx.idle(Work::Gate, &shutdown).await {
            return;
        }
    }
}

/// What the pushes since the last settled one call for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing new.
    Idle,
    /// A run is under way.
    Wait,
    /// Record a verdict for a push.
    Judge {
        /// Push.
        push: i64,
        /// Verdict.
        verdict: TipVerdict,
    },
    /// Test this push's tip (again, if it has a run).
    Test {
        /// Push.
        push: i64,
    },
    /// This push is the culprit of the red tip.
    Culprit {
        /// Push.
        push: i64,
    },
}

/// A push with the states of its tip's CI runs, oldest first.
#[derive(Debug, Clone)]
pub struct Looked {
    /// The push.
    pub push: Push,
    /// Its runs' states.
    pub runs: Vec<CiState>,
}

fn passed(state: CiState) -> bool {
    state == CiState::Passed
}

/// The policy as a pure function: `settled` is the newest push that passed or was found
/// to be a culprit; `after` the pushes since, oldest first.
pub fn decide(settled: Option<&Push>, after: &[Looked]) -> Next {
    if after.is_empty() {
        return Next::Idle;
    }
    if after.iter().any(|l| l.runs.iter().any(|s| !s.is_final())) {
        return Next::Wait;
    }
    // After a culprit, only what follows its backout can be judged: the pushes between
    // carry its breakage. Without a backout (someone else's culprit, or a backout that
    // did not apply), the sheriff only looks for the next passing tip.
    let (start, blocked) = match settled {
        Some(s) if s.culprit => {
            match after.iter().rposition(|l| l.push.kind == PushKind::Backout) {
                Some(k) => (k, false),
                None => (0, true),
            }
        }
        _ => (0, false),
    };
    let candidates = &after[start..];
    let Some(newest) = candidates.last() else {
        return Next::Idle;
    };
    // Verdicts from finished runs first.
    for looked in candidates {
        if looked.push.verdict.is_some() || looked.runs.is_empty() {
            continue;
        }
        // A failure is run once more, unless the tip is in a culprit search (a red tip
        // above it) or the sheriff waits for a fix (blocked).
        let in_search = candidates
            .iter()
            .any(|l| l.push.id > looked.push.id && l.push.verdict == Some(TipVerdict::Red));
        let verdict = match looked.runs.as_slice() {
            [only] if passed(*only) => Some(TipVerdict::Green),
            [_] if !in_search && !blocked => None,
            [_] => Some(TipVerdict::Red),
            [first, .., last] if !passed(*first) && passed(*last) => Some(TipVerdict::Intermittent),
            [.., last] if passed(*last) => Some(TipVerdict::Green),
            [..] => Some(TipVerdict::Red),
        };
        let push = looked.push.id;
        return match verdict {
            Some(verdict) => Next::Judge { push, verdict },
            None => Next::Test { push },
        };
    }
    // Blocked: only the newest tip is looked at.
    let red = if blocked {
        None
    } else {
        candidates
            .iter()
            .position(|l| l.push.verdict == Some(TipVerdict::Red))
    };
    let Some(red) = red else {
        return match newest.push.verdict {
            None => Next::Test {
                push: newest.push.id,
            },
            Some(_) => Next::Idle,
        };
    };
    // Bisection between the last passing tip below the red one and the red one.
    let low = candidates[..red]
        .iter()
        .rposition(|l| l.push.verdict.is_some_and(TipVerdict::passes))
        .map_or(0, |i| i + 1);
    let unknown = &candidates[low..red];
    if unknown.is_empty() {
        return Next::Culprit {
            push: candidates[red].push.id,
        };
    }
    Next::Test {
        push: unknown[(unknown.len() - 1) / 2].push.id,
    }
}

/// Groups commits (oldest first) into pushes by their trailers: a request's commits, a
/// backout, or anyone else's commits in a row.
fn group(commits: &[CommitInfo]) -> Vec<(Option<String>, Option<i64>, Vec<String>)> {
    let mut groups: Vec<(Option<String>, Option<i64>, Vec<String>)> = Vec::new();
    for commit in commits {
        let request = trailer(&commit.message, TRAILER_KEY);
        let backout = trailer(&commit.message, BACKOUT_TRAILER).and_then(|v| v.parse().ok());
        match groups.last_mut() {
            // Consecutive commits of one request, or of nobody, are one push; a backout
            // is a push of its own.
            Some((r, None, revs)) if backout.is_none() && *r == request => {
                revs.push(commit.revision.clone());
            }
            _ => groups.push((request, backout, vec![commit.revision.clone()])),
        }
    }
    groups
}

fn trailer(message: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}: ");
    message
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(&prefix).map(|v| v.trim().to_owned()))
        .filter(|v| !v.is_empty())
}

struct Sheriff<'a> {
    ctx: &'a Context,
    repo: RepoConfig,
    actor: String,
    /// What keeps the sheriff from its work (a backout that did not apply).
    trouble: Option<String>,
    /// When the destination was last fetched, and the latest landing on it then: it is
    /// fetched again at once after a landing (or a backout), else every
    /// `post_land_poll_seconds` (pushes made outside Autoland).
    observed: Option<(std::time::Instant, Option<crate::request::RequestId>)>,
}

impl Sheriff<'_> {
    fn name(&self) -> &str {
        &self.repo.name
    }

    fn copy(&self) -> Result<SharedWorkingCopy, SheriffError> {
        self.ctx.copies.get(self.name()).ok_or_else(|| {
            SheriffError::Waiting(format!("`{}` has no working copy", self.repo.name))
        })
    }

    fn target(&self) -> PushTarget {
        PushTarget::Branch {
            url: self.repo.push_url().to_owned(),
            branch: self.repo.branch().to_owned(),
        }
    }

    /// One look: finish a backout under way, record new pushes, act on CI verdicts.
    async fn sweep(&mut self) -> Result<String, SheriffError> {
        for backout in self.ctx.store.sheriff_pending_backouts(self.name()).await? {
            self.back_out(&backout).await?;
        }
        self.observe().await?;
        for _ in 0..64 {
            if !self.step().await? {
                break;
            }
        }
        self.summary().await
    }

    async fn summary(&self) -> Result<String, SheriffError> {
        let recent = self.ctx.store.sheriff_recent_pushes(self.name(), 1).await?;
        Ok(match recent.first() {
            None => format!("sheriff of {}: waiting for the first landing", self.name()),
            Some(p) => format!(
                "sheriff of {}: tip {} {}",
                self.name(),
                short(&p.tip),
                p.verdict.map_or("under test", TipVerdict::as_str)
            ),
        })
    }

    /// Records the pushes made since the last one seen.
    async fn observe(&mut self) -> Result<(), SheriffError> {
        let store = &self.ctx.store;
        let latest = store.latest_landing_on(self.name()).await?;
        let every = Duration::from_secs(self.repo.post_land_poll_seconds.max(1));
        if let Some((at, seen)) = self.observed
            && seen == latest
            && at.elapsed() < every
        {
            return Ok(());
        }
        let last = store.sheriff_recent_pushes(self.name(), 1).await?;
        let last = last.first();
        if last.is_none() && latest.is_none() {
            // Nothing of Autoland's has landed here yet: nothing to watch over.
            return Ok(());
        }
        self.observed = Some((std::time::Instant::now(), latest));
        let shared = self.copy()?;
        let mut copy = shared.lock().await;
        let tip = copy.update_to_tip().await?;
        if last.is_some_and(|p| p.tip == tip) {
            return Ok(());
        }
        let history = copy
            .history(last.map(|p| p.tip.as_str()), HISTORY_LIMIT)
            .await?;
        drop(copy);
        let mut base = last.map(|p| p.tip.clone());
        let mut groups = Vec::new();
        for (uid, backout, commits) in group(&history) {
            let request = match &uid {
                Some(uid) => store.request_of_uid(uid).await?,
                None => None,
            };
            groups.push((request, backout, commits));
        }
        // The first look at a destination: what came before Autoland's newest landing is
        // the baseline; that landing (it is why the sheriff looks) and anything after it
        // are judged.
        let first_judged = match last {
            Some(_) => 0,
            None => groups
                .iter()
                .rposition(|(request, backout, _)| request.is_some() && backout.is_none())
                .unwrap_or(groups.len()),
        };
        let mut pushes = Vec::new();
        for (i, (request, backout, commits)) in groups.into_iter().enumerate() {
            let Some(tip) = commits.last().cloned() else {
                continue;
            };
            let kind = match (request, backout) {
                _ if i < first_judged => PushKind::Baseline,
                (_, Some(_)) => PushKind::Backout,
                (Some(_), None) => PushKind::Landing,
                (None, None) => PushKind::Outside,
            };
            pushes.push(NewPush {
                tip: tip.clone(),
                base: base.clone(),
                commits,
                kind,
                request_id: request,
                backout_id: backout,
            });
            base = Some(tip);
        }
        if pushes.is_empty() {
            return Ok(());
        }
        tracing::info!(repo = %self.name(), pushes = pushes.len(), tip = %short(&tip), "sheriff saw new pushes");
        store.sheriff_record_pushes(self.name(), &pushes).await?;
        Ok(())
    }

    /// Does one thing the pushes call for; false when there is nothing to do now.
    async fn step(&mut self) -> Result<bool, SheriffError> {
        let store = &self.ctx.store;
        let settled = store.sheriff_settled(self.name()).await?;
        let after = settled.as_ref().map_or(0, |p| p.id);
        let pushes = store.sheriff_pushes_after(self.name(), after).await?;
        let mut runs = store.sheriff_run_states(self.name(), after).await?;
        let looked: Vec<Looked> = pushes
            .into_iter()
            .map(|push| Looked {
                runs: runs.remove(&push.id).unwrap_or_default(),
                push,
            })
            .collect();
        let find = |id: i64| looked.iter().find(|l| l.push.id == id).map(|l| &l.push);
        match decide(settled.as_ref(), &looked) {
            Next::Idle | Next::Wait => Ok(false),
            Next::Judge { push, verdict } => {
                // The tree follows the verdict before the verdict is stored: a crash in
                // between judges the push again (closing and reopening are idempotent),
                // and whoever sees the verdict sees the tree that goes with it.
                if let Some(p) = find(push) {
                    self.judged(p, verdict).await?;
                }
                store.sheriff_judge(push, verdict).await?;
                if verdict.passes() {
                    // Green again: whatever held the sheriff up (a backout by hand) is over.
                    self.trouble = None;
                }
                Ok(true)
            }
            Next::Test { push } => {
                let Some(p) = find(push) else {
                    return Ok(false);
                };
                self.test(p).await?;
                Ok(false)
            }
            Next::Culprit { push } => {
                let Some(p) = find(push).cloned() else {
                    return Ok(false);
                };
                self.convicted(&p).await?;
                Ok(true)
            }
        }
    }

    /// Queues a CI run of a push's tip.
    async fn test(&self, push: &Push) -> Result<(), SheriffError> {
        let store = &self.ctx.store;
        let request = match push.request_id {
            Some(id) => Some(id),
            None => store.latest_landing_on(self.name()).await?,
        };
        let Some(request) = request else {
            return Ok(());
        };
        let ref_name = format!("refs/heads/{}", self.repo.branch());
        let run = store
            .sheriff_queue_run(push, request, &ref_name, self.repo.ci.as_str())
            .await?;
        tracing::info!(repo = %self.name(), push = push.id, tip = %short(&push.tip), run, "sheriff tests a tip");
        self.ctx.wake(Work::Ci).await;
        Ok(())
    }

    /// On a verdict, before it is stored: the tree's state follows the tip's.
    async fn judged(&self, push: &Push, verdict: TipVerdict) -> Result<(), SheriffError> {
        let store = &self.ctx.store;
        match verdict {
            TipVerdict::Green | TipVerdict::Intermittent => {
                if verdict == TipVerdict::Intermittent {
                    metrics::intermittent_tip(self.name());
                    store
                        .record_action(
                            &self.actor,
                            "intermittent",
                            self.name(),
                            &format!(
                                "tip {} failed, then passed when run again: intermittent, \
                                 nothing backed out",
                                short(&push.tip)
                            ),
                        )
                        .await?;
                }
                self.green_again(push).await
            }
            TipVerdict::Red => {
                if self.repo.close_on_red {
                    self.close(
                        &format!(
                            "tip {} is red ({}); closed by the sheriff until a tip is green",
                            short(&push.tip),
                            self.evidence(push).await?.0
                        ),
                        false,
                    )
                    .await?;
                }
                Ok(())
            }
        }
    }

    /// A passing tip after red ones: counts the red time, reopens what the sheriff closed.
    async fn green_again(&self, push: &Push) -> Result<(), SheriffError> {
        let store = &self.ctx.store;
        let recent = store.sheriff_recent_pushes(self.name(), 200).await?;
        let red_since = recent
            .iter()
            .filter(|p| p.id < push.id)
            .take_while(|p| !p.verdict.is_some_and(TipVerdict::passes))
            .filter(|p| p.verdict == Some(TipVerdict::Red))
            .filter_map(|p| p.judged_at)
            .min();
        if let Some(since) = red_since {
            let now = crate::store::now_ms();
            metrics::red_seconds(self.name(), (now - since).max(0) as f64 / 1000.0);
        }
        if let Some(closed) = store.repository_closed(self.name()).await?
            && closed.changed_by == self.actor
        {
            let reason = format!("tip {} is green again", short(&push.tip));
            store
                .set_repository_closed(self.name(), false, &reason, &self.actor)
                .await?;
            self.ctx.wake(Work::Pushers).await;
        }
        Ok(())
    }

    /// Closes the destination with `reason`, unless it is closed already: by someone
    /// else (their closure stands), or by the sheriff when `restate` is false.
    async fn close(&self, reason: &str, restate: bool) -> Result<(), SheriffError> {
        let store = &self.ctx.store;
        if let Some(closed) = store.repository_closed(self.name()).await?
            && (closed.changed_by != self.actor || !restate)
        {
            return Ok(());
        }
        store
            .set_repository_closed(self.name(), true, reason, &self.actor)
            .await?;
        Ok(())
    }

    /// `(names, lines)` of the failing jobs of a push's tip (its last failed run), each
    /// line with the job's log.
    async fn evidence(&self, push: &Push) -> Result<(String, String), SheriffError> {
        let runs = self.ctx.store.sheriff_runs(push.id).await?;
        match runs.into_iter().rev().find(|r| r.state != CiState::Passed) {
            Some(run) => self.jobs_of(run).await,
            None => Ok(("its tests".to_owned(), String::new())),
        }
    }

    /// `(names, evidence)`: the names of a run's failed jobs (by their last attempts,
    /// as the try report counts them), and a line per job with its log.
    async fn jobs_of(&self, run: CiRun) -> Result<(String, String), SheriffError> {
        let report = self.ctx.store.run_report(run).await?;
        let failed = tally(&report.jobs).failed;
        if failed.is_empty() {
            let run = &report.run;
            return Ok((
                format!("CI run {} ({})", run.id, run.state.as_str()),
                String::new(),
            ));
        }
        let names: Vec<&str> = failed.iter().map(|o| o.name).collect();
        let lines: Vec<String> = failed
            .iter()
            .map(|o| {
                format!(
                    "{} ({}, {} attempt(s)): {}",
                    o.name,
                    o.last.raw_result.as_deref().unwrap_or("failed"),
                    o.attempts,
                    o.last.log_url.as_deref().unwrap_or("no log link")
                )
            })
            .collect();
        Ok((names.join(", "), lines.join("\n")))
    }

    /// A culprit: Autoland's landing is backed out; anyone else's is reported.
    async fn convicted(&mut self, push: &Push) -> Result<(), SheriffError> {
        let (jobs, evidence) = self.evidence(push).await?;
        let what = format!(
            "push {} ({}, {} commit(s)) is the first whose tip fails: {jobs}\n{evidence}",
            short(&push.tip),
            push.kind.as_str(),
            push.commits.len()
        );
        tracing::warn!(repo = %self.name(), tip = %short(&push.tip), kind = push.kind.as_str(), "sheriff found a culprit");
        let landing = match (push.kind, push.request_id) {
            (PushKind::Landing, Some(request)) => Some(request),
            _ => None,
        };
        let (action, detail, close) = match landing {
            Some(request) => ("backout", format!("request {request}: {what}"), None),
            None => {
                let why = match push.kind {
                    PushKind::Backout => {
                        "the tip is still red after a backout: a person must \
                                          look (push a fix, or back out by hand)"
                    }
                    _ => {
                        "not Autoland's landing: reported, not backed out (push a fix, or \
                          back it out by hand)"
                    }
                };
                let close = self.repo.close_on_red.then(|| {
                    format!(
                        "tip red since push {} ({}): {why}; `{}` reopens by itself once a tip \
                         is green",
                        short(&push.tip),
                        push.kind.as_str(),
                        self.name()
                    )
                });
                ("culprit", format!("{what}\n{why}"), close)
            }
        };
        let conviction = Conviction {
            push: push.id,
            actor: &self.actor,
            action,
            detail: &detail,
            backout: landing.map(|request| (request, jobs.as_str())),
            close: close.as_deref(),
        };
        match self
            .ctx
            .store
            .sheriff_convict(self.name(), &conviction)
            .await?
        {
            Some(backout) => self.back_out(&backout).await,
            None => Ok(()),
        }
    }

    /// Makes and pushes a backout (or finds the one an earlier attempt pushed).
    async fn back_out(&mut self, backout: &Backout) -> Result<(), SheriffError> {
        let store = &self.ctx.store;
        let Some(push) = store.sheriff_push(backout.push_id).await? else {
            return Ok(());
        };
        let Some(request) = store.request(backout.request_id).await? else {
            return Ok(());
        };
        let target = self.target();
        let marker = backout_marker(backout.id);
        let shared = self.copy()?;
        let mut copy = shared.lock().await;
        if let Some(base) = &backout.attempt_base
            && let Some(revision) = copy.find_pushed(&target, &marker, Some(base)).await?
        {
            drop(copy);
            return self.backed_out(backout, &push, &revision, true).await;
        }
        if !self.ctx.is_leader() {
            return Err(SheriffError::Waiting(
                "this process no longer leads; stopping before the backout push".to_owned(),
            ));
        }
        let wait = self.ctx.config.vcs_timeout().saturating_mul(3);
        let Some(_lock) = store.lock_destination(self.name(), wait).await? else {
            return Err(SheriffError::Waiting(format!(
                "another process has been landing on `{}` for {wait:?}",
                self.name()
            )));
        };
        let message = backout_message(&request.bug, &push, &backout.jobs, &marker);
        let author = self.ctx.config.committer.clone();
        let attempts = self.ctx.config.pusher.push_attempts.max(1);
        let mut pause = Duration::from_millis(self.ctx.config.pusher.push_backoff_ms);
        let mut previous = backout.attempt_base.clone();
        for attempt in 1..=attempts {
            if attempt > 1
                && let Some(revision) = copy
                    .find_pushed(&target, &marker, previous.as_deref())
                    .await?
            {
                drop(copy);
                return self.backed_out(backout, &push, &revision, true).await;
            }
            let tip = copy.update_to_tip().await?;
            match copy.backout(&push.commits, &author, &message).await {
                Ok(_) => {}
                Err(VcsError::Conflict { files, output }) => {
                    drop(copy);
                    return self.conflict(backout, &push, &files, &output).await;
                }
                Err(e) => return Err(e.into()),
            }
            store.sheriff_backout_attempt(backout.id, &tip).await?;
            previous = Some(tip);
            fault::point("sheriff.backout_push.before");
            match copy.push(&target).await {
                Ok(revision) => {
                    fault::point("sheriff.backout_push.after");
                    drop(copy);
                    return self.backed_out(backout, &push, &revision, false).await;
                }
                Err(VcsError::PushRace { .. }) if attempt < attempts => {
                    metrics::push_retry(self.name());
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                }
                // The last attempt lost the race too: said below.
                Err(VcsError::PushRace { .. }) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Err(SheriffError::Waiting(format!(
            "`{}` kept moving during the backout; trying again",
            self.name()
        )))
    }

    /// The backout is on the destination: the request is `backed_out`, the bug told.
    async fn backed_out(
        &mut self,
        backout: &Backout,
        push: &Push,
        revision: &str,
        found: bool,
    ) -> Result<(), SheriffError> {
        let store = &self.ctx.store;
        if let Some(request) = store.request(backout.request_id).await?
            && request.stage == Stage::Landed
        {
            let (_, evidence) = self.evidence(push).await?;
            let detail = format!(
                "its landing {} turned `{}` red (failing: {}), so it was backed out as {revision}.\n{evidence}",
                short(&push.tip),
                self.name(),
                backout.jobs
            );
            match self
                .ctx
                .transition(
                    &request,
                    &Transition::BackedOut,
                    &self.actor,
                    &detail,
                    Effects::default(),
                )
                .await
            {
                Ok(_) | Err(StoreError::StageChanged { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        store
            .sheriff_backout_finished(backout.id, BackoutState::Landed, Some(revision), None)
            .await?;
        self.observed = None;
        metrics::backout(self.name());
        let how = if found {
            " (found the push of an earlier attempt)"
        } else {
            ""
        };
        store
            .record_action(
                &self.actor,
                "backout_landed",
                self.name(),
                &format!(
                    "request {}: backed out as {revision}{how}; failing: {}",
                    backout.request_id, backout.jobs
                ),
            )
            .await?;
        Ok(())
    }

    /// The backout does not apply: close the tree and tell the operator.
    async fn conflict(
        &mut self,
        backout: &Backout,
        push: &Push,
        files: &[String],
        output: &str,
    ) -> Result<(), SheriffError> {
        let store = &self.ctx.store;
        let detail = format!(
            "the backout of {} (request {}) does not apply on the tip: conflicts in {}. \
             A person must back it out by hand.\n{output}",
            short(&push.tip),
            backout.request_id,
            files.join(", ")
        );
        store
            .sheriff_backout_finished(backout.id, BackoutState::Conflict, None, Some(&detail))
            .await?;
        let reason = format!(
            "red tip; the backout of {} (request {}) conflicts in {}: back it out by hand, \
             then reopen `{}`",
            short(&push.tip),
            backout.request_id,
            files.join(", "),
            self.name()
        );
        self.close(&reason, true).await?;
        store
            .record_action(&self.actor, "backout_conflict", self.name(), &detail)
            .await?;
        store
            .note(backout.request_id, "backout_conflict", &self.actor, &detail)
            .await?;
        self.trouble = Some(format!("sheriff of {}: {reason}", self.name()));
        Ok(())
    }
}

/// The backout commit's message: Mozilla's form, every commit listed, the trailer last.
pub fn backout_message(bug: &Option<i64>, push: &Push, jobs: &str, marker: &str) -> String {
    let bug = bug.map(|b| format!(" (bug {b})")).unwrap_or_default();
    let first = match push.commits.as_slice() {
        [one] => format!(
            "Backed out changeset {}{bug} for failing {jobs}",
            short(one)
        ),
        many => format!(
            "Backed out {} changesets{bug} for failing {jobs}",
            many.len()
        ),
    };
    let mut text = format!("{first}\n\n");
    for commit in &push.commits {
        text.push_str(&format!("Backed out changeset {commit}\n"));
    }
    if let Some(request) = push.request_id {
        text.push_str(&format!(
            "\nLanded by Autoland request {request}; the first tip to fail was {}.\n",
            short(&push.tip)
        ));
    }
    text.push_str(&format!("\n{marker}\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestId;

    fn push(id: i64, kind: PushKind, verdict: Option<TipVerdict>, culprit: bool) -> Push {
        Push {
            id,
            repo: "central".to_owned(),
            tip: format!("{id:040x}"),
            base: None,
            commits: vec![format!("{id:040x}")],
            kind,
            request_id: Some(RequestId(id)),
            backout_id: None,
            verdict,
            culprit,
            created_at: 0,
            judged_at: None,
        }
    }

    fn looked(id: i64, verdict: Option<TipVerdict>, runs: &[CiState]) -> Looked {
        Looked {
            push: push(id, PushKind::Landing, verdict, false),
            runs: runs.to_vec(),
        }
    }

    use CiState::{Failed as F, Passed as P, Running as R};
    use TipVerdict::{Green, Red};

    #[test]
    fn the_newest_tip_is_tested_and_a_failure_run_again() {
        let green = push(1, PushKind::Landing, Some(Green), false);
        let after = [looked(2, None, &[]), looked(3, None, &[])];
        assert_eq!(decide(Some(&green), &after), Next::Test { push: 3 });
        let after = [looked(2, None, &[]), looked(3, None, &[R])];
        assert_eq!(decide(Some(&green), &after), Next::Wait);
        let after = [looked(2, None, &[]), looked(3, None, &[P])];
        assert_eq!(
            decide(Some(&green), &after),
            Next::Judge {
                push: 3,
                verdict: Green
            }
        );
        let after = [looked(2, None, &[]), looked(3, None, &[F])];
        assert_eq!(decide(Some(&green), &after), Next::Test { push: 3 });
        let after = [looked(3, None, &[F, P])];
        assert_eq!(
            decide(Some(&green), &after),
            Next::Judge {
                push: 3,
                verdict: TipVerdict::Intermittent
            }
        );
        let after = [looked(3, None, &[F, F])];
        assert_eq!(
            decide(Some(&green), &after),
            Next::Judge {
                push: 3,
                verdict: Red
            }
        );
    }

    #[test]
    fn a_red_tip_is_bisected_down_to_the_first_failing_push() {
        let green = push(1, PushKind::Landing, Some(Green), false);
        // Pushes 2..=8, 8 red: test the middle of 2..=7 (4), ...
        let mut after: Vec<Looked> = (2..=7).map(|id| looked(id, None, &[])).collect();
        after.push(looked(8, Some(Red), &[F, F]));
        assert_eq!(decide(Some(&green), &after), Next::Test { push: 4 });
        after[2] = looked(4, Some(Green), &[P]);
        assert_eq!(decide(Some(&green), &after), Next::Test { push: 6 });
        after[4] = looked(6, None, &[F]);
        assert_eq!(
            decide(Some(&green), &after),
            Next::Judge {
                push: 6,
                verdict: Red
            }
        );
        after[4] = looked(6, Some(Red), &[F]);
        assert_eq!(decide(Some(&green), &after), Next::Test { push: 5 });
        after[3] = looked(5, Some(Green), &[P]);
        assert_eq!(decide(Some(&green), &after), Next::Culprit { push: 6 });
    }

    #[test]
    fn after_a_culprit_only_what_follows_its_backout_is_judged() {
        let culprit = push(2, PushKind::Landing, Some(Red), true);
        // No backout yet: only the next passing tip is looked for, no new culprit search.
        let after = [looked(3, None, &[F])];
        assert_eq!(
            decide(Some(&culprit), &after),
            Next::Judge {
                push: 3,
                verdict: Red
            }
        );
        let after = [looked(3, Some(Red), &[F])];
        assert_eq!(decide(Some(&culprit), &after), Next::Idle);
        // With the backout: the pushes before it are skipped.
        let mut backout = looked(4, None, &[]);
        backout.push.kind = PushKind::Backout;
        let after = [looked(3, Some(Red), &[F]), backout.clone()];
        assert_eq!(decide(Some(&culprit), &after), Next::Test { push: 4 });
        backout.runs = vec![F, F];
        backout.push.verdict = Some(Red);
        let after = [looked(3, Some(Red), &[F]), backout];
        assert_eq!(decide(Some(&culprit), &after), Next::Culprit { push: 4 });
    }

    #[test]
    fn commits_group_into_pushes_by_trailer() {
        let c = |rev: &str, message: &str| CommitInfo {
            revision: rev.repeat(40).chars().take(40).collect(),
            message: message.to_owned(),
        };
        let groups = group(&[
            c("a", "one\n\nAutoland-Request: u1"),
            c("b", "two\n\nAutoland-Request: u1"),
            c("c", "someone"),
            c("d", "someone else"),
            c("e", "Backed out\n\nAutoland-Backout: 0000000003"),
            c("f", "three\n\nAutoland-Request: u2"),
        ]);
        let shape: Vec<(Option<String>, Option<i64>, usize)> = groups
            .iter()
            .map(|(r, b, revs)| (r.clone(), *b, revs.len()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (Some("u1".to_owned()), None, 2),
                (None, None, 2),
                (None, Some(3), 1),
                (Some("u2".to_owned()), None, 1),
            ]
        );
    }

    #[test]
    fn the_backout_message_names_the_bug_the_jobs_and_every_commit() {
        let mut p = push(7, PushKind::Landing, Some(Red), true);
        let text = backout_message(&Some(42), &p, "ci_command", &backout_marker(3));
        assert!(text.starts_with(&format!(
            "Backed out changeset {} (bug 42) for failing ci_command\n",
            short(&p.commits[0])
        )));
        assert!(text.contains(&format!("Backed out changeset {}\n", p.commits[0])));
        assert!(text.trim_end().ends_with("Autoland-Backout: 0000000003"));
        p.commits.push("b".repeat(40));
        let text = backout_message(&None, &p, "build, test", &backout_marker(3));
        assert!(text.starts_with("Backed out 2 changesets for failing build, test\n"));
    }
}
