//! The context every module runs with: configuration, database, working copies,
//! permissions, trackers, wake-ups and leadership state. [`Context::transition`] is the
//! one way a module changes a request's stage.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::metrics;
use super::status::{Overview, overview};
use super::tracker::Trackers;
use super::wake::{Wakers, Work};
use crate::config::Config;
use crate::permissions::Permissions;
use crate::request::{Request, Stage, Transition};
use crate::store::{Effects, ModuleControl, Store, StoreError};
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
    pub permissions: Arc<Permissions>,
    /// The configured trackers: where requests come from and reports go.
    pub trackers: Trackers,
    /// This process's name (`host:pid` unless configured).
    pub instance: String,
    /// In-process wake-ups, so an idle module starts at once instead of at its next poll.
    pub wake: Wakers,
    /// True while this process leads (see [`super::leadership::lead`]).
    pub leader: tokio::sync::watch::Sender<bool>,
    /// Read-held by each running singleton module; the leader takes it for writing
    /// before it gives up the lead, so two processes' singletons never overlap.
    pub singletons: tokio::sync::RwLock<()>,
    /// The operator controls (pause, kick) as last read by
    /// [`super::supervise::watch_controls`].
    pub controls: tokio::sync::watch::Sender<Vec<ModuleControl>>,
    /// Random, unique to this process: lease owners and wake-up senders carry it, so
    /// two processes given the same name still never share a lease.
    pub process_token: String,
    /// The overview being computed, shared by every caller that asks meanwhile.
    overview_flight: std::sync::Mutex<Option<OverviewWait>>,
    /// How many times the overview was computed (the benchmark and a test read it).
    pub overviews_computed: std::sync::atomic::AtomicU64,
    /// Since when (ms) and with what error this process cannot reach the database, while
    /// it cannot; put in the audit log once it can again.
    pub database_outage: std::sync::Mutex<Option<(i64, String)>>,
    /// Woken when this process reaches the database after an outage: every module's
    /// heartbeat is written at once, so the status page is right again as soon as the
    /// database is, not a heartbeat period or two later.
    pub database_back: tokio::sync::Notify,
}

/// How long the overview may take before the database counts as unreachable (it takes
/// milliseconds when the database answers: `docs/benchmarks.md`).
const OVERVIEW_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits for the overview in flight: `Some(Some(..))` once computed, `Some(None)` when
/// it failed (each waiter then computes its own, to get its own error).
type OverviewWait = tokio::sync::watch::Receiver<Option<Option<Arc<Overview>>>>;

/// This process's name: `instance_name` from the configuration, or `host:pid`.
pub fn instance_name(config: &Config) -> String {
    config
        .instance_name
        .clone()
        .unwrap_or_else(|| format!("{}:{}", host_name(), std::process::id()))
}

impl Context {
    /// Connects the store and builds the context, with the `trackers` this process
    /// talks to and where commit levels come from (the start-up builds both from the
    /// configuration).
    pub async fn new(
        mut config: Config,
        trackers: Trackers,
        permissions: Permissions,
    ) -> Result<Context, StoreError> {
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
        let instance = instance_name(&config);
        let store = Store::connect(&config.database_url()).await?;

        Ok(Context {
            copies: WorkingCopies::new(&config),
            permissions: Arc::new(permissions),
            config: Arc::new(config),
            store,
            trackers,
            instance,
            wake: Wakers::default(),
            leader: tokio::sync::watch::Sender::new(false),
            singletons: tokio::sync::RwLock::new(()),
            controls: tokio::sync::watch::Sender::new(Vec::new()),
            process_token: hex::encode(rand::random::<[u8; 6]>()),
            overview_flight: std::sync::Mutex::new(None),
            database_outage: std::sync::Mutex::new(None),
            database_back: tokio::sync::Notify::new(),
            overviews_computed: std::sync::atomic::AtomicU64::new(0),
        })
    }
}

impl Context {
    /// Moves `request` (as read, in its current stage) through `transition`. This is the
    /// one way modules change a request's stage: the tracker that owns the request (if
    /// any) adds the reports the change produces (bug comments, removing the tag) to the
    /// same transaction as the stage and its event; then the modules that now have work
    /// are woken.
    pub async fn transition(
        &self,
        request: &Request,
        transition: &Transition,
        actor: &str,
        detail: &str,
        mut effects: Effects,
    ) -> Result<Stage, StoreError> {
        if let Some(tracker) = self.trackers.for_source(&request.source) {
            let reports = tracker.reports(&self.config, request, transition, detail, &effects);
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
            self.wake(Work::Pushers).await;
        }
        if queued_ci {
            self.wake(Work::Ci).await;
            // A reused run has its verdict at once.
            self.wake(Work::Watcher).await;
        }
        if has_reports {
            self.wake(Work::Outbox).await;
        }
        let gate = [Stage::Gated, Stage::GateLanding];
        if gate.contains(&to) || gate.contains(&request.stage) {
            self.wake(Work::Gate).await;
        }
        Ok(to)
    }

