//! Supervision: every module runs under a supervisor that restarts it with backoff when it
//! panics, stops or restarts it on an operator's pause or kick, and writes its heartbeat
//! every few seconds.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::context::{Context, host_name};
use super::module_status::ModuleStatus;
use super::status::STALE_AFTER_MS;
use crate::store::{Heartbeat, ModuleControl, now_ms};

/// Runs a module until shutdown, restarting it with backoff if it panics (counting the
/// restarts), and writes its
/// heartbeat every few seconds.
pub fn supervise<F, Fut>(
    tasks: &mut JoinSet<()>,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
    name: String,
    module: F,
) where
    F: Fn(Arc<Context>, ModuleStatus, CancellationToken) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let status = ModuleStatus::new();
    tasks.spawn(heartbeat_loop(
        ctx.clone(),
        name.clone(),
        status.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(async move {
        let mut backoff = Duration::from_millis(200);
        let mut controls = ctx.controls.subscribe();
        loop {
            // Paused by an operator: not running until resumed.
            loop {
                let (paused, _, by) = control(&mut controls, &name);
                if !paused {
                    break;
                }
                status.paused(format!("paused by {by}"));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = controls.changed() => if changed.is_err() { return },
                }
            }
            // Kicks before this start (while paused, or during a crash backoff) are done
            // with: only a later one restarts the module.
            let kicks = control(&mut controls, &name).1;
            let run_token = shutdown.child_token();
            let mut run = tokio::spawn(module(ctx.clone(), status.clone(), run_token.clone()));
            // Watch for a pause or a kick while it runs.
            let outcome = loop {
                tokio::select! {
                    result = &mut run => break Some(result),
                    changed = controls.changed() => {
                        if changed.is_err() {
                            // The context is gone: nothing will pause or kick any more.
                            break Some((&mut run).await);
                        }
                        let (paused, seq, by) = control(&mut controls, &name);
                        if paused || seq != kicks {
                            let why = if paused { "paused" } else { "kicked" };
                            tracing::info!(module = %name, %by, "module {why}");
                            run_token.cancel();
                            let _ = (&mut run).await;
                            if !paused {
                                status.set(format!("restarted: kicked by {by}"));
                            }
                            break None;
                        }
                    }
                }
            };
            let Some(result) = outcome else { continue };
            match result {
                Ok(()) => return,
                Err(e) if shutdown.is_cancelled() => {
                    tracing::warn!(module = %name, error = %e, "module ended during shutdown");
                    return;
                }
                Err(e) => {
                    status.restarted(format!("crashed ({e}); restarting in {backoff:?}"));
                    tracing::error!(module = %name, error = %e, "module crashed; restarting");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    });
}

/// How often a process reads the operator controls (pause, kick) from the database.
const CONTROL_POLL: Duration = Duration::from_secs(1);

/// Reads the operator controls once a second for every supervisor of this process (one
/// query per process, not one per module), until `shutdown`.
pub async fn watch_controls(ctx: Arc<Context>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CONTROL_POLL) => {}
        }
        // A database error keeps the last known controls.
        if let Ok(controls) = ctx.store.module_controls().await {
            ctx.controls.send_if_modified(|known| {
                let changed = *known != controls;
                if changed {
                    *known = controls;
                }
                changed
            });
        }
    }
}

/// (paused, kick sequence, who changed it) for module `name`, from every control that
/// covers it. Marks the controls as seen.
fn control(
    controls: &mut tokio::sync::watch::Receiver<Vec<ModuleControl>>,
    name: &str,
) -> (bool, i64, String) {
    let controls = controls.borrow_and_update();
    let covering: Vec<_> = controls.iter().filter(|c| c.covers(name)).collect();
    let paused = covering.iter().find(|c| c.paused);
    (
        paused.is_some(),
        covering.iter().map(|c| c.kick_seq).sum(),
        paused
            .or(covering.first())
            .map(|c| c.changed_by.clone())
            .unwrap_or_default(),
    )
}

