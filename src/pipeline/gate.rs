//! The landing gate's executor: one per gated destination, run by the leading process (a
//! singleton). It tells the destination's lanes ([`crate::gate`]) what happened —
//! requests that joined or left the gate, candidates' CI verdicts, landings — and does
//! what they ask: build a candidate and push it to its own try ref, cancel one, land one,
//! eject a request.
//!
//! Every step is on record before it is acted on (`store/gate.rs`): a candidate's row
//! before its ref is pushed, its CI run with its `testing` state, its requests'
//! `gate_landing` stage and the tip the landing starts from before the destination push.
//! At start-up the executor resolves a landing that was under way (landed → finished;
//! otherwise queued again) and cancels every other candidate: the lanes are rebuilt from
//! the requests in the gate, so nothing untested lands and nothing is pushed twice.
//!
//! Landing pushes the tested revision itself (a fast-forward). With several lanes, a lane
//! whose tip moved only by other lanes' landings applies its tested requests over them
//! (the price of lanes, `docs/gate.md`); a tip moved by anyone else rebuilds and retests
//! everything.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::steps::{apply_request, short};
use super::watcher::try_detail;
use crate::config::{GateMode, RepoConfig};
use crate::fault;
use crate::gate::{
    Action, CandidateId, Change, ChangeId, Lane, LaneConfig, Route, Router, Strategy, Verdict,
};
use crate::request::{FailureCategory, RequestId, Stage, TRAILER_KEY, Transition};
use crate::runtime::{Context, ModuleStatus, Work};
use crate::store::{
    Candidate, CandidateRun, CandidateState, CiState, Effects, RunReport, StoreError,
};
use crate::vcs::{PushTarget, SharedWorkingCopy, VcsError};

/// Why a step of the executor stopped; it is tried again later.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A repository could not be read or pushed.
    #[error(transparent)]
    Vcs(#[from] VcsError),
    /// Something else worth waiting on (leadership lost, a candidate not pushed yet).
    #[error("{0}")]
    Waiting(String),
    /// An operator closed the destination: passed candidates wait to land (testing goes
    /// on), looked at again every poll interval and at once when it is reopened.
    #[error("{0}")]
    Closed(String),
}

/// The try ref of a candidate: `refs/heads/autoland/gate-<id>`.
pub fn candidate_ref(id: i64) -> String {
    PushTarget::try_ref(&candidate_uid(id))
}

fn candidate_uid(id: i64) -> String {
    format!("gate-{id}")
}

