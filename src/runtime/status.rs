//! What the service is doing, computed from stored facts (heartbeats, requests): the
//! status page and `GET /api/status` show the same [`Overview`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;
use crate::store::{Heartbeat, ListFilter, Store, StoreError};

/// A heartbeat older than this means the module is down (modules beat every 5 s).
pub const STALE_AFTER_MS: i64 = 15_000;

/// The one-word answer to "is Autoland working?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Every module is running.
    Up,
    /// Everything runs, but something needs attention (a module degraded).
    Degraded,
    /// A module is down (no heartbeat, stale, or stopped).
    Down,
}

impl Verdict {
    /// The word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Up => "UP",
            Verdict::Degraded => "DEGRADED",
            Verdict::Down => "DOWN",
        }
    }
}

/// One module, from its freshest heartbeat.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleView {
    /// Module name.
    pub module: String,
    /// Process instance.
    pub instance: String,
    /// Host.
    pub host: String,
    /// `running`, `degraded`, `paused`, `standby` (a singleton waiting to take over from
    /// the leading process), `stopped` or `down` (stale heartbeat).
    pub state: String,
    /// What it is doing or what is wrong.
    pub detail: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_seconds: i64,
    /// Restarts after crashes.
    pub restarts: i64,
}

/// A configured repository.
#[derive(Debug, Clone, Serialize)]
pub struct RepoView {
    /// Name.
    pub name: String,
    /// `git` or `hg`.
    pub kind: String,
    /// A try repository.
    pub is_try: bool,
    /// For a try repository: the CI that tests it (`local`, `buildbot`, ...) and where.
    pub ci: Option<String>,
    /// Closed by an operator: why and by whom (landings wait).
    pub closed: Option<String>,
}

/// A request in a list.
#[derive(Debug, Clone, Serialize)]
pub struct RequestLine {
    /// Id.
    pub id: i64,
    /// Bug, if any.
    pub bug: Option<i64>,
    /// Requester.
    pub requester: String,
    /// Stage.
    pub stage: String,
    /// Failure category.
    pub failure: Option<String>,
    /// Where it goes.
    pub destinations: String,
    /// Seconds since it was created.
    pub age_seconds: i64,
}

/// Everything the status page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// UP / DEGRADED / DOWN.
    pub verdict: Verdict,
    /// Why, in one line.
    pub reason: String,
    /// This process.
    pub instance: String,
    /// Modules (freshest heartbeat per module and instance).
    pub modules: Vec<ModuleView>,
    /// Repositories.
    pub repositories: Vec<RepoView>,
    /// Open requests, oldest first.
    pub queue: Vec<RequestLine>,
    /// Recently finished requests.
    pub recent: Vec<RequestLine>,
    /// Requests per stage.
    pub requests_by_stage: BTreeMap<String, i64>,
    /// Reports not yet delivered to the tracker.
    pub pending_reports: i64,
    /// The latest operator actions, newest first.
    pub actions: Vec<crate::store::OperatorAction>,
    /// Each gated destination's queue.
    pub gates: Vec<GateView>,
    /// Each destination tested after landing: its tips' state and backouts.
    pub sheriffs: Vec<SheriffView>,
    /// The data directory's disk (none if it cannot be read).
    pub disk: Option<crate::disk::Space>,
}

/// What the sheriff of a destination knows (`docs/sheriff.md`).
#[derive(Debug, Clone, Serialize)]
pub struct SheriffView {
    /// The destination.
    pub repo: String,
    /// The newest push and what its tip's CI said (`green`, `red`, `intermittent`, or
    /// none: not known yet).
    pub tip: Option<TipView>,
    /// The newest tip that passed.
    pub last_green: Option<TipView>,
    /// The newest tip found red.
    pub last_red: Option<TipView>,
    /// A red tip whose culprit is being looked for: what is known, in one line.
    pub investigation: Option<String>,
    /// Post-landing CI runs in the last day.
    pub ci_runs_last_day: i64,
    /// Every backout recorded in the last day, newest first.
    pub backouts: Vec<crate::store::Backout>,
    /// The last pushes seen, newest first.
    pub pushes: Vec<crate::store::Push>,
}

