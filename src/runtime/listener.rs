//! The `wake-listener` module (PostgreSQL only): other processes' wake-ups, sent with
//! NOTIFY by [`Context::wake`], become wake-ups of this process's modules.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::module_status::ModuleStatus;
use super::wake::Work;

/// Runs until `shutdown`, reconnecting with backoff; while disconnected, polling covers.
pub async fn listen(ctx: Arc<Context>, status: ModuleStatus, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let listener = tokio::select! {
            _ = shutdown.cancelled() => return,
            listener = ctx.store.listen() => listener,
        };
        let mut listener = match listener {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(e) => {
                status.error(format!(
                    "cannot listen for wake-ups (polling meanwhile): {e}"
                ));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        status.set("listening");
        // Whatever was sent before we listened may have been missed.
        ctx.wake.notify_all();
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = listener.next() => next,
            };
            match next {
                Ok(Some(payload)) => {
                    let (work, sender) = payload.split_once(' ').unwrap_or((&payload, ""));
                    if sender == ctx.process_token {
                        continue;
                    }
                    if let Some(work) = Work::parse(work) {
                        ctx.wake.notify(work);
                    }
                }
                Ok(None) => {
                    // Reconnected: wake-ups sent meanwhile are lost.
                    status.set("listening (reconnected)");
                    ctx.wake.notify_all();
                }
                Err(e) => {
                    status.error(format!(
                        "lost the wake-up connection (polling meanwhile): {e}"
                    ));
                    break;
                }
            }
        }
    }
}
