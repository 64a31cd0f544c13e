//! Scale out: `autoland worker` processes on one PostgreSQL database.
//!
//! Part `throughput`: landings per minute with 1, 2, 4... worker processes. Each run has a
//! test environment of its own (`tests/common`: git repositories in a temp dir, a fresh
//! PostgreSQL database on 127.0.0.1:5432): `BENCH_REPOS` central repositories, each with
//! its own try repository whose CI command is `BENCH_CI`; one `autoland serve
//! --no-pushers` (web API, result watcher) and N `autoland worker` processes (2 pushers and
//! a CI runner each, the default). `BENCH_REQUESTS` requests, each one patch adding its own
//! new file, destinations [tryK, centralK] round-robin, are all submitted, and the time is
//! taken from just before the first submission until PostgreSQL shows every request
//! finished (looked at every 50 ms).
//!
//! Part `latency`: the time from a request's creation to its claim by an idle worker. One
//! `serve --no-pushers` and one worker; one request at a time (submitted after a random
//! pause of 0 to `BENCH_POLL_MS`, so submissions fall at random phases of the workers'
//! polling), waited for until it is finished. Latency = the first time a pusher took the
//! request's lease − the time its row was inserted, both recorded by triggers with the
//! database clock (`common::fleet::observed_database`). The first request is a warm-up and
//! not counted. Measured with LISTEN/NOTIFY wake-ups (`listen_notify = true`) and without
//! (`listen_notify = false`: polling only), the latter also with one pusher in the worker:
//! each pusher polls on its own, so two pushers look twice as often.
//!
//! Both parts run the processes with `[timeouts] poll_interval_ms = BENCH_POLL_MS` (the
//! default, 500) and `lease_seconds = 60`.
//!
//! Environment: `BENCH_PARTS` (`throughput,latency`), `BENCH_WORKERS` (`1,2,4`),
//! `BENCH_REQUESTS` (80), `BENCH_REPOS` (4), `BENCH_CI` (`sleep 0.5`),
//! `BENCH_SAMPLES` (20, latency samples per mode), `BENCH_LATENCY_MODES`
//! (`notify,poll,poll-1`; `poll-1` is polling with one pusher in the worker instead of the
//! default two), `BENCH_POLL_MS` (500).
//! `scripts/bench-workers.sh` runs it and prints the tables with the machine's description.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use common::fleet::{
    add_repositories, add_top_level_config, observed_database, patches_for, set_poll_interval,
    start_fleet, submit_round_robin, wait_all_finished_every,
};
use common::{Env, Options};
use serde_json::json;
use support::{env_number, load_average, median, percentile};

/// A way of waking the idle worker, for the latency part.
#[derive(Clone, Copy)]
struct Mode {
    notify: bool,
    /// `[pusher] concurrency` of the worker; `None`: the default (2).
    pushers: Option<usize>,
}

impl Mode {
    fn parse(text: &str) -> anyhow::Result<Mode> {
        Ok(match text.trim() {
            "notify" => Mode {
                notify: true,
                pushers: None,
            },
            "poll" => Mode {
                notify: false,
                pushers: None,
            },
            "poll-1" => Mode {
                notify: false,
                pushers: Some(1),
            },
            other => bail!("BENCH_LATENCY_MODES: `{other}` is not notify, poll or poll-1"),
        })
    }
}

struct Settings {
    throughput: bool,
    latency: bool,
    workers: Vec<usize>,
    requests: usize,
    repos: usize,
    ci: String,
    samples: usize,
    modes: Vec<Mode>,
    poll_ms: u64,
}

