//! The result watcher: moves requests waiting on try once their CI run has a result, and
//! fails those that waited longer than `timeouts.try_results_seconds`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::request::{FailureCategory, RequestId, Stage, Transition};
use crate::runtime::{Context, ModuleStatus, Work, metrics};
use crate::store::{CiState, Effects, JobResult, RunReport, StoreError, now_ms};

/// Runs until `shutdown`.
pub async fn run(ctx: Arc<Context>, status: ModuleStatus, shutdown: CancellationToken) {
    let actor = format!("{}/result-watcher", ctx.instance);
    loop {
        match sweep(&ctx, &actor).await {
            Ok(()) => status.set("watching try results"),
            Err(e) => status.error(format!("cannot read try results: {e}")),
        }
        if !ctx.idle(Work::Watcher, &shutdown).await {
            return;
        }
    }
}

async fn sweep(ctx: &Context, actor: &str) -> Result<(), StoreError> {
    for id in ctx.store.requests_with_finished_try().await? {
        if let Err(e) = conclude(ctx, id, actor).await {
            match e {
                StoreError::StageChanged { .. } => {}
                other => return Err(other),
            }
        }
    }
    let limit = i64::try_from(ctx.config.timeouts.try_results_seconds).unwrap_or(i64::MAX);
    let before = now_ms().saturating_sub(limit.saturating_mul(1000));
    for id in ctx.store.requests_awaiting_try_since(before).await? {
        let detail = format!(
            "no try results after {} s (timeouts.try_results_seconds)",
            ctx.config.timeouts.try_results_seconds
        );
        let Some(request) = ctx.store.request(id).await? else {
            continue;
        };
        match ctx
            .transition(
                &request,
                &Transition::Fail(FailureCategory::TimedOut),
                actor,
                &detail,
                Effects::default(),
            )
            .await
        {
            Ok(_) | Err(StoreError::StageChanged { .. }) | Err(StoreError::Illegal(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn conclude(ctx: &Context, id: RequestId, actor: &str) -> Result<(), StoreError> {
    let (Some(request), Some(run)) = (
        ctx.store.request(id).await?,
        ctx.store.ci_run_for(id).await?,
    ) else {
        return Ok(());
    };
    if request.stage != Stage::AwaitingTry {
        return Ok(());
    }
    let transition = match run.state {
        CiState::Passed => Transition::TryPassed {
            land: !request.destinations.is_empty(),
        },
        CiState::Failed => Transition::Fail(FailureCategory::TryFailed),
        CiState::TimedOut => Transition::Fail(FailureCategory::TimedOut),
        // Only the gate cancels runs, and only its candidates' (never awaited here).
        CiState::Queued | CiState::Running | CiState::Cancelled => return Ok(()),
    };
    let report = ctx.store.run_report(run).await?;
    let detail = try_detail(&report, &ctx.config);
    if report.run.reused_from.is_some() {
        metrics::ci_reused(&report.run.repo);
    }
    ctx.transition(
        &request,
        &transition,
        actor,
        &detail,
        Effects {
            ci_report: Some(report),
            ..Effects::default()
        },
    )
    .await?;
    Ok(())
}

/// The event's detail for a finished try run: the verdict, then every job that did not
/// simply pass (failed with its log and last lines, intermittent with its attempts).
pub fn try_detail(report: &RunReport, config: &crate::config::Config) -> String {
    let run = &report.run;
    let verdict = match run.state {
        CiState::Passed => "try passed",
        CiState::TimedOut => "try run timed out",
        _ => "try failed",
    };
    let mut text = format!("{verdict}: {}", run.summary.clone().unwrap_or_default());
    if run.log_path.as_deref().is_some_and(|l| !l.is_empty()) {
        text.push_str(&format!("\nlog: {}", config.run_log_url(run.id)));
    }
    for outcome in report.outcomes() {
        let last = outcome.last;
        let word = last.raw_result.clone().unwrap_or_else(|| {
            last.result
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default()
        });
        if outcome.intermittent {
            text.push_str(&format!(
                "\nintermittent: {} (passed on attempt {})",
                outcome.name, last.attempt
            ));
        } else if !last.result.is_some_and(JobResult::is_good) {
            text.push_str(&format!("\nfailed: {} ({word}", outcome.name));
            if outcome.attempts > 1 {
                text.push_str(&format!(", {} attempts", outcome.attempts));
            }
            text.push(')');
            if let Some(url) = &last.log_url {
                text.push_str(&format!(" log: {url}"));
            }
        }
    }
    text
}
