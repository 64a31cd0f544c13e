//! The Treeherder simulator read by Treeherder's official Python client
//! (treeherder-client 5.0.0, `thclient.TreeherderClient`) through tests/treeherder/read.py:
//! pushes found by revision, every job of a push with more than 2000 jobs (the client
//! pages with count=2000&offset=...), one of exactly 2000, and log URLs; compared with
//! what was seeded.

use std::path::PathBuf;

use autoland::simulator::treeherder::{JobResult, JobSpec, JobState, Simulator};
use serde_json::Value;

const PROJECT: &str = "try";
const AUTHOR: &str = "alice@example.com";

/// The Python of the test virtualenv: `$AUTOLAND_VENV/bin/python`, by default
/// `target/venv`.
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("AUTOLAND_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/python-env.sh (scripts/test.sh does it)",
        python.display()
    );
    python
}

/// What a seeded job should read back as.
struct Seeded {
    id: i64,
    name: String,
    symbol: String,
    platform: String,
    state: JobState,
    result: JobResult,
}

/// The n-th job of a push: states and results cycle so that every value is seen.
fn spec(push: usize, n: usize) -> (JobSpec, JobState, JobResult) {
    const OUTCOMES: [(JobState, JobResult); 9] = [
        (JobState::Pending, JobResult::Unknown),
        (JobState::Running, JobResult::Unknown),
        (JobState::Completed, JobResult::Success),
        (JobState::Completed, JobResult::Testfailed),
        (JobState::Completed, JobResult::Busted),
        (JobState::Completed, JobResult::Exception),
        (JobState::Completed, JobResult::Retry),
        (JobState::Completed, JobResult::Usercancel),
        (JobState::Completed, JobResult::Superseded),
    ];
    let (state, result) = OUTCOMES[n % OUTCOMES.len()];
    let platform = ["linux1804-64", "windows11-64", "macosx1400-64"][n % 3];
    let spec = JobSpec {
        state,
        result,
        ..JobSpec::new(
            &format!("test-{platform}/opt-mochitest-{push}-{n}"),
            &format!("M{n}"),
            platform,
        )
    };
    (spec, state, result)
}

fn seed(sim: &Simulator, push: i64, index: usize, count: usize) -> Vec<Seeded> {
    (0..count)
        .map(|n| {
            let (spec, state, result) = spec(index, n);
            let seeded = Seeded {
                id: 0,
                name: spec.name.clone(),
                symbol: spec.symbol.clone(),
                platform: spec.platform.clone(),
                state,
                result,
            };
            let id = sim.add_job(push, spec).expect("a job");
            Seeded { id, ..seeded }
        })
        .collect()
}

fn check_jobs(read: &[Value], seeded: &[Seeded], push: i64) {
    assert_eq!(read.len(), seeded.len(), "every job of push {push} is read");
    for (job, want) in read.iter().zip(seeded) {
        assert_eq!(job["id"], want.id);
        assert_eq!(job["push_id"], push);
        assert_eq!(job["job_type_name"], want.name.as_str());
        assert_eq!(job["job_type_symbol"], want.symbol.as_str());
        assert_eq!(job["platform"], want.platform.as_str());
        assert_eq!(job["state"], want.state.as_str());
        assert_eq!(job["result"], want.result.as_str());
        assert_eq!(job["retry_id"], 0);
        assert_eq!(job["task_id"].as_str().map(str::len), Some(22));
        let start = job["start_timestamp"].as_i64().unwrap();
        let end = job["end_timestamp"].as_i64().unwrap();
        match want.state {
            JobState::Pending => assert_eq!((start, end), (0, 0)),
            JobState::Running => assert!(start > 0 && end == 0),
            JobState::Completed => assert!(start > 0 && end >= start),
        }
    }
}

