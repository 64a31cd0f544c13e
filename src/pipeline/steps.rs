//! What a pusher does with a claimed request in each stage. Every stage change goes
//! through `Context::transition` (and so through the state machine); every side effect on a
//! repository is preceded by a durable record and checked before it is repeated:
//!
//! - try: the push goes to the request's own ref; on resume, `ls-remote` tells whether it
//!   is already there;
//! - destinations: the tip a push starts from is recorded first; on resume, the commits are
//!   looked for (by their `Autoland-Request` trailer) between that tip and the new tip.

use std::time::Duration;

use crate::fault;
use crate::patch::with_trailer;
use crate::permissions;
use crate::request::{
    API_SOURCE, FRESH_TRY, FailureCategory, Patch, Request, Stage, TRAILER_KEY, Transition,
};
use crate::runtime::{Context, GatherError, metrics};
use crate::store::{Effects, NewCiRun, StoreError};
use crate::vcs::{CommitSpec, PushTarget, VcsError, WorkingCopy};

/// Why a step stopped without a transition.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth retrying later (network, VCS host, timeout).
    #[error("{0}")]
    Transient(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nothing is wrong, but the request must wait (a closed repository).
    #[error("{0}")]
    Waiting(String),
}

impl From<VcsError> for StepError {
    fn from(e: VcsError) -> StepError {
        StepError::Transient(e.to_string())
    }
}

/// Whether this worker still holds its claim on the request. Checked before every push:
/// a worker whose lease lapsed (a stall, a database outage) must not push, because
/// another worker may have taken the request over.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Claim {
    /// Marks the claim as lost.
    pub fn lose(&self) {
        self.lost.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StepError> {
        if self.lost.load(std::sync::atomic::Ordering::SeqCst) {
            Err(StepError::Transient(
                "this worker lost its claim on the request (the lease lapsed); stopping before \
                 any push so that whoever holds it now can continue"
                    .to_owned(),
            ))
        } else {
            Ok(())
        }
    }
}

/// Drives a claimed request forward until it waits on something else (try results) or
/// ends. `actor` names the module instance in events.
pub async fn drive(
    ctx: &Context,
    request: &Request,
    actor: &str,
    claim: &Claim,
) -> Result<(), StepError> {
    let id = request.id;
    loop {
        let Some(request) = ctx.store.request(id).await? else {
            return Ok(());
        };
        let stage = request.stage;
        let step = Step {
            ctx,
            request: &request,
            actor,
            claim,
        };
        match stage {
            Stage::Received => {
                step.go(Transition::StartGathering, "gathering the patches")
                    .await?
            }
            Stage::Gathering => step.gather().await?,
            Stage::Authorizing => step.authorize().await?,
            Stage::Applying | Stage::PushingTry => step.apply_and_push_try().await?,
            Stage::Landing => step.land_next().await?,
            // The gate's executor (`gate.rs`) moves gated requests.
            Stage::AwaitingTry
            | Stage::Gated
            | Stage::GateLanding
            | Stage::Landed
            | Stage::BackedOut
            | Stage::Failed
            | Stage::Cancelled => {
                return Ok(());
            }
        }
    }
}

struct Step<'a> {
    ctx: &'a Context,
    request: &'a Request,
    actor: &'a str,
    claim: &'a Claim,
}

