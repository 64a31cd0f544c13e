//! Try results from CIs other than a plain run of the built-in runner: the signed webhook,
//! retries of failed jobs within quotas (on the built-in runner, which Autoland can ask for
//! another attempt), intermittents, and reuse of a try run that already passed.

mod common;

use std::time::Duration;

use autoland::ci::webhook::sign;
use common::{Change, Env, Options, event_detail};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(90);
const SECRET: &str = "webhook-secret-for-tests";

/// An environment whose try repository takes webhook results signed with [`SECRET`];
/// `extra`: more lines of its `[repositories.webhook]` table.
fn webhook_env(extra: &str) -> Env {
    let env = Env::new(Options {
        try_extra: format!(
            "ci = \"webhook\"\n[repositories.webhook]\nsecret_file = \"webhook-secret\"\n{extra}"
        ),
        ..Options::default()
    });
    std::fs::write(env.path().join("webhook-secret"), format!("{SECRET}\n")).unwrap();
    env
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Posts a delivery signed with `secret` at `timestamp`; returns status and body.
async fn deliver(base: &str, secret: &str, timestamp: i64, body: &Value) -> (u16, Value) {
    let text = body.to_string();
    let signature = sign(secret, &timestamp.to_string(), text.as_bytes()).unwrap();
    post_raw(base, &timestamp.to_string(), &signature, &text).await
}

async fn post_raw(base: &str, timestamp: &str, signature: &str, text: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/ci/results"))
        .header("content-type", "application/json")
        .header("x-autoland-timestamp", timestamp)
        .header("x-autoland-signature", signature)
        .body(text.to_owned())
        .send()
        .await
        .expect("server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn webhook_results_land_a_request_and_bad_deliveries_are_refused() {
    let env = webhook_env("jobs = [\"build\", \"test\"]\n");
    let running = env.start().await;
    let api = &running.api;
    let base = api.base.clone();
    let id = env
        .submit_one(api, "Bug 1 - hooked", "src/hook.txt", "hooked\n")
        .await;
    let revision = api.wait_try_revision(id, LIMIT).await;
    let job = |name: &str, result: &str, attempt: i64| {
        json!({"name": name, "result": result, "attempt": attempt,
               "log_url": format!("https://ci.example.com/{name}/{attempt}"),
               "duration_seconds": 1.5, "summary": format!("{name} said {result}")})
    };
    let build = json!({"repo": "try", "revision": revision, "jobs": [job("build", "success", 1)]});

    // Wrong secret, stale timestamp, missing headers, garbage signature: 401.
    let (status, body) = deliver(&base, "not-the-secret-at-all", now(), &build).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("signature"),
        "{body}"
    );
    let (status, body) = deliver(&base, SECRET, now() - 3600, &build).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("replay"),
        "{body}"
    );
    let (status, _) = post_raw(&base, &now().to_string(), "sha256=zz", &build.to_string()).await;
    assert_eq!(status, 401);
    // Signed, but for a revision Autoland never pushed: 404.
    let unknown =
        json!({"repo": "try", "revision": "0".repeat(40), "jobs": [job("build", "success", 1)]});
    let (status, body) = deliver(&base, SECRET, now(), &unknown).await;
    assert_eq!(status, 404, "{body}");
    // A malformed result word: 400 naming it.
    let bad = json!({"repo": "try", "revision": revision, "jobs": [job("build", "sort-of", 1)]});
    let (status, body) = deliver(&base, SECRET, now(), &bad).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("sort-of"),
        "{body}"
    );

    // The good one is taken; the very same delivery again is a replay.
    let timestamp = now();
    let text = build.to_string();
    let signature = sign(SECRET, &timestamp.to_string(), text.as_bytes()).unwrap();
    let (status, body) = post_raw(&base, &timestamp.to_string(), &signature, &text).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "running", "{body}");
    let (status, body) = post_raw(&base, &timestamp.to_string(), &signature, &text).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("replay"),
        "{body}"
    );

    // `test` hits `retry` (the CI runs it again), then passes on its second attempt:
    // intermittent, and the run passes.
    let failed = json!({"repo": "try", "revision": revision, "jobs": [job("test", "retry", 1)]});
    let (status, body) = deliver(&base, SECRET, now(), &failed).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["state"], "running",
        "a job with a later attempt to come: {body}"
    );
    let passed = json!({"repo": "try", "revision": revision, "jobs": [job("test", "success", 2)]});
    let (status, body) = deliver(&base, SECRET, now(), &passed).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "passed", "{body}");

    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let jobs = detail["ci_jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3, "{jobs:#?}");
    assert!(jobs.iter().any(|j| j["name"] == "test"
        && j["attempt"] == 2
        && j["log_url"] == "https://ci.example.com/test/2"
        && j["duration_ms"] == 1500));
    let verdict = event_detail(&detail, "try_passed");
    assert!(verdict.contains("intermittent: test"), "{verdict}");
    assert!(verdict.contains("2 jobs: 2 passed, 0 failed"), "{verdict}");
    // A verdict is final: more results for the run are refused.
    let late = json!({"repo": "try", "revision": revision, "jobs": [job("test", "testfailed", 3)]});
    let (status, _) = deliver(&base, SECRET, now(), &late).await;
    assert_eq!(status, 409);
    running.service.stop().await;
}

#[tokio::test]
async fn a_failing_webhook_job_fails_the_request_with_its_log() {
    let env = webhook_env("jobs = [\"build\", \"test\"]\n");
    let running = env.start().await;
    let api = &running.api;
    let id = env
        .submit_one(api, "Bug 2 - broken", "src/b.txt", "b\n")
        .await;
    let revision = api.wait_try_revision(id, LIMIT).await;
    let body = json!({"repo": "try", "revision": revision, "complete": true, "jobs": [
        {"name": "build", "result": "success"},
        {"name": "test", "result": "failure", "log_url": "https://ci.example.com/t/9",
         "summary": "line 1\nassertion failed: 2 == 3"}]});
    let (status, answer) = deliver(&api.base, SECRET, now(), &body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["state"], "failed", "{answer}");
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "failed");
    assert_eq!(detail["request"]["failure"], "try_failed");
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(
        why.contains("failed: test (failure) log: https://ci.example.com/t/9"),
        "{why}"
    );
    running.service.stop().await;
}

