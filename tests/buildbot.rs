//! Smoke tests of the Buildbot harness (tests/common/buildbot.rs): a real Buildbot 4.3
//! master and worker from the venv that scripts/python-env.sh makes. They show what the
//! master does with what a repository's `autoland-ci.sh` says, for git and hg, and what a
//! clean restart and a crash of the master do to a running build.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use autoland::ci::buildbot::results;
use common::buildbot::{Buildbot, EXIT_EXCEPTION};
use common::{
    Api, Change, Env, Kind, Options, event_detail, free_port, git, hg, wait_for_file, wait_healthy,
};
use serde_json::{Value, json};
use std::process::Child;

const LIMIT: Duration = Duration::from_secs(120);

/// A git repository whose `main` has only a README, and one commit per `(name, script)`,
/// each on its own `refs/heads/autoland/<name>` and on no other branch. Returns the
/// revisions, in order.
fn git_repo(dir: &Path, scripts: &[(&str, &str)]) -> Vec<String> {
    std::fs::create_dir_all(dir).expect("make the repository dir");
    git(dir, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(dir.join("README"), "base\n").expect("write README");
    git(dir, &["add", "README"]);
    git(dir, &["commit", "--quiet", "-m", "base"]);
    let mut revs = Vec::new();
    for (name, script) in scripts {
        git(dir, &["checkout", "--quiet", "--detach", "main"]);
        std::fs::write(dir.join("autoland-ci.sh"), script).expect("write autoland-ci.sh");
        git(dir, &["add", "autoland-ci.sh"]);
        git(dir, &["commit", "--quiet", "-m", name]);
        let rev = git(dir, &["rev-parse", "HEAD"]).trim().to_owned();
        git(
            dir,
            &["update-ref", &format!("refs/heads/autoland/{name}"), &rev],
        );
        revs.push(rev);
    }
    git(dir, &["checkout", "--quiet", "main"]);
    revs
}

/// An hg repository with one commit per script (each a child of the previous). Returns the
/// revisions (full hashes), in order.
fn hg_repo(dir: &Path, scripts: &[&str]) -> Vec<String> {
    std::fs::create_dir_all(dir).expect("make the repository dir");
    hg(dir, &["init"]);
    let mut revs = Vec::new();
    for (i, script) in scripts.iter().enumerate() {
        std::fs::write(dir.join("autoland-ci.sh"), script).expect("write autoland-ci.sh");
        if i == 0 {
            hg(dir, &["add", "autoland-ci.sh"]);
        }
        hg(dir, &["commit", "-m", &format!("commit {i}")]);
        revs.push(
            hg(dir, &["log", "-r", ".", "-T", "{node}"])
                .trim()
                .to_owned(),
        );
    }
    revs
}

/// Prints the revision the tree is at, then exits with `code`.
fn git_script(code: i32) -> String {
    format!("echo \"autoland-ci.sh for $1 at $(git rev-parse HEAD)\"\nexit {code}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_builders_pass_fail_or_raise_an_exception_as_the_repository_says() {
    let t0 = Instant::now();
    let bb = Buildbot::start().await;
    eprintln!("Buildbot::start took {:?}", bb.start_time);
    let repo = bb.path().join("repo");
    let revs = git_repo(
        &repo,
        &[
            ("pass", &git_script(0)),
            ("fail", &git_script(1)),
            ("infra", &git_script(EXIT_EXCEPTION)),
        ],
    );
    // Each revision is reachable only from its refs/heads/autoland/<name>.
    for rev in &revs {
        let on_main = std::process::Command::new("git")
            .args(["merge-base", "--is-ancestor", rev, "main"])
            .current_dir(&repo)
            .status()
            .expect("git runs");
        assert!(!on_main.success());
    }

    // And a commit only on a ref outside refs/heads (not cloned: the step fetches it).
    git(&repo, &["checkout", "--quiet", "--detach", "main"]);
    std::fs::write(repo.join("autoland-ci.sh"), git_script(0)).expect("write autoland-ci.sh");
    git(&repo, &["add", "autoland-ci.sh"]);
    git(&repo, &["commit", "--quiet", "-m", "elsewhere"]);
    let elsewhere = git(&repo, &["rev-parse", "HEAD"]).trim().to_owned();
    git(
        &repo,
        &["update-ref", "refs/autoland/elsewhere", &elsewhere],
    );
    git(&repo, &["checkout", "--quiet", "main"]);

    // A file:// URL, not a path: git then clones as from a server (only refs/heads/* and
    // tags, only reachable objects), where a path would copy every object.
    let url = format!("file://{}", repo.display());
    let repository = url.as_str();
    // (name, ref, revision, expected results); the same revision twice: no collapsing.
    let cases = [
        (
            "pass",
            "refs/heads/autoland/pass",
            &revs[0],
            results::SUCCESS,
        ),
        (
            "fail",
            "refs/heads/autoland/fail",
            &revs[1],
            results::FAILURE,
        ),
        (
            "infra",
            "refs/heads/autoland/infra",
            &revs[2],
            results::EXCEPTION,
        ),
        (
            "pass-again",
            "refs/heads/autoland/pass",
            &revs[0],
            results::SUCCESS,
        ),
    ];
    let forced_at = Instant::now();
    let mut forced = Vec::new();
    for (name, branch, rev, _) in &cases {
        let reason = format!("autoland job {name} attempt 1");
        let f = bb
            .force(&["git-build", "git-test"], repository, branch, rev, &reason)
            .await;
        assert_eq!(f.requests.len(), 2, "{f:?}");
        forced.push((f, reason));
    }
    eprintln!("{} force calls took {:?}", cases.len(), forced_at.elapsed());

    let ids: Vec<u64> = forced
        .iter()
        .flat_map(|(f, _)| f.requests.values().copied())
        .collect();
    let done = bb.wait_complete(&ids, LIMIT).await;
    eprintln!(
        "{} git builds complete {:?} after the force calls",
        ids.len(),
        forced_at.elapsed()
    );
    let builds = bb.builds().await;
    let builder_ids = bb.builder_ids().await;
    for ((f, reason), (name, _, rev, expected)) in forced.iter().zip(cases) {
        for (builder, brid) in &f.requests {
            let br = done
                .iter()
                .find(|r| r.id == *brid)
                .expect("a requested buildrequest");
            assert_eq!(br.builder, *builder);
            assert_eq!(br.buildset, f.buildset);
            assert_eq!(br.results, Some(expected), "{name} on {builder}: {br:?}");
            // Exactly one build per request.
            let of_br: Vec<_> = builds.iter().filter(|b| b.buildrequest == *brid).collect();
            assert_eq!(of_br.len(), 1, "{name} on {builder}: {of_br:?}");
            let build = of_br[0];
            assert_eq!(build.results, Some(expected), "{build:?}");
            assert_eq!(br.build_numbers, vec![build.number]);
            // The checkout is at the revision, and the script's output is in the stdio log.
            let log = bb.stdio(build.id, "autoland-ci").await;
            assert!(
                log.contains(&format!("autoland-ci.sh for {builder} at {rev}")),
                "{log}"
            );
            let steps = bb.steps(build.id).await;
            let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["worker_preparation", "checkout", "autoland-ci"]);
            assert_eq!(steps[1].results, Some(results::SUCCESS));
            assert_eq!(steps[2].results, Some(expected));
            assert_eq!(build.builder_id, builder_ids[builder.as_str()]);
            eprintln!(
                "{name} on {builder}: results {:?}, state {:?}, {}",
                build.results,
                build.state,
                bb.build_url(build.builder_id, build.number)
            );
        }
        // The buildset is found again by its reason.
        assert_eq!(bb.buildsets_with_reason(reason).await, vec![f.buildset]);
        let bs = bb.get(&format!("buildsets/{}", f.buildset)).await;
        assert_eq!(bs["buildsets"][0]["reason"], reason.as_str());
        assert_eq!(bs["buildsets"][0]["results"], expected);
    }
    assert!(bb.buildsets_with_reason("no such reason").await.is_empty());

    // The build pages for humans are served.
    let index = reqwest::get(format!("{}/", bb.url()))
        .await
        .expect("GET /")
        .text()
        .await
        .expect("the index page");
    assert!(index.to_lowercase().contains("buildbot"), "{index}");

    // Errors: an unknown builder, a bad revision.
    let (status, answer) = bb
        .json_rpc(
            "forceschedulers/autoland",
            "force",
            serde_json::json!({"builderNames": ["no-such-builder"], "username": "autoland"}),
        )
        .await;
    eprintln!("unknown builder: HTTP {status} {answer}");
    assert!(status >= 400, "{status} {answer}");
    assert!(answer.get("error").is_some(), "{answer}");
    let f = bb
        .force(
            &["git-test"],
            repository,
            "refs/heads/autoland/pass",
            "0123456789012345678901234567890123456789",
            "bad revision",
        )
        .await;
    let br = &bb.wait_complete(&[f.requests["git-test"]], LIMIT).await[0];
    assert_eq!(br.results, Some(results::FAILURE), "{br:?}");
    let build = &bb.builds_of(br.id).await[0];
    let checkout = &bb.steps(build.id).await[1];
    assert_eq!(checkout.results, Some(results::FAILURE), "{checkout:?}");

    // A revision reachable only from a ref outside refs/heads.
    let f = bb
        .force(
            &["git-test"],
            repository,
            "refs/autoland/elsewhere",
            &elsewhere,
            "elsewhere",
        )
        .await;
    let br = &bb.wait_complete(&[f.requests["git-test"]], LIMIT).await[0];
    assert_eq!(br.results, Some(results::SUCCESS), "{br:?}");
    let build = &bb.builds_of(br.id).await[0];
    let log = bb.stdio(build.id, "checkout").await;
    assert!(log.contains("git fetch -f"), "{log}");
    let log = bb.stdio(build.id, "autoland-ci").await;
    assert!(log.contains(&format!("at {elsewhere}")), "{log}");
    eprintln!("test took {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hg_builder_checks_out_the_given_revision() {
    let bb = Buildbot::start().await;
    eprintln!("Buildbot::start took {:?}", bb.start_time);
    let repo = bb.path().join("hgrepo");
    let script = |code: i32| {
        format!("echo \"autoland-ci.sh for $1 at $(hg log -r . -T '{{node}}')\"\nexit {code}\n")
    };
    // The older revision passes, its child fails: the build must check out the one asked.
    let revs = hg_repo(&repo, &[&script(0), &script(1), &script(EXIT_EXCEPTION)]);
    let repository = repo.to_str().expect("a UTF-8 path");
    let mut ids = Vec::new();
    for rev in &revs {
        let f = bb
            .force(&["hg-test"], repository, "", rev, &format!("hg {rev}"))
            .await;
        ids.push(f.requests["hg-test"]);
    }
    let done = bb.wait_complete(&ids, LIMIT).await;
    let got: Vec<Option<i64>> = done.iter().map(|r| r.results).collect();
    assert_eq!(
        got,
        [
            Some(results::SUCCESS),
            Some(results::FAILURE),
            Some(results::EXCEPTION)
        ]
    );
    for (br, rev) in done.iter().zip(&revs) {
        assert_eq!(br.builder, "hg-test");
        assert_eq!(br.build_numbers.len(), 1, "{br:?}");
        let build = &bb.builds_of(br.id).await[0];
        let log = bb.stdio(build.id, "autoland-ci").await;
        assert!(
            log.contains(&format!("autoland-ci.sh for hg-test at {rev}")),
            "{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_master_restart_cancels_or_retries_the_running_build() {
    let mut bb = Buildbot::start().await;
    let repo = bb.path().join("repo");
    let revs = git_repo(
        &repo,
        &[
            ("slow", "echo sleeping; sleep 60; echo slept\n"),
            ("pass", &git_script(0)),
        ],
    );
    let repository = repo.to_str().expect("a UTF-8 path");
    let f = bb
        .force(
            &["git-test"],
            repository,
            "refs/heads/autoland/slow",
            &revs[0],
            "slow 1",
        )
        .await;
    let brid = f.requests["git-test"];
    bb.wait_step_started(brid, "autoland-ci", LIMIT).await;

    let t = Instant::now();
    bb.restart_master().await;
    eprintln!(
        "restart_master (stop, start, worker back) took {:?}",
        t.elapsed()
    );

    // A clean stop ends the running build one of two ways, depending on whether the
    // worker's connection goes before the master cancels the build:
    // - CANCELLED, and the build request is completed, never retried (the notes' case);
    // - RETRY "(Master Shutdown)", and the same build request gets a new build after
    //   the restart.
    let br = bb.buildrequest(brid).await;
    let builds = bb.builds_of(brid).await;
    eprintln!("after a clean restart: {br:?}, builds {builds:?}");
    match builds[0].results {
        Some(results::CANCELLED) => {
            assert!(br.complete, "{br:?}");
            assert_eq!(br.results, Some(results::CANCELLED), "{br:?}");
            assert_eq!(br.build_numbers.len(), 1, "{br:?}");
            // Still so a while later: nothing retries it.
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(bb.buildrequest(brid).await, br);
        }
        Some(results::RETRY) => {
            assert!(!br.complete, "a retried request is pending again: {br:?}");
            // The worker takes it again once it is back.
            let deadline = Instant::now() + LIMIT;
            loop {
                let builds = bb.builds_of(brid).await;
                if builds.len() >= 2 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no second build of the same request: {builds:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        other => panic!("unexpected result {other:?} after a clean restart: {builds:?}"),
    }

    // The restarted master builds.
    let f = bb
        .force(
            &["git-build"],
            repository,
            "refs/heads/autoland/pass",
            &revs[1],
            "after restart",
        )
        .await;
    assert!(f.buildset > 1);
    let br = &bb.wait_complete(&[f.requests["git-build"]], LIMIT).await[0];
    assert_eq!(br.results, Some(results::SUCCESS), "{br:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_retries_the_running_build_on_the_same_request() {
    let mut bb = Buildbot::start().await;
    let repo = bb.path().join("repo");
    // Sleeps the first time only (a marker outside the repository), then passes.
    let marker = bb.path().join("slept-once");
    let script = format!(
        "if [ ! -e '{m}' ]; then touch '{m}'; echo sleeping; sleep 60; fi\necho done\n",
        m = marker.display()
    );
    let revs = git_repo(&repo, &[("once", &script)]);
    let repository = repo.to_str().expect("a UTF-8 path");
    let f = bb
        .force(
            &["git-build"],
            repository,
            "refs/heads/autoland/once",
            &revs[0],
            "killed",
        )
        .await;
    let brid = f.requests["git-build"];
    bb.wait_step_started(brid, "autoland-ci", LIMIT).await;
    while !marker.exists() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let t = Instant::now();
    bb.kill_master_and_start().await;
    eprintln!("kill_master_and_start (worker back) took {:?}", t.elapsed());
    let br = &bb.wait_complete(&[brid], LIMIT).await[0];
    let builds = bb.builds_of(brid).await;
    eprintln!("after SIGKILL: {br:?}, builds {builds:?}");
    assert_eq!(br.results, Some(results::SUCCESS), "{br:?}");
    assert_eq!(builds.len(), 2, "{builds:?}");
    assert_eq!(builds[0].results, Some(results::RETRY), "{builds:?}");
    assert_eq!(builds[1].results, Some(results::SUCCESS), "{builds:?}");
    // One buildset, one request: Buildbot retried it by itself.
    let all: HashSet<u64> = bb.buildrequests().await.iter().map(|r| r.id).collect();
    assert_eq!(all, HashSet::from([brid]));
}

// ---------------------------------------------------------------------------------------
// Autoland asking a real Buildbot for the builds of its try pushes and reading them back.

fn autoland_options(kind: Kind, bb: &Buildbot) -> Options {
    let builders = match kind {
        Kind::Git => "[\"git-build\", \"git-test\"]",
        Kind::Hg => "[\"hg-test\"]",
    };
    Options {
        kind,
        try_extra: format!(
            "ci = \"buildbot\"\n[repositories.buildbot]\nurl = \"{}\"\nbuilders = {builders}\npoll_ms = 100\n",
            bb.url()
        ),
        ..Options::default()
    }
}

/// A patch whose `autoland-ci.sh` is what the builders run.
fn ci_patch(env: &Env, subject: &str, script: &str) -> Vec<String> {
    env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject,
        files: &[("autoland-ci.sh", script), ("src/change.txt", subject)],
    }])
}

/// How many build requests and builds each builder has, from Buildbot's own API.
async fn counts(bb: &Buildbot) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut requests = BTreeMap::new();
    for r in bb.buildrequests().await {
        *requests.entry(r.builder.clone()).or_insert(0) += 1;
    }
    let mut builds = BTreeMap::new();
    for b in bb.builds().await {
        *builds.entry(b.builder.clone()).or_insert(0) += 1;
    }
    (requests, builds)
}

fn map(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

async fn passes_and_fails_on_buildbot(kind: Kind) {
    let bb = Buildbot::start().await;
    let env = Env::new(autoland_options(kind, &bb));
    let running = env.start().await;
    let api = &running.api;
    let good = ci_patch(&env, "Bug 1 - good", "echo 'all good'\n");
    let id = api.submit(&good, &["try", "central"], json!({})).await;
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let jobs = detail["ci_jobs"].as_array().unwrap();
    assert!(
        jobs.iter().all(|j| j["raw_result"] == "SUCCESS"),
        "{jobs:#?}"
    );
    assert!(
        jobs.iter()
            .all(|j| j["log_url"].as_str().unwrap().starts_with(&bb.url())),
        "log links point at Buildbot: {jobs:#?}"
    );
    let builders: Vec<&str> = match kind {
        Kind::Git => vec!["git-build", "git-test"],
        Kind::Hg => vec!["hg-test"],
    };
    let one_each: Vec<(&str, usize)> = builders.iter().map(|b| (*b, 1)).collect();
    assert_eq!(counts(&bb).await, (map(&one_each), map(&one_each)));

    // The tests fail on every attempt: one retry (retry_failed_jobs = 1), then a failure
    // naming the job, with its log link and last lines.
    let bad = ci_patch(
        &env,
        "Bug 2 - bad",
        "echo 'TEST-UNEXPECTED-FAIL | test_thing | 1 != 2'\nexit 1\n",
    );
    let id = api.submit(&bad, &["try", "central"], json!({})).await;
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["failure"], "try_failed", "{detail:#}");
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    let last = builders[builders.len() - 1];
    assert!(
        why.contains(&format!("failed: {last} (FAILURE, 2 attempts)")),
        "{why}"
    );
    assert!(why.contains(&format!("{}/#/builders/", bb.url())), "{why}");
    let jobs = detail["ci_jobs"].as_array().unwrap();
    assert!(
        jobs.iter().any(|j| j["summary"]
            .as_str()
            .is_some_and(|s| s.contains("TEST-UNEXPECTED-FAIL"))),
        "{jobs:#?}"
    );
    let two_each: Vec<(&str, usize)> = builders.iter().map(|b| (*b, 3)).collect();
    assert_eq!(
        counts(&bb).await,
        (map(&two_each), map(&two_each)),
        "1 + 2 per builder"
    );
    running.service.stop().await;
}

#[tokio::test]
async fn buildbot_passes_and_fails_on_git() {
    passes_and_fails_on_buildbot(Kind::Git).await;
}

#[tokio::test]
async fn buildbot_passes_and_fails_on_hg() {
    passes_and_fails_on_buildbot(Kind::Hg).await;
}

#[tokio::test]
async fn an_infrastructure_exception_then_a_pass_is_intermittent() {
    let bb = Buildbot::start().await;
    let env = Env::new(autoland_options(Kind::Git, &bb));
    let marker = env.path().join("exception-once");
    let running = env.start().await;
    let api = &running.api;
    // git-build hits an "infrastructure" exception (exit 75 → EXCEPTION) once.
    let script = format!(
        "if [ \"$1\" = git-build ] && [ ! -e '{m}' ]; then touch '{m}'; echo 'worker lost its disk'; exit 75; fi\necho ok\n",
        m = marker.display()
    );
    let id = api
        .submit(
            &ci_patch(&env, "Bug 3 - flaky", &script),
            &["try", "central"],
            json!({}),
        )
        .await;
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let verdict = event_detail(&detail, "try_passed");
    assert!(verdict.contains("intermittent: git-build"), "{verdict}");
    assert!(
        event_detail(&detail, "ci_retry").contains("EXCEPTION"),
        "{detail:#}"
    );
    assert_eq!(
        counts(&bb).await,
        (
            map(&[("git-build", 2), ("git-test", 1)]),
            map(&[("git-build", 2), ("git-test", 1)])
        )
    );
    running.service.stop().await;
}

fn kill9(mut child: Child) {
    child.kill().expect("SIGKILL autoland");
    child.wait().expect("reap autoland");
}

async fn serve(env: &Env, port: u16) -> (Child, Api) {
    let child = env.spawn_serve(port);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, Duration::from_secs(30)).await;
    (child, Api::new(&base, &env.token))
}

/// A script whose first run on each builder says it started, then waits for `release` to
/// exist; a later run (a retry) passes at once. A retry must not wait: Autoland may ask
/// for it while the master is stopping, and a clean stop waits for the builds it has.
fn waiting_script(started: &std::path::Path, release: &std::path::Path) -> String {
    format!(
        "if [ -e '{s}-'\"$1\" ]; then echo 'a later run'; exit 0; fi\ntouch '{s}-'\"$1\"\n\
         while [ ! -e '{r}' ]; do sleep 0.1; done\necho released\n",
        s = started.display(),
        r = release.display()
    )
}

#[tokio::test]
async fn autoland_killed_while_builds_run_neither_loses_nor_repeats_a_build() {
    let bb = Buildbot::start().await;
    let env = Env::new(autoland_options(Kind::Git, &bb));
    let started = env.path().join("started");
    let release = env.path().join("release");
    let port = free_port();
    let (child, api) = serve(&env, port).await;
    let patch = ci_patch(&env, "Bug 4 - slow", &waiting_script(&started, &release));
    let id = api.submit(&patch, &["try", "central"], json!({})).await;
    wait_for_file(&env.path().join("started-git-build"), LIMIT).await;
    wait_for_file(&env.path().join("started-git-test"), LIMIT).await;
    kill9(child);
    let (child, api) = serve(&env, port).await;
    std::fs::write(&release, "").unwrap();
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(
        detail["request"]["stage"],
        "landed",
        "{detail:#}\n{}",
        env.process_logs()
    );
    let one = map(&[("git-build", 1), ("git-test", 1)]);
    assert_eq!(counts(&bb).await, (one.clone(), one));
    kill9(child);
}

#[tokio::test]
async fn a_buildbot_master_restarted_during_a_build_gets_the_build_asked_again() {
    let mut bb = Buildbot::start().await;
    let env = Env::new(autoland_options(Kind::Git, &bb));
    let started = env.path().join("started");
    let release = env.path().join("release");
    let running = env.start().await;
    let api = &running.api;
    let patch = ci_patch(&env, "Bug 5 - restart", &waiting_script(&started, &release));
    let id = api.submit(&patch, &["try", "central"], json!({})).await;
    wait_for_file(&env.path().join("started-git-build"), LIMIT).await;
    wait_for_file(&env.path().join("started-git-test"), LIMIT).await;
    // A clean restart cancels the running builds and does not retry them itself.
    bb.restart_master().await;
    std::fs::write(&release, "").unwrap();
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    // Each job: either its build request was cancelled by the shutdown and Autoland asked
    // again (attempt 2, reported intermittent), or Buildbot retried the build itself
    // within the same request (RETRY, then a new build). Either way: one build request
    // per attempt Autoland made, and no attempt with two finished builds.
    let jobs = detail["ci_jobs"].as_array().unwrap();
    let requests = bb.buildrequests().await;
    for builder in ["git-build", "git-test"] {
        let attempts = jobs.iter().filter(|j| j["name"] == builder).count();
        let of_builder: Vec<_> = requests.iter().filter(|r| r.builder == builder).collect();
        assert_eq!(
            attempts,
            of_builder.len(),
            "{builder}: {jobs:#?} {of_builder:#?}"
        );
        for request in &of_builder {
            let finished = bb
                .builds_of(request.id)
                .await
                .iter()
                .filter(|b| b.results != Some(results::RETRY))
                .count();
            assert_eq!(finished, 1, "{builder}: {request:?}");
        }
        if attempts == 2 {
            assert!(
                event_detail(&detail, "try_passed").contains("intermittent"),
                "{detail:#}"
            );
        }
    }
    running.service.stop().await;
}

/// The crash window between forcing a build and recording its build request: the
/// adapter, asked to start a job whose build request already exists (sent by a process
/// that died), finds it by its reason instead of forcing a second one.
#[tokio::test]
async fn a_job_forced_before_a_crash_is_found_again_not_forced_twice() {
    use autoland::ci::CiAdapter;
    use autoland::ci::buildbot::Buildbot as Adapter;
    use autoland::config::{BuildbotConfig, CiKind, RepoConfig, RepoKind};
    use autoland::request::RequestId;
    use autoland::store::{CiJob, CiRun, CiState, JobState};

    let bb = Buildbot::start().await;
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("try.git");
    std::fs::create_dir_all(&repo_dir).unwrap();
    git(&repo_dir, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo_dir.join("autoland-ci.sh"), "echo ok\n").unwrap();
    git(&repo_dir, &["add", "."]);
    git(
        &repo_dir,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "commit",
            "--quiet",
            "-m",
            "c",
        ],
    );
    let revision = git(&repo_dir, &["rev-parse", "HEAD"]).trim().to_owned();
    let url = format!("file://{}", repo_dir.display());
    let repo = RepoConfig {
        is_try: true,
        ci: CiKind::Buildbot,
        buildbot: Some(BuildbotConfig {
            url: bb.url(),
            scheduler: "autoland".into(),
            builders: vec!["git-build".into()],
            repository: Some(url.clone()),
            poll_ms: 100,
            timeout_seconds: 30,
        }),
        ..RepoConfig::new("try", RepoKind::Git, &url, "scm_level_1")
    };
    let adapter = Adapter::new(&repo, "autoland-test").unwrap();
    let run = CiRun {
        candidate_id: None,
        push_id: None,
        id: 41,
        request_id: RequestId(1),
        repo: "try".into(),
        revision: revision.clone(),
        ref_name: "refs/heads/main".into(),
        ci: "buildbot".into(),
        state: CiState::Running,
        attempts: 1,
        exit_code: None,
        summary: None,
        log_path: None,
        external_id: None,
        reused_from: None,
        created_at: 0,
        finished_at: None,
        last_change_at: None,
        complete_at: None,
    };
    let job = CiJob {
        id: 1,
        run_id: 41,
        name: "git-build".into(),
        attempt: 1,
        state: JobState::Requested,
        result: None,
        raw_result: None,
        external_id: None,
        log_url: None,
        duration_ms: None,
        summary: None,
    };
    // The first start forces; a second start of the same attempt (as after a crash
    // before its id was recorded) finds that build request.
    let first = adapter.start_job(&run, &job).await.unwrap();
    let again = adapter.start_job(&run, &job).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(bb.buildrequests().await.len(), 1);
    // Another attempt is another build request.
    let next = CiJob { attempt: 2, ..job };
    let second = adapter.start_job(&run, &next).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(bb.buildrequests().await.len(), 2);
}

// ---------------------------------------------------------------------------------------
// Latency benchmark (not part of CI): `scripts/bench-ci.sh` runs it and prints the table.

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn event_at(detail: &Value, kind: &str) -> i64 {
    detail["events"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == kind))
        .and_then(|e| e["at"].as_i64())
        .unwrap_or_else(|| panic!("no {kind} event: {detail:#}"))
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Time from the try push to Buildbot having the build request, and from the last job's
/// end (the last line of the job's command) to Autoland's `try_passed` transition.
#[tokio::test]
#[ignore = "benchmark: scripts/bench-ci.sh"]
async fn latency_benchmark() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let poll_ms: u64 = std::env::var("BENCH_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let bb = Buildbot::start().await;
    let env = Env::new(Options {
        try_extra: format!(
            "ci = \"buildbot\"\n[repositories.buildbot]\nurl = \"{}\"\nbuilders = [\"git-test\"]\npoll_ms = {poll_ms}\n",
            bb.url()
        ),
        ..Options::default()
    });
    let running = env.start().await;
    let api = &running.api;
    let mut to_request = Vec::new();
    let mut to_transition = Vec::new();
    for round in 0..rounds {
        let stamp = env.path().join(format!("ended-{round}"));
        let script = format!(
            "echo working\necho $(($(date +%s%N) / 1000000)) > '{}'\n",
            stamp.display()
        );
        let patches = ci_patch(&env, &format!("Round {round}"), &script);
        let known = bb.buildrequests().await.len();
        let id = api.submit(&patches, &["try"], json!({})).await;
        // Watch Buildbot for the new build request.
        let seen = loop {
            if bb.buildrequests().await.len() > known {
                break now_ms();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let detail = api.wait_terminal(id, LIMIT).await;
        assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
        let pushed = event_at(&detail, "pushed_to_try");
        let passed = event_at(&detail, "try_passed");
        let ended: i64 = std::fs::read_to_string(&stamp)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        to_request.push(seen - pushed);
        to_transition.push(passed - ended);
    }
    to_request.sort_unstable();
    to_transition.sort_unstable();
    println!("\nBuildbot latency, {rounds} try runs, poll_ms = {poll_ms} (ms)");
    println!("| measure | median | p90 | max |");
    println!("|---|---|---|---|");
    for (name, values) in [
        ("try push → build request on Buildbot", &to_request),
        ("last job's end → Autoland's transition", &to_transition),
    ] {
        println!(
            "| {name} | {} | {} | {} |",
            percentile(values, 0.5),
            percentile(values, 0.9),
            values[values.len() - 1]
        );
    }
    running.service.stop().await;
}
