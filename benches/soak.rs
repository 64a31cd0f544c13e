//! The soak: a long, steady stream of mixed requests through one `autoland serve
//! --no-pushers` and two `autoland worker` processes on PostgreSQL (release build), while
//! the processes' memory, file descriptors, child processes and database connections are
//! sampled, and `/api/status` is asked four times a second.
//!
//! Requests (`BENCH_REQUESTS`, 1,050) are submitted at an even pace over `BENCH_SECONDS`
//! (630), round-robin over `BENCH_REPOS` (4) central/try pairs (git). Of every ten: one
//! fails on try (its file says `TRYFAIL`, which the CI command rejects), one does not
//! apply (it changes a file central does not have), one is cancelled right after it is
//! submitted, seven land. The CI command is `BENCH_CI` (`sleep 0.2`) followed by that check.
//!
//! Every `BENCH_SAMPLE_SECONDS` (15), for each process: resident memory (`VmRSS`), open
//! file descriptors (`/proc/PID/fd`), child processes (git, hg command servers, CI
//! shells); and the database's connections (`pg_stat_activity`). At the end: outcomes,
//! whether any landed request has its commit twice on its central, the latency of
//! `/api/status` (p50, p90, p99, max), and the samples.
//!
//! `scripts/bench-soak.sh` runs it and prints the tables.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::fleet::{add_repositories, database_url, migrate, set_poll_interval, start_fleet};
use common::{Change, Env, Options};
use serde_json::json;
use support::{env_number, percentile};

/// What one submitted request is meant to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Land,
    TryFailure,
    Conflict,
    Cancel,
}

fn kind_of(i: usize) -> Kind {
    match i % 10 {
        3 => Kind::TryFailure,
        6 => Kind::Conflict,
        9 => Kind::Cancel,
        _ => Kind::Land,
    }
}

/// One look at a process.
#[derive(Clone, Copy, Default)]
struct ProcessSample {
    rss_kib: u64,
    fds: usize,
    children: usize,
}

struct Sample {
    at_s: f64,
    submitted: usize,
    finished: i64,
    processes: Vec<ProcessSample>,
    db_connections: i64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Processes whose parent is `pid`, and theirs (a CI shell's children).
fn children(pid: u32) -> usize {
    let mut parents: BTreeMap<u32, u32> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.insert(child, ppid);
            }
        }
    }
    parents
        .keys()
        .filter(|&&p| {
            let mut at = p;
            for _ in 0..8 {
                match parents.get(&at) {
                    Some(&parent) if parent == pid => return true,
                    Some(&parent) if parent > 1 => at = parent,
                    _ => return false,
                }
            }
            false
        })
        .count()
}