#[tokio::test]
async fn retries_stop_at_the_request_quota_with_a_message_naming_job_and_quota() {
    let env = Env::new(Options {
        ci_command: "echo 'always broken'; exit 1".to_owned(),
        try_extra: "retry_failed_jobs = 3\nretry_quota_per_request = 1\n".to_owned(),
        ..Options::default()
    });
    let running = env.start().await;
    let api = &running.api;
    let id = env.submit_one(api, "Bug 3 - red", "src/r.txt", "r\n").await;
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "failed", "{detail:#}");
    let jobs = detail["ci_jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "one try and one retry: {jobs:#?}");
    let retries: Vec<_> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "ci_retry")
        .collect();
    assert_eq!(retries.len(), 1, "{retries:#?}");
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(why.contains("ci_command"), "{why}");
    assert!(
        why.contains("retry_quota_per_request") && why.contains("used its 1 retries"),
        "{why}"
    );
    let text = reqwest::get(format!("{}/metrics", api.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("autoland_ci_retries_total"), "{text}");
    running.service.stop().await;
}

#[tokio::test]
async fn a_job_that_fails_then_passes_is_intermittent_and_lands() {
    let env = Env::new(Options {
        ci_fails_first: true,
        try_extra: "retry_failed_jobs = 1\n".to_owned(),
        ..Options::default()
    });
    let running = env.start().await;
    let api = &running.api;
    let id = env
        .submit_one(api, "Bug 4 - flaky", "src/f.txt", "f\n")
        .await;
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let verdict = event_detail(&detail, "try_passed");
    assert!(verdict.contains("intermittent"), "{verdict}");
    assert_eq!(detail["ci_jobs"].as_array().unwrap().len(), 2);
    running.service.stop().await;
}

#[tokio::test]
async fn a_passed_run_is_reused_for_the_same_patches_unless_a_fresh_run_is_asked() {
    let env = Env::new(Options::default());
    let running = env.start().await;
    let api = &running.api;
    let patches = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: "Bug 5 - same",
        files: &[("src/same.txt", "same\n")],
    }]);
    // Try-only: central does not move, so the next request has the same base.
    let first = api.submit(&patches, &["try"], json!({})).await;
    let detail = api.wait_terminal(first, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let first_run = detail["ci_run"]["id"].as_i64().unwrap();
    assert!(detail["ci_run"]["reused_from"].is_null());

    let second = api.submit(&patches, &["try"], json!({})).await;
    let detail = api.wait_terminal(second, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_eq!(detail["ci_run"]["reused_from"], first_run, "{detail:#}");
    let verdict = event_detail(&detail, "try_passed");
    assert!(verdict.contains("not tested again"), "{verdict}");
    assert!(
        !detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "ci_started"),
        "a reused run runs nothing"
    );

    let third = api
        .submit(&patches, &["try"], json!({"fresh_try": true}))
        .await;
    let detail = api.wait_terminal(third, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert!(detail["ci_run"]["reused_from"].is_null(), "{detail:#}");
    assert!(
        detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "ci_started"),
        "a fresh run was asked for"
    );
    running.service.stop().await;
}

