//! The long-running modules and their supervisor: pushers (drive requests through the
//! pipeline), the CI runner, the result watcher and the web server. `serve` starts them all
//! in one process; each writes a heartbeat; a module that panics is restarted with backoff.

pub mod cluster;
pub mod metrics;
pub mod pipeline;
pub mod pusher;
pub mod status;
pub mod treestatus;
pub mod watcher;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::permissions::{PermissionSource, StaticPermissions};
use crate::request::{Request, Stage, Transition};
use crate::store::{Effects, Heartbeat, Store, StoreError, now_ms};
use crate::vcs::WorkingCopies;

/// Everything a module needs, shared.
pub struct Context {
    /// The configuration.
    pub config: Arc<Config>,
    /// The database.
    pub store: Store,
    /// This process's working copies.
    pub copies: WorkingCopies,
    /// Who holds which level.
    pub permissions: Arc<dyn PermissionSource>,
    /// This process's name (`host:pid` unless configured).
    pub instance: String,
    /// In-process wake-ups, so an idle module starts at once instead of at its next poll.
    pub wake: Wakers,
    /// The Bugzilla client, when Bugzilla is configured.
    pub bugzilla: Option<crate::tracker::bugzilla::client::BugzillaClient>,
    /// True while this process leads (see [`cluster::lead`]).
    pub leader: tokio::sync::watch::Sender<bool>,
    /// Read-held by each running singleton module; the leader takes it for writing
    /// before it gives up the lead, so two processes' singletons never overlap.
    pub singletons: tokio::sync::RwLock<()>,
    /// The operator controls (pause, kick) as last read by [`watch_controls`].
    pub controls: tokio::sync::watch::Sender<Vec<crate::store::ModuleControl>>,
    /// Random, unique to this process: lease owners and wake-up senders carry it, so
    /// two processes given the same name still never share a lease.
    pub process_token: String,
}

/// Wake-ups of this process's modules (see [`Context::wake`], which also tells the other
/// processes). Polling stays the safety net.
#[derive(Debug, Default)]
pub struct Wakers {
    /// New workable requests (received, try passed).
    pub pushers: tokio::sync::Notify,
    /// A CI run was queued.
    pub ci: tokio::sync::Notify,
    /// A CI run finished.
    pub watcher: tokio::sync::Notify,
    /// Reports were queued for the tracker.
    pub outbox: tokio::sync::Notify,
}

/// Sleeps for the poll interval or until woken, whichever is first.
pub async fn idle(ctx: &Context, wake: &tokio::sync::Notify, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = wake.notified() => true,
        _ = tokio::time::sleep(ctx.config.poll_interval()) => true,
    }
}

impl Context {
    /// Connects the store and builds the context.
    pub async fn new(mut config: Config) -> Result<Context, StoreError> {
        // Every path below the data dir is handed to git, which runs in other directories.
        if let Ok(absolute) = std::path::absolute(&config.data_dir) {
            config.data_dir = absolute;
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StoreError::Corrupt {
            table: "-",
            detail: format!("cannot create data dir {}: {e}", config.data_dir.display()),
        })?;
        // Scratch files (patches, messages) of a process that died are of no use.
        let _ = std::fs::remove_dir_all(config.data_dir.join("tmp"));
        let instance = config
            .instance_name
            .clone()
            .unwrap_or_else(|| format!("{}:{}", host_name(), std::process::id()));
        let bugzilla =
            match &config.bugzilla {
                Some(b) => Some(crate::tracker::bugzilla::client_from(b, &instance).map_err(
                    |e| StoreError::Corrupt {
                        table: "-",
                        detail: e.to_string(),
                    },
                )?),
                None => None,
            };
        let store = Store::connect(&config.database_url()).await?;

        Ok(Context {
            copies: WorkingCopies::new(&config),
            permissions: Arc::new(StaticPermissions::from_config(&config)),
            config: Arc::new(config),
            store,
            instance,
            wake: Wakers::default(),
            bugzilla,
            leader: tokio::sync::watch::Sender::new(false),
            singletons: tokio::sync::RwLock::new(()),
            controls: tokio::sync::watch::Sender::new(Vec::new()),
            process_token: hex::encode(rand::random::<[u8; 6]>()),
        })
    }
}