#[tokio::test]
async fn the_official_client_reads_pushes_and_pages_through_jobs() {
    let python = venv_python();
    let sim = Simulator::start().await.expect("the simulator starts");

    let big_rev = "1".repeat(40);
    let page_rev = "2".repeat(40);
    let empty_rev = "3".repeat(40);
    // Another project's push with the same revision must not be read.
    let elsewhere = sim.add_push("autoland", &big_rev, AUTHOR).unwrap();
    sim.add_job(elsewhere, JobSpec::new("build-linux64/opt", "B", "linux64"))
        .unwrap();

    let big = sim.add_push(PROJECT, &big_rev, AUTHOR).unwrap();
    let big_jobs = seed(&sim, big, 1, 2345);
    let page = sim.add_push(PROJECT, &page_rev, AUTHOR).unwrap();
    let page_jobs = seed(&sim, page, 2, 2000);
    let empty = sim.add_push(PROJECT, &empty_rev, AUTHOR).unwrap();

    // A job that moves after seeding, with a log.
    let logged = sim
        .add_job(
            empty,
            JobSpec {
                log_text: Some("TEST-UNEXPECTED-FAIL | test_x.js | boom\n".to_owned()),
                ..JobSpec::new("test-linux1804-64/opt-xpcshell-1", "X1", "linux1804-64")
            },
        )
        .unwrap();
    sim.update_job(logged, JobState::Running, JobResult::Unknown)
        .unwrap();
    sim.update_job(logged, JobState::Completed, JobResult::Testfailed)
        .unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/treeherder/read.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--server", sim.url(), "--project", PROJECT])
        .args(["--revision", &big_rev])
        .args(["--revision", &page_rev])
        .args(["--revision", &empty_rev])
        .args(["--revision", &"9".repeat(40)])
        .args(["--log-job", &logged.to_string()])
        .output()
        .await
        .expect("python runs");
    assert!(
        output.status.success(),
        "read.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_slice(&output.stdout).expect("read.py prints JSON");

    // Pushes, found by revision in the right project.
    let pushes = |rev: &str| read["revisions"][rev].as_array().unwrap().clone();
    for (rev, id, jobs) in [
        (&big_rev, big, 2345),
        (&page_rev, page, 2000),
        (&empty_rev, empty, 1),
    ] {
        let found = pushes(rev);
        assert_eq!(found.len(), 1, "one push of {rev}");
        let push = &found[0]["push"];
        assert_eq!(push["id"], id);
        assert_eq!(push["revision"], rev.as_str());
        assert_eq!(push["author"], AUTHOR);
        assert_eq!(push["revision_count"], 1);
        assert_eq!(push["revisions"][0]["revision"], rev.as_str());
        assert_eq!(found[0]["jobs"].as_array().unwrap().len(), jobs);
    }
    assert!(pushes(&"9".repeat(40)).is_empty());

    // Every job, in order, with its name, state and result.
    check_jobs(
        pushes(&big_rev)[0]["jobs"].as_array().unwrap(),
        &big_jobs,
        big,
    );
    check_jobs(
        pushes(&page_rev)[0]["jobs"].as_array().unwrap(),
        &page_jobs,
        page,
    );
    let moved = &pushes(&empty_rev)[0]["jobs"][0];
    assert_eq!(moved["id"], logged);
    assert_eq!(moved["state"], "completed");
    assert_eq!(moved["result"], "testfailed");

    // The log, which a person can open.
    let logs = read["logs"][logged.to_string()].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["name"], "live_backing_log");
    assert_eq!(logs[0]["job_id"], logged);
    let url = logs[0]["url"].as_str().unwrap();
    assert_eq!(Some(url.to_owned()), sim.log_url(logged));
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert!(text.contains("TEST-UNEXPECTED-FAIL"));

    // The client paged: 2345 jobs took two requests, exactly 2000 took two (the second
    // empty), one job took one.
    let jobs_path = format!("/api/project/{PROJECT}/jobs/");
    let queries: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path == jobs_path)
        .map(|r| r.query)
        .collect();
    assert_eq!(
        queries,
        [
            format!("push_id={big}&count=2000&offset=0"),
            format!("push_id={big}&count=2000&offset=2000"),
            format!("push_id={page}&count=2000&offset=0"),
            format!("push_id={page}&count=2000&offset=2000"),
            format!("push_id={empty}&count=2000&offset=0"),
        ]
    );
    assert_eq!(
        sim.request_count(&format!("/api/project/{PROJECT}/push/")),
        4
    );
    // Every API request identified the client and asked for version 1.0.
    for request in sim
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
    {
        assert_eq!(request.status, 200, "{request:?}");
        assert_eq!(
            request.user_agent.as_deref(),
            Some("treeherder-pyclient/5.0.0")
        );
        assert_eq!(
            request.accept.as_deref(),
            Some("application/json; version=1.0")
        );
    }
}

// ---------------------------------------------------------------------------------------
// Autoland reading its try runs from Treeherder (the simulator above).

mod common;

use std::time::Duration;

use common::{Env, Options};

const LIMIT: Duration = Duration::from_secs(120);

fn treeherder_options(url: &str, extra: &str) -> Options {
    Options {
        try_extra: format!(
            "ci = \"treeherder\"\n[repositories.treeherder]\nurl = \"{url}\"\nproject = \"{PROJECT}\"\n\
             poll_ms = 100\n{extra}"
        ),
        ..Options::default()
    }
}

fn completed(name: &str, result: JobResult) -> JobSpec {
    JobSpec {
        state: JobState::Completed,
        result,
        ..JobSpec::new(name, "T", "linux64")
    }
}