/// The README's `curl` line for a CI job, run as written (with this server's address).
#[tokio::test]
async fn the_readme_webhook_example_works_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```sh\nbody=")
        .expect("the README has the webhook example")
        + 6;
    let end = start + readme[start..].find("```").unwrap();
    let env = webhook_env("jobs = [\"lint\"]\n");
    let running = env.start().await;
    let api = &running.api;
    let script = readme[start..end].replace("https://autoland.example.com", &api.base);
    let id = env
        .submit_one(api, "Bug 6 - readme", "src/readme.txt", "r\n")
        .await;
    let revision = api.wait_try_revision(id, LIMIT).await;
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("REVISION", &revision)
        .env("JOB_NAME", "lint")
        .env("RESULT", "success")
        .env("LOG_URL", "https://ci.example.com/lint/1")
        .env("AUTOLAND_WEBHOOK_SECRET", SECRET)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    running.service.stop().await;
}

/// A 404 (a run not known yet) does not burn the delivery: the CI's resend of the very same
/// request is taken. `"complete": true` sent before the last job's result still counts.
#[tokio::test]
async fn a_refused_delivery_can_be_resent_and_complete_may_come_first() {
    let env = webhook_env("");
    let running = env.start().await;
    let api = &running.api;
    let base = api.base.clone();
    let id = env
        .submit_one(api, "Bug 10 - order", "src/o.txt", "o\n")
        .await;
    let revision = api.wait_try_revision(id, LIMIT).await;

    // The run's last delivery says `complete` while `build` still runs.
    let early = json!({"repo": "try", "revision": revision, "complete": true,
                       "jobs": [{"name": "build", "state": "running"}]});
    let ts = now().to_string();
    let text = early.to_string();
    let sig = sign(SECRET, &ts, text.as_bytes()).unwrap();
    let (status, body) = post_raw(&base, &ts, &sig, &text).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "running", "{body}");
    // `complete` came first and is remembered; the job's result then ends the run.
    let last = json!({"repo": "try", "revision": revision,
                      "jobs": [{"name": "build", "result": "success"}]});
    let (status, body) = deliver(&base, SECRET, now(), &last).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "passed", "{body}");
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");

    // A delivery refused with 404 is not remembered: resending it gets 404 again, not 409.
    let unknown = json!({"repo": "try", "revision": "f".repeat(40), "jobs": []});
    let ts = now().to_string();
    let text = unknown.to_string();
    let sig = sign(SECRET, &ts, text.as_bytes()).unwrap();
    assert_eq!(post_raw(&base, &ts, &sig, &text).await.0, 404);
    assert_eq!(post_raw(&base, &ts, &sig, &text).await.0, 404);
    running.service.stop().await;
}

