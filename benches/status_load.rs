//! Status under load (issue 5): the latency of the status page (`GET /`, HTML) and of
//! `GET /api/status` (JSON) with 1,000 finished requests in the history and 100 open ones
//! in the queue, under 100 concurrent keep-alive clients on loopback.
//!
//! `cargo bench --bench status_load` prints the setup, the unloaded cost of each store
//! query behind the status (`autoland::runtime::status::overview`), and a markdown table;
//! `scripts/bench-status.sh` runs it (with `wrk` as a cross-check when installed) and prints
//! the table with the machine's description.
//!
//! The service runs in this process on its own tokio runtime (2 workers, as `serve` has on
//! this 2-core machine), SQLite in `BENCH_DIR`. The database is filled through
//! `autoland::store::Store` before the service starts: `BENCH_HISTORY` finished requests
//! (70 % landed, 20 % failed in various stages, 10 % cancelled) and then `BENCH_QUEUE` open
//! ones, all in `awaiting_try` with no CI run queued, so no pusher can claim them, the CI
//! runner has nothing to run, and the result watcher has nothing to act on (its try
//! timeout is 6 h): nothing changes during the run except the modules' heartbeats.
//!
//! The load client is a second tokio runtime with one worker thread (`load-client`),
//! `BENCH_CLIENTS` tasks sharing one reqwest client (HTTP/1.1 keep-alive, one connection
//! per task), each sending its next request as soon as the previous answer is read
//! (closed loop, like wrk). Each endpoint is loaded separately: `BENCH_WARMUP_SECONDS`
//! unrecorded, then `BENCH_SECONDS` during which every request that completes is recorded.
//! Before that, the same with one client gives the unloaded latency. Client and server
//! share the machine's cores; the CPU time of each (from `/proc/self/task/*/stat`) is
//! reported per request.
//!
//! Environment: `BENCH_DIR` (default `target/bench-status`, emptied first), `BENCH_HISTORY`
//! (1000), `BENCH_QUEUE` (100), `BENCH_CLIENTS` (100), `BENCH_SECONDS` (10),
//! `BENCH_WARMUP_SECONDS` (2), `BENCH_UNLOADED_SECONDS` (3), `BENCH_ENDPOINTS` (`html,api`:
//! which endpoints, in which order), `BENCH_WRK` (a path to `wrk`,
//! or `wrk` to find it on `PATH`: also load each endpoint with
//! `wrk -t2 -cCLIENTS -dSECONDS --latency --timeout 60s`; unset: no wrk).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use autoland::config::Config;
use autoland::patch::PatchFormat;
use autoland::request::{FailureCategory, NewRequest, Patch, RequestId, Stage, Transition};
use autoland::runtime::Context;
use autoland::service;
use autoland::store::{Effects, ListFilter, Store};
use sqlx::Row as _;
use support::{env_number, ms, percentile};

const REQUESTERS: [&str; 4] = [
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dave@example.com",
];
/// The status computes `list_requests` with these limits (`src/runtime/status.rs`).
const QUEUE_LIMIT: usize = 500;
const RECENT_LIMIT: usize = 25;
/// Store calls in one overview besides the per-request destination queries: heartbeats,
/// open list, finished list, stage counts, closed repositories, pending reports.
const FIXED_QUERIES: usize = 6;
const CLIENT_THREAD: &str = "load-client";
const SERVER_THREAD: &str = "autoland-srv";

struct Settings {
    dir: PathBuf,
    history: usize,
    queue: usize,
    clients: usize,
    seconds: u64,
    warmup: u64,
    unloaded: u64,
    wrk: Option<String>,
    endpoints: Vec<(&'static str, &'static str)>,
}

const HTML: (&str, &str) = ("/", "`GET /` (HTML)");
const API: (&str, &str) = ("/api/status", "`GET /api/status` (JSON)");

