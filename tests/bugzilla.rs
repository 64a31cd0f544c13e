//! Bugzilla end to end, against the REST simulator: tags found by polling, patches
//! gathered from attachments, comments and whiteboard edits delivered through the outbox.

mod common;

use std::sync::Arc;
use std::time::Duration;

use autoland::service;
use autoland::simulator::bugzilla::{Fault, Flavor, NewBug};
use autoland::tracker::bugzilla::poller;
use common::bugzilla::{
    attach, autoland_comments, new_bug, request_for_bug, simulator, wait_reports_delivered,
};
use common::{Api, Change, Env, Options};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);
fn env_with(url: &str) -> Env {
    Env::new(Options {
        bugzilla: Some(url.to_owned()),
        ..Options::default()
    })
}

async fn tagged_try_lands_current_patches_in_order(flavor: Flavor) {
    let (sim, url) = simulator(flavor).await;
    let env = env_with(&url);
    let patches = env.patches(&[
        Change {
            author: "Alice <alice@example.com>",
            subject: "Bug 1 - Part 1: add the widget",
            files: &[("src/widget.txt", "widget\n")],
        },
        Change {
            author: "Alice <alice@example.com>",
            subject: "Bug 1 - Part 2: test the widget",
            files: &[("src/widget_test.txt", "test\n")],
        },
    ]);
    let bug = new_bug(&sim, "Add the widget");
    attach(&sim, bug, "part1.patch", &patches[0], false);
    // An obsolete version that would not even apply.
    attach(
        &sim,
        bug,
        "old.patch",
        "--- a/nope\n+++ b/nope\n@@ -1 +1 @@\n-x\n+y\n",
        true,
    );
    attach(&sim, bug, "part2.patch", &patches[1], false);
    sim.set_whiteboard(bug, "[foo] [autoland-try]", "alice@example.com");

    let running = env.start().await;
    let id = request_for_bug(&running.api, bug).await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_eq!(detail["request"]["requester"], "alice@example.com");

    // Both current patches, in order, on try; the obsolete one ignored.
    let try_ref = &env.refs(&env.try_repo)[0];
    let subjects = common::git(&env.try_repo, &["log", "--format=%s", "-2", try_ref]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        [
            "Bug 1 - Part 2: test the widget",
            "Bug 1 - Part 1: add the widget"
        ]
    );

    // Comments in order, tag through in-queue and then removed.
    let detail = wait_reports_delivered(&running.api, id, LIMIT).await;
    let kinds: Vec<&str> = detail["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "mark_in_queue",
            "comment",
            "comment",
            "comment",
            "remove_tag"
        ]
    );
    let comments = autoland_comments(&sim, bug);
    assert_eq!(comments.len(), 3, "{comments:#?}");
    assert!(comments[0].contains("accepted the landing request from alice@example.com"));
    assert!(comments[1].contains("pushed request"), "{}", comments[1]);
    assert!(comments[2].contains("Try results"), "{}", comments[2]);
    assert!(comments[2].contains("1 passed"), "{}", comments[2]);
    assert_eq!(sim.whiteboard(bug).unwrap(), "[foo]");
    let puts: Vec<_> = sim
        .request_log()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2, "in-queue, then removal: {puts:?}");
    // The key is never in a logged URL.
    assert!(
        sim.request_log()
            .iter()
            .all(|r| !r.query.contains("autoland-key"))
    );
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_try_lands_current_patches_in_order_on_5_2() {
    tagged_try_lands_current_patches_in_order(Flavor::V52).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_try_lands_current_patches_in_order_on_5_3() {
    tagged_try_lands_current_patches_in_order(Flavor::V53).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_tag_gets_one_comment_and_is_removed() {
    let (sim, url) = simulator(Flavor::V52).await;
    let env = env_with(&url);
    let bug = new_bug(&sim, "Bad tag");
    sim.set_whiteboard(
        bug,
        "[perf] [autoland-try:12a] [later]",
        "alice@example.com",
    );
    let running = env.start().await;
    let id = request_for_bug(&running.api, bug).await;
    let detail = wait_reports_delivered(&running.api, id, LIMIT).await;
    assert_eq!(detail["request"]["failure"], "invalid_request");
    let comments = autoland_comments(&sim, bug);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].contains("`12a` is not a number"),
        "{}",
        comments[0]
    );
    assert!(
        comments[0].contains("[autoland-try:-b do -p linux64 -u all]"),
        "{}",
        comments[0]
    );
    assert_eq!(sim.whiteboard(bug).unwrap(), "[perf] [later]");
    // Later polls do not read it again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(autoland_comments(&sim, bug).len(), 1);
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_survive_a_bugzilla_outage_and_a_restart_once_each_in_order() {
    let (sim, url) = simulator(Flavor::V53).await;
    let env = env_with(&url);
    let patch = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: "Bug 2 - Resilient",
        files: &[("src/r.txt", "r\n")],
    }]);
    let bug = new_bug(&sim, "Resilient");
    attach(&sim, bug, "r.patch", &patch[0], false);
    sim.set_whiteboard(bug, "[autoland-try]", "alice@example.com");

    let running = env.start().await;
    let id = request_for_bug(&running.api, bug).await;
    // Once the patches are gathered, Bugzilla goes down.
    running
        .api
        .wait_for(id, LIMIT, |d| {
            d["request"]["stage"] != "received" && d["request"]["stage"] != "gathering"
        })
        .await;
    sim.set_fault(Fault::ServerError {
        status: 500,
        remaining: None,
    });
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed");
    // Let a few delivery attempts fail, then restart Autoland in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.service.stop().await;
    let pending_before = autoland_comments(&sim, bug).len();
    sim.set_fault(Fault::None);
    let running = env.start().await;
    let detail = wait_reports_delivered(&running.api, id, LIMIT).await;
    let comments = autoland_comments(&sim, bug);
    assert!(pending_before < 3, "the outage held comments back");
    assert_eq!(comments.len(), 3, "{comments:#?}");
    assert!(comments[0].contains("accepted"));
    assert!(comments[1].contains("pushed request"));
    assert!(comments[2].contains("Try results"));
    let reports = detail["reports"].as_array().unwrap();
    assert!(
        reports.iter().all(|r| r["sent_at"].is_number()),
        "{reports:#?}"
    );
    assert!(
        reports
            .iter()
            .any(|r| r["attempts"].as_i64().unwrap_or(0) > 1),
        "some report was retried: {reports:#?}"
    );
    assert_eq!(sim.whiteboard(bug).unwrap(), "");
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_search_per_poll_finds_exactly_the_tagged_bugs() {
    let (sim, url) = simulator(Flavor::V52).await;
    let env = env_with(&url);
    let mut tagged = Vec::new();
    for n in 0..1000 {
        let bug = new_bug(&sim, &format!("bug {n}"));
        match n {
            17 | 500 | 999 => {
                sim.set_whiteboard(bug, "[autoland-try]", "alice@example.com");
                tagged.push(bug);
            }
            100 => sim.set_whiteboard(bug, "autoland is great", "bob@example.com"),
            _ => {}
        }
    }
    let ctx = service::context(env.config()).await.unwrap();
    let client = ctx
        .trackers
        .find::<autoland::tracker::bugzilla::Bugzilla>()
        .unwrap()
        .client
        .clone();
    let config = ctx.config.bugzilla.clone().unwrap();
    sim.clear_log();
    let outcome = poller::poll_once(&ctx, &client, &config).await.unwrap();
    assert_eq!((outcome.seen, outcome.claimed), (3, 3));
    let searches = sim
        .request_log()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/rest/bug")
        .count();
    assert_eq!(searches, 1);
    let requests = ctx
        .store
        .list_requests(autoland::store::ListFilter::All, 10)
        .await
        .unwrap();
    let mut bugs: Vec<i64> = requests.iter().filter_map(|r| r.bug).collect();
    bugs.sort();
    assert_eq!(bugs, tagged);
    // The next poll asks only for changes since the cursor and claims nothing twice.
    sim.clear_log();
    let again = poller::poll_once(&ctx, &client, &config).await.unwrap();
    assert_eq!(again.claimed, 0);
    let log = sim.request_log();
    let search = log.iter().find(|r| r.path == "/rest/bug").unwrap();
    assert!(
        search.query.contains("last_change_time="),
        "{}",
        search.query
    );
    let _ = Arc::new(ctx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_attachments_and_private_bugs_end_clearly() {
    let (sim, url) = simulator(Flavor::V53).await;
    let env = env_with(&url);
    let patch = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: "Elsewhere",
        files: &[("src/e.txt", "e\n")],
    }]);
    let other = new_bug(&sim, "Other bug");
    let foreign = attach(&sim, other, "e.patch", &patch[0], false);
    let bug = new_bug(&sim, "Names a foreign attachment");
    sim.set_whiteboard(
        bug,
        &format!("[autoland-try:{foreign}]"),
        "alice@example.com",
    );
    let private = sim.create_bug(NewBug {
        summary: "Secret".to_owned(),
        whiteboard: String::new(),
        creator: "alice@example.com".to_owned(),
        private: true,
    });
    let running = env.start().await;

    let id = request_for_bug(&running.api, bug).await;
    let detail = wait_reports_delivered(&running.api, id, LIMIT).await;
    assert_eq!(detail["request"]["failure"], "invalid_request");
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(
        why.contains(&format!("attachment {foreign} belongs to bug {other}")),
        "{why}"
    );
    let comments = autoland_comments(&sim, bug);
    assert!(
        comments.last().unwrap().contains("belongs to bug"),
        "{comments:#?}"
    );
    assert_eq!(sim.whiteboard(bug).unwrap(), "");

    // The private bug, pushed through the intake endpoint by a service.
    let service = Api::new(&running.api.base, "test-token-service");
    let (status, answer) = service
        .post(
            "/api/bugzilla/requests",
            &json!({ "bug": private, "requester": "alice@example.com" }),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let id = answer["id"].as_i64().unwrap();
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["failure"], "invalid_request");
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(
        why.contains("cannot see bug") && why.contains("private"),
        "{why}"
    );
    // Its comment cannot be delivered either: recorded, not retried forever.
    let detail = running
        .api
        .wait_for(id, LIMIT, |d| {
            let reports = d["reports"].as_array().unwrap();
            !reports.is_empty() && reports.iter().all(|r| r["abandoned_at"].is_number())
        })
        .await;
    assert!(
        detail["reports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["abandoned_at"].is_number())
    );
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_intake_lands_without_a_tag_and_comments_the_same() {
    let (sim, url) = simulator(Flavor::V52).await;
    let env = env_with(&url);
    let patch = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: "Pushed, not polled",
        files: &[("src/p.txt", "p\n")],
    }]);
    let bug = new_bug(&sim, "Pushed");
    let attachment = attach(&sim, bug, "p.patch", &patch[0], false);
    let running = env.start().await;
    let service = Api::new(&running.api.base, "test-token-service");
    let (status, answer) = service
        .post(
            "/api/bugzilla/requests",
            &json!({ "bug": bug, "attachments": [attachment], "destinations": ["try", "central"], "requester": "alice@example.com" }),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let id = answer["id"].as_i64().unwrap();
    // A second push for the same bug while it is busy is refused.
    let (status, _) = service
        .post(
            "/api/bugzilla/requests",
            &json!({ "bug": bug, "requester": "alice@example.com" }),
        )
        .await;
    assert_eq!(status, 409);
    let detail = wait_reports_delivered(&running.api, id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let comments = autoland_comments(&sim, bug);
    assert_eq!(comments.len(), 4, "{comments:#?}");
    assert!(
        comments[3].starts_with("Autoland landed request"),
        "{}",
        comments[3]
    );
    assert!(comments[3].contains("central:"), "{}", comments[3]);
    assert_eq!(env.central_log()[0].1, "Pushed, not polled");
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_api_key_degrades_the_bugzilla_modules_without_showing_the_key() {
    let (sim, url) = simulator(Flavor::V52).await;
    sim.set_fault(Fault::InvalidKey);
    let env = env_with(&url);
    let running = env.start().await;
    let degraded = |m: &&Value| m["module"] == "bugzilla-poller" && m["state"] == "degraded";
    let status = running
        .api
        .wait_status(LIMIT, "the poller degrading", |o| {
            o["modules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| degraded(&m))
        })
        .await;
    assert!(!status.to_string().contains("autoland-key"), "{status}");
    let poller = status["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(degraded)
        .unwrap()
        .clone();
    assert!(
        poller["detail"].as_str().unwrap().contains("API key"),
        "{poller}"
    );
    running.service.stop().await;
}

/// Why the request for `bug` was refused as invalid, once its reports were delivered.
async fn invalid_reason(api: &Api, bug: i64) -> String {
    let id = request_for_bug(api, bug).await;
    let detail = wait_reports_delivered(api, id, LIMIT).await;
    assert_eq!(
        detail["request"]["failure"], "invalid_request",
        "{detail:#}"
    );
    detail["request"]["failure_detail"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// What a bug contributes to a commit is hostile too: a summary that would carry the
/// trailer Autoland identifies its requests by (a plain diff's commit message is made of
/// it) is refused, and a private attachment is never landed (Autoland's pages are public).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_trailers_in_summaries_and_private_attachments_are_refused() {
    let (sim, url) = simulator(Flavor::V52).await;
    // Autoland's account sees private attachments here.
    sim.add_user(common::bugzilla::AUTOLAND, "Autoland", true);
    let env = env_with(&url);
    let plain_diff = "diff --git a/src/t.txt b/src/t.txt\nnew file mode 100644\n--- /dev/null\n+++ b/src/t.txt\n@@ -0,0 +1 @@\n+t\n";
    let forged = new_bug(&sim, "Fix it Autoland-Request: 0123456789abcdef");
    attach(&sim, forged, "t.diff", plain_diff, false);
    sim.set_whiteboard(forged, "[autoland-try]", "alice@example.com");
    let secret = new_bug(&sim, "Has a private patch");
    let private = sim.add_attachment(
        secret,
        autoland::simulator::bugzilla::NewAttachment {
            file_name: "secret.diff".to_owned(),
            summary: "secret".to_owned(),
            content_type: "text/plain".to_owned(),
            data: plain_diff.as_bytes().to_vec(),
            is_patch: true,
            is_obsolete: false,
            is_private: true,
            creator: "alice@example.com".to_owned(),
            flags: Vec::new(),
        },
    );
    sim.set_whiteboard(
        secret,
        &format!("[autoland-try:{private}]"),
        "alice@example.com",
    );
    let running = env.start().await;

    let why = invalid_reason(&running.api, forged).await;
    assert!(
        why.contains("the bug's summary it is made of") && why.contains("Autoland-Request:"),
        "{why}"
    );
    let why = invalid_reason(&running.api, secret).await;
    assert!(
        why.contains(&format!("attachment {private} is private")),
        "{why}"
    );
    assert_eq!(env.try_pushes(), 0, "nothing reached try");
    running.service.stop().await;
}
