//! End-to-end landing scenarios on real git repositories, through the real API.

mod common;

use std::time::Duration;

use common::{Change, Env, Kind, Options, stages};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

async fn two_patches_go_through_try_and_land_on_central_with_their_authors(kind: Kind) {
    let env = Env::new(Options {
        kind,
        ..Options::default()
    });
    let running = env.start().await;
    let patches = env.patches(&[
        Change {
            author: "Alice Liddell <alice@example.com>",
            subject: "Bug 1 - Add a feature",
            files: &[("src/feature.txt", "feature\n")],
        },
        Change {
            author: "Carol Doe <carol@example.com>",
            subject: "Bug 1 - Test the feature",
            files: &[("src/feature_test.txt", "test\n")],
        },
    ]);
    let id = running
        .api
        .submit(&patches, &["try", "central"], json!({}))
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_eq!(
        stages(&detail),
        [
            "received",
            "gathering",
            "authorizing",
            "applying",
            "pushing_try",
            "awaiting_try",
            "landing",
            "landed"
        ]
    );
    let log = env.central_log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(
        log[0],
        (
            "carol@example.com".into(),
            "Bug 1 - Test the feature".into()
        )
    );
    assert_eq!(
        log[1],
        ("alice@example.com".into(), "Bug 1 - Add a feature".into())
    );
    let uid = detail["request"]["uid"].as_str().unwrap();
    assert_eq!(env.commits_with_trailer(&env.central, uid), 2);
    assert_eq!(env.commits_with_trailer(&env.try_repo, uid), 2);
    // The landed revision is recorded and is central's tip.
    let tip = env.central_tip();
    assert_eq!(
        detail["request"]["destinations"][0]["landed_revision"],
        tip.trim()
    );
    // The CI run passed and its log is kept.
    assert_eq!(detail["ci_run"]["state"], "passed");
    let log_path = detail["ci_run"]["log_path"].as_str().unwrap();
    assert!(
        std::fs::read_to_string(log_path)
            .unwrap()
            .contains("all tests passed")
    );
    let served = running.api.ci_log(id).await;
    assert!(served.contains("all tests passed"), "{served}");
    running.service.stop().await;
}

async fn a_patch_that_does_not_apply_fails_naming_patch_and_file_and_pushes_nothing(kind: Kind) {
    let env = Env::new(Options {
        kind,
        ..Options::default()
    });
    let running = env.start().await;
    let patches = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: "Change line 5",
        files: &[(
            "src/lib.txt",
            "line 1\nline 2\nline 3\nline 4\nline five\nline 6\nline 7\nline 8\nline 9\nline 10\n",
        )],
    }]);
    // Someone changes the same line first.
    env.push_to_central(
        "src/lib.txt",
        "line 1\nline 2\nline 3\nline 4\nline 5 (theirs)\nline 6\nline 7\nline 8\nline 9\nline 10\n",
        "Their change",
    );
    let before = env.central_log();
    let id = running
        .api
        .submit(&patches, &["try", "central"], json!({}))
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "failed");
    assert_eq!(detail["request"]["failure"], "apply_conflict");
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(why.contains("patch 1 (`0001.patch`)"), "{why}");
    assert!(why.contains("`src/lib.txt`"), "{why}");
    assert_eq!(env.try_pushes(), 0, "nothing may be pushed to try");
    assert_eq!(env.central_log(), before);
    running.service.stop().await;
}

async fn failing_ci_stops_before_central(kind: Kind) {
    let env = Env::new(Options {
        kind,
        ..Options::default()
    });
    let running = env.start().await;
    let patches = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: "Break things",
        files: &[("src/new.txt", "this is BROKEN\n")],
    }]);
    let before = env.central_log();
    let id = running
        .api
        .submit(&patches, &["try", "central"], json!({}))
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "failed");
    assert_eq!(detail["request"]["failure"], "try_failed");
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(why.contains("FAIL: something is BROKEN"), "{why}");
    assert!(why.contains("exit code 1"), "{why}");
    // The log is a link people can open, not a path on Autoland's server.
    let run = detail["ci_run"]["id"].as_i64().unwrap();
    assert!(why.contains(&format!("/api/ci/runs/{run}/log")), "{why}");
    assert!(!why.contains("/data/logs/"), "{why}");
    let link = format!("{}/api/ci/runs/{run}/log", running.api.base);
    let log = reqwest::get(&link).await.unwrap().text().await.unwrap();
    assert!(log.contains("FAIL: something is BROKEN"), "{log}");
    assert_eq!(env.central_log(), before, "central must be untouched");
    // It did reach try.
    assert_eq!(env.try_pushes(), 1);
    running.service.stop().await;
}

async fn central_moving_between_apply_and_push_still_lands_on_top(kind: Kind) {
    let env = Env::new(Options {
        kind,
        ..Options::default()
    });
    // The first time Autoland pushes to central, someone else's push gets in first.
    let marker = env.race_next_central_push();
    let running = env.start().await;
    let id = env
        .submit_one(
            &running.api,
            "Land despite the race",
            "src/mine.txt",
            "mine\n",
        )
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert!(marker.exists(), "the race happened");
    let log = env.central_log();
    assert_eq!(log[0].1, "Land despite the race", "{log:?}");
    assert_eq!(log[1].1, "Racing commit", "{log:?}");
    let retries = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "push_retry")
        .count();
    assert_eq!(retries, 1, "{detail:#}");
    let uid = detail["request"]["uid"].as_str().unwrap();
    assert_eq!(env.commits_with_trailer(&env.central, uid), 1);
    running.service.stop().await;
}