fn settings() -> anyhow::Result<Settings> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(Settings {
        dir: std::env::var_os("BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("target/bench-status")),
        history: env_number("BENCH_HISTORY", 1000, 0..=100_000)? as usize,
        queue: env_number("BENCH_QUEUE", 100, 0..=10_000)? as usize,
        clients: env_number("BENCH_CLIENTS", 100, 1..=10_000)? as usize,
        seconds: env_number("BENCH_SECONDS", 10, 1..=600)?,
        warmup: env_number("BENCH_WARMUP_SECONDS", 2, 0..=600)?,
        unloaded: env_number("BENCH_UNLOADED_SECONDS", 3, 0..=600)?,
        wrk: std::env::var("BENCH_WRK").ok().filter(|w| !w.is_empty()),
        endpoints: match std::env::var("BENCH_ENDPOINTS") {
            Ok(text) => text
                .split(',')
                .map(|e| match e.trim() {
                    "html" => Ok(HTML),
                    "api" => Ok(API),
                    other => bail!("BENCH_ENDPOINTS: `{other}` is neither html nor api"),
                })
                .collect::<anyhow::Result<_>>()?,
            Err(_) => vec![HTML, API],
        },
    })
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to parse.
    let s = settings()?;
    if s.dir.exists() {
        std::fs::remove_dir_all(&s.dir)
            .with_context(|| format!("cannot empty {}", s.dir.display()))?;
    }
    std::fs::create_dir_all(&s.dir)?;
    let dir = s.dir.canonicalize()?;

    // The server's runtime: like `autoland serve` (one worker per core).
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(SERVER_THREAD)
        .build()
        .context("cannot start the server's runtime")?;
    // The load client's runtime: one thread, so its CPU time is easy to tell apart.
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name(CLIENT_THREAD)
        .build()
        .context("cannot start the client's runtime")?;

    println!("# Autoland status under load");
    println!();
    let (service, populated, filled) = server_rt.block_on(setup(&s, &dir))?;
    let base = format!("http://{}", service.addr);
    println!(
        "database: {} finished + {} open requests (stages: {}), filled in {:.1} s through `Store`; SQLite in {}",
        s.history,
        s.queue,
        populated
            .iter()
            .map(|(stage, n)| format!("{stage} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        filled.as_secs_f64(),
        dir.join("data").display()
    );
    let shown_queue = s.queue.min(QUEUE_LIMIT);
    let shown_recent = s.history.min(RECENT_LIMIT);
    println!(
        "one status = {} store queries: {FIXED_QUERIES} + one destinations query per listed request ({shown_queue} open + {shown_recent} recent)",
        FIXED_QUERIES + shown_queue + shown_recent
    );
    println!(
        "service: {base}, {} pusher(s), server runtime `{SERVER_THREAD}` with the default worker count ({} cores), SQLite pool of 4 connections",
        service.ctx.config.pusher.concurrency,
        cores()
    );
    println!(
        "client: reqwest, HTTP/1.1 keep-alive, closed loop, on one thread `{CLIENT_THREAD}`; {} s warm-up, then {} s recorded per endpoint",
        s.warmup, s.seconds
    );
    println!();

    // Let the modules write their first heartbeats (the status shows them).
    std::thread::sleep(Duration::from_millis(500));

    let breakdown = server_rt.block_on(breakdown(&service.ctx))?;
    print_breakdown(&breakdown);

    let http = client_rt.block_on(async {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .http1_only()
            .pool_max_idle_per_host(usize::MAX)
            .build()
    })?;
    let mut rows = Vec::new();
    for &(path, label) in &s.endpoints {
        let url = format!("{base}{path}");
        if s.unloaded > 0 {
            let r = client_rt.block_on(load(&http, &url, 1, 1, s.unloaded))?;
            println!("{label}, 1 client: {}", r.one_line());
            rows.push((label.to_owned(), "Rust, 1 client".to_owned(), r));
        }
        let r = client_rt.block_on(load(&http, &url, s.clients, s.warmup, s.seconds))?;
        println!("{label}, {} clients: {}", s.clients, r.one_line());
        rows.push((label.to_owned(), format!("Rust, {} clients", s.clients), r));
    }
    let mut wrk_rows = Vec::new();
    if let Some(wrk) = &s.wrk {
        for &(path, label) in &s.endpoints {
            let r = run_wrk(wrk, &format!("{base}{path}"), s.clients, s.seconds)?;
            println!("{label}, wrk -t2 -c{}: {}", s.clients, r.one_line());
            wrk_rows.push((label.to_owned(), format!("wrk -t2 -c{}", s.clients), r));
        }
    }
    server_rt.block_on(async {
        let open = service
            .ctx
            .store
            .list_requests(ListFilter::Open, 100_000)
            .await?;
        ensure!(
            open.len() == s.queue && open.iter().all(|r| r.stage == Stage::AwaitingTry),
            "the queue changed during the run: {} open requests",
            open.len()
        );
        service.stop().await;
        anyhow::Ok(())
    })?;
    println!();
    print_table(&s, &rows, &wrk_rows);
    drop(client_rt);
    drop(server_rt);
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

// ---------------------------------------------------------------------------------------
// The service and its database.

/// The service, started on a filled database: with the stage counts and how long the
/// filling took.
async fn setup(
    s: &Settings,
    dir: &Path,
) -> anyhow::Result<(service::Service, BTreeMap<String, i64>, Duration)> {
    let central = dir.join("central.git");
    let try_repo = dir.join("try.git");
    for bare in [&central, &try_repo] {
        std::fs::create_dir_all(bare)?;
        let out = Command::new("git")
            .args(["init", "--quiet", "--bare", "--initial-branch=main"])
            .current_dir(bare)
            .output()
            .context("cannot run git")?;
        ensure!(out.status.success(), "git init failed");
    }
    let config = config(dir, &central, &try_repo)?;
    let ctx = Arc::new(service::context(config).await?);
    let started = Instant::now();
    populate(&ctx.store, s.history, s.queue).await?;
    let filled = started.elapsed();
    let stages = ctx
        .store
        .stage_counts()
        .await?
        .into_iter()
        .map(|(stage, n)| (stage.to_string(), n))
        .collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let service = service::start(ctx, listener).await?;
    Ok((service, stages, filled))
}

/// The configuration (git repositories, every requester at `scm_level_3`). One pusher;
/// nothing it could claim.
fn config(dir: &Path, central: &Path, try_repo: &Path) -> anyhow::Result<Config> {
    support::config(
        dir,
        "git",
        central,
        try_repo,
        &REQUESTERS,
        "
[pusher]
concurrency = 1

[timeouts]
try_results_seconds = 86400
",
    )
}

fn new_request(n: usize) -> NewRequest {
    let file = format!("dom/module{:02}/file{n}.cpp", n % 37);
    NewRequest {
        source: if n.is_multiple_of(3) {
            "bugzilla"
        } else {
            "api"
        }
        .into(),
        bug: Some(1_000_000 + n as i64),
        requester: REQUESTERS[n % REQUESTERS.len()].into(),
        try_repo: "try".into(),
        base_repo: "central".into(),
        // A quarter are try-only; the rest land on central after try.
        destinations: if n.is_multiple_of(4) {
            vec![]
        } else {
            vec!["central".into()]
        },
        try_syntax: Some("-b do -p all -u all -t none".into()),
        patches: vec![Patch {
            position: 1,
            name: format!("bug-{}.patch", 1_000_000 + n),
            format: PatchFormat::PlainDiff,
            author: "Alice <alice@example.com>".into(),
            submitter: None,
            date: None,
            message: format!("Bug {} - fix the thing r=bob", 1_000_000 + n),
            diff: format!("--- a/{file}\n+++ b/{file}\n@@ -1 +1 @@\n-old\n+new {n}\n"),
            files: vec![file],
            reviews: vec![],
        }],
        attachment_ids: vec![],
    }
}

const TO_AWAITING_TRY: [(Stage, Transition); 5] = [
    (Stage::Received, Transition::StartGathering),
    (Stage::Gathering, Transition::Gathered),
    (Stage::Authorizing, Transition::Authorized),
    (Stage::Applying, Transition::Applied),
    (Stage::PushingTry, Transition::PushedToTry),
];

/// Walks `id` along `steps` (each from its stage), with the try revision recorded on the
/// try push. No CI run is queued.
async fn walk(store: &Store, id: RequestId, steps: &[(Stage, Transition)]) -> anyhow::Result<()> {
    for (from, t) in steps {
        let effects = match t {
            Transition::PushedToTry => Effects {
                try_base: Some(format!("{:040x}", id.0)),
                try_revision: Some(format!("{:040x}", id.0 + 1_000_000)),
                ..Effects::default()
            },
            Transition::DestinationLanded { .. } => Effects {
                landed: Some((1, format!("{:040x}", id.0 + 2_000_000))),
                ..Effects::default()
            },
            _ => Effects::default(),
        };
        let detail = match t {
            Transition::Fail(FailureCategory::ApplyConflict) => {
                "patch bug.patch does not apply: conflict in dom/module01/file.cpp".to_owned()
            }
            Transition::Fail(FailureCategory::PermissionDenied) => {
                "bob@example.com lacks scm_level_3 for central".to_owned()
            }
            Transition::Fail(FailureCategory::TryFailed) => {
                "try failed: TEST-UNEXPECTED-FAIL | dom/tests/test_thing.html".to_owned()
            }
            Transition::Fail(c) => format!("{c}"),
            Transition::Cancel => "cancelled by alice@example.com".to_owned(),
            _ => "ok".to_owned(),
        };
        store
            .transition(id, *from, t, "bench", &detail, effects)
            .await
            .with_context(|| format!("request {id}: {t:?} from {from}"))?;
    }
    Ok(())
}

/// One finished request: 70 % landed, 20 % failed at various stages, 10 % cancelled.
async fn finish(store: &Store, n: usize) -> anyhow::Result<()> {
    let new = new_request(n);
    let try_only = new.destinations.is_empty();
    let id = store.insert_request(&new, "bench", &[]).await?;
    let mut steps: Vec<(Stage, Transition)> = Vec::new();
    match n % 10 {
        0..=6 => {
            steps.extend(TO_AWAITING_TRY);
            if try_only {
                steps.push((Stage::AwaitingTry, Transition::TryPassed { land: false }));
            } else {
                steps.push((Stage::AwaitingTry, Transition::TryPassed { land: true }));
                steps.push((Stage::Landing, Transition::DestinationLanded { last: true }));
            }
        }
        7 | 8 => match (n / 10) % 4 {
            0 => {
                steps.extend(TO_AWAITING_TRY);
                steps.push((
                    Stage::AwaitingTry,
                    Transition::Fail(FailureCategory::TryFailed),
                ));
            }
            1 => {
                steps.extend(TO_AWAITING_TRY[..3].iter().cloned());
                steps.push((
                    Stage::Applying,
                    Transition::Fail(FailureCategory::ApplyConflict),
                ));
            }
            2 => {
                steps.extend(TO_AWAITING_TRY[..2].iter().cloned());
                steps.push((
                    Stage::Authorizing,
                    Transition::Fail(FailureCategory::PermissionDenied),
                ));
            }
            _ => {
                steps.extend(TO_AWAITING_TRY);
                steps.push((
                    Stage::AwaitingTry,
                    Transition::Fail(FailureCategory::TimedOut),
                ));
            }
        },
        _ => {
            steps.extend(TO_AWAITING_TRY);
            steps.push((Stage::AwaitingTry, Transition::Cancel));
        }
    }
    walk(store, id, &steps).await
}

/// Fills the database: `history` finished requests, then `queue` open ones in
/// `awaiting_try` (newer ids, as a queue's requests are).
async fn populate(store: &Store, history: usize, queue: usize) -> anyhow::Result<()> {
    const WRITERS: usize = 4;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.spawn(async move {
            for n in (w..history).step_by(WRITERS) {
                finish(&store, n).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.spawn(async move {
            for n in (history + w..history + queue).step_by(WRITERS) {
                let id = store.insert_request(&new_request(n), "bench", &[]).await?;
                walk(&store, id, &TO_AWAITING_TRY).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Unloaded cost of each part of the overview.

struct Part {
    label: String,
    samples: Vec<Duration>,
}

async fn time<F, Fut, T>(label: &str, runs: usize, mut f: F) -> anyhow::Result<Part>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    f().await?; // warm
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        std::hint::black_box(f().await?);
        samples.push(start.elapsed());
    }
    samples.sort();
    Ok(Part {
        label: label.to_owned(),
        samples,
    })
}

/// Times every store call the overview makes, one at a time on an idle service, and the
/// open list as two queries (requests, then all their destinations at once) on a
/// separate connection, for what removing the N+1 would save.
async fn breakdown(ctx: &Context) -> anyhow::Result<Vec<Part>> {
    const RUNS: usize = 200;
    let store = &ctx.store;
    let (open, recent) = (QUEUE_LIMIT as i64, RECENT_LIMIT as i64);
    let mut parts = vec![
        time(
            "`overview()` (the whole status, no rendering)",
            RUNS,
            || async { Ok(ctx.overview().await?) },
        )
        .await?,
        time("`heartbeats()`", RUNS, || async {
            Ok(store.heartbeats().await?)
        })
        .await?,
        time(
            "`list_requests` open (limit 500): 1 + one `destinations()` per request",
            RUNS,
            || async { Ok(store.list_requests(ListFilter::Open, open).await?) },
        )
        .await?,
        time(
            "`list_requests` finished (limit 25): 1 + 25 `destinations()`",
            RUNS,
            || async { Ok(store.list_requests(ListFilter::Finished, recent).await?) },
        )
        .await?,
        time("`stage_counts()`", RUNS, || async {
            Ok(store.stage_counts().await?)
        })
        .await?,
        time("`closed_repositories()`", RUNS, || async {
            Ok(store.closed_repositories().await?)
        })
        .await?,
        time("`pending_report_count()`", RUNS, || async {
            Ok(store.pending_report_count().await?)
        })
        .await?,
    ];
    if let Some(id) = store
        .list_requests(ListFilter::Open, open)
        .await?
        .first()
        .map(|r| r.id)
    {
        parts.push(
            time(
                "one `request(id)` (1 + 1 `destinations()`)",
                RUNS,
                || async { Ok(store.request(id).await?) },
            )
            .await?,
        );
    }

    // The open list without the N+1, on a connection of its own (same driver: Any).
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&ctx.config.database_url())
        .await?;
    const COLUMNS: &str = "id, uid, source, bug, requester, try_repo, base_repo, try_syntax, \
         stage, failure, failure_detail, try_base, try_revision, attempts, created_at, updated_at";
    let open_sql = format!(
        "SELECT {COLUMNS} FROM requests WHERE stage NOT IN ('landed', 'failed', 'cancelled') \
         ORDER BY id DESC LIMIT $1"
    );
    let destinations_sql = "SELECT d.request_id, d.position, d.repo, d.attempt_base, d.landed_revision \
         FROM request_destinations d WHERE d.request_id IN (SELECT id FROM requests \
         WHERE stage NOT IN ('landed', 'failed', 'cancelled') ORDER BY id DESC LIMIT $1) \
         ORDER BY d.request_id, d.position";
    let pool = &pool;
    let open_sql = open_sql.as_str();
    parts.push(
        time(
            "open list as 2 queries (requests; all their destinations with `IN (…)`), raw sqlx",
            RUNS,
            || async move {
                let rows = sqlx::query(open_sql)
                    .bind(QUEUE_LIMIT as i64)
                    .fetch_all(pool)
                    .await?;
                let mut ids = 0_i64;
                for row in &rows {
                    ids += row.try_get::<i64, _>("id")?;
                    let _: String = row.try_get("requester")?;
                    let _: String = row.try_get("stage")?;
                }
                let dest = sqlx::query(destinations_sql)
                    .bind(QUEUE_LIMIT as i64)
                    .fetch_all(pool)
                    .await?;
                for row in &dest {
                    let _: String = row.try_get("repo")?;
                }
                Ok((ids, rows.len(), dest.len()))
            },
        )
        .await?,
    );
    parts.push(
        time(
            "… only its first query (the requests, no destinations), raw sqlx",
            RUNS,
            || async move {
                let rows = sqlx::query(open_sql)
                    .bind(QUEUE_LIMIT as i64)
                    .fetch_all(pool)
                    .await?;
                Ok(rows.len())
            },
        )
        .await?,
    );
    pool.close().await;
    Ok(parts)
}

fn print_breakdown(parts: &[Part]) {
    println!(
        "Unloaded, one call at a time on the running (idle) service, {} runs each:",
        parts[0].samples.len()
    );
    println!();
    println!("<!-- status-bench-breakdown -->");
    println!("| store call | median ms | p90 ms | max ms |");
    println!("|---|---:|---:|---:|");
    for p in parts {
        println!(
            "| {} | {:.2} | {:.2} | {:.2} |",
            p.label,
            ms(percentile(&p.samples, 0.5)),
            ms(percentile(&p.samples, 0.9)),
            ms(*p.samples.last().unwrap_or(&Duration::ZERO))
        );
    }
    println!("<!-- /status-bench-breakdown -->");
    println!();
}

// ---------------------------------------------------------------------------------------
// Load.

struct LoadResult {
    requests: usize,
    seconds: f64,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    errors: usize,
    bytes: usize,
    /// CPU ms per recorded request: the server's threads (tokio workers, blocking pool,
    /// SQLite connection workers) and the client (its thread, or the wrk process).
    server_cpu_ms: f64,
    client_cpu_ms: Option<f64>,
    first_error: Option<String>,
}

impl LoadResult {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn one_line(&self) -> String {
        format!(
            "{} requests in {:.1} s = {:.0}/s; p50 {:.1} ms, p90 {:.1}, p99 {:.1}, max {:.1}; {} errors{}; {}CPU/request: server {:.2} ms{}",
            self.requests,
            self.seconds,
            self.rps(),
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            self.errors,
            self.first_error
                .as_ref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
            if self.bytes > 0 {
                format!("{} bytes/answer; ", self.bytes)
            } else {
                String::new()
            },
            self.server_cpu_ms,
            self.client_cpu_ms
                .map(|c| format!(", client {c:.2} ms"))
                .unwrap_or_default()
        )
    }
}

/// CPU time (user + system, ms) of `who` from `getrusage`.
fn rusage_ms(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time (ms) of this process so far: (the load client: its runtime's thread and the
/// main thread that waits for it; the server: everything else, including threads that
/// have exited, such as SQLite connection workers and blocking-pool threads).
fn cpu_split() -> (f64, f64) {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let main = std::process::id().to_string();
    let mut client = 0.0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let comm = &stat[open + 1..close];
            if !(comm.starts_with(CLIENT_THREAD) || task.file_name().to_str() == Some(&main)) {
                continue;
            }
            // After the command come the fields from 3 (state) on; utime is 14, stime 15.
            let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
            let used = |i: usize| {
                fields
                    .get(i - 3)
                    .and_then(|f| f.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            client += (used(14) + used(15)) * 1000.0 / ticks;
        }
    }
    (client, rusage_ms(libc::RUSAGE_SELF) - client)
}

struct TaskRecord {
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
    bytes: usize,
}

/// `clients` closed-loop tasks on `url`: `warmup` seconds unrecorded, then every request
/// completing within the next `seconds` recorded.
async fn load(
    http: &reqwest::Client,
    url: &str,
    clients: usize,
    warmup: u64,
    seconds: u64,
) -> anyhow::Result<LoadResult> {
    let start = Instant::now();
    let record_from = start + Duration::from_secs(warmup);
    let record_until = record_from + Duration::from_secs(seconds);
    let cpu_before = Arc::new(std::sync::Mutex::new(None));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let http = http.clone();
        let url = url.to_owned();
        tasks.spawn(async move {
            let mut rec = TaskRecord {
                latencies: Vec::new(),
                errors: 0,
                first_error: None,
                bytes: 0,
            };
            loop {
                let sent = Instant::now();
                if sent >= record_until {
                    break;
                }
                let result = async {
                    let response = http.get(&url).send().await?;
                    let status = response.status();
                    let body = response.bytes().await?;
                    anyhow::Ok((status, body.len()))
                }
                .await;
                let done = Instant::now();
                if done < record_from || done > record_until {
                    continue;
                }
                match result {
                    Ok((status, len)) if status.is_success() => {
                        rec.latencies.push(done - sent);
                        rec.bytes = len;
                    }
                    Ok((status, _)) => {
                        rec.errors += 1;
                        rec.first_error
                            .get_or_insert_with(|| format!("HTTP {status}"));
                    }
                    Err(e) => {
                        rec.errors += 1;
                        rec.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            rec
        });
    }
    // CPU counters at the start and end of the recorded window.
    tokio::time::sleep_until(record_from.into()).await;
    *cpu_before.lock().unwrap() = Some(cpu_split());
    tokio::time::sleep_until(record_until.into()).await;
    let cpu_after = cpu_split();
    let mut latencies = Vec::new();
    let (mut errors, mut bytes, mut first_error) = (0, 0, None);
    while let Some(done) = tasks.join_next().await {
        let rec = done?;
        latencies.extend(rec.latencies);
        errors += rec.errors;
        bytes = bytes.max(rec.bytes);
        if first_error.is_none() {
            first_error = rec.first_error;
        }
    }
    latencies.sort();
    if latencies.is_empty() {
        bail!("no request to {url} completed: {first_error:?}");
    }
    let before = cpu_before.lock().unwrap().unwrap_or((0.0, 0.0));
    let n = latencies.len() as f64;
    Ok(LoadResult {
        requests: latencies.len(),
        seconds: seconds as f64,
        p50: percentile(&latencies, 0.5),
        p90: percentile(&latencies, 0.9),
        p99: percentile(&latencies, 0.99),
        max: *latencies.last().unwrap_or(&Duration::ZERO),
        errors,
        bytes,
        server_cpu_ms: (cpu_after.1 - before.1) / n,
        client_cpu_ms: Some((cpu_after.0 - before.0) / n),
        first_error,
    })
}

/// Runs wrk against `url` (the server is warm by then) and reads its report.
fn run_wrk(wrk: &str, url: &str, clients: usize, seconds: u64) -> anyhow::Result<LoadResult> {
    let before = cpu_split();
    let children_before = rusage_ms(libc::RUSAGE_CHILDREN);
    let out = Command::new(wrk)
        .args([
            "-t2",
            &format!("-c{clients}"),
            &format!("-d{seconds}s"),
            "--latency",
            "--timeout",
            "60s",
            url,
        ])
        .output()
        .with_context(|| format!("cannot run {wrk}"))?;
    let after = cpu_split();
    let wrk_cpu = rusage_ms(libc::RUSAGE_CHILDREN) - children_before;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let duration = |s: &str| -> Option<Duration> {
        let (number, factor) = if let Some(n) = s.strip_suffix("us") {
            (n, 1e-6)
        } else if let Some(n) = s.strip_suffix("ms") {
            (n, 1e-3)
        } else if let Some(n) = s.strip_suffix('s') {
            (n, 1.0)
        } else if let Some(n) = s.strip_suffix('m') {
            (n, 60.0)
        } else {
            return None;
        };
        number
            .parse::<f64>()
            .ok()
            .map(|v| Duration::from_secs_f64(v * factor))
    };
    let mut percentiles = BTreeMap::new();
    let (mut max, mut requests, mut took, mut errors) = (None, None, None, 0_usize);
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Latency", _avg, _stdev, m, ..] => max = duration(m),
            [p, v] if p.ends_with('%') => {
                if let Some(v) = duration(v) {
                    percentiles.insert(p.trim_end_matches('%').to_owned(), v);
                }
            }
            [n, "requests", "in", t, ..] => {
                requests = n.parse::<usize>().ok();
                took = duration(t.trim_end_matches(','));
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<usize>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<usize>().ok())
                    .sum::<usize>();
            }
            _ => {}
        }
    }
    let (Some(requests), Some(took)) = (requests, took) else {
        bail!("cannot read wrk's report:\n{text}");
    };
    let get = |p: &str| percentiles.get(p).copied().unwrap_or_default();
    Ok(LoadResult {
        requests,
        seconds: took.as_secs_f64(),
        p50: get("50"),
        // wrk prints 50/75/90/99.
        p90: get("90"),
        p99: get("99"),
        max: max.unwrap_or_default(),
        errors,
        bytes: 0,
        server_cpu_ms: (after.1 - before.1) / requests.max(1) as f64,
        client_cpu_ms: Some(wrk_cpu / requests.max(1) as f64),
        first_error: None,
    })
}

fn print_table(
    s: &Settings,
    rows: &[(String, String, LoadResult)],
    wrk: &[(String, String, LoadResult)],
) {
    println!(
        "{} finished + {} open requests; {} s recorded per row after {} s of warm-up (1-client rows: {} s after 1 s); server and client share {} cores",
        s.history,
        s.queue,
        s.seconds,
        s.warmup,
        s.unloaded,
        cores()
    );
    println!();
    println!("<!-- status-bench-table -->");
    println!(
        "| endpoint | load | requests/s | p50 ms | p90 ms | p99 ms | max ms | errors | server CPU ms/req | client CPU ms/req |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (endpoint, load, r) in rows.iter().chain(wrk) {
        println!(
            "| {endpoint} | {load} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.2} | {} |",
            r.rps(),
            ms(r.p50),
            ms(r.p90),
            ms(r.p99),
            ms(r.max),
            r.errors,
            r.server_cpu_ms,
            r.client_cpu_ms
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(|| "-".to_owned())
        );
    }
    println!("<!-- /status-bench-table -->");
}
