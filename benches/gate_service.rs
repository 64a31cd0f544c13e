//! The landing gate in the running service: one backlog of requests through a destination
//! with `gate = "off"`, `"serial"` and `"speculative"`, on real git repositories, with the
//! built-in CI runner (`BENCH_RUNNERS` of them in the process, so candidates are tested in
//! parallel as a CI farm would).
//!
//! The backlog: `BENCH_REQUESTS` requests, each one patch adding its own file, made on the
//! same tip and submitted at once. `BENCH_BROKEN` % of them are broken (the repository's
//! test script fails on them alone), and `BENCH_PAIRS` pairs interact: each half passes
//! alone, both together fail (files `pair-K/a` and `pair-K/b`). The CI command sleeps
//! `BENCH_CI_MS`, then runs the test script and the pair rule. The same seed
//! (`BENCH_SEED`) makes the same backlog for every strategy.
//!
//! Measured per strategy, from the first submission until every request ended: requests
//! landed and not, wall time and landings per minute, CI runs started (cancelled ones
//! included) and per landing, time to land (p50/p90, from the request's creation to its
//! `landed` event), and red tips: every revision central's branch had as its tip during the
//! run, checked out and run through the same tests.
//!
//! Environment: `BENCH_REQUESTS` (40), `BENCH_BROKEN` (10), `BENCH_PAIRS` (2),
//! `BENCH_CI_MS` (2000), `BENCH_RUNNERS` (4), `BENCH_WINDOW` (8), `BENCH_BATCH` (2),
//! `BENCH_SEED` (7), `BENCH_STRATEGIES` (`off,serial,speculative`).
//! `scripts/bench-gate-service.sh` runs it and prints the table with the machine.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use common::{Change, Env, Kind, Options, git};
use serde_json::{Value, json};
use support::{env_number, percentile};

struct Settings {
    requests: usize,
    broken_percent: u64,
    pairs: usize,
    ci_ms: u64,
    runners: u64,
    window: u64,
    batch: u64,
    seed: u64,
    strategies: Vec<String>,
}

