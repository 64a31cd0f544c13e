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

/// Submits one single-file change for central as Alice; returns once it is in the gate
/// (so requests join the queue in the order they are submitted).
async fn submit(env: &Env, api: &common::Api, subject: &str, file: &str, content: &str) -> i64 {
    let patches = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject,
        files: &[(file, content)],
    }]);
    let id = api.submit(&patches, &["central"], json!({})).await;
    api.wait_for(id, LIMIT, |d| {
        d["request"]["stage"] != "received"
            && d["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["kind"] == "entered_gate"))
    })
    .await;
    id
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
async fn assert_landed_as_tested(env: &Env, api: &common::Api, detail: &Value) {
    // The requests land first, then their candidate is marked landed: wait for both.
    let id = detail["request"]["id"].as_i64().unwrap();
    let detail = &api
        .wait_for(id, LIMIT, |d| {
            d["candidates"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["state"] == "landed"))
        })
        .await;
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
        assert_landed_as_tested(&env, api, &detail).await;
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
    // The request page shows the candidates it was tested in.
    let page = reqwest::get(format!("{}/requests/{d}", api.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<h2>Landing gate</h2>"), "{page}");
    assert!(
        page.contains("gate-landed") && page.contains("gate-cancelled"),
        "{page}"
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

/// Runs the CI's check (the repository's test script, then the pair rule) on a checkout
/// of `revision` of central; true if it passes.
fn tip_passes(env: &Env, revision: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("w");
    match env.kind {
        Kind::Git => {
            git(
                dir.path(),
                &["clone", "--quiet", env.central.to_str().unwrap(), "w"],
            );
            git(&work, &["checkout", "--quiet", "--detach", revision]);
        }
        Kind::Hg => {
            hg(
                dir.path(),
                &[
                    "clone",
                    "--quiet",
                    "-r",
                    revision,
                    env.central.to_str().unwrap(),
                    "w",
                ],
            );
        }
    }
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("sh test.sh >/dev/null && ! { [ -e pair/a ] && [ -e pair/b ]; }")
        .current_dir(&work)
        .status()
        .unwrap();
    status.success()
}

/// Every revision central's branch ever had as its tip (its first-parent history).
fn every_tip(env: &Env) -> Vec<String> {
    match env.kind {
        Kind::Git => git(&env.central, &["rev-list", "--first-parent", "main"]),
        Kind::Hg => hg(
            &env.central,
            &["log", "-r", "reverse(::tip)", "-T", "{node}\n"],
        ),
    }
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Two requests, A (`pair/a`) and B (`pair/b`), each passing alone and failing together,
/// through Bugzilla tags. With the gate, B is ejected (tested on the tip with A below it)
/// and every tip central ever had passes; the bugs say what happened. Without it, both
/// land after passing try alone, and central's tip fails.
async fn an_interacting_pair(kind: Kind, gate: &str) {
    use autoland::simulator::bugzilla::Flavor;
    use common::bugzilla::{attach, autoland_comments, new_bug, request_for_bug, simulator};
    let (sim, url) = simulator(Flavor::V53).await;
    let hold_dir = tempfile::tempdir().unwrap();
    let hold = hold_dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let env = Env::new(Options {
        kind,
        ci_command: ci_command(&hold),
        central_extra: format!("gate = \"{gate}\"\nmax_window = 2\nbatch_size = 1"),
        bugzilla: Some(url),
        ..Options::default()
    });
    let running = env.start().await;
    let api = &running.api;
    let mut bugs = Vec::new();
    for (name, file) in [("a", "pair/a"), ("b", "pair/b")] {
        let patch = env.patches(&[Change {
            author: "Alice <alice@example.com>",
            subject: &format!("Bug - add {file}"),
            files: &[(file, "x\n")],
        }]);
        let bug = new_bug(&sim, &format!("Pair {name}"));
        attach(&sim, bug, &format!("{name}.patch"), &patch[0], false);
        sim.set_whiteboard(bug, "[autoland-central]", "alice@example.com");
        bugs.push(bug);
        // A first, then B: B is queued behind A.
        let id = request_for_bug(api, bug).await;
        if gate != "off" {
            api.wait_for(id, LIMIT, |d| d["request"]["stage"] == "gated")
                .await;
        } else {
            api.wait_for(id, LIMIT, |d| d["request"]["stage"] == "awaiting_try")
                .await;
        }
    }
    let a = request_for_bug(api, bugs[0]).await;
    let b = request_for_bug(api, bugs[1]).await;
    std::fs::remove_file(&hold).unwrap();
    let first = api.wait_terminal(a, LIMIT).await;
    let second = api.wait_terminal(b, LIMIT).await;
    assert_eq!(first["request"]["stage"], "landed", "{first:#}");
    let tips = every_tip(&env);
    if gate == "off" {
        // Each passed try alone; together they break central.
        assert_eq!(second["request"]["stage"], "landed", "{second:#}");
        assert!(!tip_passes(&env, &tips[0]), "central's tip should be red");
        running.service.stop().await;
        return;
    }
    assert_eq!(second["request"]["failure"], "gate_failed", "{second:#}");
    let why = second["request"]["failure_detail"].as_str().unwrap();
    assert!(why.contains(&format!("together with request {a}")), "{why}");
    assert!(why.contains("FAIL: pair/a and pair/b together"), "{why}");
    for tip in &tips {
        assert!(tip_passes(&env, tip), "central had a red tip: {tip}");
    }
    assert_landed_as_tested(&env, api, &first).await;
    // The bugs: entered the gate, with whom it was tested, why it was ejected.
    let delivered = |bug: i64, n: usize| {
        let sim = sim.clone();
        async move {
            let deadline = std::time::Instant::now() + LIMIT;
            loop {
                let comments = autoland_comments(&sim, bug);
                if comments.len() >= n {
                    return comments;
                }
                assert!(std::time::Instant::now() < deadline, "{comments:#?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let on_a = delivered(bugs[0], 3).await;
    assert!(on_a[1].contains("landing gate of central"), "{on_a:#?}");
    assert!(
        on_a[2].contains("landed request") && on_a[2].contains("Tested in candidate"),
        "{on_a:#?}"
    );
    let on_b = delivered(bugs[1], 3).await;
    assert!(on_b[1].contains("landing gate of central"), "{on_b:#?}");
    assert!(on_b[2].contains("ejected"), "{on_b:#?}");
    assert!(
        on_b[2].contains(&format!("together with request {a}")),
        "{on_b:#?}"
    );
    assert!(on_b[2].contains("pair/a and pair/b together"), "{on_b:#?}");
    running.service.stop().await;
}

#[tokio::test]
async fn git_the_gate_ejects_the_second_of_an_interacting_pair() {
    an_interacting_pair(Kind::Git, "speculative").await;
}

#[tokio::test]
async fn hg_the_gate_ejects_the_second_of_an_interacting_pair() {
    an_interacting_pair(Kind::Hg, "speculative").await;
}

#[tokio::test]
async fn git_without_the_gate_an_interacting_pair_lands_red() {
    an_interacting_pair(Kind::Git, "off").await;
}

#[tokio::test]
async fn hg_without_the_gate_an_interacting_pair_lands_red() {
    an_interacting_pair(Kind::Hg, "off").await;
}

/// Someone pushes to central while a candidate is under test: its landing is refused
/// (the tip is not the one it was tested on), it is rebuilt on the new tip and tested
/// again, and only that lands.
async fn a_direct_push_means_a_retest(kind: Kind) {
    let hold_dir = tempfile::tempdir().unwrap();
    let hold = hold_dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let env = gated(kind, &hold, "gate = \"serial\"");
    let running = env.start().await;
    let api = &running.api;
    let a = submit(&env, api, "Bug 7 - A", "src/a.txt", "a\n").await;
    api.wait_status(LIMIT, "a candidate under test", |o| {
        rows(o)
            .first()
            .is_some_and(|r| r["candidate_state"] == "testing")
    })
    .await;
    env.push_to_central("src/direct.txt", "direct\n", "Pushed by hand");
    let outside = env.central_tip();
    std::fs::remove_file(&hold).unwrap();
    let detail = api.wait_terminal(a, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_landed_as_tested(&env, api, &detail).await;
    let candidates = detail["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2, "{detail:#}");
    assert_eq!(candidates[1]["state"], "refused", "{detail:#}");
    assert_eq!(
        candidates[0]["base"].as_str(),
        Some(outside.as_str()),
        "{detail:#}"
    );
    let events: Vec<String> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        events.iter().any(|e| e.contains("outside the gate")),
        "{events:#?}"
    );
    let (_, overview) = api.get("/api/status").await;
    assert_eq!(gate_of(&overview)["ci_runs"], 2, "{overview:#}");
    running.service.stop().await;
}

#[tokio::test]
async fn git_a_direct_push_during_a_test_means_a_retest() {
    a_direct_push_means_a_retest(Kind::Git).await;
}

#[tokio::test]
async fn hg_a_direct_push_during_a_test_means_a_retest() {
    a_direct_push_means_a_retest(Kind::Hg).await;
}

/// Lanes: `docs/**` and the rest. A failure in the main lane rebuilds the main lane's
/// candidates only: the docs request is tested once and lands.
#[tokio::test]
async fn a_failure_in_one_lane_does_not_restart_another() {
    let hold_dir = tempfile::tempdir().unwrap();
    let hold = hold_dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let env = gated(
        Kind::Git,
        &hold,
        "gate = \"speculative\"\nmax_window = 4\nbatch_size = 1\nlanes = { docs = [\"docs/**\"] }",
    );
    let running = env.start().await;
    let api = &running.api;
    let broken = submit(&env, api, "Bug 8 - broken", "src/m1.txt", "BROKEN\n").await;
    let docs = submit(&env, api, "Bug 9 - docs", "docs/guide.txt", "guide\n").await;
    let fine = submit(&env, api, "Bug 10 - fine", "src/m2.txt", "m2\n").await;
    let overview = api
        .wait_status(LIMIT, "three candidates under test", |o| {
            rows(o).len() == 3 && rows(o).iter().all(|r| r["candidate_state"] == "testing")
        })
        .await;
    let docs_row = rows(&overview)
        .into_iter()
        .find(|r| r["request"] == docs)
        .unwrap();
    assert_eq!(docs_row["lane"], "docs", "{overview:#}");
    assert!(ids(&docs_row["tested_with"]).is_empty(), "{overview:#}");
    std::fs::remove_file(&hold).unwrap();
    let detail = api.wait_terminal(broken, LIMIT).await;
    assert_eq!(detail["request"]["failure"], "gate_failed", "{detail:#}");
    for id in [docs, fine] {
        let detail = api.wait_terminal(id, LIMIT).await;
        assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    }
    // The docs request: one candidate, one CI run; the main lane: broken, broken+fine,
    // then fine again.
    let detail = api.wait_terminal(docs, LIMIT).await;
    assert_eq!(
        detail["candidates"].as_array().unwrap().len(),
        1,
        "{detail:#}"
    );
    let fine_detail = api.wait_terminal(fine, LIMIT).await;
    assert_eq!(
        fine_detail["candidates"].as_array().unwrap().len(),
        2,
        "{fine_detail:#}"
    );
    let (_, overview) = api.get("/api/status").await;
    assert_eq!(gate_of(&overview)["ci_runs"], 4, "{overview:#}");
    running.service.stop().await;
}

/// Kill -9 twice: while a window of three is under test, and during the first landing
/// push, after central took it. Each restart resumes: nothing is pushed twice, nothing
/// untested lands, every request lands.
async fn killed_while_testing_and_while_landing(kind: Kind) {
    let hold_dir = tempfile::tempdir().unwrap();
    let hold = hold_dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let env = gated(
        kind,
        &hold,
        "gate = \"speculative\"\nmax_window = 3\nbatch_size = 1",
    );
    let pushed = env.path().join("pushed");
    let release = env.path().join("release-push");
    env.after_push_hook(
        &env.central,
        &format!(
            "#!/bin/sh\n[ -e '{pushed}' ] && exit 0\ntouch '{pushed}'\n\
             while [ ! -e '{release}' ]; do sleep 0.05; done\nexit 0\n",
            pushed = pushed.display(),
            release = release.display()
        ),
    );
    let (child, api) = env.serve_process().await;
    // Killed on the way out, should an assertion fail first.
    let mut child = common::ChildGuard(child);
    let mut ids = Vec::new();
    for (n, file) in ["src/k1.txt", "src/k2.txt", "src/k3.txt"]
        .iter()
        .enumerate()
    {
        ids.push(submit(&env, &api, &format!("Bug {n} - kill"), file, "k\n").await);
    }
    api.wait_status(LIMIT, "three candidates under test", |o| {
        rows(o).len() == 3 && rows(o).iter().all(|r| r["candidate_state"] == "testing")
    })
    .await;
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    let (child, api) = env.serve_process().await;
    // Killed on the way out, should an assertion fail first.
    let mut child = common::ChildGuard(child);
    std::fs::remove_file(&hold).unwrap();
    common::wait_for_file(&pushed, LIMIT).await;
    // central has the first landing; Autoland has not recorded it yet.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    std::fs::write(&release, "").unwrap();

    let (child, api2) = env.serve_process().await;
    // Killed on the way out, should an assertion fail first.
    let mut child = common::ChildGuard(child);
    drop(api);
    for id in &ids {
        let detail = api2.wait_terminal(*id, LIMIT).await;
        assert_eq!(
            detail["request"]["stage"],
            "landed",
            "{detail:#}\n{}",
            env.process_logs()
        );
        assert_landed_as_tested(&env, &api2, &detail).await;
        let uid = detail["request"]["uid"].as_str().unwrap();
        assert_eq!(env.commits_with_trailer(&env.central, uid), 1, "{detail:#}");
    }
    let first = api2.wait_terminal(ids[0], LIMIT).await;
    let events = first["events"].to_string();
    assert!(events.contains("found after a restart"), "{first:#}");
    // The first window's candidates were cancelled by the restart, not landed.
    let (_, overview) = api2.get("/api/status").await;
    assert!(
        gate_of(&overview)["ci_runs"].as_i64().unwrap() >= 6,
        "{overview:#}"
    );
    child.0.kill().unwrap();
    child.0.wait().unwrap();
}

#[tokio::test]
async fn git_kill_9_while_testing_and_while_landing() {
    killed_while_testing_and_while_landing(Kind::Git).await;
}

#[tokio::test]
async fn hg_kill_9_while_testing_and_while_landing() {
    killed_while_testing_and_while_landing(Kind::Hg).await;
}

/// Batches: four requests tested as one candidate; one is broken. The batch fails, is
/// bisected (halves, then the culprit's half again), the culprit is ejected and the three
/// innocent land — in fewer runs than testing each on its own would take with a failure
/// among them.
#[tokio::test]
async fn a_failed_batch_is_bisected_and_the_innocent_land() {
    let hold_dir = tempfile::tempdir().unwrap();
    let hold = hold_dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let env = gated(
        Kind::Git,
        &hold,
        "gate = \"speculative\"\nmax_window = 1\nbatch_size = 4",
    );
    let running = env.start().await;
    let api = &running.api;
    // The first request waits in a candidate of its own while the other four queue up.
    let first = submit(&env, api, "Bug 20 - first", "src/first.txt", "first\n").await;
    let mut batch = Vec::new();
    for (n, content) in ["one\n", "two\n", "BROKEN\n", "four\n"].iter().enumerate() {
        batch.push(
            submit(
                &env,
                api,
                &format!("Bug 2{n} - part"),
                &format!("src/p{n}.txt"),
                content,
            )
            .await,
        );
    }
    std::fs::remove_file(&hold).unwrap();
    for id in [first, batch[0], batch[1], batch[3]] {
        let detail = api.wait_terminal(id, LIMIT).await;
        assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    }
    let culprit = api.wait_terminal(batch[2], LIMIT).await;
    assert_eq!(culprit["request"]["failure"], "gate_failed", "{culprit:#}");
    // The batch of four failed once, then [one, two] passed and landed; [BROKEN, four]
    // on the new tip is that failed run again (no run), split: BROKEN alone fails, four
    // lands.
    let batch_candidates = api.wait_terminal(batch[0], LIMIT).await["candidates"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(batch_candidates, 2, "the batch, then its first half");
    let (_, overview) = api.get("/api/status").await;
    let runs = gate_of(&overview)["ci_runs"].as_i64().unwrap();
    // first, the batch, [one, two], [BROKEN], [four]: 5 (one at a time: 6).
    assert_eq!(runs, 5, "{overview:#}");
    running.service.stop().await;
}

/// A closed destination takes no landing from the gate: the candidate is tested, passes,
/// and waits with the reason on the request's page; the gate module says why; reopening
/// lands it at once, exactly as tested.
#[tokio::test]
async fn a_closed_destination_holds_the_gate_until_reopened() {
    let hold_dir = tempfile::tempdir().unwrap();
    let hold = hold_dir.path().join("hold");
    let env = gated(Kind::Git, &hold, "gate = \"serial\"");
    let running = env.start().await;
    let api = &running.api;
    let operator = common::Api::new(&api.base, "test-token-operator");
    let (status, body) = operator
        .post(
            "/api/repositories/central/close",
            &json!({ "reason": "merge day" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let before = env.central_log().len();
    let id = submit(&env, api, "Bug 30 - waits", "src/wait.txt", "wait\n").await;
    let detail = api.wait_event(id, LIMIT, "waiting").await;
    assert_eq!(detail["request"]["stage"], "gated", "{detail:#}");
    let waiting = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "waiting")
        .unwrap()
        .clone();
    assert!(
        waiting["detail"].as_str().unwrap().contains("merge day"),
        "{waiting}"
    );
    assert_eq!(detail["candidates"][0]["state"], "passed", "{detail:#}");
    let gate_module = |o: &Value| {
        o["modules"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["module"] == "gate-central"))
            .cloned()
            .unwrap_or_default()
    };
    let overview = api
        .wait_status(LIMIT, "the gate module says central is closed", |o| {
            gate_module(o)["detail"]
                .as_str()
                .is_some_and(|d| d.contains("merge day"))
        })
        .await;
    assert_eq!(gate_module(&overview)["state"], "running", "{overview:#}");
    assert_eq!(
        env.central_log().len(),
        before,
        "nothing lands while closed"
    );
    let (status, body) = operator
        .post("/api/repositories/central/reopen", &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_landed_as_tested(&env, api, &detail).await;
    assert_eq!(env.central_log().len(), before + 1);
    running.service.stop().await;
}

/// A destination whose gate is turned off (configuration changed, service restarted)
/// leaves no request waiting for a gate that no longer runs: it fails with the reason,
/// and a retry takes it through try and landing as on any ungated destination.
#[tokio::test]
async fn turning_a_gate_off_fails_what_waited_in_it_and_a_retry_lands() {
    let hold_dir = tempfile::tempdir().unwrap();
    let hold = hold_dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let env = gated(Kind::Git, &hold, "gate = \"serial\"");
    let running = env.start().await;
    let id = submit(&env, &running.api, "Bug 40 - stranded", "src/s.txt", "s\n").await;
    running.service.stop().await;

    let config = std::fs::read_to_string(&env.config_path).unwrap();
    assert!(config.contains("gate = \"serial\""));
    std::fs::write(
        &env.config_path,
        config.replace("gate = \"serial\"", "gate = \"off\""),
    )
    .unwrap();
    std::fs::remove_file(&hold).unwrap();
    let running = env.start().await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(
        detail["request"]["failure"], "invalid_request",
        "{detail:#}"
    );
    let failed = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["kind"] == "failed")
        .unwrap_or_else(|| panic!("no failed event: {detail:#}"))
        .clone();
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .contains("no longer has a landing gate"),
        "{failed}"
    );
    let operator = common::Api::new(&running.api.base, "test-token-operator");
    let (status, body) = operator
        .post(&format!("/api/requests/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let candidates = detail["candidates"].as_array().unwrap();
    assert!(
        !candidates.is_empty() && candidates.iter().all(|c| c["state"] != "landed"),
        "tested in the gate, landed without it: {detail:#}"
    );
    running.service.stop().await;
}
