//! Bad input at the API: every case gets a 4xx with a clear message, and nothing is stored.

mod common;

use common::{Change, Env, Options};
use serde_json::{Value, json};

fn diff_touching(path: &str) -> String {
    format!(
        "diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+owned\n"
    )
}

async fn raw_post(api: &common::Api, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut request = api
        .http
        .post(format!("{}/api/requests", api.base))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(e) => panic!("server did not answer: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_submissions_get_a_clear_4xx_and_store_nothing() {
    let env = Env::new(Options::default());
    let running = env.start().await;
    let api = &running.api;
    let good = env
        .patches(&[Change {
            author: "Alice <alice@example.com>",
            subject: "Fine",
            files: &[("src/ok.txt", "ok\n")],
        }])
        .remove(0);
    let patch =
        |content: &str| json!({ "patches": [{ "content": content }], "destinations": ["try"] });

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("malformed JSON", b"{\"patches\": [".to_vec(), 400, "not a valid request"),
        ("wrong type", br#"{"patches": 3, "destinations": ["try"]}"#.to_vec(), 400, "patches"),
        ("unknown field", serde_json::to_vec(&json!({"patches": [], "destinations": ["try"], "sudo": true})).unwrap(), 400, "sudo"),
        (
            "unknown destination",
            serde_json::to_vec(&json!({ "patches": [{ "content": good }], "destinations": ["beta"] })).unwrap(),
            400,
            "unknown destination `beta`",
        ),
        ("no patches", serde_json::to_vec(&json!({ "patches": [], "destinations": ["try"] })).unwrap(), 400, "at least one patch"),
        ("empty patch", serde_json::to_vec(&patch("")).unwrap(), 400, "patch 1 (`patch-1`): the patch is empty"),
        ("path escaping the repository", serde_json::to_vec(&patch(&diff_touching("../x"))).unwrap(), 400, "../x"),
        ("path into .git", serde_json::to_vec(&patch(&diff_touching(".git/config"))).unwrap(), 400, ".git/config"),
        ("NUL bytes", serde_json::to_vec(&patch("diff --git a/x b/x\n\0\0\u{1}garbage")).unwrap(), 400, "NUL"),
        (
            "binary garbage body",
            (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect(),
            400,
            "not a valid request",
        ),
        (
            "try syntax without '-'",
            serde_json::to_vec(&json!({ "patches": [{ "content": good }], "destinations": ["try"], "try_syntax": "b o" })).unwrap(),
            400,
            "must start with '-'",
        ),
        (
            "requester impersonation",
            serde_json::to_vec(&json!({ "patches": [{ "content": good }], "destinations": ["try"], "requester": "carol@example.com" })).unwrap(),
            400,
            "only service tokens",
        ),
    ];
    for (what, body, status, needle) in cases {
        let (got, answer) = raw_post(api, Some(&env.token), body).await;
        assert_eq!(got, status, "{what}: {answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{what}: message `{message}` should mention `{needle}`"
        );
        assert!(answer["error"].is_string(), "{what}: {answer}");
    }

    // 50 MiB: refused as too large, without buffering it all.
    let huge = vec![b'a'; 50 * 1024 * 1024];
    let (got, answer) = raw_post(api, Some(&env.token), huge).await;
    assert_eq!(got, 413, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("too large"),
        "{answer}"
    );

    // Authentication.
    let body = serde_json::to_vec(&patch(&good)).unwrap();
    let (got, answer) = raw_post(api, None, body.clone()).await;
    assert_eq!(got, 401, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("Bearer"),
        "{answer}"
    );
    let (got, _) = raw_post(api, Some("not-the-token"), body.clone()).await;
    assert_eq!(got, 401);
    let cancel = api
        .http
        .post(format!("{}/api/requests/1/cancel", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status().as_u16(), 401);

    // Nothing half stored.
    let (_, list) = api.get("/api/requests?all=true").await;
    assert_eq!(list["requests"].as_array().unwrap().len(), 0, "{list}");

    // And the good one, for contrast, is accepted — also by a service token for someone else.
    let (got, answer) = raw_post(api, Some(&env.token), body).await;
    assert_eq!(got, 201, "{answer}");
    let on_behalf = serde_json::to_vec(&json!({ "patches": [{ "content": good }], "destinations": ["try"], "requester": "carol@example.com" })).unwrap();
    let (got, answer) = raw_post(api, Some("test-token-service"), on_behalf).await;
    assert_eq!(got, 201, "{answer}");
    let (_, detail) = api.get(&format!("/api/requests/{}", answer["id"])).await;
    assert_eq!(detail["request"]["requester"], "carol@example.com");

    // Only the requester (or a service token) may cancel.
    let bob = common::Api::new(&api.base, "test-token-bob");
    let (got, answer) = bob
        .post(
            &format!("/api/requests/{}/cancel", detail["request"]["id"]),
            &json!({}),
        )
        .await;
    assert_eq!(got, 403, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("carol@example.com"),
        "{answer}"
    );
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_routes_are_clear() {
    let env = Env::new(Options::default());
    let running = env.start().await;
    let (status, body) = running.api.get("/api/requests/999").await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("no request 999"));
    let (status, body) = running.api.get("/api/requests/abc").await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not a request id")
    );
    let (status, _) = running.api.get("/api/nothing-here").await;
    assert_eq!(status, 404);
    running.service.stop().await;
}

/// A request whose tracker is not configured (Bugzilla removed from the configuration
/// while one of its requests waited) fails with the reason; it is not taken for an API
/// request without patches, it does not wait forever, and nothing is queued for the
/// missing tracker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_a_tracker_no_longer_configured_fails_with_the_reason() {
    let env = Env::new(Options::default());
    let running = env.start().await;
    let ctx = running.service.ctx.clone();
    let new = autoland::request::NewRequest {
        source: "bugzilla".into(),
        bug: Some(7),
        requester: "alice@example.com".into(),
        try_repo: "try".into(),
        base_repo: "central".into(),
        destinations: vec![],
        try_syntax: None,
        patches: vec![],
        attachment_ids: vec![],
    };
    let id = ctx.store.insert_request(&new, "test", &[]).await.unwrap();
    ctx.wake(autoland::runtime::Work::Pushers).await;
    let done = running
        .api
        .wait_terminal(id.0, std::time::Duration::from_secs(30))
        .await;
    assert_eq!(done["request"]["stage"], "failed", "{done}");
    assert_eq!(done["request"]["failure"], "invalid_request", "{done}");
    let detail = done["request"]["failure_detail"].as_str().unwrap();
    assert!(
        detail.contains("comes from `bugzilla`, which is not configured any more"),
        "{detail}"
    );
    // Nothing is queued for a tracker that is not there to send it: no report waits
    // forever, and the bug is not held busy by undeliverable rows.
    let overview = ctx.overview().await.unwrap();
    assert_eq!(overview.pending_reports, 0);
    running.service.stop().await;
}
