//! The status page in a real browser (Debian's headless Chromium, driven by
//! playwright-core from tests/browser/retry.mjs): the verdict, the queue and a failed
//! request show; an operator logs in and retries the request with a click; the request
//! then lands. Screenshots are kept in target/tmp/browser-artifacts/.

mod common;

use std::process::Command;
use std::time::Duration;

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
    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let base = running.api.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("retry.mjs")
            .arg(&base)
            .arg(id.to_string())
            .arg("test-token-operator")
            .arg(&shots)
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
    let detail = running.api.wait_terminal(id, Duration::from_secs(60)).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    assert!(shots.join("status.png").exists() && shots.join("after-retry.png").exists());
    running.service.stop().await;
}