impl Context {
    /// Moves `request` (as read, in its current stage) through `transition`. This is the
    /// one way modules change a request's stage: it adds the tracker reports the change
    /// produces (bug comments, removing the tag) to the same transaction as the stage and
    /// its event, then wakes the modules that now have work.
    pub async fn transition(
        &self,
        request: &Request,
        transition: &Transition,
        actor: &str,
        detail: &str,
        mut effects: Effects,
    ) -> Result<Stage, StoreError> {
        if request.source == crate::tracker::bugzilla::SOURCE {
            let reports = crate::tracker::comments::reports_for(
                &self.config,
                request,
                transition,
                detail,
                &effects,
            );
            effects.reports.extend(reports);
        }
        let has_reports = !effects.reports.is_empty();
        let spent = (crate::store::now_ms() - request.updated_at).max(0) as f64 / 1000.0;
        let queued_ci = effects.ci_run.is_some();
        let to = self
            .store
            .transition(
                request.id,
                request.stage,
                transition,
                actor,
                detail,
                effects,
            )
            .await?;
        metrics::stage_left(request.stage.as_str(), spent);
        if Stage::WORKABLE.contains(&to) {
            self.wake(cluster::Work::Pushers).await;
        }
        if queued_ci {
            self.wake(cluster::Work::Ci).await;
        }
        if has_reports {
            self.wake(cluster::Work::Outbox).await;
        }
        Ok(to)
    }
}

impl Context {
    /// The lease owner for `module` of this process: `instance/module#token`. The token
    /// makes it unique even if two processes were given the same name.
    pub fn lease_owner(&self, module: &str) -> String {
        format!("{}/{module}#{}", self.instance, self.process_token)
    }
}

/// The name events show for a lease owner (without its process token).
pub fn actor_of(owner: &str) -> &str {
    owner.split_once('#').map_or(owner, |(actor, _)| actor)
}

/// This machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[derive(Debug, Clone)]
struct StatusInner {
    state: String,
    detail: String,
    restarts: i64,
}

/// What a module is doing, written to its heartbeat.
#[derive(Debug, Clone)]
pub struct ModuleStatus {
    inner: Arc<Mutex<StatusInner>>,
}

impl ModuleStatus {
    fn new() -> ModuleStatus {
        ModuleStatus {
            inner: Arc::new(Mutex::new(StatusInner {
                state: "running".to_owned(),
                detail: "starting".to_owned(),
                restarts: 0,
            })),
        }
    }

    /// Running, doing `detail`.
    pub fn set(&self, detail: impl Into<String>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.state = "running".to_owned();
            inner.detail = detail.into();
        }
    }

    /// Degraded by an error (the module keeps trying).
    pub fn error(&self, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::warn!(%detail, "module degraded");
        if let Ok(mut inner) = self.inner.lock() {
            inner.state = "degraded".to_owned();
            inner.detail = detail;
        }
    }

    /// Waiting to take over from another process (a singleton module).
    pub fn standby(&self, detail: impl Into<String>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.state = "standby".to_owned();
            inner.detail = detail.into();
        }
    }

    /// Paused by an operator.
    fn paused(&self, detail: String) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.state = "paused".to_owned();
            inner.detail = detail;
        }
    }

    /// Counts a restart after a crash, with the reason.
    fn restarted(&self, reason: String) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.restarts += 1;
            inner.state = "degraded".to_owned();
            inner.detail = reason;
        }
    }

    fn snapshot(&self) -> StatusInner {
        self.inner
            .lock()
            .map(|i| i.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// A running service: its modules, the address the web server listens on, and the token
/// that stops it.
pub struct Service {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// Cancel to shut down.
    pub shutdown: CancellationToken,
    /// The shared context.
    pub ctx: Arc<Context>,
    tasks: JoinSet<()>,
}

impl Service {
    /// Waits until every module has stopped.
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
        self.ctx.store.close().await;
    }

    /// Stops every module and waits for them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }
}

/// Starts every module of `serve`: the web server on `listener`, the pushers, the CI
/// runner and the result watcher, each supervised, each with a heartbeat.
pub async fn start(
    ctx: Arc<Context>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<Service> {
    start_modules(ctx, Some(listener), true).await
}

/// Which modules a process runs: `serve` runs the web server, the result watcher, the
/// trackers and the tree status watcher, and (unless `pushers` is false) the pushers and
/// the CI runner; `autoland worker` (no listener) runs only the pushers and the CI runner,
/// joining the others through the shared database.
pub async fn start_modules(
    ctx: Arc<Context>,
    listener: Option<tokio::net::TcpListener>,
    pushers: bool,
) -> std::io::Result<Service> {
    let addr = match &listener {
        Some(l) => l.local_addr()?,
        None => SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let front = listener.is_some();
    warn_if_name_in_use(&ctx).await;
    metrics::init();
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    // Read once before any module starts, so a module paused by an operator stays paused
    // across a restart of the process.
    if let Ok(controls) = ctx.store.module_controls().await {
        ctx.controls.send_replace(controls);
    }
    tasks.spawn(watch_controls(ctx.clone(), shutdown.clone()));

    if let Some(listener) = listener {
        let web_ctx = ctx.clone();
        let web_shutdown = shutdown.clone();
        let app = crate::web::router(web_ctx);
        tasks.spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                web_shutdown.cancelled().await;
            });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "web server stopped");
            }
        });
    }
    if ctx.store.backend() == crate::store::Backend::Postgres && ctx.config.listen_notify {
        supervise(
            &mut tasks,
            ctx.clone(),
            shutdown.clone(),
            "wake-listener".to_owned(),
            cluster::listen,
        );
    }
    if pushers {
        start_pushers(&mut tasks, &ctx, &shutdown);
    }
    if front {
        start_front(&mut tasks, &ctx, &shutdown);
    }
    Ok(Service {
        addr,
        shutdown,
        ctx,
        tasks,
    })
}