impl Step<'_> {
    /// Waits (without failing) while an operator has `repo` closed.
    async fn ensure_open(&self, repo: &str) -> Result<(), StepError> {
        match self.ctx.closed_reason(repo).await? {
            Some(why) => Err(StepError::Waiting(why)),
            None => Ok(()),
        }
    }

    async fn go(&self, transition: Transition, detail: &str) -> Result<(), StepError> {
        self.go_with(transition, detail, Effects::default()).await
    }

    async fn go_with(
        &self,
        transition: Transition,
        detail: &str,
        effects: Effects,
    ) -> Result<(), StepError> {
        self.ctx
            .transition(self.request, &transition, self.actor, detail, effects)
            .await?;
        Ok(())
    }

    async fn fail(&self, category: FailureCategory, detail: &str) -> Result<(), StepError> {
        self.go(Transition::Fail(category), detail).await
    }

    /// `gathering`: a tracker's request gets its patches from the tracker; an API
    /// request brought them.
    async fn gather(&self) -> Result<(), StepError> {
        let source = &self.request.source;
        if let Some(tracker) = self.ctx.trackers.for_source(source) {
            return self.gather_from(tracker).await;
        }
        if source != API_SOURCE {
            return self
                .fail(
                    FailureCategory::InvalidRequest,
                    &format!(
                        "this request comes from `{source}`, which is not configured any more; \
                         configure it again and retry the request, or submit the patches \
                         through the API"
                    ),
                )
                .await;
        }
        let patches = self.ctx.store.patches(self.request.id).await?;
        if patches.is_empty() {
            return self
                .fail(
                    FailureCategory::InvalidRequest,
                    "the request has no patches",
                )
                .await;
        }
        let names: Vec<String> = patches
            .iter()
            .map(|p| format!("{}. {} by {}", p.position, p.name, p.author))
            .collect();
        self.go(
            Transition::Gathered,
            &format!("{} patch(es): {}", patches.len(), names.join("; ")),
        )
        .await
    }

    async fn gather_from(&self, tracker: &dyn crate::runtime::Tracker) -> Result<(), StepError> {
        let requested = self
            .ctx
            .store
            .requested_attachments(self.request.id)
            .await?;
        match tracker
            .gather(&self.ctx.config, self.request, &requested)
            .await
        {
            Ok(gathered) => {
                self.go_with(
                    Transition::Gathered,
                    &gathered.detail,
                    Effects {
                        patches: gathered.patches,
                        ..Effects::default()
                    },
                )
                .await
            }
            Err(GatherError::Invalid(message)) => {
                self.fail(FailureCategory::InvalidRequest, &message).await
            }
            Err(GatherError::Transient(message)) => Err(StepError::Transient(message)),
        }
    }

    async fn authorize(&self) -> Result<(), StepError> {
        let patches = self.ctx.store.patches(self.request.id).await?;
        let mut repos = Vec::new();
        for name in std::iter::once(&self.request.try_repo)
            .chain(self.request.destinations.iter().map(|d| &d.repo))
        {
            match self.ctx.config.repo(name) {
                Some(repo) => repos.push(repo),
                None => {
                    return self
                        .fail(
                            FailureCategory::InvalidRequest,
                            &format!("repository `{name}` is no longer configured"),
                        )
                        .await;
                }
            }
        }
        let requester_everywhere = self.request.source == API_SOURCE;
        // What everyone holds, looked up once. A directory that does not answer is never
        // a decision: the request waits (and the bug hears of it once).
        let snapshot = match self
            .ctx
            .permissions
            .snapshot(permissions::people(&self.request.requester, &patches))
            .await
        {
            Ok(snapshot) => snapshot,
            Err(e) => {
                let why = format!(
                    "{e}. Permissions cannot be checked without it; the request neither lands \
                     nor is refused, and goes on when the directory answers"
                );
                self.ctx
                    .notice_once(self.request, "directory_unavailable", self.actor, &why)
                    .await?;
                return Err(StepError::Waiting(format!("waiting: {why}")));
            }
        };
        match permissions::check(
            &snapshot,
            &self.request.requester,
            &patches,
            &repos,
            requester_everywhere,
        ) {
            Ok(()) => {
                let effects = Effects {
                    decisions: permissions::decisions(
                        &snapshot,
                        &self.request.requester,
                        &patches,
                        &repos,
                        requester_everywhere,
                    ),
                    ..Effects::default()
                };
                let names: Vec<&str> = repos.iter().map(|r| r.name.as_str()).collect();
                if let [dest] = self.request.destinations.as_slice()
                    && self.ctx.config.is_gated(&dest.repo)
                {
                    return self
                        .go_with(
                            Transition::EnterGate,
                            &format!(
                                "has permission to land on {} and is queued in the landing gate \
                                 of {}",
                                names.join(", "),
                                dest.repo
                            ),
                            effects,
                        )
                        .await;
                }
                self.go_with(
                    Transition::Authorized,
                    &format!("permission to land on {} granted", names.join(", ")),
                    effects,
                )
                .await
            }
            Err(denial) => {
                self.fail(
                    FailureCategory::PermissionDenied,
                    &format!("permission denied:\n{denial}"),
                )
                .await
            }
        }
    }

    fn request_date(&self) -> crate::patch::PatchDate {
        crate::patch::PatchDate {
            seconds: self.request.created_at / 1000,
            offset_minutes: 0,
        }
    }

    fn marker(&self) -> String {
        format!("{TRAILER_KEY}: {}", self.request.uid)
    }

    /// Applies every patch on `copy` (already at the tip) and, for a try push with try
    /// syntax, adds the `try:` commit. A conflict fails the request and returns `None`.
    async fn apply_all(
        &self,
        copy: &mut Box<dyn WorkingCopy>,
        patches: &[Patch],
        onto: &str,
        with_try_commit: bool,
    ) -> Result<Option<String>, StepError> {
        let mut head = match apply_request(copy, self.request, patches, onto).await? {
            Ok(head) => head,
            Err(conflict) => {
                self.fail(FailureCategory::ApplyConflict, &conflict).await?;
                return Ok(None);
            }
        };
        if with_try_commit && let Some(syntax) = &self.request.try_syntax {
            let message = with_trailer(&format!("try: {syntax}"), TRAILER_KEY, &self.request.uid);
            head = copy
                .commit_empty(
                    &self.ctx.config.committer,
                    Some(self.request_date()),
                    &message,
                )
                .await?;
        }
        Ok(Some(head))
    }

    /// `applying`: apply on the base's tip, record it, push to try, record that.
    /// `pushing_try` (resumed after a crash): if the push is already on try, record it;
    /// otherwise apply again and push.
    async fn apply_and_push_try(&self) -> Result<(), StepError> {
        let request = self.request;
        let Some(try_repo) = self.ctx.config.repo(&request.try_repo) else {
            return self
                .fail(
                    FailureCategory::InvalidRequest,
                    &format!(
                        "try repository `{}` is no longer configured",
                        request.try_repo
                    ),
                )
                .await;
        };
        let target = PushTarget::Try {
            url: try_repo.push_url().to_owned(),
            uid: request.uid.clone(),
        };
        let Some(shared) = self.ctx.copies.get(&request.base_repo) else {
            return self
                .fail(
                    FailureCategory::InvalidRequest,
                    &format!("base repository `{}` is not configured", request.base_repo),
                )
                .await;
        };
        let mut copy = shared.lock().await;
        let mut stage = request.stage;
        let patches = self.ctx.store.patches(request.id).await?;
        if stage == Stage::PushingTry
            && let Some(revision) = copy.find_pushed(&target, &self.marker(), None).await?
        {
            let key = request
                .try_base
                .as_deref()
                .map(|base| self.content_key(base, &patches));
            return self
                .pushed_to_try(Stage::PushingTry, &revision, key, true)
                .await;
        }
        let mut tip = copy.update_to_tip().await?;
        // Resuming: rebuild on the recorded base, so the commits come out identical and a
        // push that already happened is recognised by the repository ("no changes").
        if stage == Stage::PushingTry
            && let Some(base) = &request.try_base
            && copy.reset_to(base).await?
        {
            tip = base.clone();
        }
        let Some(_) = self
            .apply_all(&mut copy, &patches, &request.base_repo, true)
            .await?
        else {
            return Ok(());
        };
        if stage == Stage::Applying {
            self.go_with(
                Transition::Applied,
                &format!(
                    "{} patch(es) applied cleanly on `{}` at {}",
                    patches.len(),
                    request.base_repo,
                    short(&tip)
                ),
                Effects {
                    try_base: Some(tip.clone()),
                    ..Effects::default()
                },
            )
            .await?;
            stage = Stage::PushingTry;
        }
        self.claim.check()?;
        self.ensure_open(&request.try_repo).await?;
        fault::point("push.try.before");
        let revision = copy.push(&target).await?;
        fault::point("push.try.after");
        let key = self.content_key(&tip, &patches);
        self.pushed_to_try(stage, &revision, Some(key), false).await
    }

    async fn pushed_to_try(
        &self,
        from: Stage,
        revision: &str,
        content_key: Option<String>,
        found: bool,
    ) -> Result<(), StepError> {
        let try_repo = self.ctx.config.repo(&self.request.try_repo);
        let fresh = self.ctx.store.has_event(self.request.id, FRESH_TRY).await?;
        let try_ref = PushTarget::try_ref(&self.request.uid);
        let detail = format!(
            "{} `{}` as {} ({try_ref}); waiting for CI",
            if found {
                "found the earlier push on"
            } else {
                "pushed to"
            },
            self.request.try_repo,
            short(revision)
        );
        // The request may have moved on within this step (applying → pushing_try).
        let mut request = self.request.clone();
        request.stage = from;
        self.ctx
            .transition(
                &request,
                &Transition::PushedToTry,
                self.actor,
                &detail,
                Effects {
                    try_revision: Some(revision.to_owned()),
                    ci_run: Some(NewCiRun {
                        repo: self.request.try_repo.clone(),
                        revision: revision.to_owned(),
                        ref_name: try_ref,
                        ci: try_repo
                            .map(|r| r.ci.as_str())
                            .unwrap_or("local")
                            .to_owned(),
                        content_key,
                        reuse_within_ms: try_repo
                            .filter(|_| !fresh)
                            .map(|r| {
                                i64::try_from(r.reuse_hours)
                                    .unwrap_or(0)
                                    .saturating_mul(3_600_000)
                            })
                            .unwrap_or(0),
                    }),
                    ..Effects::default()
                },
            )
            .await?;
        Ok(())
    }

    /// What a try run tests, by content: the try repository, the base revision, the try
    /// syntax and each patch's diff. Two requests with the same key test the same tree.
    fn content_key(&self, base: &str, patches: &[Patch]) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for part in [
            self.request.try_repo.as_bytes(),
            base.as_bytes(),
            self.request.try_syntax.as_deref().unwrap_or("").as_bytes(),
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        for patch in patches {
            hash.update((patch.diff.len() as u64).to_le_bytes());
            hash.update(patch.diff.as_bytes());
        }
        hex::encode(hash.finalize())
    }

    /// `landing`: land on the first destination not landed yet.
    async fn land_next(&self) -> Result<(), StepError> {
        let request = self.request;
        let pending: Vec<_> = request
            .destinations
            .iter()
            .filter(|d| d.landed_revision.is_none())
            .collect();
        let Some(dest) = pending.first() else {
            // Nothing left: can only happen if a crash hit between the last landing and
            // its transition, which are one transaction; treat it as landed.
            return self
                .go(
                    Transition::DestinationLanded { last: true },
                    "every destination has landed",
                )
                .await;
        };
        let last = pending.len() == 1;
        let Some(repo) = self.ctx.config.repo(&dest.repo) else {
            return self
                .fail(
                    FailureCategory::InvalidRequest,
                    &format!("destination `{}` is no longer configured", dest.repo),
                )
                .await;
        };
        let Some(shared) = self.ctx.copies.get(&repo.name) else {
            return self
                .fail(
                    FailureCategory::InvalidRequest,
                    &format!("destination `{}` has no working copy", repo.name),
                )
                .await;
        };
        let target = PushTarget::Branch {
            url: repo.push_url().to_owned(),
            branch: repo.branch().to_owned(),
        };
        let mut copy = shared.lock().await;
        let landed = |revision: &str, how: &str| {
            let detail = format!("landed on `{}` as {} {how}", repo.name, short(revision));
            (
                detail,
                Effects {
                    landed: Some((dest.position, revision.to_owned())),
                    ..Effects::default()
                },
            )
        };
        if let Some(base) = &dest.attempt_base {
            // An earlier attempt may have pushed before the process died.
            if let Some(rev) = copy
                .find_pushed(&target, &self.marker(), Some(base))
                .await?
            {
                let (detail, effects) = landed(&rev, "(found the push of an earlier attempt)");
                return self
                    .go_with(Transition::DestinationLanded { last }, &detail, effects)
                    .await;
            }
        }
        self.ensure_open(&repo.name).await?;
        // Workers in other processes land on this destination one at a time.
        let wait = self.ctx.config.vcs_timeout().saturating_mul(3);
        let Some(_destination) = self.ctx.store.lock_destination(&repo.name, wait).await? else {
            return Err(StepError::Transient(format!(
                "another worker has been landing on `{}` for {wait:?}; trying again later",
                repo.name
            )));
        };
        let patches = self.ctx.store.patches(request.id).await?;
        let attempts = self.ctx.config.pusher.push_attempts.max(1);
        let mut backoff = Duration::from_millis(self.ctx.config.pusher.push_backoff_ms);
        let mut previous_base = dest.attempt_base.clone();
        for attempt in 1..=attempts {
            if attempt > 1 {
                // Someone pushed first; make sure it was not an earlier push of ours.
                if let Some(rev) = copy
                    .find_pushed(&target, &self.marker(), previous_base.as_deref())
                    .await?
                {
                    let (detail, effects) = landed(&rev, "(found after a refused push)");
                    return self
                        .go_with(Transition::DestinationLanded { last }, &detail, effects)
                        .await;
                }
            }
            let tip = copy.update_to_tip().await?;
            let Some(_) = self
                .apply_all(&mut copy, &patches, &repo.name, false)
                .await?
            else {
                return Ok(());
            };
            self.claim.check()?;
            self.ctx
                .store
                .set_attempt_base(request.id, dest.position, &tip)
                .await?;
            previous_base = Some(tip.clone());
            fault::point("push.destination.before");
            match copy.push(&target).await {
                Ok(rev) => {
                    fault::point("push.destination.after");
                    let how = if attempt == 1 {
                        format!("on top of {}", short(&tip))
                    } else {
                        format!("on top of {} (attempt {attempt})", short(&tip))
                    };
                    let (detail, effects) = landed(&rev, &how);
                    return self
                        .go_with(Transition::DestinationLanded { last }, &detail, effects)
                        .await;
                }
                Err(VcsError::PushRace { .. }) if attempt < attempts => {
                    metrics::push_retry(&repo.name);
                    self.ctx
                        .store
                        .note(
                            request.id,
                            "push_retry",
                            self.actor,
                            &format!(
                                "`{}` moved while landing (attempt {attempt} of {attempts}); \
                                 fetching the new tip and applying again in {backoff:?}",
                                repo.name
                            ),
                        )
                        .await?;
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(VcsError::PushRace { output }) => {
                    return self
                        .fail(
                            FailureCategory::PushFailed,
                            &format!(
                                "`{}` kept moving: the push was refused {attempts} times because \
                                 someone else pushed first. Last refusal:\n{output}",
                                repo.name
                            ),
                        )
                        .await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Every iteration returns; a request must never stay in `landing` without progress.
        self.fail(
            FailureCategory::PushFailed,
            &format!("could not land on `{}` in {attempts} attempts", repo.name),
        )
        .await
    }
}

/// Applies a request's patches on `copy`, each commit carrying the request's trailer;
/// returns the last revision, or (as `Err`) what did not apply on `onto` and why.
pub async fn apply_request(
    copy: &mut Box<dyn WorkingCopy>,
    request: &Request,
    patches: &[Patch],
    onto: &str,
) -> Result<Result<String, String>, VcsError> {
    let mut head = String::new();
    for patch in patches {
        let spec = CommitSpec {
            label: format!("patch {} (`{}`)", patch.position, patch.name),
            diff: &patch.diff,
            author: &patch.author,
            // Undated patches get the request's time, so re-applying the same patches on
            // the same base makes the same commits (an interrupted push then finds its
            // commits already there).
            date: patch.date.or(Some(crate::patch::PatchDate {
                seconds: request.created_at / 1000,
                offset_minutes: 0,
            })),
            message: with_trailer(&patch.message, TRAILER_KEY, &request.uid),
        };
        match copy.apply(&spec).await {
            Ok(rev) => head = rev,
            Err(VcsError::Conflict { files, output }) => {
                return Ok(Err(format!(
                    "{} does not apply on the tip of `{onto}`; it failed on {}.\n\n{output}",
                    spec.label,
                    files
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(head))
}

/// The first 12 characters of a revision.
pub fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}
