//! Crash safety: `kill -9` of the real `autoland serve` process at the worst moments, then
//! a restart. Every request must finish, and every commit must exist exactly once.

mod common;

use std::process::Child;
use std::time::Duration;

use common::{Api, Change, Env, Kind, Options, free_port, wait_for_file, wait_healthy};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(90);

fn kill9(mut child: Child) {
    child.kill().expect("SIGKILL the server");
    child.wait().expect("reap the server");
}

async fn start(env: &Env, port: u16) -> (Child, Api) {
    let child = env.spawn_serve(port);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, Duration::from_secs(30)).await;
    (child, Api::new(&base, &env.token))
}

fn events_of_kind(detail: &serde_json::Value, kind: &str) -> Vec<String> {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["detail"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn killed_while_ci_runs_the_request_still_lands_once(kind: Kind) {
    let scratch = tempfile::tempdir().unwrap();
    let started = scratch.path().join("ci-started");
    let env = Env::new(Options {
        kind,
        ci_command: format!(
            "if [ ! -e '{m}' ]; then touch '{m}'; sleep 60; fi; sh test.sh",
            m = started.display()
        ),
        ..Options::default()
    });
    let port = free_port();
    let (child, api) = start(&env, port).await;
    let patches = env.patches(&[
        Change {
            author: "Alice <alice@example.com>",
            subject: "One",
            files: &[("src/one.txt", "1\n")],
        },
        Change {
            author: "Alice <alice@example.com>",
            subject: "Two",
            files: &[("src/two.txt", "2\n")],
        },
    ]);
    let id = api.submit(&patches, &["try", "central"], json!({})).await;
    wait_for_file(&started, LIMIT).await;
    kill9(child);

    let (child, api) = start(&env, port).await;
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    // The CI run was started twice: once before the crash, once after.
    assert_eq!(events_of_kind(&detail, "ci_started").len(), 2, "{detail:#}");
    let uid = detail["request"]["uid"].as_str().unwrap();
    assert_eq!(env.commits_with_trailer(&env.try_repo, uid), 2);
    assert_eq!(env.commits_with_trailer(&env.central, uid), 2);
    assert_eq!(env.central_log().len(), 3);
    // The first attempt's `sleep 60` outlived the killed server (only its shell got the
    // parent-death signal); the second attempt must have killed it.
    let orphans = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x0060\x00")
                && std::fs::read(e.path().join("environ")).is_ok_and(|env| {
                    String::from_utf8_lossy(&env).contains(&"AUTOLAND_CI_RUN=".to_string())
                })
        })
        .count();
    assert_eq!(
        orphans, 0,
        "a CI process of the first attempt is still running"
    );
    kill9(child);
}

async fn killed_right_after_each_push_nothing_is_pushed_twice(kind: Kind) {
    let env = Env::new(Options {
        kind,
        ..Options::default()
    });
    // Each repository's after-push hook (which runs once the push is recorded) signals
    // the test and holds the push open; the test kills Autoland before it can record it.
    let try_pushed = env.path().join("try-pushed");
    let central_pushed = env.path().join("central-pushed");
    for (repo, marker) in [
        (&env.try_repo, &try_pushed),
        (&env.central, &central_pushed),
    ] {
        env.after_push_hook(
            repo,
            &format!(
                "#!/bin/sh\nif [ ! -e '{m}' ]; then touch '{m}'; sleep 3; fi\n",
                m = marker.display()
            ),
        );
    }
    let port = free_port();
    let (child, api) = start(&env, port).await;
    let patches = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: "Crash-proof",
        files: &[("src/crash.txt", "crash\n")],
    }]);
    let id = api.submit(&patches, &["try", "central"], json!({})).await;

    wait_for_file(&try_pushed, LIMIT).await;
    kill9(child);
    let (child, api) = start(&env, port).await;
    wait_for_file(&central_pushed, LIMIT).await;
    kill9(child);
    let (child, api2) = start(&env, port).await;
    let _ = api;
    let detail = api2.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");

    let transitions: Vec<String> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to_stage"].is_string())
        .map(|e| e["detail"].as_str().unwrap_or_default().to_owned())
        .collect();
    if kind == Kind::Git {
        // git asks try for the request's ref; hg rebuilds the same commits on the recorded
        // base, and try answers "no changes found".
        assert!(
            transitions
                .iter()
                .any(|d| d.contains("found the earlier push on `try`")),
            "the try push was recognised, not repeated: {transitions:#?}"
        );
    }
    assert!(
        transitions
            .iter()
            .any(|d| d.contains("found the push of an earlier attempt")),
        "the central push was recognised, not repeated: {transitions:#?}"
    );
    let uid = detail["request"]["uid"].as_str().unwrap();
    assert_eq!(env.commits_with_trailer(&env.try_repo, uid), 1);
    assert_eq!(env.commits_with_trailer(&env.central, uid), 1);
    assert_eq!(env.try_pushes(), 1);
    assert_eq!(env.central_log().len(), 2);
    kill9(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_ci_runs_the_request_still_lands_once_on_git() {
    killed_while_ci_runs_the_request_still_lands_once(Kind::Git).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_ci_runs_the_request_still_lands_once_on_hg() {
    killed_while_ci_runs_the_request_still_lands_once(Kind::Hg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_right_after_each_push_nothing_is_pushed_twice_on_git() {
    killed_right_after_each_push_nothing_is_pushed_twice(Kind::Git).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_right_after_each_push_nothing_is_pushed_twice_on_hg() {
    killed_right_after_each_push_nothing_is_pushed_twice(Kind::Hg).await;
}
