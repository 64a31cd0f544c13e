//! Leadership: the singleton modules (a tracker's poller and outbox sender, the
//! tree-status watcher) must run in exactly one `serve` process of an installation at a
//! time. The `leader` module of each `serve` holds a database lock while it leads; a
//! [`singleton`] runs only while its process leads.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::module_status::ModuleStatus;

/// How often a standby process tries to take the lead, and the leader checks it still
/// holds it.
const LEADERSHIP_POLL: Duration = Duration::from_secs(1);

/// How long a database call of the leadership loop may take before it counts as failed.
const LEADERSHIP_CALL: Duration = Duration::from_secs(5);

/// How long stepping down waits for the singleton modules to stop before giving up the
/// lock anyway.
const SINGLETONS_STOP: Duration = Duration::from_secs(60);

/// The `leader` module of `serve`: takes the leadership lock when it is free and holds
/// it, publishing the state in `ctx.leader`; steps down when its connection breaks.
pub async fn lead(ctx: Arc<Context>, status: ModuleStatus, shutdown: CancellationToken) {
    // Whatever happens to this module, the singletons must stop if it stops.
    let _step_down = StepDown(ctx.clone());
    loop {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return,
            lock = db_call(ctx.store.leadership()) => lock,
        };
        let mut lock = match connected {
            Ok(lock) => lock,
            Err(why) => {
                status.error(format!("cannot reach the database to lead: {why}"));
                if !pause(&shutdown).await {
                    return;
                }
                continue;
            }
        };
        // Standby until the lock is free.
        let acquired = loop {
            match db_call(lock.try_acquire()).await {
                Ok(true) => break matches!(lock.still_held().await, Ok(true)),
                Ok(false) => {
                    status.standby("another process leads; this one takes over if it stops")
                }
                Err(why) => {
                    status.error(format!("lost the leadership connection: {why}"));
                    break false;
                }
            }
            if !pause(&shutdown).await {
                lock.release().await;
                return;
            }
        };
        if !acquired {
            lock.release().await;
            if !pause(&shutdown).await {
                return;
            }
            continue;
        }
        tracing::info!(instance = %ctx.instance, "this process now leads");
        status.set("leading: runs the singleton modules of this installation");
        ctx.leader.send_replace(true);
        // Lead until the connection breaks or shutdown.
        loop {
            if !pause(&shutdown).await {
                step_down(&ctx, lock).await;
                return;
            }
            match db_call(lock.still_held()).await {
                Ok(true) => {}
                outcome => {
                    let why = outcome
                        .err()
                        .unwrap_or_else(|| "the lock is gone".to_owned());
                    tracing::warn!(%why, "stepping down as leader");
                    status.error(format!("stepped down: {why}"));
                    step_down(&ctx, lock).await;
                    break;
                }
            }
        }
    }
}

/// A database call of the leadership loop, bounded by [`LEADERSHIP_CALL`]; the error
/// says what went wrong.
async fn db_call<T>(
    call: impl Future<Output = Result<T, crate::store::StoreError>>,
) -> Result<T, String> {
    match tokio::time::timeout(LEADERSHIP_CALL, call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "the database did not answer within {LEADERSHIP_CALL:?}"
        )),
    }
}

/// Stops the singleton modules, waits until they have (a reporter may be finishing a
/// delivery), and only then frees the lock for another process.
async fn step_down(ctx: &Context, lock: crate::store::Leadership) {
    ctx.leader.send_replace(false);
    if tokio::time::timeout(SINGLETONS_STOP, ctx.singletons.write())
        .await
        .is_err()
    {
        tracing::warn!(
            "singleton modules still running after {SINGLETONS_STOP:?}; stepping down anyway"
        );
    }
    lock.release().await;
}

/// Waits one leadership poll; false on shutdown.
async fn pause(shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(LEADERSHIP_POLL) => true,
    }
}

struct StepDown(Arc<Context>);

impl Drop for StepDown {
    fn drop(&mut self) {
        self.0.leader.send_replace(false);
    }
}

/// Runs `module` only while this process leads; meanwhile the module reports `standby`.
pub fn singleton<F, Fut>(
    module: F,
) -> impl Fn(
    Arc<Context>,
    ModuleStatus,
    CancellationToken,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>
+ Send
+ 'static
where
    F: Fn(Arc<Context>, ModuleStatus, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let module = Arc::new(module);
    move |ctx, status, shutdown| {
        let module = module.clone();
        Box::pin(async move {
            let mut leader = ctx.leader.subscribe();
            loop {
                let leads = *leader.borrow_and_update();
                if !leads {
                    status.standby("another process leads; this one takes over if it stops");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        changed = async { leader.wait_for(|leads| *leads).await.map(|_| ()) } => {
                            if changed.is_err() { return; }
                        }
                    }
                }
                // Held while the module runs: the leader waits for it before stepping down.
                let _running = ctx.singletons.read().await;
                if !*leader.borrow() {
                    continue;
                }
                let token = shutdown.child_token();
                let run = module(ctx.clone(), status.clone(), token.clone());
                tokio::pin!(run);
                tokio::select! {
                    () = &mut run => return,
                    _ = async { leader.wait_for(|leads| !*leads).await.map(|_| ()) } => {
                        tracing::info!("no longer leader: stopping a singleton module");
                        token.cancel();
                        run.await;
                    }
                }
            }
        })
    }
}