async fn heartbeat_loop(
    ctx: Arc<Context>,
    module: String,
    status: ModuleStatus,
    shutdown: CancellationToken,
) {
    let started_at = now_ms();
    let beat = |state: String, detail: String, restarts: i64| Heartbeat {
        module: module.clone(),
        instance: ctx.instance.clone(),
        host: host_name(),
        pid: i64::from(std::process::id()),
        state,
        detail,
        restarts,
        started_at,
        beat_at: 0,
    };
    loop {
        let snap = status.snapshot();
        // A database that is down may not refuse: the pool waits for a connection. A
        // heartbeat that takes this long counts as the database being unreachable.
        let written = tokio::time::timeout(
            Duration::from_secs(3),
            ctx.store
                .heartbeat(&beat(snap.state, snap.detail, snap.restarts)),
        )
        .await;
        match written {
            Ok(Ok(())) => database_reached(&ctx).await,
            Ok(Err(e)) => {
                tracing::warn!(%module, error = %e, "cannot write heartbeat");
                database_unreachable(&ctx, &e.to_string());
            }
            Err(_) => {
                tracing::warn!(%module, "cannot write heartbeat: no answer from the database in 3 s");
                database_unreachable(&ctx, "no answer in 3 s");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = ctx.database_back.notified() => {}
        }
    }
    let restarts = status.snapshot().restarts;
    let _ = ctx
        .store
        .heartbeat(&beat(
            "stopped".to_owned(),
            "shut down".to_owned(),
            restarts,
        ))
        .await;
}

/// Notes the first failure of an outage of the database.
fn database_unreachable(ctx: &Context, error: &str) {
    let mut outage = ctx
        .database_outage
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if outage.is_none() {
        *outage = Some((now_ms(), error.to_owned()));
    }
}

/// The database answers again: an outage this process saw goes into the audit log (once:
/// the first heartbeat through takes it), so the status page says what happened.
async fn database_reached(ctx: &Context) {
    let seen = ctx
        .database_outage
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let Some((since, error)) = seen else {
        return;
    };
    let seconds = (now_ms() - since).max(0) as f64 / 1000.0;
    let detail = format!(
        "{} could not reach the database for {seconds:.1} s (first error: {error}); it went on \
         where it was when the database answered again",
        ctx.instance
    );
    tracing::warn!(instance = %ctx.instance, seconds, "the database is reachable again");
    // The other modules' heartbeats wait out their period (or a write that failed): they
    // beat now.
    ctx.database_back.notify_waiters();
    // Bounded like the heartbeat: a pool still busy with the work that piled up must not
    // hold this module's heartbeat. Not written: the outage waits for the next heartbeat.
    let recorded = tokio::time::timeout(
        Duration::from_secs(3),
        ctx.store
            .record_action(&ctx.instance, "database_outage", "database", &detail),
    )
    .await;
    let failed = match recorded {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer in 3 s".to_owned(),
    };
    tracing::warn!(error = %failed, "cannot record the database outage yet");
    let mut outage = ctx
        .database_outage
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // An outage that began since is part of this one.
    if outage.as_ref().is_none_or(|(later, _)| *later > since) {
        *outage = Some((since, error));
    }
}

/// Two live processes with one name would share heartbeat rows on the status page (their
/// leases stay apart: owners carry a per-process token). Say so at start.
pub async fn warn_if_name_in_use(ctx: &Context) {
    let (Ok(beats), Ok(now)) = (ctx.store.heartbeats().await, ctx.store.clock_ms().await) else {
        return;
    };
    let pid = i64::from(std::process::id());
    let host = host_name();
    if let Some(other) = beats.iter().find(|b| {
        b.instance == ctx.instance
            && b.state != "stopped"
            && now - b.beat_at <= STALE_AFTER_MS
            && (b.host != host || b.pid != pid)
    }) {
        tracing::warn!(
            instance = %ctx.instance,
            other_host = %other.host,
            other_pid = other.pid,
            "another live process uses this name (or one just died); give each process its own --name"
        );
    }
}