/// A tip of a destination.
#[derive(Debug, Clone, Serialize)]
pub struct TipView {
    /// The push's tip.
    pub tip: String,
    /// `landing`, `outside`, `backout` or `baseline`.
    pub kind: String,
    /// Its request (a landing).
    pub request: Option<i64>,
    /// `green`, `red`, `intermittent`, or none.
    pub verdict: Option<String>,
    /// When it was seen (ms).
    pub seen_at: i64,
    /// When its verdict was recorded (ms).
    pub judged_at: Option<i64>,
}

fn tip_view(push: &crate::store::Push) -> TipView {
    TipView {
        tip: push.tip.clone(),
        kind: push.kind.as_str().to_owned(),
        request: push.request_id.map(|r| r.0),
        verdict: push.verdict.map(|v| v.as_str().to_owned()),
        seen_at: push.created_at,
        judged_at: push.judged_at,
    }
}

async fn sheriff_views(
    store: &Store,
    config: &Config,
    now: i64,
) -> Result<Vec<SheriffView>, StoreError> {
    use crate::store::TipVerdict;
    let day = now - 86_400_000;
    let mut views = Vec::new();
    for repo in config.repositories.iter().filter(|r| r.post_land_ci) {
        let pushes = store.sheriff_recent_pushes(&repo.name, 50).await?;
        let last_green = pushes
            .iter()
            .find(|p| p.verdict.is_some_and(TipVerdict::passes));
        let last_red = pushes.iter().find(|p| p.verdict == Some(TipVerdict::Red));
        // Red above the last green and no culprit found yet: under investigation.
        let investigation = match (last_red, last_green) {
            (Some(red), green)
                if green.is_none_or(|g| g.id < red.id)
                    && !pushes.iter().any(|p| {
                        p.culprit && p.id <= red.id && green.is_none_or(|g| g.id < p.id)
                    }) =>
            {
                let below = pushes
                    .iter()
                    .filter(|p| p.id < red.id && green.is_none_or(|g| g.id < p.id))
                    .filter(|p| p.verdict.is_none())
                    .count();
                Some(format!(
                    "tip {} is red; looking for the first failing push among {below} untested \
                     push(es) since the last green tip",
                    red.tip.get(..12).unwrap_or(&red.tip)
                ))
            }
            _ => None,
        };
        views.push(SheriffView {
            repo: repo.name.clone(),
            tip: pushes.first().map(tip_view),
            last_green: last_green.map(tip_view),
            last_red: last_red.map(tip_view),
            investigation,
            ci_runs_last_day: store.sheriff_run_count(&repo.name, day).await?,
            backouts: store.sheriff_backouts(&repo.name, day).await?,
            pushes: pushes.into_iter().take(10).collect(),
        });
    }
    Ok(views)
}

/// A gated destination's queue, as Zuul's status view shows one.
#[derive(Debug, Clone, Serialize)]
pub struct GateView {
    /// The destination.
    pub repo: String,
    /// `serial` or `speculative`.
    pub mode: String,
    /// Each active lane and its window (candidates under test at once).
    pub lanes: Vec<GateLaneView>,
    /// A row per request in the gate: those in candidates first (bottom first), then the
    /// waiting ones in queue order.
    pub rows: Vec<GateRow>,
    /// CI runs spent on this gate's candidates since it started (cancelled ones included).
    pub ci_runs: i64,
}

/// A lane of a gate.
#[derive(Debug, Clone, Serialize)]
pub struct GateLaneView {
    /// Its name (`main`, a configured lane, or `lane-N` formed from disjoint files).
    pub name: String,
    /// Its window.
    pub window: i64,
}

/// A request in a gate.
#[derive(Debug, Clone, Serialize)]
pub struct GateRow {
    /// The request.
    pub request: i64,
    /// Its bug.
    pub bug: Option<i64>,
    /// Who asked.
    pub requester: String,
    /// `gated` or `gate_landing`.
    pub stage: String,
    /// The lane of its latest candidate.
    pub lane: Option<String>,
    /// The candidate it is tested in (none: waiting for one).
    pub candidate: Option<i64>,
    /// `building`, `testing`, `passed`, `failed` (waits for those below), `landing`.
    pub candidate_state: Option<String>,
    /// The candidate's CI run and its state.
    pub ci_run: Option<i64>,
    /// `queued`, `running`, `passed`, `failed`...
    pub ci_state: Option<String>,
    /// The requests below it in the candidate's chain (tested with it).
    pub tested_with: Vec<i64>,
    /// Seconds since its candidate was built (or since it entered the gate).
    pub elapsed_seconds: i64,
    /// Moved to the front by an operator when above 0.
    pub priority: i64,
}

