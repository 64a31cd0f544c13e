//! A pusher: claims one workable request at a time (with a lease it renews while working),
//! drives it through the pipeline, and backs off on transient errors, failing the request
//! once they have repeated too often.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::steps::{self, StepError};
use crate::disk;
use crate::request::{FailureCategory, Request, Stage, Transition};
use crate::runtime::{Context, ModuleStatus, Work, actor_of};
use crate::store::{Effects, StoreError, ms};

/// Runs pusher number `slot` until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    slot: usize,
    status: ModuleStatus,
    shutdown: CancellationToken,
) {
    let owner = ctx.lease_owner(&format!("pusher-{slot}"));
    let mut store_backoff = Duration::from_millis(200);
    // A full disk stopped the last job: said until the disk has room again.
    let mut full_disk: Option<String> = None;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        match ctx
            .store
            .claim_request(&owner, ms(ctx.config.lease()))
            .await
        {
            Ok(Some(request)) => {
                store_backoff = Duration::from_millis(200);
                status.set(format!("request {} ({})", request.id, request.stage));
                full_disk = work(&ctx, &owner, request).await;
                match &full_disk {
                    Some(problem) => status.error(problem.clone()),
                    None => status.set("idle"),
                }
                continue;
            }
            Ok(None) => match &full_disk {
                Some(problem)
                    if disk::space(&ctx.config.data_dir).is_none_or(|space| space.full) =>
                {
                    status.error(problem.clone());
                }
                _ => {
                    full_disk = None;
                    status.set("idle");
                }
            },
            Err(e) => {
                status.error(format!("cannot claim work: {e}"));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(store_backoff) => {}
                }
                store_backoff = (store_backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        }
        if !ctx.idle(Work::Pushers, &shutdown).await {
            return;
        }
    }
}

/// Works on one claimed request. Shutdown does not interrupt it: a job in the middle of a
/// push finishes its step, so the lease can be released with the state recorded. Returns
/// a problem for the module's status (a full disk), if any.
async fn work(ctx: &Context, owner: &str, request: Request) -> Option<String> {
    let lease = ctx.config.lease();
    let claim = steps::Claim::default();
    let renewer = {
        let store = ctx.store.clone();
        let owner = owner.to_owned();
        let id = request.id;
        let claim = claim.clone();
        tokio::spawn(async move {
            let mut renewed = std::time::Instant::now();
            loop {
                tokio::time::sleep(lease / 3).await;
                match store.renew_lease(id, &owner, ms(lease)).await {
                    Ok(true) => renewed = std::time::Instant::now(),
                    Ok(false) => {
                        tracing::warn!(request = %id, "lost the lease on this request");
                        claim.lose();
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(request = %id, error = %e, "cannot renew lease");
                        // Not renewed for most of a lease: assume someone else may have it.
                        if renewed.elapsed() > lease * 2 / 3 {
                            claim.lose();
                        }
                    }
                }
            }
        })
    };
    let actor = actor_of(owner);
    let mut result = steps::drive(ctx, &request, actor, &claim).await;
    renewer.abort();
    // A full disk is nobody's fault in the request: wait for space, never fail for it.
    let problem = full_disk(ctx, &result);
    if let Some(said) = &problem {
        result = Err(StepError::Waiting(said.clone()));
    }
    let retry_after = match result {
        Ok(()) => None,
        Err(StepError::Store(StoreError::StageChanged { .. })) => {
            // Someone else moved it (cancelled, most likely): nothing to do.
            None
        }
        Err(StepError::Store(e)) => {
            tracing::error!(request = %request.id, error = %e, "database error while working");
            // Counted like any transient error, so a persistent one cannot loop forever.
            transient(ctx, actor, &request, &e.to_string()).await
        }
        Err(StepError::Transient(message)) => transient(ctx, actor, &request, &message).await,
        Err(StepError::Waiting(message)) => {
            // Say it once, not at every look.
            let _ = ctx
                .store
                .note_unless_repeated(request.id, "waiting", actor, &message)
                .await;
            let delay = ctx.config.poll_interval().max(Duration::from_secs(1));
            if let Err(e) = ctx.store.postpone(request.id, owner, ms(delay)).await {
                tracing::error!(request = %request.id, error = %e, "cannot postpone");
            }
            return problem;
        }
    };
    if let Err(e) = ctx
        .store
        .release(request.id, owner, retry_after.map(ms))
        .await
    {
        tracing::error!(request = %request.id, error = %e, "cannot release the lease; it will expire");
    }
    problem
}

/// What to say when a step stopped because the disk is full (its error says ENOSPC or the
/// database's equivalent), naming the data directory and the line that said so.
fn full_disk(ctx: &Context, result: &Result<(), StepError>) -> Option<String> {
    let message = match result {
        Err(StepError::Transient(message)) => message.clone(),
        Err(StepError::Store(e)) => e.to_string(),
        _ => return None,
    };
    let line = message.lines().find(|l| disk::says_full(l))?;
    Some(format!(
        "the disk of the data directory ({}) is full: {line}; waiting for space to be freed \
         (nothing is lost; free space in it and the request goes on)",
        ctx.config.data_dir.display()
    ))
}

/// Records a transient error and says when to try again, or fails the request when it has
/// happened too often.
async fn transient(
    ctx: &Context,
    actor: &str,
    claimed: &Request,
    message: &str,
) -> Option<Duration> {
    let Ok(Some(request)) = ctx.store.request(claimed.id).await else {
        return Some(Duration::from_secs(5));
    };
    let attempt = request.attempts + 1;
    let max = ctx.config.pusher.max_transient_attempts;
    if attempt >= max && !request.stage.is_terminal() {
        let category = match request.stage {
            Stage::Received | Stage::Gathering | Stage::Authorizing | Stage::AwaitingTry => {
                FailureCategory::TimedOut
            }
            Stage::Applying | Stage::PushingTry | Stage::Landing => FailureCategory::PushFailed,
            // The gate's executor works on these, not the pushers.
            Stage::Gated | Stage::GateLanding => return None,
            Stage::Landed | Stage::BackedOut | Stage::Failed | Stage::Cancelled => return None,
        };
        let detail = format!(
            "gave up in stage {} after {attempt} attempts; the last error was:\n{message}",
            request.stage
        );
        if let Err(e) = ctx
            .transition(
                &request,
                &Transition::Fail(category),
                actor,
                &detail,
                Effects::default(),
            )
            .await
        {
            tracing::error!(request = %request.id, error = %e, "cannot record the failure");
            return Some(Duration::from_secs(5));
        }
        return None;
    }
    let delay = Duration::from_secs(
        2_u64
            .saturating_pow(u32::try_from(attempt).unwrap_or(16))
            .min(300),
    );
    tracing::warn!(request = %request.id, %message, ?delay, "transient error; will retry");
    let _ = ctx
        .store
        .note(
            request.id,
            "retry_scheduled",
            actor,
            &format!(
                "attempt {attempt} of {max} in stage {} failed; retrying in {delay:?}:\n{message}",
                request.stage
            ),
        )
        .await;
    Some(delay)
}
