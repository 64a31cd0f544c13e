//! The pages in a real browser (Debian's headless Chromium, driven by playwright-core from
//! tests/browser/*.mjs). retry.mjs: the verdict, the queue and a failed request show; an
//! operator logs in and retries the request with a click; the request then lands.
//! land.mjs: people sign in with their Bugzilla API key and land from the bug page.
//! Screenshots are kept in target/tmp/browser-artifacts/.

mod common;

use std::process::Command;
use std::time::Duration;

use autoland::simulator::bugzilla::{Flavor, NewBug};
use common::bugzilla::{simulator, three_parts};
use common::{Env, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retries_a_failed_request_with_a_click() {
    let env = Env::new(Options {
        ci_fails_first: true,
        ..Options::default()
    });
    let running = env.start().await;
    let id = env
        .submit_one(
            &running.api,
            "Clicked back to life",
            "src/browser.txt",
            "browser\n",
        )
        .await;
    let detail = running.api.wait_terminal(id, Duration::from_secs(60)).await;
    assert_eq!(detail["request"]["failure"], "try_failed");

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    run_browser_script(
        "retry.mjs",
        vec![
            running.api.base.clone(),
            id.to_string(),
            "test-token-operator".to_owned(),
            shots.display().to_string(),
        ],
    )
    .await;
    let detail = running.api.wait_terminal(id, Duration::from_secs(60)).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    assert!(shots.join("status.png").exists() && shots.join("after-retry.png").exists());
    running.service.stop().await;
}

/// Installs tests/browser's npm packages (playwright-core) when they are missing, once per
/// test binary, so that `cargo test` works on a fresh checkout without scripts/test.sh.
fn npm_packages(browser_dir: &std::path::Path) -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        if browser_dir.join("node_modules/playwright-core").is_dir() {
            return Ok(());
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(browser_dir)
            .output()
            .map_err(|e| {
                format!(
                    "the browser tests need Node.js and npm to install playwright-core ({e}): \
                     run scripts/test.sh, or apt-get install nodejs npm chromium"
                )
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "npm ci in tests/browser failed (the npm registry must be reachable):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    })
    .clone()
}

/// Runs a script of tests/browser with node; panics with its output unless it succeeds.
async fn run_browser_script(script: &str, args: Vec<String>) -> String {
    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let packages_dir = browser_dir.clone();
    if let Err(why) = tokio::task::spawn_blocking(move || npm_packages(&packages_dir))
        .await
        .unwrap()
    {
        panic!("{why}");
    }
    let script = script.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .args(&args)
            .current_dir(&browser_dir)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs (scripts/test.sh installs Node.js, Chromium and playwright-core)");
    assert!(
        output.status.success(),
        "the browser script failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_land_two_of_three_patches_from_the_bug_page() {
    let (sim, url) = simulator(Flavor::V53).await;
    sim.add_api_key("alice-key", "alice@example.com");
    sim.add_api_key("bob-key", "bob@example.com");
    let env = Env::new(Options {
        bugzilla: Some(url),
        // Each stage takes a moment, so that the page shows them go by.
        ci_command: "sleep 1; sh test.sh".to_owned(),
        ..Options::default()
    });
    let running = env.start().await;
    let bug = sim.create_bug(NewBug {
        summary: "<script>window.__xss = 1</script> Crash in the widget".to_owned(),
        whiteboard: String::new(),
        creator: "alice@example.com".to_owned(),
        private: false,
    });
    let ids = three_parts(&sim, &env, bug, |n| {
        if n == 2 {
            "<img src=x onerror=\"window.__xss = 2\">.patch".to_owned()
        } else {
            format!("part{n}.patch")
        }
    });
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    let stdout = run_browser_script(
        "land.mjs",
        vec![
            running.api.base.clone(),
            bug.to_string(),
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
            shots.display().to_string(),
        ],
    )
    .await;
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the script reports");
    let (_, bugs) = running.api.get(&format!("/api/bugs/{bug}")).await;
    let requests = bugs["requests"].as_array().unwrap();
    assert_eq!(
        requests.len(),
        1,
        "Bob's refused landing made no request: {bugs}"
    );
    assert_eq!(requests[0]["requester"], "alice@example.com");
    assert_eq!(requests[0]["stage"], "landed", "{seen}");
    assert_eq!(
        requests[0]["attachments"],
        serde_json::json!([ids[0], ids[2]])
    );
    assert_eq!(requests[0]["destinations"], serde_json::json!(["central"]));
    assert!(
        shots.join("bug-page-refused.png").exists() && shots.join("bug-page-landed.png").exists()
    );
    running.service.stop().await;
}

/// The landing gate's queue view: a window of two candidates under test (the second on
/// the first) and a request waiting; an operator moves it to the front with a click.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_view_shows_a_window_with_candidates() {
    let hold_dir = tempfile::tempdir().unwrap();
    let hold = hold_dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let env = Env::new(Options {
        ci_command: format!(
            "while [ -e '{}' ]; do sleep 0.05; done; sh test.sh",
            hold.display()
        ),
        central_extra: "gate = \"speculative\"\nmax_window = 2\nbatch_size = 1".to_owned(),
        ..Options::default()
    });
    let running = env.start().await;
    let api = &running.api;
    let mut ids = Vec::new();
    for n in 1..=3 {
        let patches = env.patches(&[common::Change {
            author: "Alice <alice@example.com>",
            subject: &format!("Bug {n} - queued"),
            files: &[(&format!("src/q{n}.txt"), "q\n")],
        }]);
        let id = api
            .submit(&patches, &["central"], serde_json::json!({}))
            .await;
        api.wait_event(id, Duration::from_secs(60), "entered_gate")
            .await;
        ids.push(id);
    }
    api.wait_status(Duration::from_secs(60), "two candidates under test", |o| {
        o["gates"][0]["rows"].as_array().is_some_and(|rows| {
            rows.iter()
                .filter(|r| r["candidate_state"] == "testing")
                .count()
                == 2
        })
    })
    .await;
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    run_browser_script(
        "queue.mjs",
        vec![
            api.base.clone(),
            "test-token-operator".to_owned(),
            shots.display().to_string(),
            format!("{},{}", ids[0], ids[1]),
            ids[2].to_string(),
        ],
    )
    .await;
    let detail = api
        .wait_event(ids[2], Duration::from_secs(10), "gate_promoted")
        .await;
    assert_eq!(detail["request"]["stage"], "gated", "{detail:#}");
    std::fs::remove_file(&hold).unwrap();
    for id in ids {
        let detail = api.wait_terminal(id, Duration::from_secs(60)).await;
        assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    }
    assert!(shots.join("gate.png").exists() && shots.join("gate-promoted.png").exists());
    running.service.stop().await;
}
