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

/// Runs a script of tests/browser with node; panics with its output unless it succeeds.
async fn run_browser_script(script: &str, args: Vec<String>) -> String {
    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
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