/// The built-in runner's command runs the patch's code: it sees the run's `AUTOLAND_*`
/// variables and what finds tools (`PATH`, `HOME`), none of Autoland's own environment
/// (where token secrets and API keys live).
#[tokio::test]
async fn the_ci_command_gets_none_of_autolands_environment() {
    // Cargo sets CARGO_MANIFEST_DIR in the environment of this test process, which is
    // Autoland's process here.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let env = Env::new(Options {
        ci_command: "env | sort; sh test.sh".to_owned(),
        ..Options::default()
    });
    let running = env.start().await;
    let id = env
        .submit_one(&running.api, "Look around", "src/env.txt", "env\n")
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let log = running.api.ci_log(id).await;
    assert!(
        log.contains("AUTOLAND_REVISION=") && log.contains("PATH="),
        "{log}"
    );
    assert!(
        !log.contains("CARGO_MANIFEST_DIR"),
        "Autoland's environment leaked: {log}"
    );
    running.service.stop().await;
}

/// What each run of [`warm_checkouts_start_from_exactly_the_pushed_revision`] does: list
/// the tree (every entry but the root's repository, with a checksum per file), then, unless
/// called with `--list`, leave behind everything a build could: untracked, ignored and
/// added files, tracked files changed or deleted (one with its size and time put back),
/// nested repositories, a symlink out of the tree. With `hang.txt` in the tree it hangs.
const PROBE: &str = r#"#!/bin/sh
echo "DIR $(pwd)"
echo BEGIN-LISTING
find . -mindepth 1 \( -path ./.git -o -path ./.hg \) -prune -o -print | LC_ALL=C sort |
while IFS= read -r p; do
    if [ -L "$p" ]; then echo "link $p"
    elif [ -f "$p" ]; then echo "file $p $(cksum < "$p")"
    else echo "dir $p"; fi
done
echo END-LISTING
[ "$1" = --list ] && exit 0
[ -f hang.txt ] && sleep 300
echo junk > junk.txt
mkdir -p build/deep && echo object > build/deep/out.o
echo changed >> keep.txt
rm -f gone.txt
# hg compares contents when a file is as new as its dirstate: let a second pass and have
# hg record the times as reliable first, so only the scrub can catch the rewrite.
if [ -d .hg ]; then sleep 1; hg status >/dev/null 2>&1; fi
cp -p same-size.txt "${TMPDIR:-/tmp}/same-size.$$"
printf Z | dd of=same-size.txt bs=1 count=1 conv=notrunc 2>/dev/null
touch -r "${TMPDIR:-/tmp}/same-size.$$" same-size.txt
rm -f "${TMPDIR:-/tmp}/same-size.$$"
mkdir -p nested/inner && echo n > nested/inner/file
(cd nested && git init -q . && hg init .) 2>/dev/null
(git add junk.txt || hg add junk.txt) >/dev/null 2>&1
ln -s / escape
exit 0
"#;

/// The listing part of a run's log.
fn listing(text: &str) -> String {
    let start = text.find("BEGIN-LISTING\n").expect("a listing") + "BEGIN-LISTING\n".len();
    let end = text.find("END-LISTING").expect("the listing's end");
    text[start..end].to_owned()
}

/// A fresh export of `revision` of the try repository, listed by the same script.
fn reference_listing(env: &Env, revision: &str) -> String {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("tree");
    let exported = match env.kind {
        common::Kind::Git => std::process::Command::new("sh")
            .args([
                "-c",
                "mkdir -p \"$3\" && git -C \"$1\" archive \"$2\" | tar -x -C \"$3\"",
            ])
            .args(["sh", env.try_repo.to_str().unwrap(), revision])
            .arg(&target)
            .status(),
        common::Kind::Hg => std::process::Command::new("hg")
            .args(["--config", "ui.archivemeta=false", "-R"])
            .arg(&env.try_repo)
            .args(["archive", "-r", revision, "--type", "files"])
            .arg(&target)
            .status(),
    };
    assert!(exported.unwrap().success(), "cannot export {revision}");
    let listed = std::process::Command::new("sh")
        .args(["probe.sh", "--list"])
        .current_dir(&target)
        .output()
        .unwrap();
    listing(&String::from_utf8_lossy(&listed.stdout))
}

