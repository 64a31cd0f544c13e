//! Starting a process: the one place that knows every module. `serve`, `worker`, `demo`
//! and the tests call [`context`](crate::service::context) (the context with the
//! configured trackers) and then [`start`](crate::service::start) or
//! [`start_modules`](crate::service::start_modules); each module runs supervised, with a
//! heartbeat.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ci::buildbot::Buildbot;
use crate::ci::treeherder::Treeherder;
use crate::ci::{CiAdapter, CiAdapters};
use crate::config::{CiKind, Config, ConfigError};
use crate::permissions::Permissions;
use crate::pipeline::{pusher, watcher};
use crate::runtime::supervise::{warn_if_name_in_use, watch_controls};
use crate::runtime::{
    Context, ModuleStatus, Tracker, Trackers, instance_name, metrics, singleton, supervise,
};
use crate::store::StoreError;
use crate::tracker::bugzilla::{self, Bugzilla};

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened.
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    /// A tracker's configuration is unusable (a missing API key, say).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The trackers `config` names, built for the process `instance`.
pub fn trackers(config: &Config, instance: &str) -> Result<Trackers, ConfigError> {
    let mut all: Vec<Arc<dyn Tracker>> = Vec::new();
    if let Some(b) = &config.bugzilla {
        all.push(Arc::new(Bugzilla::new(b, instance)?));
    }
    Ok(Trackers::new(all))
}

/// Opens the database and builds the context, with the trackers `config` names.
pub async fn context(config: Config) -> Result<Context, StartError> {
    let trackers = trackers(&config, &instance_name(&config))?;
    // A bad CA file or bind password is the configuration's fault, said as such.
    let permissions = Permissions::from_config(&config)
        .map_err(|e| ConfigError::Invalid(format!("permissions: {e}")))?;
    Ok(Context::new(config, trackers, permissions).await?)
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
    metrics::register(&ctx.config);
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
            crate::runtime::listener::listen,
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

/// Binds to the directory now and then, so that the status page and the check plugin
/// show it as a dependency: degraded while it does not answer.
async fn watch_directory(ctx: Arc<Context>, status: ModuleStatus, shutdown: CancellationToken) {
    let Some(directory) = ctx.permissions.directory() else {
        return;
    };
    let every = std::time::Duration::from_secs(
        ctx.config
            .permissions
            .ldap
            .as_ref()
            .map_or(30, |l| l.health_seconds.max(1)),
    );
    loop {
        match directory.check().await {
            Ok(()) => status.set(format!("the directory {} answers", directory.url())),
            Err(e) => status.error(format!("{e}; requests wait for it")),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

fn start_pushers(tasks: &mut JoinSet<()>, ctx: &Arc<Context>, shutdown: &CancellationToken) {
    if ctx.permissions.directory().is_some() {
        supervise(
            tasks,
            ctx.clone(),
            shutdown.clone(),
            "directory".to_owned(),
            watch_directory,
        );
    }
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
    if ctx
        .config
        .repositories
        .iter()
        .any(|r| r.runs_ci() && r.ci == CiKind::Local)
    {
        let runners = ctx.config.pusher.ci_runners.max(1);
        // What runners of an earlier process threw away and did not finish deleting
        // (once per process, in the background).
        crate::ci::local::workspace::empty_trash(&ctx.config.data_dir.join("ci"));
        for slot in 1..=runners {
            // One runner keeps the plain name (`ci-runner`); several are numbered.
            let name = if runners == 1 {
                "ci-runner".to_owned()
            } else {
                format!("ci-runner-{slot}")
            };
            let owner = name.clone();
            supervise(
                tasks,
                ctx.clone(),
                shutdown.clone(),
                name,
                move |ctx, status, stop| crate::ci::local::run(ctx, owner.clone(), status, stop),
            );
        }
    }
    let adapters = Arc::new(ci_adapters(&ctx.config, &ctx.instance));
    if !adapters.is_empty() {
        supervise(
            tasks,
            ctx.clone(),
            shutdown.clone(),
            "ci-poller".to_owned(),
            move |ctx, status, stop| crate::ci::poller::run(ctx, adapters.clone(), status, stop),
        );
    }
}

/// The adapters of the try repositories tested by an external CI that Autoland polls
/// (Buildbot, Treeherder). The built-in runner and the webhook need none.
pub fn ci_adapters(config: &Config, instance: &str) -> CiAdapters {
    let user_agent = format!("autoland/{} ({instance})", env!("CARGO_PKG_VERSION"));
    let mut adapters = CiAdapters::default();
    for repo in config.repositories.iter().filter(|r| r.runs_ci()) {
        let adapter: Result<Arc<dyn CiAdapter>, _> = match repo.ci {
            CiKind::Buildbot => Buildbot::new(repo, &user_agent).map(|a| Arc::new(a) as _),
            CiKind::Treeherder => Treeherder::new(repo, &user_agent).map(|a| Arc::new(a) as _),
            CiKind::Local | CiKind::Webhook => continue,
        };
        match adapter {
            Ok(adapter) => adapters.insert(&repo.name, adapter),
            Err(e) => {
                tracing::error!(repo = %repo.name, error = %e, "cannot set up the CI adapter")
            }
        }
    }
    adapters
}

/// The front modules. The tree-status watcher and the Bugzilla poller and reporter are
/// singletons: with several `serve` processes on one database, only the leader runs them.
fn start_front(tasks: &mut JoinSet<()>, ctx: &Arc<Context>, shutdown: &CancellationToken) {
    supervise(
        tasks,
        ctx.clone(),
        shutdown.clone(),
        "leader".to_owned(),
        crate::runtime::lead,
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
            singleton(crate::treestatus::run),
        );
    }
    if let Some(config) = &ctx.config.bugzilla {
        if config.poll {
            supervise(
                tasks,
                ctx.clone(),
                shutdown.clone(),
                "bugzilla-poller".to_owned(),
                singleton(bugzilla::poller::run),
            );
        }
        supervise(
            tasks,
            ctx.clone(),
            shutdown.clone(),
            "bugzilla-reporter".to_owned(),
            singleton(bugzilla::reporter::run),
        );
    }
    supervise(
        tasks,
        ctx.clone(),
        shutdown.clone(),
        "result-watcher".to_owned(),
        watcher::run,
    );
    // Requests left in a gate the configuration no longer has would wait forever.
    let orphans = ctx.clone();
    tasks.spawn(async move {
        match crate::pipeline::gate::fail_orphans(&orphans).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                requests = n,
                "failed requests left in a removed landing gate"
            ),
            Err(e) => tracing::error!(error = %e, "cannot look for requests in a removed gate"),
        }
    });
    // One sheriff per destination tested after landing (`docs/sheriff.md`).
    for repo in ctx.config.repositories.iter().filter(|r| r.post_land_ci) {
        let name = repo.name.clone();
        supervise(
            tasks,
            ctx.clone(),
            shutdown.clone(),
            format!("sheriff-{name}"),
            singleton(move |ctx, status, stop| {
                crate::pipeline::sheriff::run(ctx, name.clone(), status, stop)
            }),
        );
    }
    // One landing gate executor per gated destination (`docs/gate.md`).
    for repo in ctx
        .config
        .repositories
        .iter()
        .filter(|r| r.gate != crate::config::GateMode::Off)
    {
        let name = repo.name.clone();
        supervise(
            tasks,
            ctx.clone(),
            shutdown.clone(),
            format!("gate-{name}"),
            singleton(move |ctx, status, stop| {
                crate::pipeline::gate::run(ctx, name.clone(), status, stop)
            }),
        );
    }
}