    /// Why nothing may land on `repo` now (an operator or the tree status closed it), as
    /// the request pages say it; none while it is open.
    pub async fn closed_reason(&self, repo: &str) -> Result<Option<String>, StoreError> {
        Ok(self.store.repository_closed(repo).await?.map(|closed| {
            format!(
                "waiting: `{repo}` is closed by {} ({})",
                closed.changed_by, closed.reason
            )
        }))
    }

    /// Records, once per request and `kind`, why it waits: an event, and the tracker's
    /// notice (a bug comment) in the same transaction.
    pub async fn notice_once(
        &self,
        request: &Request,
        kind: &str,
        actor: &str,
        text: &str,
    ) -> Result<(), StoreError> {
        if self.store.has_event(request.id, kind).await? {
            return Ok(());
        }
        let reports = match self.trackers.for_source(&request.source) {
            Some(tracker) => tracker.notice(&self.config, request, text),
            None => Vec::new(),
        };
        self.store
            .note_with_reports(request.id, kind, actor, text, &reports)
            .await?;
        if !reports.is_empty() {
            self.wake(Work::Outbox).await;
        }
        Ok(())
    }

    /// Wakes the modules that now have `work`: this process's at once, the other
    /// processes' through the database. A lost wake-up costs at most a poll interval.
    pub async fn wake(&self, work: Work) {
        self.wake.notify(work);
        if !self.config.listen_notify {
            return;
        }
        if let Err(e) = self
            .store
            .notify(&format!("{work} {}", self.process_token))
            .await
        {
            tracing::debug!(error = %e, %work, "cannot notify other processes");
        }
    }

    /// Sleeps for the poll interval or until `work` arrives, whichever is first; false
    /// on shutdown.
    pub async fn idle(&self, work: Work, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = self.wake.of(work).notified() => true,
            _ = tokio::time::sleep(self.config.poll_interval()) => true,
        }
    }

    /// Whether this process currently leads (runs the singleton modules).
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// The lease owner for `module` of this process: `instance/module#token`. The token
    /// makes it unique even if two processes were given the same name.
    pub fn lease_owner(&self, module: &str) -> String {
        format!("{}/{module}#{}", self.instance, self.process_token)
    }

    async fn compute_overview(&self) -> Result<Overview, StoreError> {
        self.overviews_computed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // While the database is down the pool waits for a connection (30 s): the status
        // page, `/readyz` and the metrics answer "unreachable" long before that.
        tokio::time::timeout(
            OVERVIEW_DEADLINE,
            overview(&self.store, &self.config, &self.instance),
        )
        .await
        .unwrap_or(Err(StoreError::Db(sqlx::Error::PoolTimedOut)))
    }

    /// What the service is doing (the status page, `/api/status`, the metrics' gauges).
    ///
    /// Single flight: callers that ask while one computation runs get its result instead
    /// of starting their own (ten viewers of the status page cost one set of queries).
    pub async fn overview(&self) -> Result<Overview, StoreError> {
        enum Flight {
            Lead(tokio::sync::watch::Sender<Option<Option<Arc<Overview>>>>),
            Follow(OverviewWait),
        }
        let flight = {
            let Ok(mut slot) = self.overview_flight.lock() else {
                return self.compute_overview().await;
            };
            match slot.as_ref() {
                Some(waiting) => Flight::Follow(waiting.clone()),
                None => {
                    let (tx, rx) = tokio::sync::watch::channel(None);
                    *slot = Some(rx);
                    Flight::Lead(tx)
                }
            }
        };
        let mut rx = match flight {
            Flight::Lead(tx) => {
                // Compute, let the next caller start a new flight, share the result.
                let result = self.compute_overview().await;
                if let Ok(mut slot) = self.overview_flight.lock() {
                    *slot = None;
                }
                let _ = tx.send(Some(result.as_ref().ok().map(|o| Arc::new(o.clone()))));
                return result;
            }
            Flight::Follow(rx) => rx,
        };
        // Follow: the leader's overview, or (it failed, or its caller went away and
        // dropped it) one of our own.
        let shared = rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|d| d.clone());
        if let Some(Some(overview)) = shared {
            return Ok((*overview).clone());
        }
        if let Ok(mut slot) = self.overview_flight.lock()
            && slot.as_ref().is_some_and(|s| s.same_channel(&rx))
        {
            *slot = None;
        }
        self.compute_overview().await
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