async fn gate_views(store: &Store, config: &Config, now: i64) -> Result<Vec<GateView>, StoreError> {
    let mut gates = Vec::new();
    for repo in config
        .repositories
        .iter()
        .filter(|r| r.gate != crate::config::GateMode::Off)
    {
        let mut rows = Vec::new();
        for gated in store.gated_requests(&repo.name).await? {
            let Some(request) = store.request(gated.id).await? else {
                continue;
            };
            let latest = store
                .gate_candidates_of(gated.id)
                .await?
                .into_iter()
                .next()
                .filter(|c| c.state.is_open() || c.state == crate::store::CandidateState::Failed);
            let run = match latest.as_ref().and_then(|c| c.run_id) {
                Some(id) => store.ci_run(id).await?,
                None => None,
            };
            rows.push(GateRow {
                request: request.id.0,
                bug: request.bug,
                requester: request.requester.clone(),
                stage: request.stage.to_string(),
                lane: latest.as_ref().map(|c| c.lane.clone()),
                candidate: latest.as_ref().map(|c| c.id),
                candidate_state: latest.as_ref().map(|c| c.state.as_str().to_owned()),
                ci_run: run.as_ref().map(|r| r.id),
                ci_state: run.as_ref().map(|r| r.state.as_str().to_owned()),
                tested_with: latest
                    .as_ref()
                    .map(|c| {
                        c.ahead
                            .iter()
                            .chain(&c.requests)
                            .filter(|r| **r != request.id)
                            .map(|r| r.0)
                            .collect()
                    })
                    .unwrap_or_default(),
                elapsed_seconds: (now
                    - latest
                        .as_ref()
                        .map(|c| c.created_at)
                        .unwrap_or(request.updated_at))
                .max(0)
                    / 1000,
                priority: gated.priority,
            });
        }
        rows.sort_by_key(|r| {
            (
                r.candidate.is_none(),
                r.candidate.unwrap_or(0),
                std::cmp::Reverse(r.priority),
                r.request,
            )
        });
        gates.push(GateView {
            repo: repo.name.clone(),
            mode: repo.gate.as_str().to_owned(),
            lanes: store
                .gate_windows(&repo.name)
                .await?
                .into_iter()
                .map(|(name, window)| GateLaneView { name, window })
                .collect(),
            rows,
            ci_runs: store.gate_run_count(&repo.name).await?,
        });
    }
    Ok(gates)
}

fn module_view(beat: Heartbeat, now: i64) -> ModuleView {
    let age = (now - beat.beat_at).max(0);
    let state = if age > STALE_AFTER_MS && beat.state != "stopped" {
        "down".to_owned()
    } else {
        beat.state.clone()
    };
    ModuleView {
        module: beat.module,
        instance: beat.instance,
        host: beat.host,
        state,
        detail: beat.detail,
        heartbeat_age_seconds: age / 1000,
        restarts: beat.restarts,
    }
}

