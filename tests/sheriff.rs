//! The sheriff end to end, on real git and hg repositories with the built-in CI runner:
//! central's tips are tested after landing (a stricter command than try's), a landing
//! that turns the tip red is found — by bisection when several landed since the last
//! green tip — and backed out with a commit that says why; an intermittent failure is
//! not; someone else's push is reported, not reverted; a backout that conflicts closes
//! the tree; a kill -9 during a backout leaves exactly one backout commit.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Change, Env, Kind, Options, git, hg};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(90);

/// Files a test controls the post-landing CI with.
struct Knobs {
    _dir: tempfile::TempDir,
    /// While it exists, post-landing runs wait.
    hold: PathBuf,
    /// Exists once the flaky failure happened (the next run passes).
    flaked: PathBuf,
}

impl Knobs {
    fn new() -> Knobs {
        let dir = tempfile::tempdir().unwrap();
        Knobs {
            hold: dir.path().join("hold"),
            flaked: dir.path().join("flaked"),
            _dir: dir,
        }
    }
}

/// Central's post-landing CI: try's tests, and no file under `src` may say POSTLAND (try
/// does not check that: only the integration tests find it). `src/flaky.txt` makes the
/// first run fail.
fn post_land_command(knobs: &Knobs) -> String {
    format!(
        "while [ -e '{hold}' ]; do sleep 0.05; done; \
         if [ -e src/flaky.txt ] && [ ! -e '{flaked}' ]; then touch '{flaked}'; \
         echo 'FAIL: flaky network'; exit 1; fi; \
         sh test.sh && if grep -rq POSTLAND src 2>/dev/null; then \
         echo 'FAIL: POSTLAND found'; exit 1; fi",
        hold = knobs.hold.display(),
        flaked = knobs.flaked.display()
    )
}

fn watched(kind: Kind, knobs: &Knobs, bugzilla: Option<String>) -> Env {
    let env = Env::new(Options {
        kind,
        central_extra: format!(
            "post_land_ci = true\nclose_on_red = true\npost_land_poll_seconds = 1\nci_command = \"{}\"",
            post_land_command(knobs)
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        ),
        bugzilla,
        ..Options::default()
    });
    // Two runners: a held post-landing run must not hold up the next request's try run.
    env.add_pusher_setting("ci_runners = 2");
    env
}

/// Lands one single-file change as Alice (try, then central); returns the request.
async fn land(env: &Env, api: &common::Api, file: &str, content: &str, bug: Option<i64>) -> i64 {
    let subject = match bug {
        Some(b) => format!("Bug {b} - write {file}"),
        None => format!("Write {file}"),
    };
    let patches = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: &subject,
        files: &[(file, content)],
    }]);
    let extra = match bug {
        Some(b) => json!({ "bug": b }),
        None => json!({}),
    };
    let id = api.submit(&patches, &["try", "central"], extra).await;
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    id
}

fn sheriff(overview: &Value) -> Value {
    overview["sheriffs"][0].clone()
}

/// Waits until central's newest push is `tip` (or any tip, when none) with `verdict`.
async fn tip_judged(api: &common::Api, tip: Option<&str>, verdict: &str) -> Value {
    api.wait_status(LIMIT, &format!("central's tip {verdict}"), |o| {
        let t = &sheriff(o)["tip"];
        t["verdict"] == verdict && tip.is_none_or(|tip| t["tip"] == tip)
    })
    .await;
    after_the_verdict(api).await
}

/// Waits until central's tip is a backout the CI found green.
async fn backout_tested_green(api: &common::Api) -> Value {
    api.wait_status(LIMIT, "the backout's tip tested green", |o| {
        let t = &sheriff(o)["tip"];
        t["kind"] == "backout" && t["verdict"] == "green"
    })
    .await;
    after_the_verdict(api).await
}

/// The status read again once a verdict was seen. The sheriff writes what goes with a
/// verdict (the tree closed or reopened, audit entries) before the verdict, but one
/// overview reads the tree and the audit log before the sheriff's tips, so the overview
/// that first shows a verdict may predate those writes; the next one cannot.
async fn after_the_verdict(api: &common::Api) -> Value {
    let (status, overview) = api.get("/api/status").await;
    assert_eq!(status, 200, "{overview}");
    overview
}

fn ci_runs(overview: &Value) -> i64 {
    sheriff(overview)["ci_runs_last_day"].as_i64().unwrap()
}