fn settings() -> anyhow::Result<Settings> {
    let strategies: Vec<String> = std::env::var("BENCH_STRATEGIES")
        .unwrap_or_else(|_| "off,serial,speculative".to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    for s in &strategies {
        if !["off", "serial", "speculative"].contains(&s.as_str()) {
            bail!("BENCH_STRATEGIES: `{s}` is not off, serial or speculative");
        }
    }
    Ok(Settings {
        requests: env_number("BENCH_REQUESTS", 40, 2..=1000)? as usize,
        broken_percent: env_number("BENCH_BROKEN", 10, 0..=100)?,
        pairs: env_number("BENCH_PAIRS", 2, 0..=100)? as usize,
        ci_ms: env_number("BENCH_CI_MS", 2000, 0..=600_000)?,
        runners: env_number("BENCH_RUNNERS", 4, 1..=64)?,
        window: env_number("BENCH_WINDOW", 8, 1..=100)?,
        batch: env_number("BENCH_BATCH", 2, 1..=100)?,
        seed: env_number("BENCH_SEED", 7, 0..=u64::MAX)?,
        strategies,
    })
}

/// What one request of the backlog adds.
#[derive(Clone)]
struct Item {
    file: String,
    content: String,
}

/// The backlog, the same for every strategy: a small deterministic generator.
fn backlog(s: &Settings) -> Vec<Item> {
    let mut state = s
        .seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let mut items: Vec<Item> = (0..s.requests)
        .map(|i| Item {
            file: format!("src/r{i}.txt"),
            content: if next() * 100.0 < s.broken_percent as f64 {
                "BROKEN\n".to_owned()
            } else {
                format!("request {i}\n")
            },
        })
        .collect();
    // Interacting pairs: two requests a few places apart in the queue.
    for k in 0..s.pairs.min(s.requests / 2) {
        let first = (next() * (s.requests as f64 - 4.0).max(1.0)) as usize;
        let second = (first + 1 + (next() * 3.0) as usize).min(s.requests - 1);
        if first == second {
            continue;
        }
        items[first] = Item {
            file: format!("pair-{k}/a"),
            content: "a\n".to_owned(),
        };
        items[second] = Item {
            file: format!("pair-{k}/b"),
            content: "b\n".to_owned(),
        };
    }
    items
}

/// The tests: the repository's script (fails on BROKEN) and the pair rule.
/// (The script's failure must end the command: a trailing `; true` once hid it.)
const CHECK: &str = "sh test.sh >/dev/null || exit 1; for a in pair-*/a; do \
     [ -e \"$a\" ] || continue; [ -e \"${a%/a}/b\" ] && { echo \"FAIL: ${a%/a} together\"; exit 1; }; \
     done; exit 0";

struct Row {
    strategy: String,
    landed: usize,
    not_landed: usize,
    seconds: f64,
    runs: i64,
    red_tips: usize,
    tips: usize,
    p50: f64,
    p90: f64,
}

async fn run(s: &Settings, strategy: &str, items: &[Item]) -> anyhow::Result<Row> {
    let central_extra = match strategy {
        "off" => String::new(),
        gate => format!(
            "gate = \"{gate}\"\nmax_window = {}\nbatch_size = {}",
            s.window, s.batch
        ),
    };
    let env = Env::new(Options {
        kind: Kind::Git,
        ci_command: format!("sleep {}; {CHECK}", s.ci_ms as f64 / 1000.0),
        central_extra,
        lease_seconds: 60,
        ..Options::default()
    });
    let text = std::fs::read_to_string(&env.config_path)?;
    std::fs::write(
        &env.config_path,
        text.replace(
            "[pusher]\n",
            &format!("[pusher]\nci_runners = {}\n", s.runners),
        ),
    )?;
    let patches: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            env.patches(&[Change {
                author: "Alice <alice@example.com>",
                subject: &format!("Bug {i} - {}", item.file),
                files: &[(item.file.as_str(), item.content.as_str())],
            }])
            .remove(0)
        })
        .collect();
    let tip_before = env.central_tip();
    let running = env.start().await;
    let api = &running.api;
    let destinations: &[&str] = if strategy == "off" {
        &["try", "central"]
    } else {
        &["central"]
    };
    let began = Instant::now();
    let mut ids = Vec::new();
    for patch in &patches {
        ids.push(
            api.submit(std::slice::from_ref(patch), destinations, json!({}))
                .await,
        );
    }
    let mut details: Vec<Value> = Vec::new();
    for id in &ids {
        details.push(api.wait_terminal(*id, Duration::from_secs(3600)).await);
    }
    let seconds = began.elapsed().as_secs_f64();
    let landed: Vec<&Value> = details
        .iter()
        .filter(|d| d["request"]["stage"] == "landed")
        .collect();
    let mut to_land: Vec<f64> = landed
        .iter()
        .filter_map(|d| {
            let created = d["request"]["created_at"].as_f64()?;
            let at = d["events"]
                .as_array()?
                .iter()
                .rev()
                .find(|e| e["to_stage"] == "landed")?["at"]
                .as_f64()?;
            Some((at - created) / 1000.0)
        })
        .collect();
    to_land.sort_by(f64::total_cmp);
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        env.path().join("data/autoland.db").display()
    ))
    .await?;
    let runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ci_runs")
        .fetch_one(&db)
        .await?;
    db.close().await;
    running.service.stop().await;
    // Every tip central had since the start.
    let tips: Vec<String> = git(
        &env.central,
        &["rev-list", "--first-parent", &format!("{tip_before}..main")],
    )
    .lines()
    .map(str::to_owned)
    .collect();
    let check = tempfile::tempdir()?;
    let work = check.path().join("w");
    git(
        check.path(),
        &[
            "clone",
            "--quiet",
            env.central.to_str().context("path")?,
            "w",
        ],
    );
    let mut red = 0;
    for tip in &tips {
        git(&work, &["checkout", "--quiet", "--force", "--detach", tip]);
        git(&work, &["clean", "-fdxq"]);
        let ok = std::process::Command::new("sh")
            .arg("-c")
            .arg(CHECK)
            .current_dir(&work)
            .stdout(std::process::Stdio::null())
            .status()?
            .success();
        if !ok {
            red += 1;
        }
    }
    Ok(Row {
        strategy: strategy.to_owned(),
        landed: landed.len(),
        not_landed: details.len() - landed.len(),
        seconds,
        runs,
        red_tips: red,
        tips: tips.len(),
        p50: percentile(&to_land, 50.0),
        p90: percentile(&to_land, 90.0),
    })
}

fn main() -> anyhow::Result<()> {
    let s = settings()?;
    let items = backlog(&s);
    let broken = items
        .iter()
        .filter(|i| i.content.starts_with("BROKEN"))
        .count();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    println!("# The landing gate in the service");
    println!();
    println!(
        "backlog: {} requests submitted at once ({broken} broken alone, {} interacting pairs), \
         CI {} ms + the tests, {} built-in CI runners, speculative window {} batch {}",
        s.requests, s.pairs, s.ci_ms, s.runners, s.window, s.batch
    );
    let mut rows = Vec::new();
    for strategy in &s.strategies {
        let row = rt.block_on(run(&s, strategy, &items))?;
        println!(
            "{}: {} landed, {} not, {:.1} s, {} CI runs, {}/{} red tips",
            row.strategy, row.landed, row.not_landed, row.seconds, row.runs, row.red_tips, row.tips
        );
        rows.push(row);
    }
    println!();
    println!("<!-- gate-service-bench -->");
    println!(
        "| strategy | landed | not landed | wall time | landings/min | CI runs | runs/landing | time to land p50 / p90 | red tips |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1} s | {:.1} | {} | {:.2} | {:.1} / {:.1} s | {} of {} |",
            r.strategy,
            r.landed,
            r.not_landed,
            r.seconds,
            r.landed as f64 / r.seconds * 60.0,
            r.runs,
            r.runs as f64 / r.landed.max(1) as f64,
            r.p50,
            r.p90,
            r.red_tips,
            r.tips
        );
    }
    println!("<!-- /gate-service-bench -->");
    Ok(())
}