fn settings() -> anyhow::Result<Settings> {
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "throughput,latency".into());
    let parts: Vec<&str> = parts.split(',').map(str::trim).collect();
    if let Some(bad) = parts
        .iter()
        .find(|p| !matches!(**p, "throughput" | "latency"))
    {
        bail!("BENCH_PARTS: `{bad}` is neither throughput nor latency");
    }
    Ok(Settings {
        throughput: parts.contains(&"throughput"),
        latency: parts.contains(&"latency"),
        workers: std::env::var("BENCH_WORKERS")
            .unwrap_or_else(|_| "1,2,4".into())
            .split(',')
            .map(|w| {
                w.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=16).contains(n))
                    .with_context(|| format!("BENCH_WORKERS: `{w}` is not 1 to 16"))
            })
            .collect::<anyhow::Result<_>>()?,
        requests: env_number("BENCH_REQUESTS", 80, 1..=10_000)? as usize,
        repos: env_number("BENCH_REPOS", 4, 1..=32)? as usize,
        ci: std::env::var("BENCH_CI").unwrap_or_else(|_| "sleep 0.5".into()),
        samples: env_number("BENCH_SAMPLES", 20, 1..=1000)? as usize,
        modes: std::env::var("BENCH_LATENCY_MODES")
            .unwrap_or_else(|_| "notify,poll,poll-1".into())
            .split(',')
            .map(Mode::parse)
            .collect::<anyhow::Result<_>>()?,
        poll_ms: env_number("BENCH_POLL_MS", 500, 1..=60_000)?,
    })
}

/// Busy and total jiffies of the whole machine, from `/proc/stat`.
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    // idle and iowait
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

struct ThroughputRow {
    workers: usize,
    requests: usize,
    landed: usize,
    seconds: f64,
    submit_seconds: f64,
    request_median_s: f64,
    request_max_s: f64,
    /// Landings per minute between the first and the last quarter of the landings.
    middle_per_minute: f64,
    /// Mean CI run (claim → result recorded), s.
    ci_mean_s: f64,
    /// CI runners' busy time / (workers × the run's time).
    ci_busy: f64,
    cpu_busy: f64,
    push_retries: i64,
    reclaims: i64,
    claims: Vec<(String, i64)>,
    ci_runs: Vec<(String, i64)>,
    load: (String, String),
}

impl ThroughputRow {
    fn per_minute(&self) -> f64 {
        self.landed as f64 / self.seconds * 60.0
    }
}