/// Computes the overview from stored facts; `instance` names the process that answers.
pub async fn overview(
    store: &Store,
    config: &Config,
    instance: &str,
) -> Result<Overview, StoreError> {
    // The database's clock, by which heartbeats are written.
    let now = store.clock_ms().await?;
    let beats = store.heartbeats().await?;
    // Every live instance of a module is shown (workers on one host each have their
    // pushers). Instances that stopped or went silent are history when a live instance
    // of the same module runs on the same host (a restart has a new pid); with none, the
    // freshest of them is shown, as down.
    let mut by_module_host: BTreeMap<(String, String), Vec<Heartbeat>> = BTreeMap::new();
    for beat in beats {
        by_module_host
            .entry((beat.module.clone(), beat.host.clone()))
            .or_default()
            .push(beat);
    }
    let mut modules: Vec<ModuleView> = Vec::new();
    for (_, beats) in by_module_host {
        let (live, gone): (Vec<Heartbeat>, Vec<Heartbeat>) = beats
            .into_iter()
            .partition(|b| b.state != "stopped" && now - b.beat_at <= STALE_AFTER_MS);
        if live.is_empty() {
            if let Some(freshest) = gone.into_iter().max_by_key(|b| b.beat_at) {
                modules.push(module_view(freshest, now));
            }
        } else {
            modules.extend(live.into_iter().map(|b| module_view(b, now)));
        }
    }
    let down: Vec<&str> = modules
        .iter()
        .filter(|m| m.state == "down" || m.state == "stopped")
        .map(|m| m.module.as_str())
        .collect();
    let mut degraded: Vec<String> = modules
        .iter()
        .filter(|m| m.state == "degraded" || m.state == "paused")
        .map(|m| m.module.clone())
        .collect();
    // A singleton waits on standby in the processes that do not lead; on standby in all
    // of them, it runs nowhere.
    let mut leaderless: Vec<&str> = modules
        .iter()
        .filter(|m| m.state == "standby")
        .map(|m| m.module.as_str())
        .filter(|name| {
            // Any live instance that is not waiting leads (degraded or paused ones are
            // reported as such).
            !modules.iter().any(|m| {
                m.module == *name && !matches!(m.state.as_str(), "standby" | "down" | "stopped")
            })
        })
        .collect();
    leaderless.dedup();
    degraded.extend(leaderless.iter().map(|m| format!("{m} (no process leads)")));
    let disk = crate::disk::space(&config.data_dir);
    if let Some(d) = disk.as_ref().filter(|d| d.full) {
        degraded.push(format!(
            "the disk of the data directory {} is full ({} bytes free): free space to go on",
            d.path, d.free_bytes
        ));
    }
    let (verdict, reason) = if modules.is_empty() {
        (Verdict::Down, "no module has reported yet".to_owned())
    } else if !down.is_empty() {
        (Verdict::Down, format!("not running: {}", down.join(", ")))
    } else if !degraded.is_empty() {
        (
            Verdict::Degraded,
            format!("degraded: {}", degraded.join(", ")),
        )
    } else {
        (Verdict::Up, format!("{} modules running", modules.len()))
    };
    let line = |r: crate::request::Request| RequestLine {
        id: r.id.0,
        bug: r.bug,
        requester: r.requester,
        stage: r.stage.to_string(),
        failure: r.failure.map(|f| f.to_string()),
        destinations: std::iter::once(r.try_repo.clone())
            .chain(r.destinations.iter().map(|d| d.repo.clone()))
            .collect::<Vec<_>>()
            .join(" → "),
        age_seconds: (now - r.created_at).max(0) / 1000,
    };
    let mut queue: Vec<RequestLine> = store
        .list_requests(ListFilter::Open, 500)
        .await?
        .into_iter()
        .map(line)
        .collect();
    queue.reverse();
    let recent = store
        .list_requests(ListFilter::Finished, 25)
        .await?
        .into_iter()
        .map(line)
        .collect();
    let requests_by_stage = store
        .stage_counts()
        .await?
        .into_iter()
        .map(|(stage, n)| (stage.to_string(), n))
        .collect();
    Ok(Overview {
        verdict,
        reason,
        instance: instance.to_owned(),
        modules,
        repositories: {
            let closed = store.closed_repositories().await?;
            config
                .repositories
                .iter()
                .map(|r| RepoView {
                    name: r.name.clone(),
                    kind: format!("{:?}", r.kind).to_lowercase(),
                    is_try: r.is_try,
                    ci: r.is_try.then(|| {
                        let place = match (&r.buildbot, &r.treeherder) {
                            (Some(b), _) => format!(" at {}", crate::secrets::scrub(&b.url)),
                            (_, Some(t)) => {
                                format!(" at {} ({})", crate::secrets::scrub(&t.url), t.project)
                            }
                            _ => String::new(),
                        };
                        format!("{}{place}", r.ci.as_str())
                    }),
                    closed: closed
                        .iter()
                        .find(|c| c.repo == r.name)
                        .map(|c| format!("{} ({})", c.reason, c.changed_by)),
                })
                .collect()
        },
        queue,
        recent,
        requests_by_stage,
        pending_reports: store.pending_report_count().await?,
        actions: store.recent_actions(10).await?,
        gates: gate_views(store, config, now).await?,
        sheriffs: sheriff_views(store, config, now).await?,
        disk,
    })
}