fn sample_process(pid: u32) -> ProcessSample {
    ProcessSample {
        rss_kib: rss_kib(pid),
        fds: fds(pid),
        children: children(pid),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let requests = env_number("BENCH_REQUESTS", 1050, 10..=100_000)? as usize;
    let seconds = env_number("BENCH_SECONDS", 630, 10..=86_400)?;
    let repo_count = env_number("BENCH_REPOS", 4, 1..=32)? as usize;
    let every = Duration::from_secs(env_number("BENCH_SAMPLE_SECONDS", 15, 1..=3600)?);
    let ci = format!(
        "{} && ! grep -rq TRYFAIL src",
        std::env::var("BENCH_CI").unwrap_or_else(|_| "sleep 0.2".into())
    );

    let env = Env::new(Options {
        postgres: true,
        ci_command: ci.clone(),
        lease_seconds: 30,
        ..Options::default()
    });
    let repos = add_repositories(&env, repo_count, &ci);
    set_poll_interval(&env, 500);
    migrate(&env);
    let db = sqlx::PgPool::connect(&database_url(&env)).await?;

    eprintln!("making {requests} patches");
    let patches: Vec<String> = (0..requests)
        .map(|i| {
            let file = format!("src/soak-{i}.txt");
            match kind_of(i) {
                Kind::Conflict => {
                    // The second of two commits: changes a file central never had.
                    let first = format!("src/missing-{i}.txt");
                    env.patches(&[
                        Change {
                            author: "Alice <alice@example.com>",
                            subject: "Never sent",
                            files: &[(&first, "one\n")],
                        },
                        Change {
                            author: "Alice <alice@example.com>",
                            subject: &format!("Soak {i}: does not apply"),
                            files: &[(&first, "two\n")],
                        },
                    ])
                    .remove(1)
                }
                kind => {
                    let content = if kind == Kind::TryFailure {
                        "TRYFAIL\n".to_owned()
                    } else {
                        format!("soak {i}\n")
                    };
                    env.patches(&[Change {
                        author: "Alice <alice@example.com>",
                        subject: &format!("Soak {i}"),
                        files: &[(&file, &content)],
                    }])
                    .remove(0)
                }
            }
        })
        .collect();

    let (serve, workers, api) = start_fleet(&env, &db, &["w1", "w2"]).await;
    let pids: Vec<u32> = std::iter::once(&serve)
        .chain(workers.iter())
        .map(|k| k.0.id())
        .collect();
    let names = ["serve", "w1", "w2"];
    let api = Arc::new(api);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));

    // /api/status, four times a second, for the whole run.
    let status_times = {
        let api = api.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut times = Vec::new();
            let mut errors = 0_usize;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let (code, _) = api.get("/api/status").await;
                if code == 200 {
                    times.push(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    errors += 1;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (times, errors)
        })
    };

    let submitted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sampler = {
        let db = db.clone();
        let stop = stop.clone();
        let submitted = submitted.clone();
        let pids = pids.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let finished: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM requests WHERE stage IN ('landed','failed','cancelled')",
                )
                .fetch_one(&db)
                .await
                .unwrap_or(-1);
                let db_connections: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
                )
                .fetch_one(&db)
                .await
                .unwrap_or(-1);
                samples.push(Sample {
                    at_s: started.elapsed().as_secs_f64(),
                    submitted: submitted.load(Ordering::Relaxed),
                    finished,
                    processes: pids.iter().map(|&p| sample_process(p)).collect(),
                    db_connections,
                });
                if stop.load(Ordering::Relaxed) {
                    return samples;
                }
                tokio::time::sleep(every).await;
            }
        })
    };

    eprintln!("submitting {requests} requests over {seconds} s");
    let pace = Duration::from_secs_f64(seconds as f64 / requests as f64);
    let mut ids: Vec<(i64, Kind, String)> = Vec::with_capacity(requests);
    for (i, patch) in patches.iter().enumerate() {
        let due = started + pace * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (try_name, central_name, _) = &repos[i % repos.len()];
        let body = json!({
            "patches": [{ "name": "0001.patch", "content": patch }],
            "destinations": [try_name, central_name],
        });
        let (code, answer) = api.post("/api/requests", &body).await;
        anyhow::ensure!(code == 201, "submission {i} refused: {code} {answer}");
        let id = answer["id"].as_i64().context("an id")?;
        if kind_of(i) == Kind::Cancel {
            let _ = api
                .post(&format!("/api/requests/{id}/cancel"), &json!({}))
                .await;
        }
        ids.push((id, kind_of(i), central_name.clone()));
        submitted.store(i + 1, Ordering::Relaxed);
    }
    let submit_done = started.elapsed();
    eprintln!(
        "all submitted after {:.0} s; waiting for the rest",
        submit_done.as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let finished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM requests WHERE stage IN ('landed','failed','cancelled')",
        )
        .fetch_one(&db)
        .await?;
        if finished == requests as i64 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {finished} of {requests} finished"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_done = started.elapsed();
    // A last sample with everything idle, a little after the end.
    tokio::time::sleep(every).await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await?;
    let (mut times, status_errors) = status_times.await?;
    times.sort_by(f64::total_cmp);

    // Outcomes, by what each request was meant to do.
    let rows: Vec<(i64, String, String, Option<String>)> =
        sqlx::query_as("SELECT id, uid, stage, failure FROM requests ORDER BY id")
            .fetch_all(&db)
            .await?;
    let by_id: BTreeMap<i64, (String, String, Option<String>)> = rows
        .into_iter()
        .map(|(id, uid, stage, failure)| (id, (uid, stage, failure)))
        .collect();
    let mut outcomes: BTreeMap<(Kind, String), usize> = BTreeMap::new();
    let mut twice = 0;
    for (id, kind, central_name) in &ids {
        let Some((uid, stage, failure)) = by_id.get(id) else {
            continue;
        };
        let outcome = match failure {
            Some(f) if stage == "failed" => format!("failed ({f})"),
            _ => stage.clone(),
        };
        *outcomes.entry((*kind, outcome)).or_default() += 1;
        if stage == "landed" {
            let central = repos
                .iter()
                .find(|(_, c, _)| c == central_name)
                .map(|(_, _, p)| p.clone())
                .context("central")?;
            if env.commits_with_trailer(&central, uid) != 1 {
                twice += 1;
            }
        }
    }

    println!(
        "soak: {requests} requests over {repo_count} pairs in {:.0} s (submitted over {:.0} s)",
        all_done.as_secs_f64(),
        submit_done.as_secs_f64()
    );
    println!("landed requests whose commit is not exactly once on central: {twice}");
    println!("<!-- soak-outcomes -->");
    println!("| meant to | outcome | requests |\n|---|---|---:|");
    for ((kind, outcome), n) in &outcomes {
        println!("| {kind:?} | {outcome} | {n} |");
    }
    println!("<!-- /soak-outcomes -->");
    println!(
        "status: {} answers, {status_errors} errors; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or(f64::NAN)
    );
    println!("<!-- soak-samples -->");
    let mut header = String::from("| t (s) | submitted | finished |");
    let mut rule = String::from("|---:|---:|---:|");
    for name in names {
        header.push_str(&format!(
            " {name} RSS (MiB) | {name} fds | {name} children |"
        ));
        rule.push_str("---:|---:|---:|");
    }
    header.push_str(" DB connections |");
    rule.push_str("---:|");
    println!("{header}\n{rule}");
    for s in &samples {
        let mut line = format!("| {:.0} | {} | {} |", s.at_s, s.submitted, s.finished);
        for p in &s.processes {
            line.push_str(&format!(
                " {:.1} | {} | {} |",
                p.rss_kib as f64 / 1024.0,
                p.fds,
                p.children
            ));
        }
        line.push_str(&format!(" {} |", s.db_connections));
        println!("{line}");
    }
    println!("<!-- /soak-samples -->");
    db.close().await;
    drop(workers);
    drop(serve);
    Ok(())
}
