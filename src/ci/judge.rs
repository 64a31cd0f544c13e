//! Applying the retry policy to a stored run: reads its jobs and the quotas, records the
//! retries to ask for (durably, before anyone asks), or gives the run its verdict and
//! wakes the result watcher. Used by the poller, the webhook and the built-in runner.

use crate::config::RepoConfig;
use crate::runtime::{Context, Work, metrics};
use crate::store::{
    CiJob, CiRun, CiState, JobOutcome, JobResult, JobState, StoreError, now_ms, outcomes, tally,
};

use super::policy::{Decision, Quota, Retry, decide};

/// What judging a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// The run goes on; these retries were recorded and are to be started.
    Waiting(Vec<Retry>),
    /// The run has its verdict now.
    Concluded(CiState),
    /// Someone else gave it its verdict first.
    AlreadyFinal,
}

/// The retries still allowed for `run`'s request and repository.
pub async fn quota(ctx: &Context, repo: &RepoConfig, run: &CiRun) -> Result<Quota, StoreError> {
    let rules = repo.retry_rules();
    let used_request = ctx.store.ci_retries_for(run).await?;
    let day_ago = now_ms().saturating_sub(24 * 3600 * 1000);
    let used_day = ctx
        .store
        .ci_retries_of_repo_since(&repo.name, day_ago)
        .await?;
    Ok(Quota {
        request_left: i64::from(rules.per_request) - used_request,
        day_left: i64::from(rules.per_day) - used_day,
        per_request: rules.per_request,
        per_day: rules.per_day,
    })
}

/// Judges `run` (see [`decide`](super::policy::decide) for the arguments).
pub async fn judge(
    ctx: &Context,
    repo: &RepoConfig,
    run: &CiRun,
    expected: &[String],
    complete: bool,
    can_retry: bool,
    actor: &str,
) -> Result<Judged, StoreError> {
    let jobs = ctx.store.ci_jobs(run.id).await?;
    // The quotas cost two counts; they matter only once a job has not passed (most looks
    // at a running run see none).
    let any_bad = jobs
        .iter()
        .any(|j| j.state == JobState::Completed && !j.result.is_some_and(JobResult::is_good));
    let quota = if can_retry && any_bad {
        quota(ctx, repo, run).await?
    } else {
        let rules = repo.retry_rules();
        Quota {
            request_left: i64::from(rules.per_request),
            day_left: i64::from(rules.per_day),
            per_request: rules.per_request,
            per_day: rules.per_day,
        }
    };
    let decision = decide(
        &jobs,
        expected,
        complete,
        repo.retry_rules(),
        can_retry,
        quota,
    );
    match decision {
        Decision::Wait { retries } => {
            for retry in &retries {
                ctx.store
                    .request_ci_job(run.id, &retry.name, retry.attempt)
                    .await?;
                metrics::ci_retry(&repo.name, retry.reason.as_str());
                ctx.store
                    .note(
                        run.request_id,
                        "ci_retry",
                        actor,
                        &format!(
                            "CI run {}: job `{}` attempt {} ended {}; running it again \
                             (attempt {}, {} retry)",
                            run.id,
                            retry.name,
                            retry.attempt - 1,
                            retry.previous,
                            retry.attempt,
                            retry.reason.as_str()
                        ),
                    )
                    .await?;
            }
            Ok(Judged::Waiting(retries))
        }
        Decision::Passed { .. } | Decision::Failed { .. } => {
            let state = if matches!(decision, Decision::Passed { .. }) {
                CiState::Passed
            } else {
                CiState::Failed
            };
            let summary = describe(&jobs, &decision);
            conclude(ctx, run, state, &summary, &jobs, actor).await
        }
    }
}

/// Gives `run` its verdict (unless it has one), counts it, and wakes the result watcher.
pub async fn conclude(
    ctx: &Context,
    run: &CiRun,
    state: CiState,
    summary: &str,
    jobs: &[CiJob],
    actor: &str,
) -> Result<Judged, StoreError> {
    if !ctx.store.conclude_ci_run(run.id, state, summary).await? {
        return Ok(Judged::AlreadyFinal);
    }
    metrics::ci_outcome(state.as_str());
    for job in jobs {
        if let Some(result) = job.result {
            metrics::ci_job(&run.repo, result.as_str());
        }
    }
    for outcome in outcomes(jobs) {
        if outcome.intermittent {
            metrics::ci_intermittent(&run.repo);
        }
    }
    ctx.store
        .note(
            run.request_id,
            "ci_finished",
            actor,
            &format!("CI run {} {}: {summary}", run.id, state.as_str()),
        )
        .await?;
    ctx.wake(Work::Watcher).await;
    Ok(Judged::Concluded(state))
}

/// One paragraph on how the jobs ended: counts, then the failed and intermittent ones.
fn describe(jobs: &[CiJob], decision: &Decision) -> String {
    let tally = tally(jobs);
    let names =
        |list: &[JobOutcome<'_>]| list.iter().map(|o| o.name).collect::<Vec<_>>().join(", ");
    let mut text = format!(
        "{} job{}: {} passed, {} failed",
        tally.jobs,
        if tally.jobs == 1 { "" } else { "s" },
        tally.passed,
        tally.failed.len()
    );
    if !tally.intermittent.is_empty() {
        text.push_str(&format!(
            ", {} intermittent ({})",
            tally.intermittent.len(),
            names(&tally.intermittent)
        ));
    }
    if !tally.failed.is_empty() {
        text.push_str(&format!("; failed: {}", names(&tally.failed)));
    }
    if tally.jobs == 0 {
        text.push_str("; the CI reported no job for this push");
    }
    if let Decision::Failed {
        quota: Some(quota), ..
    } = decision
    {
        text.push_str(&format!("; not retried: {quota}"));
    }
    text
}