async fn nobody_with_the_level_means_permission_denied_naming_them(kind: Kind) {
    let env = Env::new(Options {
        kind,
        ..Options::default()
    });
    let running = env.start().await;
    let patches = env.patches(&[Change {
        author: "Dave Newcomer <dave@example.com>",
        subject: "Unreviewed",
        files: &[("src/dave.txt", "dave\n")],
    }]);
    let id = running
        .api
        .submit(
            &patches,
            &["try", "central"],
            json!({ "patches": [{ "name": "dave.patch", "content": patches[0], "reviewers": ["bob@example.com"] }] }),
        )
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(
        detail["request"]["failure"], "permission_denied",
        "{detail:#}"
    );
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(
        why.contains("dave@example.com (no level (not in the static table))"),
        "{why}"
    );
    assert!(
        why.contains("bob@example.com (holds scm_level_1 (static table))"),
        "{why}"
    );
    assert!(why.contains("scm_level_3"), "{why}");
    assert!(why.contains("`central`"), "{why}");
    assert_eq!(env.try_pushes(), 0);
    running.service.stop().await;
}

async fn a_reviewer_with_the_level_vouches_and_try_only_requests_stop_after_try(kind: Kind) {
    let env = Env::new(Options {
        kind,
        ..Options::default()
    });
    let running = env.start().await;
    let patches = env.patches(&[Change {
        author: "Dave Newcomer <dave@example.com>",
        subject: "Reviewed by alice",
        files: &[("src/dave.txt", "dave\n")],
    }]);
    let id = running
        .api
        .submit(
            &patches,
            &["try"],
            json!({ "try_syntax": "-b o -p linux64", "patches": [{ "name": "d.patch", "content": patches[0], "reviewers": ["alice@example.com"] }] }),
        )
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_eq!(env.central_log().len(), 1, "try-only: central untouched");
    // The try push's tip is the try-syntax commit.
    let tip_message = env.try_tip_message();
    assert!(
        tip_message.starts_with("try: -b o -p linux64"),
        "{tip_message}"
    );
    running.service.stop().await;
}

async fn cancelling_stops_a_request_and_says_who(kind: Kind) {
    let env = Env::new(Options {
        kind,
        ci_command: "sleep 30".to_owned(),
        ..Options::default()
    });
    let running = env.start().await;
    let id = env
        .submit_one(&running.api, "Slow", "src/slow.txt", "slow\n")
        .await;
    running
        .api
        .wait_for(id, LIMIT, |d| d["request"]["stage"] == "awaiting_try")
        .await;
    let (status, body) = running
        .api
        .post(&format!("/api/requests/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stage"], "cancelled");
    let (status, body) = running
        .api
        .post(&format!("/api/requests/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, detail) = running.api.get(&format!("/api/requests/{id}")).await;
    // The cancel is the last transition (the CI runner may still note what it does).
    let last = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["to_stage"].is_string())
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "cancelled");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("alice@example.com")
    );
    // The CI run it had started is stopped rather than left running for 30 s.
    let detail = running
        .api
        .wait_for(id, Duration::from_secs(15), |d| {
            d["ci_run"]["state"] == "failed"
        })
        .await;
    let summary = detail["ci_run"]["summary"].as_str().unwrap();
    assert!(summary.contains("the request is cancelled"), "{summary}");
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_patches_go_through_try_and_land_on_central_with_their_authors_on_git() {
    two_patches_go_through_try_and_land_on_central_with_their_authors(Kind::Git).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_patches_go_through_try_and_land_on_central_with_their_authors_on_hg() {
    two_patches_go_through_try_and_land_on_central_with_their_authors(Kind::Hg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_does_not_apply_fails_naming_patch_and_file_and_pushes_nothing_on_git() {
    a_patch_that_does_not_apply_fails_naming_patch_and_file_and_pushes_nothing(Kind::Git).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_does_not_apply_fails_naming_patch_and_file_and_pushes_nothing_on_hg() {
    a_patch_that_does_not_apply_fails_naming_patch_and_file_and_pushes_nothing(Kind::Hg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_ci_stops_before_central_on_git() {
    failing_ci_stops_before_central(Kind::Git).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_ci_stops_before_central_on_hg() {
    failing_ci_stops_before_central(Kind::Hg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_moving_between_apply_and_push_still_lands_on_top_on_git() {
    central_moving_between_apply_and_push_still_lands_on_top(Kind::Git).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_moving_between_apply_and_push_still_lands_on_top_on_hg() {
    central_moving_between_apply_and_push_still_lands_on_top(Kind::Hg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_with_the_level_means_permission_denied_naming_them_on_git() {
    nobody_with_the_level_means_permission_denied_naming_them(Kind::Git).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_with_the_level_means_permission_denied_naming_them_on_hg() {
    nobody_with_the_level_means_permission_denied_naming_them(Kind::Hg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_with_the_level_vouches_and_try_only_requests_stop_after_try_on_git() {
    a_reviewer_with_the_level_vouches_and_try_only_requests_stop_after_try(Kind::Git).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_with_the_level_vouches_and_try_only_requests_stop_after_try_on_hg() {
    a_reviewer_with_the_level_vouches_and_try_only_requests_stop_after_try(Kind::Hg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_a_request_and_says_who_on_git() {
    cancelling_stops_a_request_and_says_who(Kind::Git).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_a_request_and_says_who_on_hg() {
    cancelling_stops_a_request_and_says_who(Kind::Hg).await;
}
