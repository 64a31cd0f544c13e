//! How long from a developer asking for a landing on a bug to Autoland claiming it:
//! the polled path (whiteboard tag set → request stored) and the pushed path
//! (`POST /api/bugzilla/requests` → request stored), against the Bugzilla simulator on
//! loopback. Prints a table; not a test.
//!
//! `cargo bench --bench bugzilla_claim` (env: BENCH_RUNS, default 10;
//! BENCH_POLL_SECONDS, default 2).

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoland::config::{Config, hash_token};
use autoland::runtime::Context;
use autoland::service;
use autoland::simulator::bugzilla::{Flavor, NewAttachment, NewBug, Simulator};
use autoland::store::ListFilter;
use support::ms;

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn summary(label: &str, mut samples: Vec<Duration>) -> String {
    samples.sort();
    let median = samples[samples.len() / 2];
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    format!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        samples.len(),
        ms(median),
        mean,
        ms(samples[0]),
        ms(*samples.last().unwrap_or(&median))
    )
}

async fn wait_for_request(ctx: &Context, bug: i64) -> Instant {
    loop {
        let requests = ctx
            .store
            .list_requests(ListFilter::All, 1000)
            .await
            .expect("store");
        if requests.iter().any(|r| r.bug == Some(bug)) {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::main]
async fn main() {
    let runs = env_number("BENCH_RUNS", 10);
    let poll = env_number("BENCH_POLL_SECONDS", 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let central = dir.path().join("central.git");
    let try_repo = dir.path().join("try.git");
    for bare in [&central, &try_repo] {
        std::fs::create_dir_all(bare).unwrap();
        git(bare, &["init", "-q", "--bare", "--initial-branch=main"]);
    }
    let work = dir.path().join("work");
    git(
        dir.path(),
        &["clone", "-q", central.to_str().unwrap(), "work"],
    );
    git(&work, &["checkout", "-q", "-b", "main"]);
    std::fs::write(work.join("README"), "bench\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "init"]);
    git(&work, &["push", "-q", "origin", "main"]);

    let sim = Simulator::new(Flavor::V53);
    sim.add_user("autoland@example.com", "Autoland", false);
    sim.add_user("alice@example.com", "Alice", false);
    sim.add_api_key("bench-key", "autoland@example.com");
    let url = sim.start().await.expect("simulator");
    std::fs::write(dir.path().join("key"), "bench-key").unwrap();
    let config_text = format!(
        r#"
data_dir = "data"
[timeouts]
poll_interval_ms = 500
[[repositories]]
name = "central"
kind = "git"
pull_url = "{central}"
level = "scm_level_3"
[[repositories]]
name = "try"
kind = "git"
pull_url = "{try_repo}"
level = "scm_level_1"
try = true
base = "central"
ci_command = "true"
[permissions.users]
"alice@example.com" = "scm_level_3"
[[tokens]]
name = "service"
user = "bugzilla@example.com"
sha256 = "{hash}"
service = true
[bugzilla]
url = "{url}"
api_key_file = "key"
poll_interval_seconds = {poll}
poll_overlap_seconds = 5
"#,
        central = central.display(),
        try_repo = try_repo.display(),
        hash = hash_token("bench-token"),
    );
    let config_path = dir.path().join("autoland.toml");
    std::fs::write(&config_path, config_text).unwrap();
    let config = Config::load(&config_path).expect("config");
    let ctx = Arc::new(service::context(config).await.expect("context"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = service::start(ctx.clone(), listener).await.unwrap();
    let base = format!("http://{}", service.addr);
    let http = reqwest::Client::new();

    let new_bug = |n: u64| {
        let bug = sim.create_bug(NewBug {
            summary: format!("bench {n}"),
            whiteboard: String::new(),
            creator: "alice@example.com".to_owned(),
            private: false,
        });
        sim.add_attachment(
            bug,
            NewAttachment {
                file_name: "p.patch".to_owned(),
                summary: "p".to_owned(),
                content_type: "text/plain".to_owned(),
                data: format!("--- /dev/null\n+++ b/f{n}\n@@ -0,0 +1 @@\n+x\n").into_bytes(),
                is_patch: true,
                creator: "alice@example.com".to_owned(),
                ..NewAttachment::default()
            },
        );
        bug
    };

    let mut polled = Vec::new();
    for n in 0..runs {
        // The previous claim happened just after a poll: set the next tag at evenly spread
        // phases of the poll cycle, so the samples cover it uniformly.
        let phase = Duration::from_millis(n * poll * 1000 / runs.max(1));
        tokio::time::sleep(phase).await;
        let bug = new_bug(n);
        let started = Instant::now();
        sim.set_whiteboard(bug, "[autoland-try]", "alice@example.com");
        let claimed = wait_for_request(&ctx, bug).await;
        polled.push(claimed - started);
    }
    let mut pushed = Vec::new();
    for n in runs..2 * runs {
        let bug = new_bug(n);
        let started = Instant::now();
        let response = http
            .post(format!("{base}/api/bugzilla/requests"))
            .bearer_auth("bench-token")
            .json(&serde_json::json!({ "bug": bug, "requester": "alice@example.com" }))
            .send()
            .await
            .expect("server answers");
        assert_eq!(response.status().as_u16(), 201);
        pushed.push(started.elapsed());
    }
    service.stop().await;

    println!("\nTime from asking for a landing to the request being claimed (stored), ms");
    println!("poll interval {poll} s, Bugzilla simulator on loopback, {runs} runs each\n");
    println!("| path | runs | median | mean | min | max |");
    println!("|---|---|---|---|---|---|");
    println!("{}", summary("polled: tag set → request stored", polled));
    println!("{}", summary("pushed: POST → 201 (request stored)", pushed));
}