#[tokio::test]
async fn a_treeherder_push_with_pages_late_and_retried_jobs_passes_after_it_settles() {
    let sim = Simulator::start().await.expect("simulator starts");
    let env = Env::new(treeherder_options(sim.url(), "settle_seconds = 2\n"));
    let running = env.start().await;
    let api = &running.api;
    let id = env
        .submit_one(api, "Bug 7 - th", "src/th.txt", "th\n")
        .await;
    let revision = api.wait_try_revision(id, LIMIT).await;
    // Nothing on Treeherder yet: the run waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let push = sim.add_push(PROJECT, &revision, AUTHOR).unwrap();
    // More than one page (2000 a page) of passed jobs, and one still running.
    for i in 0..2001 {
        sim.add_job(push, completed(&format!("test-{i}"), JobResult::Success))
            .unwrap();
    }
    let flaky = sim
        .add_job(
            push,
            JobSpec {
                state: JobState::Running,
                ..JobSpec::new("mochitest", "M", "linux64")
            },
        )
        .unwrap();
    api.wait_for(id, LIMIT, |d| {
        d["ci_jobs"].as_array().is_some_and(|j| j.len() == 2002)
    })
    .await;
    // It ends `retry` (the CI runs it again), and the second run passes, late.
    sim.update_job(flaky, JobState::Completed, JobResult::Retry)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    sim.add_job(push, completed("mochitest", JobResult::Success))
        .unwrap();
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{}", detail["events"]);
    let verdict = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "try_passed")
        .map(|e| e["detail"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    assert!(
        verdict.contains("2002 jobs: 2002 passed, 0 failed"),
        "{verdict}"
    );
    assert!(
        verdict.contains("intermittent: linux64 mochitest"),
        "{verdict}"
    );
    // It paged, and said who it is.
    let requests = sim.requests();
    let job_pages: Vec<_> = requests.iter().filter(|r| r.path == "/api/jobs/").collect();
    assert!(
        job_pages.iter().any(|r| r.query.contains("page=2")),
        "{job_pages:?}"
    );
    assert!(
        requests.iter().all(|r| r
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("autoland/"))),
        "every call names Autoland"
    );
    running.service.stop().await;
}

#[tokio::test]
async fn a_treeherder_push_that_never_completes_times_out_as_configured() {
    let sim = Simulator::start().await.expect("simulator starts");
    let env = Env::new(treeherder_options(
        sim.url(),
        "settle_seconds = 1\ncomplete_within_seconds = 3\n",
    ));
    let running = env.start().await;
    let api = &running.api;
    let id = env
        .submit_one(api, "Bug 8 - stuck", "src/st.txt", "st\n")
        .await;
    let revision = api.wait_try_revision(id, LIMIT).await;
    let push = sim.add_push(PROJECT, &revision, AUTHOR).unwrap();
    sim.add_job(
        push,
        JobSpec {
            state: JobState::Running,
            ..JobSpec::new("forever", "F", "linux64")
        },
    )
    .unwrap();
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "failed");
    assert_eq!(detail["request"]["failure"], "timed_out", "{detail:#}");
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(why.contains("did not complete the run within 3 s"), "{why}");
    running.service.stop().await;
}

#[tokio::test]
async fn a_failed_treeherder_job_fails_the_request_with_its_log_lines() {
    let sim = Simulator::start().await.expect("simulator starts");
    let env = Env::new(treeherder_options(sim.url(), "settle_seconds = 1\n"));
    let running = env.start().await;
    let api = &running.api;
    let id = env
        .submit_one(api, "Bug 9 - red", "src/red.txt", "red\n")
        .await;
    let revision = api.wait_try_revision(id, LIMIT).await;
    let push = sim.add_push(PROJECT, &revision, AUTHOR).unwrap();
    sim.add_job(push, completed("build", JobResult::Success))
        .unwrap();
    sim.add_job(
        push,
        JobSpec {
            log_text: Some(
                "setting up\nTEST-UNEXPECTED-FAIL | test_thing.js | 1 != 2\n".to_owned(),
            ),
            ..completed("xpcshell", JobResult::Testfailed)
        },
    )
    .unwrap();
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["failure"], "try_failed", "{detail:#}");
    let jobs = detail["ci_jobs"].as_array().unwrap();
    let failed = jobs
        .iter()
        .find(|j| j["name"] == "linux64 xpcshell")
        .unwrap();
    assert!(
        failed["summary"]
            .as_str()
            .unwrap()
            .contains("TEST-UNEXPECTED-FAIL"),
        "{failed}"
    );
    assert!(
        failed["log_url"]
            .as_str()
            .unwrap()
            .contains("live_backing.log"),
        "{failed}"
    );
    running.service.stop().await;
}