/// Try-only landings of one new file each, through the probe.
async fn land_probe(env: &Env, api: &common::Api, file: &str) -> (i64, Value) {
    let patches = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: &format!("Add {file}"),
        files: &[(file, "new\n")],
    }]);
    let id = api.submit(&patches, &["try"], json!({})).await;
    (id, api.wait_terminal(id, LIMIT).await)
}

fn started_note(detail: &Value) -> String {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "ci_started")
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .next_back()
        .unwrap_or_else(|| panic!("no ci_started note: {detail:#}"))
}

/// The built-in runner reuses its CI directory from run to run, and each run still sees
/// exactly its pushed revision: nothing the previous run wrote, changed or deleted, no
/// file of the previous revision; a run that timed out gets a new directory.
async fn warm_checkouts_start_from_exactly_the_pushed_revision(kind: common::Kind) {
    let env = Env::new(Options {
        kind,
        ci_command: "sh probe.sh".to_owned(),
        ..Options::default()
    });
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        config.replace("ci_timeout_seconds = 60", "ci_timeout_seconds = 4"),
    )
    .unwrap();
    for (file, content) in [
        ("probe.sh", PROBE),
        (".gitignore", "build/\n"),
        (".hgignore", "syntax: glob\nbuild/\n"),
        ("keep.txt", "kept\n"),
        ("gone.txt", "tracked until a run deletes it\n"),
        ("same-size.txt", "AAAA\n"),
    ] {
        env.push_to_central(file, content, &format!("Add {file}"));
    }
    let running = env.start().await;
    let api = &running.api;

    let (first, detail) = land_probe(&env, api, "only-in-the-first.txt").await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let log = api.ci_log(first).await;
    let revision = detail["request"]["try_revision"].as_str().unwrap();
    assert_eq!(listing(&log), reference_listing(&env, revision));
    assert!(listing(&log).contains("./only-in-the-first.txt"), "{log}");
    assert!(
        started_note(&detail).contains("in a new checkout"),
        "{detail:#}"
    );
    let dir = log.lines().next().unwrap().to_owned();

    let (second, detail) = land_probe(&env, api, "second.txt").await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let log = api.ci_log(second).await;
    let revision = detail["request"]["try_revision"].as_str().unwrap();
    let seen = listing(&log);
    assert_eq!(seen, reference_listing(&env, revision), "{log}");
    for leftover in ["only-in-the-first", "junk", "build", "nested", "escape"] {
        assert!(!seen.contains(leftover), "{leftover} survived: {seen}");
    }
    assert!(seen.contains("./gone.txt") && seen.contains("./keep.txt"));
    assert_eq!(
        log.lines().next().unwrap(),
        dir,
        "the directory was not reused"
    );
    let note = started_note(&detail);
    assert!(note.contains("in its reused checkout"), "{note}");

    let (_, detail) = land_probe(&env, api, "hang.txt").await;
    assert_eq!(detail["request"]["stage"], "failed", "{detail:#}");

    let (fourth, detail) = land_probe(&env, api, "fourth.txt").await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let note = started_note(&detail);
    assert!(
        note.contains("in a new checkout") && note.contains("did not end by itself"),
        "{note}"
    );
    let log = api.ci_log(fourth).await;
    let revision = detail["request"]["try_revision"].as_str().unwrap();
    assert_eq!(listing(&log), reference_listing(&env, revision), "{log}");
    assert_eq!(log.lines().next().unwrap(), dir);
    running.service.stop().await;
}

#[tokio::test]
async fn git_warm_checkouts_start_from_exactly_the_pushed_revision() {
    warm_checkouts_start_from_exactly_the_pushed_revision(common::Kind::Git).await;
}

#[tokio::test]
async fn hg_warm_checkouts_start_from_exactly_the_pushed_revision() {
    warm_checkouts_start_from_exactly_the_pushed_revision(common::Kind::Hg).await;
}