/// Two live processes with one name would share heartbeat rows on the status page (their
/// leases stay apart: owners carry a per-process token). Say so at start.
async fn warn_if_name_in_use(ctx: &Context) {
    let (Ok(beats), Ok(now)) = (ctx.store.heartbeats().await, ctx.store.clock_ms().await) else {
        return;
    };
    let pid = i64::from(std::process::id());
    let host = host_name();
    if let Some(other) = beats.iter().find(|b| {
        b.instance == ctx.instance
            && b.state != "stopped"
            && now - b.beat_at <= status::STALE_AFTER_MS
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

fn start_pushers(tasks: &mut JoinSet<()>, ctx: &Arc<Context>, shutdown: &CancellationToken) {
    for slot in 1..=ctx.config.pusher.concurrency {
        let name = format!("pusher-{slot}");
        supervise(
            tasks,
            ctx.clone(),
            shutdown.clone(),
            name,
            move |ctx, status, stop| pusher::run(ctx, slot, status, stop),
        );
    }
    if ctx.config.repositories.iter().any(|r| r.is_try) {
        supervise(
            tasks,
            ctx.clone(),
            shutdown.clone(),
            "ci-runner".to_owned(),
            crate::ci::local::run,
        );
    }
}

/// The front modules. The tree-status watcher and the Bugzilla poller and reporter are
/// singletons: with several `serve` processes on one database, only the leader runs them.
fn start_front(tasks: &mut JoinSet<()>, ctx: &Arc<Context>, shutdown: &CancellationToken) {
    supervise(
        tasks,
        ctx.clone(),
        shutdown.clone(),
        "leader".to_owned(),
        cluster::lead,
    );
    if ctx
        .config
        .repositories
        .iter()
        .any(|r| r.tree_status_url.is_some())
    {
        supervise(
            tasks,
            ctx.clone(),
            shutdown.clone(),
            "tree-status".to_owned(),
            cluster::singleton(treestatus::run),
        );
    }
    if let Some(bugzilla) = &ctx.config.bugzilla {
        if bugzilla.poll {
            supervise(
                tasks,
                ctx.clone(),
                shutdown.clone(),
                "bugzilla-poller".to_owned(),
                cluster::singleton(crate::tracker::bugzilla::poller::run),
            );
        }
        supervise(
            tasks,
            ctx.clone(),
            shutdown.clone(),
            "bugzilla-reporter".to_owned(),
            cluster::singleton(crate::tracker::bugzilla::reporter::run),
        );
    }
    supervise(
        tasks,
        ctx.clone(),
        shutdown.clone(),
        "result-watcher".to_owned(),
        watcher::run,
    );
}

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
async fn watch_controls(ctx: Arc<Context>, shutdown: CancellationToken) {
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
    controls: &mut tokio::sync::watch::Receiver<Vec<crate::store::ModuleControl>>,
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
        if let Err(e) = ctx
            .store
            .heartbeat(&beat(snap.state, snap.detail, snap.restarts))
            .await
        {
            tracing::warn!(%module, error = %e, "cannot write heartbeat");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
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