/// Runs the gate of `repo` until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    repo: String,
    status: ModuleStatus,
    shutdown: CancellationToken,
) {
    let actor = format!("{}/gate-{repo}", ctx.instance);
    let mut gate = match Gate::new(&ctx, &repo, actor) {
        Ok(gate) => gate,
        Err(why) => {
            status.error(why);
            shutdown.cancelled().await;
            return;
        }
    };
    let mut backoff = Duration::from_millis(200);
    loop {
        match gate.recover().await {
            Ok(()) => break,
            Err(e) => {
                status.error(format!("cannot resume the gate of {repo}: {e}"));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    loop {
        match gate.sweep().await {
            Ok(()) => match (&gate.trouble, &gate.closed) {
                (Some(why), _) => status.error(why.clone()),
                (None, Some(closed)) => status.set(format!("{}; {closed}", gate.summary())),
                (None, None) => status.set(gate.summary()),
            },
            Err(e) => status.error(format!("gate of {repo}: {e}")),
        }
        if !ctx.idle(Work::Gate, &shutdown).await {
            return;
        }
    }
}

/// Fails the requests waiting in a gate that no longer exists (the destination's `gate`
/// turned `off`, or the destination removed from the configuration): nothing would ever
/// move them. A retry sends them through today's path (try, then landing). Returns how
/// many were failed. (A request caught mid-landing, `gate_landing`, when the gate was
/// removed is left alone: only the gate's recovery knows whether its push happened.)
pub async fn fail_orphans(ctx: &Context) -> Result<usize, StoreError> {
    let mut failed = 0;
    for (id, repo) in ctx.store.gated_everywhere().await? {
        if ctx.config.is_gated(&repo) {
            continue;
        }
        let Some(request) = ctx.store.request(id).await? else {
            continue;
        };
        let detail = format!(
            "`{repo}` no longer has a landing gate (its `gate` is off or it is not \
             configured), so nothing would land this request; retry it to take it through \
             try and landing"
        );
        match ctx
            .transition(
                &request,
                &Transition::Fail(FailureCategory::InvalidRequest),
                &format!("{}/gate", ctx.instance),
                &detail,
                Effects::default(),
            )
            .await
        {
            Ok(_) => failed += 1,
            Err(StoreError::StageChanged { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(failed)
}

/// One lane's queue and the database numbers of its candidates.
struct Slot {
    lane: Lane,
    /// Lane candidate → `gate_candidates.id`.
    ids: HashMap<CandidateId, i64>,
    /// The window last written to the database.
    saved_window: Option<usize>,
}

/// Work that stopped for a passing reason, done again at a later sweep.
#[derive(Debug, Clone)]
enum Redo {
    Build {
        lane: String,
        candidate: CandidateId,
    },
    Land {
        lane: String,
        candidate: CandidateId,
    },
}

/// How building a candidate went.
enum Built {
    Pushed,
    /// A request's patches did not apply on what was below them.
    Conflict(String),
    /// The destination's tip is not the one the gate knew: someone pushed.
    TipMoved(String),
}

/// How landing a candidate went.
enum Landing {
    /// On the destination: the revision each of its requests ends with, the last first
    /// in nothing (in request order).
    Landed(Vec<(RequestId, String)>),
    /// Not landed; its requests are queued again.
    Refused { why: String, outside_push: bool },
}

struct Gate<'a> {
    ctx: &'a Context,
    repo: RepoConfig,
    try_repo: RepoConfig,
    actor: String,
    config: LaneConfig,
    router: Router,
    lanes: BTreeMap<String, Slot>,
    /// The requests the gate has taken in, with the priority it last saw.
    known: HashMap<RequestId, i64>,
    /// The destination's tip as the gate last knew it (its own landings included).
    expected_tip: Option<String>,
    redo: Vec<Redo>,
    redo_at: Option<Instant>,
    redo_backoff: Duration,
    /// What keeps work waiting, shown as the module's state.
    trouble: Option<String>,
    /// Why landings wait on an operator (a closed destination): not a fault.
    closed: Option<String>,
}

impl<'a> Gate<'a> {
    fn new(ctx: &'a Context, name: &str, actor: String) -> Result<Gate<'a>, String> {
        let Some(repo) = ctx.config.repo(name).cloned() else {
            return Err(format!("gated repository `{name}` is not configured"));
        };
        let Some(try_repo) = ctx.config.try_repo_for(&repo).cloned() else {
            return Err(format!("gated repository `{name}` has no try repository"));
        };
        let strategy = match repo.gate {
            GateMode::Serial => Strategy::Serial,
            GateMode::Speculative => Strategy::Speculative,
            GateMode::Off => return Err(format!("repository `{name}` has no gate")),
        };
        let lanes: Vec<(String, Vec<String>)> = repo
            .lanes
            .iter()
            .map(|(lane, globs)| (lane.clone(), globs.clone()))
            .collect();
        let router = if lanes.is_empty() && !repo.lanes_by_files {
            Router::single()
        } else {
            Router::new(&lanes).map_err(|e| format!("lane `{}`: {}", e.lane, e.message))?
        };
        Ok(Gate {
            ctx,
            config: LaneConfig {
                strategy,
                max_window: repo.max_window,
                batch_size: repo.batch_size,
            },
            repo,
            try_repo,
            actor,
            router,
            lanes: BTreeMap::new(),
            known: HashMap::new(),
            expected_tip: None,
            redo: Vec::new(),
            redo_at: None,
            redo_backoff: Duration::from_millis(500),
            trouble: None,
            closed: None,
        })
    }

    fn name(&self) -> &str {
        &self.repo.name
    }

    fn copy(&self) -> Result<SharedWorkingCopy, GateError> {
        self.ctx
            .copies
            .get(&self.repo.name)
            .ok_or_else(|| GateError::Waiting(format!("`{}` has no working copy", self.repo.name)))
    }

    /// Refuses to push once this process no longer leads: another one's executor may be
    /// running the gate by now.
    fn check_leading(&self) -> Result<(), GateError> {
        if *self.ctx.leader.borrow() {
            Ok(())
        } else {
            Err(GateError::Waiting(
                "this process no longer leads; stopping before any push".to_owned(),
            ))
        }
    }

    fn summary(&self) -> String {
        let queued: usize = self.known.len();
        let lanes: Vec<String> = self
            .lanes
            .iter()
            .map(|(name, slot)| format!("{name}: window {}", slot.lane.window()))
            .collect();
        if queued == 0 {
            format!("gate of {}: idle", self.name())
        } else {
            format!(
                "gate of {}: {queued} request(s); {}",
                self.name(),
                lanes.join(", ")
            )
        }
    }

    /// After a restart: a landing under way is finished or queued again; every other
    /// candidate is cancelled (the lanes are rebuilt from the requests).
    async fn recover(&mut self) -> Result<(), GateError> {
        let store = &self.ctx.store;
        for candidate in store.gate_open_candidates(self.name()).await? {
            if candidate.state == CandidateState::Landing {
                self.resume_landing(&candidate).await?;
            } else {
                store
                    .gate_cancel(
                        candidate.id,
                        "the gate restarted; its requests are tested again",
                    )
                    .await?;
            }
        }
        for request in store.gated_requests(self.name()).await? {
            if request.stage == Stage::GateLanding {
                self.requeue(
                    request.id,
                    "the gate restarted before this landing was pushed",
                )
                .await?;
            }
        }
        store.gate_clear_lanes(self.name()).await?;
        Ok(())
    }

    /// A candidate found in `landing` at start-up: found on the destination, it is
    /// finished; not pushed yet, its tested revision is pushed now if the destination is
    /// still where it was tested (no second test run); otherwise its requests are queued
    /// again.
    async fn resume_landing(&mut self, candidate: &Candidate) -> Result<(), GateError> {
        let found = match &candidate.landed_on {
            Some(on) => self.find_landed(candidate, on).await?,
            None => None,
        };
        if let Some(heads) = found {
            return self
                .finish_landing(candidate, &heads, "(found after a restart)")
                .await;
        }
        match self.push_landing(candidate).await? {
            Landing::Landed(heads) => {
                self.finish_landing(candidate, &heads, "(pushed after a restart)")
                    .await?;
            }
            Landing::Refused { why, .. } => {
                tracing::info!(repo = %self.name(), candidate = candidate.id, %why, "a landing under way at start-up is tested again");
                for request in &candidate.requests {
                    self.requeue(*request, "the gate restarted; its landing was not pushed")
                        .await?;
                }
                self.ctx
                    .store
                    .gate_set_state(
                        candidate.id,
                        &[CandidateState::Landing],
                        CandidateState::Refused,
                        Some("the gate restarted before its landing was pushed"),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// One look at everything: requests that joined, left or were moved to the front,
    /// CI verdicts, work to do again.
    async fn sweep(&mut self) -> Result<(), GateError> {
        let gated = self.ctx.store.gated_requests(self.name()).await?;
        let present: HashMap<RequestId, i64> = gated.iter().map(|r| (r.id, r.priority)).collect();
        let left: Vec<RequestId> = self
            .known
            .keys()
            .filter(|id| !present.contains_key(id))
            .copied()
            .collect();
        for id in left {
            self.leave(id).await?;
        }
        for request in &gated {
            match self.known.get(&request.id).copied() {
                None if request.stage == Stage::Gated => {
                    self.join(request.id, request.priority).await?
                }
                Some(seen) if request.priority > seen => {
                    self.known.insert(request.id, request.priority);
                    if let Some(lane) = self.router.lane_of(request.id.0).map(str::to_owned)
                        && let Some(slot) = self.lanes.get_mut(&lane)
                    {
                        let actions = slot.lane.promote(request.id.0);
                        self.execute(&lane, actions).await?;
                    }
                }
                _ => {}
            }
        }
        self.verdicts().await?;
        if self.redo_at.is_some_and(|at| Instant::now() >= at) {
            self.redo_at = None;
            self.closed = None;
            let mut redo = std::mem::take(&mut self.redo).into_iter();
            while let Some(work) = redo.next() {
                match self.redo_one(work.clone()).await {
                    Ok(()) => {}
                    Err(GateError::Store(e)) => {
                        // Keep what is left for the next sweep; the database is the trouble.
                        self.redo.push(work);
                        self.redo.extend(redo);
                        self.redo_at = Some(Instant::now() + self.redo_backoff);
                        return Err(e.into());
                    }
                    Err(e) => self.postpone(work, &e),
                }
            }
        }
        self.save_windows().await?;
        Ok(())
    }

    async fn redo_one(&mut self, work: Redo) -> Result<(), GateError> {
        match work {
            Redo::Build { lane, candidate } => {
                if self.db_id(&lane, candidate).is_some() {
                    let actions = self.build(&lane, candidate).await?;
                    self.run_actions(actions).await?;
                }
            }
            Redo::Land { lane, candidate } => {
                if self.db_id(&lane, candidate).is_some() {
                    let actions = self.land(&lane, candidate).await?;
                    self.run_actions(actions).await?;
                }
            }
        }
        Ok(())
    }

    fn db_id(&self, lane: &str, candidate: CandidateId) -> Option<i64> {
        self.lanes.get(lane)?.ids.get(&candidate).copied()
    }

    /// A request entered the gate: into the lane its files choose (or held until the
    /// lanes it touches are down to one).
    async fn join(&mut self, id: RequestId, priority: i64) -> Result<(), GateError> {
        let patches = self.ctx.store.patches(id).await?;
        let mut files: Vec<String> = patches.iter().flat_map(|p| p.files.clone()).collect();
        files.sort();
        files.dedup();
        self.known.insert(id, priority);
        match self.router.route(id.0, &files) {
            Route::Lane(lane) => self.enqueue(&lane, id, priority).await,
            Route::Held(lanes) => {
                self.ctx
                    .store
                    .note(
                        id,
                        "waiting",
                        &self.actor,
                        &format!(
                            "waiting: it changes files of more than one lane under test ({}); \
                             it joins a lane when only one of them is left",
                            lanes.join(", ")
                        ),
                    )
                    .await?;
                Ok(())
            }
        }
    }

    async fn enqueue(&mut self, lane: &str, id: RequestId, priority: i64) -> Result<(), GateError> {
        let actions = self.enqueue_actions(lane, id, priority);
        self.run_actions(actions).await
    }

    /// Puts `id` in `lane`'s queue (starting the lane if need be); what the lane asks.
    fn enqueue_actions(
        &mut self,
        lane: &str,
        id: RequestId,
        priority: i64,
    ) -> Vec<(String, Action)> {
        let config = self.config;
        let slot = self.lanes.entry(lane.to_owned()).or_insert_with(|| Slot {
            lane: Lane::new(config, 1),
            ids: HashMap::new(),
            saved_window: None,
        });
        slot.lane
            .enqueue(Change {
                id: id.0,
                priority,
                arrival: id.0,
            })
            .into_iter()
            .map(|a| (lane.to_owned(), a))
            .collect()
    }

    /// A request left the gate (cancelled, or moved by an operator).
    async fn leave(&mut self, id: RequestId) -> Result<(), GateError> {
        self.known.remove(&id);
        let mut actions = Vec::new();
        if let Some(lane) = self.router.lane_of(id.0).map(str::to_owned) {
            actions = self.lane_actions(&lane, |l| l.remove(id.0));
        }
        actions.extend(self.release(id).await?);
        self.run_actions(actions).await
    }

    /// `id` is out of its lane: requests held for its lane may join now (returned: what
    /// their lanes ask); an empty lane ends.
    async fn release(&mut self, id: RequestId) -> Result<Vec<(String, Action)>, GateError> {
        let lane = self.router.lane_of(id.0).map(str::to_owned);
        let mut actions = Vec::new();
        for (held, to) in self.router.done(id.0) {
            let priority = self.known.get(&RequestId(held)).copied().unwrap_or(0);
            actions.extend(self.enqueue_actions(&to, RequestId(held), priority));
        }
        if let Some(lane) = lane
            && self.router.members_of(&lane) == 0
            && self.lanes.get(&lane).is_some_and(|s| s.lane.is_idle())
        {
            self.lanes.remove(&lane);
            self.ctx.store.gate_drop_lane(self.name(), &lane).await?;
        }
        Ok(actions)
    }

    /// Reads the verdict of every candidate under test.
    async fn verdicts(&mut self) -> Result<(), GateError> {
        let open = self.ctx.store.gate_open_candidates(self.name()).await?;
        let testing: HashMap<i64, Candidate> = open
            .into_iter()
            .filter(|c| c.state == CandidateState::Testing)
            .map(|c| (c.id, c))
            .collect();
        let mut decided = Vec::new();
        for (lane, slot) in &self.lanes {
            for (candidate, db) in &slot.ids {
                let Some(row) = testing.get(db) else {
                    continue;
                };
                let Some(run_id) = row.run_id else {
                    continue;
                };
                let Some(run) = self.ctx.store.ci_run(run_id).await? else {
                    continue;
                };
                let verdict = match run.state {
                    CiState::Passed => Verdict::Passed,
                    CiState::Failed | CiState::TimedOut => Verdict::Failed,
                    CiState::Queued | CiState::Running | CiState::Cancelled => continue,
                };
                decided.push((lane.clone(), *candidate, *db, verdict));
            }
        }
        decided.sort_by_key(|(_, _, db, _)| *db);
        for (lane, candidate, db, verdict) in decided {
            let state = match verdict {
                Verdict::Passed => CandidateState::Passed,
                Verdict::Failed => CandidateState::Failed,
            };
            self.ctx
                .store
                .gate_set_state(db, &[CandidateState::Testing], state, None)
                .await?;
            let Some(slot) = self.lanes.get_mut(&lane) else {
                continue;
            };
            let actions = slot.lane.result(candidate, verdict);
            self.execute(&lane, actions).await?;
        }
        Ok(())
    }

    async fn save_windows(&mut self) -> Result<(), GateError> {
        for (name, slot) in &mut self.lanes {
            let window = slot.lane.window();
            if slot.saved_window != Some(window) {
                self.ctx
                    .store
                    .gate_set_window(&self.repo.name, name, i64::try_from(window).unwrap_or(0))
                    .await?;
                slot.saved_window = Some(window);
            }
        }
        Ok(())
    }

    /// Does what a lane asked, and what those steps make it ask next. A step that
    /// cannot be done now is kept to be done again (with a backoff); the rest goes on.
    async fn execute(&mut self, lane: &str, actions: Vec<Action>) -> Result<(), GateError> {
        self.run_actions(actions.into_iter().map(|a| (lane.to_owned(), a)).collect())
            .await
    }

    /// [`Gate::execute`] for actions tagged with their lane.
    async fn run_actions(&mut self, actions: Vec<(String, Action)>) -> Result<(), GateError> {
        let mut queue: VecDeque<(String, Action)> = actions.into();
        while let Some((lane, action)) = queue.pop_front() {
            let more = match action {
                Action::Test {
                    candidate,
                    on,
                    changes,
                    ahead,
                } => {
                    self.record_candidate(&lane, candidate, on, &changes, &ahead)
                        .await?;
                    match self.build(&lane, candidate).await {
                        Ok(more) => more,
                        Err(GateError::Store(e)) => return Err(e.into()),
                        Err(e) => {
                            self.postpone(
                                Redo::Build {
                                    lane: lane.clone(),
                                    candidate,
                                },
                                &e,
                            );
                            Vec::new()
                        }
                    }
                }
                Action::Cancel { candidate } => {
                    self.cancel(&lane, candidate).await?;
                    Vec::new()
                }
                Action::Land { candidate, .. } => match self.land(&lane, candidate).await {
                    Ok(more) => more,
                    Err(GateError::Store(e)) => return Err(e.into()),
                    Err(e) => {
                        self.postpone(
                            Redo::Land {
                                lane: lane.clone(),
                                candidate,
                            },
                            &e,
                        );
                        Vec::new()
                    }
                },
                Action::Eject {
                    change,
                    candidate,
                    tested_with,
                } => self.eject(&lane, change, candidate, &tested_with).await?,
            };
            // Actions come back tagged with their lane: a moved tip concerns every lane.
            queue.extend(more);
        }
        Ok(())
    }

    fn postpone(&mut self, work: Redo, why: &GateError) {
        self.redo.push(work);
        if let GateError::Closed(message) = why {
            // Not a fault: no backoff, so a reopened destination takes landings at once.
            self.closed = Some(message.clone());
            let soon = Instant::now() + self.ctx.config.poll_interval();
            self.redo_at = Some(self.redo_at.map_or(soon, |at| at.min(soon)));
            return;
        }
        tracing::warn!(gate = %self.repo.name, error = %why, "gate step postponed");
        self.trouble = Some(format!("gate of {}: {why}; trying again", self.repo.name));
        let later = Instant::now() + self.redo_backoff;
        self.redo_at = Some(self.redo_at.map_or(later, |at| at.min(later)));
        self.redo_backoff = (self.redo_backoff * 2).min(Duration::from_secs(60));
    }

    fn recovered(&mut self) {
        self.trouble = None;
        self.redo_backoff = Duration::from_millis(500);
    }

    async fn record_candidate(
        &mut self,
        lane: &str,
        candidate: CandidateId,
        on: Option<CandidateId>,
        changes: &[ChangeId],
        ahead: &[ChangeId],
    ) -> Result<(), GateError> {
        let parent = on.and_then(|c| self.db_id(lane, c));
        let own: Vec<RequestId> = changes.iter().map(|c| RequestId(*c)).collect();
        let below: Vec<RequestId> = ahead.iter().map(|c| RequestId(*c)).collect();
        let db = self
            .ctx
            .store
            .gate_new_candidate(&self.repo.name, lane, parent, &below, &own)
            .await?;
        if let Some(slot) = self.lanes.get_mut(lane) {
            slot.ids.insert(candidate, db);
        }
        Ok(())
    }

    /// Builds a recorded candidate (on its parent's tested revision, or on the tip),
    /// pushes it to its try ref and queues its CI run.
    async fn build(
        &mut self,
        lane: &str,
        candidate: CandidateId,
    ) -> Result<Vec<(String, Action)>, GateError> {
        let Some(db) = self.db_id(lane, candidate) else {
            return Ok(Vec::new());
        };
        let store = &self.ctx.store;
        let Some(row) = store.gate_candidate(db).await? else {
            return Ok(Vec::new());
        };
        if row.state != CandidateState::Building {
            return Ok(Vec::new());
        }
        let built = self.build_and_push(&row).await?;
        self.recovered();
        match built {
            Built::Pushed => Ok(Vec::new()),
            Built::Conflict(detail) => {
                self.ctx
                    .store
                    .gate_set_state(
                        db,
                        &[CandidateState::Building],
                        CandidateState::Failed,
                        Some(&detail),
                    )
                    .await?;
                Ok(self.lane_actions(lane, |l| l.result(candidate, Verdict::Failed)))
            }
            Built::TipMoved(tip) => {
                self.note_tip_moved(&tip, &row).await?;
                Ok(self.tip_moved_everywhere())
            }
        }
    }

    fn lane_actions(
        &mut self,
        lane: &str,
        event: impl FnOnce(&mut Lane) -> Vec<Action>,
    ) -> Vec<(String, Action)> {
        match self.lanes.get_mut(lane) {
            Some(slot) => event(&mut slot.lane)
                .into_iter()
                .map(|a| (lane.to_owned(), a))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Someone pushed to the destination: every lane rebuilds on the new tip.
    fn tip_moved_everywhere(&mut self) -> Vec<(String, Action)> {
        let mut actions = Vec::new();
        for (name, slot) in &mut self.lanes {
            actions.extend(slot.lane.tip_moved().into_iter().map(|a| (name.clone(), a)));
        }
        actions
    }

    async fn note_tip_moved(&mut self, tip: &str, row: &Candidate) -> Result<(), GateError> {
        let was = self.expected_tip.replace(tip.to_owned());
        let detail = format!(
            "`{}` moved to {} outside the gate (the gate knew {}): every candidate is rebuilt \
             and tested on the new tip",
            self.repo.name,
            short(tip),
            was.as_deref().map(short).unwrap_or("nothing")
        );
        tracing::info!(gate = %self.repo.name, "{detail}");
        for request in &row.requests {
            self.ctx
                .store
                .note(*request, "gate_rebuilt", &self.actor, &detail)
                .await?;
        }
        Ok(())
    }

    async fn build_and_push(&mut self, row: &Candidate) -> Result<Built, GateError> {
        let store = &self.ctx.store;
        let shared = self.copy()?;
        let mut copy = shared.lock().await;
        let try_url = self.try_repo.push_url().to_owned();
        let base = match row.parent_id {
            Some(parent_id) => {
                let parent = store.gate_candidate(parent_id).await?;
                let Some((base, revision)) = parent.and_then(|p| p.base.zip(p.revision)) else {
                    return Err(GateError::Waiting(format!(
                        "candidate {} waits for candidate {parent_id} to be pushed",
                        row.id
                    )));
                };
                if !copy
                    .checkout_pushed(&try_url, &candidate_ref(parent_id), &revision, &base)
                    .await?
                {
                    return Err(GateError::Waiting(format!(
                        "candidate {parent_id}'s revision {} is not on `{}` any more",
                        short(&revision),
                        self.try_repo.name
                    )));
                }
                base
            }
            None => {
                let tip = copy.update_to_tip().await?;
                if self
                    .expected_tip
                    .as_ref()
                    .is_some_and(|known| *known != tip)
                {
                    return Ok(Built::TipMoved(tip));
                }
                self.expected_tip = Some(tip.clone());
                tip
            }
        };
        let mut heads = Vec::new();
        for id in &row.requests {
            let Some(request) = store.request(*id).await? else {
                continue;
            };
            let patches = store.patches(*id).await?;
            match apply_request(&mut copy, &request, &patches, &self.repo.name).await? {
                Ok(head) => heads.push((*id, head)),
                Err(conflict) => {
                    return Ok(Built::Conflict(format!(
                        "request {id} does not apply on top of what was tested below it: {conflict}"
                    )));
                }
            }
        }
        self.check_leading()?;
        let target = PushTarget::Try {
            url: try_url,
            uid: candidate_uid(row.id),
        };
        fault::point("gate.candidate_push.before");
        let revision = copy.push(&target).await?;
        fault::point("gate.candidate_push.after");
        drop(copy);
        let ref_name = candidate_ref(row.id);
        let last = row.requests.last().copied().unwrap_or(RequestId(0));
        let run = CandidateRun {
            repo: self.try_repo.name.clone(),
            ci: self.try_repo.ci.as_str().to_owned(),
            request: last,
        };
        let run_id = store
            .gate_candidate_pushed(row.id, &base, &revision, &ref_name, &run, &heads)
            .await?;
        self.ctx.wake(Work::Ci).await;
        let with = together(&row.ahead);
        for id in &row.requests {
            let others: Vec<RequestId> =
                row.requests.iter().filter(|r| *r != id).copied().collect();
            store
                .note(
                    *id,
                    "gate_testing",
                    &self.actor,
                    &format!(
                        "testing in candidate {} (CI run {run_id}): {} on {}{}{}; pushed to {} as {}",
                        row.id,
                        self.repo.name,
                        short(&base),
                        if row.ahead.is_empty() { String::new() } else { format!(" + {with}") },
                        if others.is_empty() {
                            String::new()
                        } else {
                            format!(", batched with {}", together(&others))
                        },
                        self.try_repo.name,
                        short(&revision)
                    ),
                )
                .await?;
        }
        Ok(Built::Pushed)
    }

    async fn cancel(&mut self, lane: &str, candidate: CandidateId) -> Result<(), GateError> {
        let Some(db) = self
            .lanes
            .get_mut(lane)
            .and_then(|slot| slot.ids.remove(&candidate))
        else {
            return Ok(());
        };
        self.redo.retain(|r| {
            !matches!(r, Redo::Build { lane: l, candidate: c } | Redo::Land { lane: l, candidate: c }
                if l == lane && *c == candidate)
        });
        self.ctx
            .store
            .gate_cancel(db, "something below it changed; its requests are rebuilt")
            .await?;
        Ok(())
    }

    /// Lands the bottom candidate of `lane`: its requests move to `gate_landing`, the
    /// tested revision is pushed (a fast-forward), and they land; a refusal queues them
    /// again.
    async fn land(
        &mut self,
        lane: &str,
        candidate: CandidateId,
    ) -> Result<Vec<(String, Action)>, GateError> {
        let Some(db) = self.db_id(lane, candidate) else {
            return Ok(Vec::new());
        };
        let Some(row) = self.ctx.store.gate_candidate(db).await? else {
            return Ok(Vec::new());
        };
        if row.state == CandidateState::Passed {
            // A closed destination takes no landings; a candidate already landing (its
            // requests moved before the closure) finishes, as a push in flight would.
            if let Some(why) = self.ctx.closed_reason(self.name()).await? {
                for id in &row.requests {
                    self.ctx
                        .store
                        .note_unless_repeated(*id, "waiting", &self.actor, &why)
                        .await?;
                }
                return Err(GateError::Closed(why));
            }
            let mut moved = Vec::new();
            for id in &row.requests {
                let Some(request) = self.ctx.store.request(*id).await? else {
                    continue;
                };
                let detail = format!(
                    "landing candidate {db} (tested as {})",
                    row.revision.as_deref().map(short).unwrap_or("?")
                );
                match self
                    .ctx
                    .transition(
                        &request,
                        &Transition::GateLanding,
                        &self.actor,
                        &detail,
                        Effects::default(),
                    )
                    .await
                {
                    Ok(_) => moved.push(*id),
                    Err(StoreError::StageChanged { .. }) | Err(StoreError::Illegal(_)) => {
                        // Cancelled just now: it must not land. The others go back.
                        for id in moved {
                            self.requeue(id, "a request tested with it was cancelled")
                                .await?;
                        }
                        self.ctx
                            .store
                            .gate_set_state(
                                db,
                                &[CandidateState::Passed],
                                CandidateState::Refused,
                                Some("a request in it was cancelled before it landed"),
                            )
                            .await?;
                        self.drop_id(lane, candidate);
                        return Ok(self.lane_actions(lane, |l| l.land_refused(candidate)));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let outcome = self.push_landing(&row).await?;
        self.recovered();
        match outcome {
            Landing::Landed(heads) => {
                let how = if row.landed_on.is_some() {
                    "(found the push of an earlier attempt)"
                } else {
                    ""
                };
                self.finish_landing(&row, &heads, how).await?;
                self.drop_id(lane, candidate);
                let mut actions = self.lane_actions(lane, |l| l.landed(candidate));
                for id in &row.requests {
                    self.known.remove(id);
                    actions.extend(self.release(*id).await?);
                }
                Ok(actions)
            }
            Landing::Refused { why, outside_push } => {
                for id in &row.requests {
                    self.requeue(*id, &why).await?;
                }
                self.ctx
                    .store
                    .gate_set_state(
                        db,
                        &[CandidateState::Passed, CandidateState::Landing],
                        CandidateState::Refused,
                        Some(&why),
                    )
                    .await?;
                self.drop_id(lane, candidate);
                let mut actions = self.lane_actions(lane, |l| l.land_refused(candidate));
                if outside_push {
                    for (name, slot) in &mut self.lanes {
                        if name != lane {
                            actions.extend(
                                slot.lane.tip_moved().into_iter().map(|a| (name.clone(), a)),
                            );
                        }
                    }
                }
                Ok(actions)
            }
        }
    }

    fn drop_id(&mut self, lane: &str, candidate: CandidateId) {
        if let Some(slot) = self.lanes.get_mut(lane) {
            slot.ids.remove(&candidate);
        }
    }

    /// A gated request whose landing did not happen goes back to the queue.
    async fn requeue(&self, id: RequestId, why: &str) -> Result<(), GateError> {
        let Some(request) = self.ctx.store.request(id).await? else {
            return Ok(());
        };
        if request.stage != Stage::GateLanding {
            return Ok(());
        }
        match self
            .ctx
            .transition(
                &request,
                &Transition::GateRequeued,
                &self.actor,
                &format!("not landed: {why}; queued again"),
                Effects::default(),
            )
            .await
        {
            Ok(_) | Err(StoreError::StageChanged { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn destination(&self) -> PushTarget {
        PushTarget::Branch {
            url: self.repo.push_url().to_owned(),
            branch: self.repo.branch().to_owned(),
        }
    }

    /// Looks on the destination, after `on`, for the commits of every request of the
    /// candidate (an earlier attempt's push); the revision each ends with.
    async fn find_landed(
        &self,
        candidate: &Candidate,
        on: &str,
    ) -> Result<Option<Vec<(RequestId, String)>>, GateError> {
        let shared = self.copy()?;
        let mut copy = shared.lock().await;
        let target = self.destination();
        let mut heads = Vec::new();
        for id in &candidate.requests {
            let Some(request) = self.ctx.store.request(*id).await? else {
                return Ok(None);
            };
            let marker = format!("{TRAILER_KEY}: {}", request.uid);
            match copy.find_pushed(&target, &marker, Some(on)).await? {
                Some(rev) => heads.push((*id, rev)),
                None => return Ok(None),
            }
        }
        Ok(Some(heads))
    }

    async fn push_landing(&mut self, row: &Candidate) -> Result<Landing, GateError> {
        if let Some(on) = &row.landed_on
            && let Some(heads) = self.find_landed(row, on).await?
        {
            return Ok(Landing::Landed(heads));
        }
        let (Some(base), Some(revision)) = (row.base.clone(), row.revision.clone()) else {
            return Ok(Landing::Refused {
                why: format!("candidate {} was never pushed", row.id),
                outside_push: false,
            });
        };
        // A fast-forward from the tip the candidate stands on: its parent's tested
        // revision once that landed as tested, else the chain's base.
        let stands_on = match row.parent_id {
            Some(parent) => self
                .ctx
                .store
                .gate_candidate(parent)
                .await?
                .filter(|p| p.state == CandidateState::Landed)
                .and_then(|p| p.revision)
                .unwrap_or_else(|| base.clone()),
            None => base.clone(),
        };
        let store = &self.ctx.store;
        let shared = self.copy()?;
        let mut copy = shared.lock().await;
        let tip = copy.update_to_tip().await?;
        let heads;
        if tip == stands_on {
            if !copy
                .checkout_pushed(
                    self.try_repo.push_url(),
                    &candidate_ref(row.id),
                    &revision,
                    &base,
                )
                .await?
            {
                return Ok(Landing::Refused {
                    why: format!(
                        "its tested revision {} is not on `{}` any more",
                        short(&revision),
                        self.try_repo.name
                    ),
                    outside_push: false,
                });
            }
            heads = store.gate_heads(row.id).await?;
        } else if self.expected_tip.as_deref() == Some(tip.as_str()) {
            // Only other lanes landed since: apply its requests over them.
            let mut rebased = Vec::new();
            for id in &row.requests {
                let Some(request) = store.request(*id).await? else {
                    continue;
                };
                let patches = store.patches(*id).await?;
                match apply_request(&mut copy, &request, &patches, &self.repo.name).await? {
                    Ok(head) => rebased.push((*id, head)),
                    Err(conflict) => {
                        return Ok(Landing::Refused {
                            why: format!(
                                "it no longer applies over what other lanes landed: {conflict}"
                            ),
                            outside_push: false,
                        });
                    }
                }
            }
            heads = rebased;
        } else {
            let was = self.expected_tip.replace(tip.clone());
            return Ok(Landing::Refused {
                why: format!(
                    "`{}` moved to {} outside the gate (the gate knew {})",
                    self.repo.name,
                    short(&tip),
                    was.as_deref().map(short).unwrap_or("nothing")
                ),
                outside_push: true,
            });
        }
        self.check_leading()?;
        store.gate_landing(row.id, &tip).await?;
        fault::point("gate.land_push.before");
        match copy.push(&self.destination()).await {
            Ok(_) => {
                fault::point("gate.land_push.after");
                Ok(Landing::Landed(heads))
            }
            Err(VcsError::PushRace { output }) => {
                let was = self.expected_tip.take();
                Ok(Landing::Refused {
                    why: format!(
                        "the push was refused: `{}` moved (the gate knew {}): {}",
                        self.repo.name,
                        was.as_deref().map(short).unwrap_or("nothing"),
                        output.lines().next().unwrap_or("")
                    ),
                    outside_push: true,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The candidate is on the destination: its requests land, with whom they were
    /// tested.
    async fn finish_landing(
        &mut self,
        row: &Candidate,
        heads: &[(RequestId, String)],
        how: &str,
    ) -> Result<(), GateError> {
        let store = &self.ctx.store;
        if let Some((_, last)) = heads.last() {
            self.expected_tip = Some(last.clone());
        }
        for (id, head) in heads {
            let Some(request) = store.request(*id).await? else {
                continue;
            };
            if request.stage != Stage::GateLanding {
                continue;
            }
            let position = request
                .destinations
                .first()
                .map(|d| d.position)
                .unwrap_or(1);
            let others: Vec<RequestId> = row
                .ahead
                .iter()
                .chain(&row.requests)
                .filter(|r| *r != id)
                .copied()
                .collect();
            let detail = format!(
                "Tested in candidate {} on {} {}{}{}",
                row.id,
                short(row.base.as_deref().unwrap_or("?")),
                if others.is_empty() {
                    "alone".to_owned()
                } else {
                    format!("together with {}", together(&others))
                },
                if row.run_id.is_some() {
                    format!(" (CI run {})", row.run_id.unwrap_or(0))
                } else {
                    String::new()
                },
                if how.is_empty() {
                    String::new()
                } else {
                    format!(" {how}")
                },
            );
            match self
                .ctx
                .transition(
                    &request,
                    &Transition::GateLanded,
                    &self.actor,
                    &detail,
                    Effects {
                        landed: Some((position, head.clone())),
                        ..Effects::default()
                    },
                )
                .await
            {
                Ok(_) | Err(StoreError::StageChanged { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        store
            .gate_set_state(
                row.id,
                &[CandidateState::Landing, CandidateState::Passed],
                CandidateState::Landed,
                None,
            )
            .await?;
        Ok(())
    }

    /// The lane convicted `change`: it failed on the tip with `tested_with` below and
    /// beside it.
    async fn eject(
        &mut self,
        lane: &str,
        change: ChangeId,
        candidate: CandidateId,
        tested_with: &[ChangeId],
    ) -> Result<Vec<(String, Action)>, GateError> {
        let id = RequestId(change);
        let store = &self.ctx.store;
        let row = match self.db_id(lane, candidate) {
            Some(db) => store.gate_candidate(db).await?,
            None => None,
        };
        let report: Option<RunReport> = match row.as_ref().and_then(|r| r.run_id) {
            Some(run_id) => match store.ci_run(run_id).await? {
                Some(run) => Some(store.run_report(run).await?),
                None => None,
            },
            None => None,
        };
        let others: Vec<RequestId> = tested_with.iter().map(|c| RequestId(*c)).collect();
        let with = if others.is_empty() {
            "alone on the tip".to_owned()
        } else {
            format!("together with {}", together(&others))
        };
        let (category, why) = match (&report, &row) {
            (Some(report), _) => (
                FailureCategory::GateFailed,
                try_detail(report, &self.ctx.config),
            ),
            (None, Some(row)) => (
                FailureCategory::ApplyConflict,
                row.detail
                    .clone()
                    .unwrap_or_else(|| "its patches did not apply".to_owned()),
            ),
            (None, None) => (
                FailureCategory::GateFailed,
                "its candidate failed".to_owned(),
            ),
        };
        let detail = format!(
            "ejected from the landing gate of {}: tested in candidate {} on {} {with}, and \
             that failed.\n{why}",
            self.repo.name,
            row.as_ref().map(|r| r.id).unwrap_or(0),
            short(
                row.as_ref()
                    .and_then(|r| r.base.as_deref())
                    .unwrap_or("the tip")
            ),
        );
        if let Some(request) = store.request(id).await?
            && request.stage == Stage::Gated
        {
            match self
                .ctx
                .transition(
                    &request,
                    &Transition::Fail(category),
                    &self.actor,
                    &detail,
                    Effects {
                        ci_report: report,
                        ..Effects::default()
                    },
                )
                .await
            {
                Ok(_) | Err(StoreError::StageChanged { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.known.remove(&id);
        self.release(id).await
    }
}

/// `request 7 (and 8, 9)` for messages.
fn together(ids: &[RequestId]) -> String {
    let list: Vec<String> = ids.iter().map(|id| format!("request {id}")).collect();
    match list.as_slice() {
        [] => "nothing else".to_owned(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
