//! The result watcher: moves requests waiting on try once their CI run has a result, and
//! fails those that waited longer than `timeouts.try_results_seconds`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::request::{FailureCategory, RequestId, Stage, Transition};
use crate::runtime::{Context, ModuleStatus, Work};
use crate::store::{CiState, Effects, StoreError, now_ms};

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
    let summary = run.summary.clone().unwrap_or_default();
    let log = run.log_path.clone().unwrap_or_default();
    let (transition, detail) = match run.state {
        CiState::Passed => (
            Transition::TryPassed {
                land: !request.destinations.is_empty(),
            },
            format!("try passed: {summary}\nlog: {log}"),
        ),
        CiState::Failed => (
            Transition::Fail(FailureCategory::TryFailed),
            format!("try failed: {summary}\nlog: {log}"),
        ),
        CiState::TimedOut => (
            Transition::Fail(FailureCategory::TimedOut),
            format!("try run {summary}\nlog: {log}"),
        ),
        CiState::Queued | CiState::Running => return Ok(()),
    };
    if request.stage != Stage::AwaitingTry {
        return Ok(());
    }
    ctx.transition(&request, &transition, actor, &detail, Effects::default())
        .await?;
    Ok(())
}