/// The logs of every CI run (try's and the sheriff's), for failure messages.
async fn run_logs(api: &common::Api) -> String {
    let mut out = String::new();
    for run in 1..100 {
        let response = api
            .http
            .get(format!("{}/api/ci/runs/{run}/log", api.base))
            .send()
            .await;
        let Ok(response) = response else { break };
        if response.status() == 404 {
            break;
        }
        let text = response.text().await.unwrap_or_default();
        out.push_str(&format!("--- run {run}\n{text}\n"));
    }
    out
}

fn backout_commits(env: &Env) -> Vec<String> {
    env.central_log()
        .into_iter()
        .map(|(_, subject)| subject)
        .filter(|s| s.starts_with("Backed out"))
        .collect()
}

fn file_on_central(env: &Env, file: &str) -> Option<String> {
    match env.kind {
        Kind::Git => {
            let out = std::process::Command::new("git")
                .args(["show", &format!("main:{file}")])
                .current_dir(&env.central)
                .output()
                .unwrap();
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Kind::Hg => {
            let out = std::process::Command::new("hg")
                .args(["cat", "-r", "tip", file])
                .current_dir(&env.central)
                .env("HGPLAIN", "1")
                .output()
                .unwrap();
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        }
    }
}

fn actions(overview: &Value, action: &str) -> Vec<String> {
    overview["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == action)
        .map(|a| a["detail"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn landed_revision(detail: &Value) -> String {
    detail["request"]["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["repo"] == "central")
        .and_then(|d| d["landed_revision"].as_str())
        .unwrap()
        .to_owned()
}

/// A landing that breaks central's post-landing tests is backed out: the tip is green
/// again, the tree was closed while red and is open again, the bug says what happened,
/// the audit log has the evidence. Prints the timeline of the red tip.
async fn a_breaking_landing_is_backed_out(kind: Kind) {
    use autoland::simulator::bugzilla::Flavor;
    use common::bugzilla::{attach, autoland_comments, new_bug, request_for_bug, simulator};
    let (sim, url) = simulator(Flavor::V53).await;
    let knobs = Knobs::new();
    let env = watched(kind, &knobs, Some(url));
    let running = env.start().await;
    let api = &running.api;
    let a = land(&env, api, "src/a.txt", "a\n", None).await;
    let a_tip = landed_revision(&api.wait_terminal(a, LIMIT).await);
    tip_judged(api, Some(&a_tip), "green").await;

    // B comes from a bug's tag, so the bug hears of everything.
    let bug = new_bug(&sim, "Breaks the integration tests");
    let patch = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: &format!("Bug {bug} - write src/b.txt"),
        files: &[("src/b.txt", "POSTLAND\n")],
    }]);
    attach(&sim, bug, "b.patch", &patch[0], false);
    sim.set_whiteboard(bug, "[autoland-central]", "alice@example.com");
    let b = request_for_bug(api, bug).await;
    let detail = api
        .wait_for(b, LIMIT, |d| d["request"]["stage"] == "backed_out")
        .await;
    let b_tip = landed_revision(&detail);
    let overview = backout_tested_green(api).await;
    let backouts = backout_commits(&env);
    assert_eq!(backouts.len(), 1, "{backouts:?}");
    assert_eq!(
        backouts[0],
        format!(
            "Backed out changeset {} (bug {bug}) for failing ci_command",
            &b_tip[..12]
        )
    );
    assert_eq!(file_on_central(&env, "src/b.txt"), None, "b.txt is gone");
    assert_eq!(file_on_central(&env, "src/a.txt").as_deref(), Some("a\n"));
    // A's tip, B's tip twice (failed, run again: failed), the backout's tip.
    assert_eq!(ci_runs(&overview), 4, "{:#}", sheriff(&overview));
    let s = sheriff(&overview);
    assert_eq!(s["backouts"][0]["state"], "landed", "{s:#}");
    assert_eq!(s["last_red"]["tip"], b_tip.as_str(), "{s:#}");
    assert!(s["investigation"].is_null(), "{s:#}");
    // Closed while red, reopened by the sheriff once green.
    let central = common::repository(&overview, "central");
    assert!(central["closed"].is_null(), "{central:#}");
    assert_eq!(actions(&overview, "close").len(), 1, "{overview:#}");
    assert_eq!(actions(&overview, "reopen").len(), 1, "{overview:#}");
    let evidence = actions(&overview, "backout");
    assert!(
        evidence[0].contains(&format!("request {b}")) && evidence[0].contains("ci_command"),
        "{evidence:?}"
    );
    // The bug: landed, then backed out with the failing job's log and the backout.
    let deadline = std::time::Instant::now() + LIMIT;
    let comments = loop {
        let comments = autoland_comments(&sim, bug);
        if comments.iter().any(|c| c.contains("backed out request")) {
            break comments;
        }
        assert!(std::time::Instant::now() < deadline, "{comments:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let last = comments.last().unwrap();
    assert!(
        last.contains(&format!("Autoland backed out request {b}"))
            && last.contains("ci_command")
            && last.contains("log"),
        "{last}"
    );
    let backout_rev = s["backouts"][0]["revision"].as_str().unwrap();
    assert!(last.contains(backout_rev), "{last}");
    // The status page shows the same.
    let page = reqwest::get(format!("{}/", api.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Sheriff: central") && page.contains("Backouts in the last day"),
        "{page}"
    );

    // The timeline of the red tip, from the records (docs/sheriff.md quotes one run).
    let pushes = s["pushes"].as_array().unwrap();
    let at = |tip: &str, field: &str| {
        pushes
            .iter()
            .find(|p| p["tip"] == tip)
            .and_then(|p| p[field].as_i64())
            .unwrap()
    };
    let landed_at = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "destination_landed")
        .and_then(|e| e["at"].as_i64())
        .unwrap();
    let seen = at(&b_tip, "created_at");
    let red = at(&b_tip, "judged_at");
    let backed_out = s["backouts"][0]["finished_at"].as_i64().unwrap();
    let green = at(backout_rev, "judged_at");
    eprintln!(
        "timeline ({kind:?}): landed +0 ms; push seen +{} ms; red (2 runs) +{} ms; \
         backout pushed +{} ms; green again +{} ms",
        seen - landed_at,
        red - landed_at,
        backed_out - landed_at,
        green - landed_at
    );
    running.service.stop().await;
}

#[tokio::test]
async fn git_a_breaking_landing_is_backed_out() {
    a_breaking_landing_is_backed_out(Kind::Git).await;
}

#[tokio::test]
async fn hg_a_breaking_landing_is_backed_out() {
    a_breaking_landing_is_backed_out(Kind::Hg).await;
}

/// Three landings tested together (the runs were held), the middle one breaks: the red
/// newest tip is run again, then the middle tip is tested, and exactly the middle landing
/// is backed out. CI runs counted.
async fn the_middle_of_three_is_found_and_backed_out(kind: Kind) {
    let knobs = Knobs::new();
    let env = watched(kind, &knobs, None);
    let running = env.start().await;
    let api = &running.api;
    std::fs::write(&knobs.hold, "").unwrap();
    let a = land(&env, api, "src/a.txt", "a\n", None).await;
    let b = land(&env, api, "src/b.txt", "POSTLAND\n", None).await;
    let c = land(&env, api, "src/c.txt", "c\n", None).await;
    std::fs::remove_file(&knobs.hold).unwrap();
    api.wait_for(b, LIMIT, |d| d["request"]["stage"] == "backed_out")
        .await;
    let overview = backout_tested_green(api).await;
    for id in [a, c] {
        let (_, detail) = api.get(&format!("/api/requests/{id}")).await;
        assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    }
    assert_eq!(backout_commits(&env).len(), 1);
    assert_eq!(file_on_central(&env, "src/b.txt"), None);
    assert_eq!(file_on_central(&env, "src/c.txt").as_deref(), Some("c\n"));
    // A's tip (held, green); C's tip, red twice; B's tip, red: the culprit. Then the
    // backout's tip. 4 runs to find it among 2 untested landings, 5 in all.
    let s = sheriff(&overview);
    if ci_runs(&overview) != 5 {
        // Say what every run printed (a failure seen once in CI: A's tip failed once).
        panic!(
            "{} post-landing runs, not 5: {s:#}\nactions: {:#}\n{}",
            ci_runs(&overview),
            overview["actions"],
            run_logs(api).await
        );
    }
    let culprits: Vec<&Value> = s["pushes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["culprit"] == true)
        .collect();
    assert_eq!(culprits.len(), 1, "{s:#}");
    assert_eq!(culprits[0]["request_id"], b, "{s:#}");
    running.service.stop().await;
}

#[tokio::test]
async fn git_the_middle_of_three_is_found_and_backed_out() {
    the_middle_of_three_is_found_and_backed_out(Kind::Git).await;
}

#[tokio::test]
async fn hg_the_middle_of_three_is_found_and_backed_out() {
    the_middle_of_three_is_found_and_backed_out(Kind::Hg).await;
}

/// A failure that passes when the same tip is run again is intermittent: recorded,
/// nothing backed out, the tree never closed.
async fn an_intermittent_failure_is_not_backed_out(kind: Kind) {
    let knobs = Knobs::new();
    let env = watched(kind, &knobs, None);
    let running = env.start().await;
    let api = &running.api;
    let f = land(&env, api, "src/flaky.txt", "sometimes\n", None).await;
    let tip = landed_revision(&api.wait_terminal(f, LIMIT).await);
    let overview = tip_judged(api, Some(&tip), "intermittent").await;
    assert!(knobs.flaked.exists());
    assert_eq!(ci_runs(&overview), 2, "{:#}", sheriff(&overview));
    assert!(backout_commits(&env).is_empty());
    assert_eq!(actions(&overview, "intermittent").len(), 1, "{overview:#}");
    assert!(actions(&overview, "close").is_empty(), "{overview:#}");
    let (_, detail) = api.get(&format!("/api/requests/{f}")).await;
    assert_eq!(detail["request"]["stage"], "landed");
    running.service.stop().await;
}

#[tokio::test]
async fn git_an_intermittent_failure_is_not_backed_out() {
    an_intermittent_failure_is_not_backed_out(Kind::Git).await;
}

#[tokio::test]
async fn hg_an_intermittent_failure_is_not_backed_out() {
    an_intermittent_failure_is_not_backed_out(Kind::Hg).await;
}

/// Someone else's push that breaks the tip is found and reported, never reverted; the
/// tree stays closed until someone pushes a fix and the tip is green again.
async fn a_persons_breaking_push_is_reported_not_reverted(kind: Kind) {
    let knobs = Knobs::new();
    let env = watched(kind, &knobs, None);
    let running = env.start().await;
    let api = &running.api;
    let a = land(&env, api, "src/a.txt", "a\n", None).await;
    let a_tip = landed_revision(&api.wait_terminal(a, LIMIT).await);
    tip_judged(api, Some(&a_tip), "green").await;
    env.push_to_central("src/x.txt", "POSTLAND\n", "Pushed by hand");
    let broken = env.central_tip();
    let overview = api
        .wait_status(LIMIT, "the outside push found guilty and reported", |o| {
            // The overview reads pushes and the audit log one after the other: wait for both.
            !actions(o, "culprit").is_empty()
                && sheriff(o)["pushes"].as_array().is_some_and(|p| {
                    p.iter()
                        .any(|p| p["tip"] == broken.as_str() && p["culprit"] == true)
                })
        })
        .await;
    let reported = actions(&overview, "culprit");
    assert!(
        reported[0].contains("outside") && reported[0].contains("not backed out"),
        "{reported:?}"
    );
    assert!(backout_commits(&env).is_empty());
    assert_eq!(env.central_tip(), broken, "nothing pushed over it");
    let central = |o: &Value| common::repository(o, "central");
    assert!(
        central(&overview)["closed"]
            .as_str()
            .is_some_and(|c| c.contains("red")),
        "{overview:#}"
    );
    // The person fixes it; the next green tip reopens the tree.
    env.push_to_central("src/x.txt", "fixed\n", "Fix by hand");
    let fixed = env.central_tip();
    let overview = tip_judged(api, Some(&fixed), "green").await;
    let overview = if central(&overview)["closed"].is_null() {
        overview
    } else {
        api.wait_status(LIMIT, "central reopened", |o| {
            central(o)["closed"].is_null()
        })
        .await
    };
    // A, the broken push twice, the fix.
    assert_eq!(ci_runs(&overview), 4, "{:#}", sheriff(&overview));
    running.service.stop().await;
}

#[tokio::test]
async fn git_a_persons_breaking_push_is_reported_not_reverted() {
    a_persons_breaking_push_is_reported_not_reverted(Kind::Git).await;
}

#[tokio::test]
async fn hg_a_persons_breaking_push_is_reported_not_reverted() {
    a_persons_breaking_push_is_reported_not_reverted(Kind::Hg).await;
}

/// A backout that does not apply on the tip (a later landing changed the same line):
/// nothing is pushed, the tree is closed with the reason, the request and the audit log
/// say a person must back it out.
async fn a_conflicting_backout_closes_the_tree(kind: Kind) {
    let knobs = Knobs::new();
    let env = watched(kind, &knobs, None);
    let running = env.start().await;
    let api = &running.api;
    let a = land(&env, api, "src/f.txt", "one\ntwo\nthree\n", None).await;
    let a_tip = landed_revision(&api.wait_terminal(a, LIMIT).await);
    tip_judged(api, Some(&a_tip), "green").await;
    std::fs::write(&knobs.hold, "").unwrap();
    let b = land(&env, api, "src/f.txt", "one\nPOSTLAND\nthree\n", None).await;
    let c = land(&env, api, "src/f.txt", "one\nPOSTLAND again\nthree\n", None).await;
    let before = env.central_tip();
    std::fs::remove_file(&knobs.hold).unwrap();
    let detail = api.wait_event(b, LIMIT, "backout_conflict").await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let (_, overview) = api.get("/api/status").await;
    let s = sheriff(&overview);
    assert_eq!(s["backouts"][0]["state"], "conflict", "{s:#}");
    assert!(
        s["backouts"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("src/f.txt"),
        "{s:#}"
    );
    let central = common::repository(&overview, "central");
    assert!(
        central["closed"]
            .as_str()
            .is_some_and(|c| c.contains("by hand")),
        "{central:#}"
    );
    assert_eq!(env.central_tip(), before, "nothing pushed");
    assert!(backout_commits(&env).is_empty());
    assert_eq!(actions(&overview, "backout_conflict").len(), 1);
    let (_, detail) = api.get(&format!("/api/requests/{c}")).await;
    assert_eq!(detail["request"]["stage"], "landed");
    running.service.stop().await;
}

#[tokio::test]
async fn git_a_conflicting_backout_closes_the_tree() {
    a_conflicting_backout_closes_the_tree(Kind::Git).await;
}

#[tokio::test]
async fn hg_a_conflicting_backout_closes_the_tree() {
    a_conflicting_backout_closes_the_tree(Kind::Hg).await;
}

/// The hook that holds central's backout push after central took it.
fn hold_the_backout_push(env: &Env, pushed: &Path, release: &Path) {
    let newest = match env.kind {
        Kind::Git => "git log -1 --format=%B main",
        Kind::Hg => "HGPLAIN=1 hg log -r tip -T '{desc}'",
    };
    env.after_push_hook(
        &env.central,
        &format!(
            "#!/bin/sh\n{newest} | grep -q Autoland-Backout || exit 0\n\
             [ -e '{pushed}' ] && exit 0\ntouch '{pushed}'\n\
             while [ ! -e '{release}' ]; do sleep 0.05; done\nexit 0\n",
            pushed = pushed.display(),
            release = release.display()
        ),
    );
}

/// Kill -9 during the backout push, after central took it: the restarted service finds
/// the backout by its trailer and pushes no second one.
async fn killed_during_a_backout(kind: Kind) {
    let knobs = Knobs::new();
    let env = watched(kind, &knobs, None);
    let pushed = env.path().join("pushed");
    let release = env.path().join("release");
    hold_the_backout_push(&env, &pushed, &release);
    let (child, api) = env.serve_process().await;
    // Killed on the way out, should an assertion fail first.
    let mut child = common::ChildGuard(child);
    let a = land(&env, &api, "src/a.txt", "a\n", None).await;
    let a_tip = landed_revision(&api.wait_terminal(a, LIMIT).await);
    tip_judged(&api, Some(&a_tip), "green").await;
    let b = land(&env, &api, "src/b.txt", "POSTLAND\n", None).await;
    common::wait_for_file(&pushed, LIMIT).await;
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    std::fs::write(&release, "").unwrap();

    let (child, api) = env.serve_process().await;
    // Killed on the way out, should an assertion fail first.
    let mut child = common::ChildGuard(child);
    let detail = api
        .wait_for(b, LIMIT, |d| d["request"]["stage"] == "backed_out")
        .await;
    assert_eq!(
        backout_commits(&env).len(),
        1,
        "{detail:#}\n{}",
        env.process_logs()
    );
    let overview = backout_tested_green(&api).await;
    let landed = actions(&overview, "backout_landed");
    assert!(
        landed[0].contains("found the push of an earlier attempt"),
        "{landed:?}"
    );
    let trailer_count = match env.kind {
        Kind::Git => git(&env.central, &["log", "--format=%B", "main"])
            .matches("Autoland-Backout:")
            .count(),
        Kind::Hg => hg(&env.central, &["log", "-T", "{desc}\n"])
            .matches("Autoland-Backout:")
            .count(),
    };
    assert_eq!(trailer_count, 1);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
}

#[tokio::test]
async fn git_kill_9_during_a_backout_leaves_one_backout() {
    killed_during_a_backout(Kind::Git).await;
}

#[tokio::test]
async fn hg_kill_9_during_a_backout_leaves_one_backout() {
    killed_during_a_backout(Kind::Hg).await;
}