async fn throughput(s: &Settings, workers: usize) -> ThroughputRow {
    let env = Env::new(Options {
        postgres: true,
        ci_command: s.ci.clone(),
        lease_seconds: 60,
        ..Options::default()
    });
    let repos = add_repositories(&env, s.repos, &s.ci);
    set_poll_interval(&env, s.poll_ms);
    let db = observed_database(&env).await;
    let patches = patches_for(&env, s.requests);
    let names: Vec<String> = (1..=workers).map(|i| format!("w{i}")).collect();
    let (serve, fleet, api) = start_fleet(&env, &db, &names).await;

    let load_before = load_average();
    let cpu_before = cpu_jiffies();
    let start = Instant::now();
    submit_round_robin(&api, &repos, &patches).await;
    let submit_seconds = start.elapsed().as_secs_f64();
    let rows = wait_all_finished_every(
        &db,
        s.requests as i64,
        Duration::from_secs(900),
        Duration::from_millis(50),
    )
    .await;
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = cpu_jiffies();
    let load_after = load_average();
    drop(fleet);
    drop(serve);

    let landed = rows.iter().filter(|r| r.2 == "landed").count();
    let mut request_times: Vec<f64> = sqlx::query_scalar::<_, i64>(
        "SELECT e.at - r.created_at FROM requests r \
         JOIN events e ON e.request_id = r.id AND e.to_stage = 'landed'",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .map(|ms| ms as f64 / 1000.0)
    .collect();
    request_times.sort_by(f64::total_cmp);
    let scalar = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let push_retries = scalar("SELECT count(*) FROM events WHERE kind = 'push_retry'").await;
    let reclaims = scalar("SELECT count(*) FROM claim_log WHERE prev_owner IS NOT NULL").await;
    let per_worker = |tbl: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT split_part(owner, '/', 1), count(*) FROM claim_log WHERE tbl = $1 \
                 GROUP BY 1 ORDER BY 1",
            )
            .bind(tbl)
            .fetch_all(&db)
            .await
            .unwrap()
        }
    };
    let mut landed_at: Vec<i64> =
        sqlx::query_scalar("SELECT e.at FROM events e WHERE e.to_stage = 'landed' ORDER BY e.at")
            .fetch_all(&db)
            .await
            .unwrap();
    landed_at.sort_unstable();
    let middle_per_minute = if landed_at.len() >= 8 {
        let (from, to) = (landed_at.len() / 4, landed_at.len() * 3 / 4);
        (to - from) as f64 / ((landed_at[to] - landed_at[from]) as f64 / 60_000.0)
    } else {
        f64::NAN
    };
    let (ci_count, ci_total_ms): (i64, i64) = sqlx::query_as(
        "SELECT count(*), CAST(COALESCE(sum(finished_at - started_at), 0) AS BIGINT)          FROM ci_runs WHERE finished_at IS NOT NULL",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let claims = per_worker("requests").await;
    let ci_runs = per_worker("ci_runs").await;
    db.close().await;
    let failed: Vec<_> = rows.iter().filter(|r| r.2 != "landed").collect();
    if !failed.is_empty() {
        eprintln!(
            "not landed: {failed:?}\n{}",
            env.process_logs()
                .lines()
                .take(80)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let (busy, total) = (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1);
    ThroughputRow {
        workers,
        requests: s.requests,
        landed,
        seconds,
        submit_seconds,
        request_median_s: median(&request_times),
        request_max_s: request_times.last().copied().unwrap_or(f64::NAN),
        middle_per_minute,
        ci_mean_s: ci_total_ms as f64 / 1000.0 / ci_count.max(1) as f64,
        ci_busy: ci_total_ms as f64 / 1000.0 / (workers as f64 * seconds) * 100.0,
        cpu_busy: if total == 0 {
            f64::NAN
        } else {
            busy as f64 / total as f64 * 100.0
        },
        push_retries,
        reclaims,
        claims,
        ci_runs,
        load: (load_before, load_after),
    }
}

struct LatencyRow {
    mode: Mode,
    /// Insert → first claim, ms, sorted.
    samples: Vec<f64>,
    /// Insert → 201 seen by the client, ms, sorted (the API's part).
    answers: Vec<f64>,
    load: (String, String),
}

async fn latency(s: &Settings, mode: Mode) -> LatencyRow {
    let env = Env::new(Options {
        postgres: true,
        ci_command: "true".to_owned(),
        lease_seconds: 60,
        ..Options::default()
    });
    set_poll_interval(&env, s.poll_ms);
    add_top_level_config(&env, &format!("listen_notify = {}", mode.notify));
    if let Some(n) = mode.pushers {
        let text = std::fs::read_to_string(&env.config_path).unwrap();
        let text = text.replacen("[pusher]\n", &format!("[pusher]\nconcurrency = {n}\n"), 1);
        std::fs::write(&env.config_path, text).unwrap();
    }
    let db = observed_database(&env).await;
    let patches = patches_for(&env, s.samples + 1);
    let (serve, worker, api) = start_fleet(&env, &db, &["w1".to_owned()]).await;
    let load_before = load_average();
    let mut answered = Vec::new();
    for patch in &patches {
        let pause = rand::random_range(0..s.poll_ms);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let id = api
            .submit(std::slice::from_ref(patch), &["try", "central"], json!({}))
            .await;
        let answered_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        answered.push((id, answered_us));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let stage: String = sqlx::query_scalar("SELECT stage FROM requests WHERE id = $1")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap();
            if matches!(stage.as_str(), "landed" | "failed" | "cancelled") {
                assert_eq!(stage, "landed", "request {id}:\n{}", env.process_logs());
                break;
            }
            assert!(Instant::now() < deadline, "request {id} is still {stage}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let load_after = load_average();
    drop(worker);
    drop(serve);
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT c.request_id, c.at_us, min(l.at_us) FROM created_log c \
         JOIN claim_log l ON l.tbl = 'requests' AND l.row_id = c.request_id \
         GROUP BY c.request_id, c.at_us ORDER BY c.request_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    db.close().await;
    assert_eq!(rows.len(), patches.len(), "every request was claimed");
    // The first request is a warm-up.
    let mut samples: Vec<f64> = rows[1..]
        .iter()
        .map(|(_, created, claimed)| (claimed - created) as f64 / 1000.0)
        .collect();
    samples.sort_by(f64::total_cmp);
    let mut answers: Vec<f64> = rows[1..]
        .iter()
        .zip(&answered[1..])
        .map(|((id, created, _), (answered_id, at))| {
            assert_eq!(id, answered_id);
            (at - created) as f64 / 1000.0
        })
        .collect();
    answers.sort_by(f64::total_cmp);
    LatencyRow {
        mode,
        samples,
        answers,
        load: (load_before, load_after),
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to parse.
    let s = settings()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    println!("# Autoland workers on PostgreSQL");
    println!();
    let began = Instant::now();
    if s.throughput {
        println!(
            "throughput: {} requests per run over {} central/try pairs (round-robin), CI `{}`, \
             poll_interval_ms = {}, listen_notify = true, workers: {:?}",
            s.requests, s.repos, s.ci, s.poll_ms, s.workers
        );
        let mut rows = Vec::new();
        for &n in &s.workers {
            let row = rt.block_on(throughput(&s, n));
            println!(
                "{} worker(s): {}/{} landed in {:.1} s ({:.1}/min, middle half {:.1}/min; \
                 submitting took {:.2} s); CI run mean {:.3} s, CI runners {:.0} % busy; \
                 machine CPU {:.0} % busy; load {} -> {}; request claims per worker {:?}; \
                 CI runs per worker {:?}; push retries {}; reclaims {}",
                row.workers,
                row.landed,
                row.requests,
                row.seconds,
                row.per_minute(),
                row.middle_per_minute,
                row.submit_seconds,
                row.ci_mean_s,
                row.ci_busy,
                row.cpu_busy,
                row.load.0,
                row.load.1,
                row.claims,
                row.ci_runs,
                row.push_retries,
                row.reclaims
            );
            rows.push(row);
        }
        let base = rows.first().map(ThroughputRow::per_minute).unwrap_or(1.0);
        println!();
        println!("<!-- workers-bench-throughput -->");
        println!(
            "| workers | landed | time s | landings/min | speed-up | landings/min, middle half | request created → landed, median / max s | CI run, mean s | CI runners busy | machine CPU busy | request claims per worker | push retries | reclaims |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|");
        for row in &rows {
            println!(
                "| {} | {}/{} | {:.1} | {:.1} | {:.2}× | {:.1} | {:.1} / {:.1} | {:.2} | {:.0} % | {:.0} % | {} | {} | {} |",
                row.workers,
                row.landed,
                row.requests,
                row.seconds,
                row.per_minute(),
                row.per_minute() / base,
                row.middle_per_minute,
                row.request_median_s,
                row.request_max_s,
                row.ci_mean_s,
                row.ci_busy,
                row.cpu_busy,
                row.claims
                    .iter()
                    .map(|(w, n)| format!("{w} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                row.push_retries,
                row.reclaims
            );
        }
        println!("<!-- /workers-bench-throughput -->");
        println!();
    }
    if s.latency {
        println!(
            "latency: {} samples per mode (after 1 warm-up), one idle worker, poll_interval_ms = {}",
            s.samples, s.poll_ms
        );
        let mut rows = Vec::new();
        for &mode in &s.modes {
            let row = rt.block_on(latency(&s, mode));
            println!(
                "listen_notify = {}, pushers {}: insert -> claim ms {:?}; insert -> 201 ms {:?}; load {} -> {}",
                row.mode.notify,
                row.mode.pushers.unwrap_or(2),
                row.samples
                    .iter()
                    .map(|v| (v * 10.0).round() / 10.0)
                    .collect::<Vec<_>>(),
                row.answers
                    .iter()
                    .map(|v| (v * 10.0).round() / 10.0)
                    .collect::<Vec<_>>(),
                row.load.0,
                row.load.1
            );
            rows.push(row);
        }
        println!();
        println!("<!-- workers-bench-latency -->");
        println!(
            "| wake-up | pushers in the worker | samples | median ms | p90 ms | mean ms | min ms | max ms |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for row in &rows {
            let v = &row.samples;
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            println!(
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                if row.mode.notify {
                    "LISTEN/NOTIFY (`listen_notify = true`)".to_owned()
                } else {
                    format!("polling every {} ms (`listen_notify = false`)", s.poll_ms)
                },
                row.mode.pushers.unwrap_or(2),
                v.len(),
                median(v),
                percentile(v, 0.9),
                mean,
                v[0],
                v[v.len() - 1]
            );
        }
        println!("<!-- /workers-bench-latency -->");
        println!();
        for row in &rows {
            let v = &row.answers;
            println!(
                "listen_notify = {}, pushers {}: insert -> the client has the 201: median {:.1} ms, max {:.1} ms",
                row.mode.notify,
                row.mode.pushers.unwrap_or(2),
                median(v),
                v[v.len() - 1]
            );
        }
    }
    println!();
    println!("the benchmark took {:.0} s", began.elapsed().as_secs_f64());
    Ok(())
}
