//! The CI poller: drives every run of an external CI that asks for jobs or is read
//! (Buildbot, Treeherder). Each look is one short claim of the run (a lease, so two
//! processes never look at the same run at once and a crashed poller's run is picked up
//! by another):
//!
//! 1. jobs the CI must run and that have no row yet are recorded (`requested`);
//! 2. every `requested` job is started, the adapter first looking for it on the CI (the
//!    crash-safe order: recorded → looked up → sent → its CI id recorded);
//! 3. the CI is read and every job's state recorded;
//! 4. the retry policy decides: retries are recorded and started at the next look, or
//!    the run gets its verdict and the result watcher is woken.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::RepoConfig;
use crate::runtime::{Context, ModuleStatus, Work, actor_of};
use crate::store::{CiJob, CiRun, CiState, JobState, JobUpdate, StoreError, ms, now_ms};

use super::adapter::{CiAdapter, CiAdapters, CiError};
use super::judge::{Judged, conclude, judge};

/// Runs until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    adapters: Arc<CiAdapters>,
    status: ModuleStatus,
    shutdown: CancellationToken,
) {
    let owner = ctx.lease_owner("ci-poller");
    let kinds = adapters.kinds();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let mut looked = 0;
        let mut trouble = None;
        loop {
            match ctx
                .store
                .claim_due_ci_run(&kinds, &owner, ms(ctx.config.lease()))
                .await
            {
                Ok(Some(run)) => {
                    looked += 1;
                    let (next, problem) = look(&ctx, &adapters, &owner, &run).await;
                    if problem.is_some() {
                        trouble = problem;
                    }
                    if let Err(e) = ctx.store.release_ci_run(run.id, &owner, ms(next)).await {
                        status.error(format!("cannot release CI run {}: {e}", run.id));
                    }
                    if shutdown.is_cancelled() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    status.error(format!("cannot claim CI runs: {e}"));
                    break;
                }
            }
        }
        match trouble {
            Some(problem) => status.error(problem),
            None if looked > 0 => status.set(format!("looked at {looked} CI run(s)")),
            None => {}
        }
        // Sleep until the next run is due, a new run is queued, or the poll interval.
        let due = ctx.store.next_ci_check(&kinds).await.ok().flatten();
        let nap = due
            .map(|d| Duration::from_millis(u64::try_from(d).unwrap_or(0)))
            .unwrap_or(ctx.config.poll_interval())
            .min(ctx.config.poll_interval());
        tokio::select! {
            alive = ctx.idle(Work::Ci, &shutdown) => if !alive { return },
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

/// One look at `run`; returns when to look again, and what went wrong if the CI could
/// not be asked or read.
async fn look(
    ctx: &Context,
    adapters: &CiAdapters,
    owner: &str,
    run: &CiRun,
) -> (Duration, Option<String>) {
    let actor = actor_of(owner);
    let retry_later = Duration::from_secs(5);
    let Some(repo) = ctx.config.repo(&run.repo).cloned() else {
        let summary = format!("try repository `{}` is no longer configured", run.repo);
        let _ = conclude(ctx, run, CiState::Failed, &summary, &[], actor).await;
        return (retry_later, None);
    };
    let Some(adapter) = adapters.for_repo(&run.repo).cloned() else {
        let summary = format!(
            "try repository `{}` is no longer tested by {}; its CI is now `{}`: retry the \
             request to test it there",
            run.repo,
            run.ci,
            repo.ci.as_str()
        );
        let _ = conclude(ctx, run, CiState::Failed, &summary, &[], actor).await;
        return (retry_later, None);
    };
    match drive(ctx, &repo, adapter.as_ref(), run, owner).await {
        Ok(()) => (adapter.poll_interval(), None),
        Err(LookError::LostLease) => (adapter.poll_interval(), None),
        Err(e) => {
            tracing::warn!(run = run.id, error = %e, "cannot look at a CI run");
            // One event per outage, not one per look.
            let last = ctx.store.last_event(run.request_id).await.ok().flatten();
            if last.is_none_or(|e| e.kind != "ci_unreachable") {
                let _ = ctx
                    .store
                    .note(run.request_id, "ci_unreachable", actor, &e.to_string())
                    .await;
            }
            (
                adapter.poll_interval().max(retry_later),
                Some(format!("CI run {} on `{}`: {e}", run.id, run.repo)),
            )
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LookError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ci(#[from] CiError),
    #[error("lost the run's lease during a look (another poller has it now)")]
    LostLease,
}

async fn drive(
    ctx: &Context,
    repo: &RepoConfig,
    adapter: &dyn CiAdapter,
    run: &CiRun,
    owner: &str,
) -> Result<(), LookError> {
    let actor = actor_of(owner);
    if let Some(request) = ctx.store.request(run.request_id).await?
        && request.stage.is_terminal()
    {
        let summary = format!("not finished: request {} is {}", request.id, request.stage);
        conclude(ctx, run, CiState::Failed, &summary, &[], actor).await?;
        return Ok(());
    }
    if let Some(deadline) = adapter.deadline()
        && now_ms().saturating_sub(run.created_at) > ms(deadline)
    {
        let jobs = ctx.store.ci_jobs(run.id).await?;
        let summary = format!(
            "the CI did not complete the run within {} s",
            deadline.as_secs()
        );
        conclude(ctx, run, CiState::TimedOut, &summary, &jobs, actor).await?;
        return Ok(());
    }
    // 1. Jobs every run has, recorded before they are asked for.
    let jobs = ctx.store.ci_jobs(run.id).await?;
    for name in adapter.expected_jobs() {
        if !jobs.iter().any(|j| j.name == name) {
            ctx.store.request_ci_job(run.id, &name, 1).await?;
        }
    }
    // 2. Start what is recorded and not sent.
    start_requested(ctx, adapter, run, owner).await?;
    // 3. Read the CI.
    let jobs = ctx.store.ci_jobs(run.id).await?;
    let seen = adapter.observe(run, &jobs).await?;
    if let Some(external) = &seen.external_id
        && run.external_id.as_deref() != Some(external)
    {
        ctx.store.set_ci_run_external(run.id, external).await?;
    }
    for update in &seen.updates {
        ctx.store.record_ci_job(run.id, update).await?;
    }
    // 4. Judge.
    let judged = judge(
        ctx,
        repo,
        run,
        &adapter.expected_jobs(),
        seen.complete,
        adapter.can_retry(),
        actor,
    )
    .await?;
    if let Judged::Waiting(retries) = judged
        && !retries.is_empty()
    {
        start_requested(ctx, adapter, run, owner).await?;
    }
    Ok(())
}

/// Starts every job recorded as `requested`.
async fn start_requested(
    ctx: &Context,
    adapter: &dyn CiAdapter,
    run: &CiRun,
    owner: &str,
) -> Result<(), LookError> {
    let actor = actor_of(owner);
    let jobs = ctx.store.ci_jobs(run.id).await?;
    for job in jobs.iter().filter(|j| j.state == JobState::Requested) {
        // A look can take long (a slow CI): never ask for a job once another poller may
        // have taken the run over.
        if !ctx
            .store
            .renew_ci_lease(run.id, owner, ms(ctx.config.lease()))
            .await?
        {
            return Err(LookError::LostLease);
        }
        match adapter.start_job(run, job).await {
            Ok(external) => {
                ctx.store
                    .record_ci_job(
                        run.id,
                        &JobUpdate {
                            name: job.name.clone(),
                            attempt: job.attempt,
                            state: Some(JobState::Pending),
                            external_id: Some(external),
                            ..JobUpdate::default()
                        },
                    )
                    .await?;
            }
            Err(CiError::Refused(why)) => {
                refused(ctx, run, job, &why, actor).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The CI refused a job: it is failed as an infrastructure problem, with the reason.
async fn refused(
    ctx: &Context,
    run: &CiRun,
    job: &CiJob,
    why: &str,
    actor: &str,
) -> Result<(), StoreError> {
    ctx.store
        .record_ci_job(
            run.id,
            &JobUpdate {
                name: job.name.clone(),
                attempt: job.attempt,
                state: Some(JobState::Completed),
                result: Some(crate::store::JobResult::Cancelled),
                raw_result: Some("refused".to_owned()),
                summary: Some(why.to_owned()),
                ..JobUpdate::default()
            },
        )
        .await?;
    ctx.store
        .note(
            run.request_id,
            "ci_refused",
            actor,
            &format!("the CI refused job `{}`: {why}", job.name),
        )
        .await
}
