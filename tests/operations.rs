//! Operator controls: closing a repository holds landings, retrying a failed request, and
//! every mutating route refusing a missing or read-only token.

mod common;

use std::time::Duration;

use common::{Api, Env, Options};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_repository_holds_a_landing_and_reopening_lets_it_land() {
    let env = Env::new(Options::default());
    let running = env.start().await;
    let operator = Api::new(&running.api.base, "test-token-operator");
    let (status, body) = operator
        .post(
            "/api/repositories/central/close",
            &json!({ "reason": "tree closed for a release" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let id = env
        .submit_one(&running.api, "Waits for the tree", "src/wait.txt", "wait\n")
        .await;
    let detail = running.api.wait_event(id, LIMIT, "waiting").await;
    assert_eq!(
        detail["request"]["stage"], "landing",
        "try passed, landing waits"
    );
    let waiting = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "waiting")
        .collect::<Vec<_>>();
    assert!(
        waiting[0]["detail"]
            .as_str()
            .unwrap()
            .contains("tree closed for a release")
    );
    assert_eq!(env.central_log().len(), 1, "nothing lands while closed");
    let (_, overview) = running.api.get("/api/status").await;
    let central = common::repository(&overview, "central");
    assert!(
        central["closed"]
            .as_str()
            .unwrap()
            .contains("op@example.com"),
        "{central}"
    );
    let action = &overview["actions"][0];
    assert_eq!(action["action"], "close", "{overview}");
    assert_eq!(action["actor"], "op@example.com");
    assert_eq!(action["target"], "central");

    let (status, _) = operator
        .post("/api/repositories/central/reopen", &json!({}))
        .await;
    assert_eq!(status, 200);
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_eq!(env.central_log()[0].1, "Waits for the tree");
    // It said it was waiting once, not at every look.
    let waits = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "waiting")
        .count();
    assert_eq!(waits, 1, "{detail:#}");
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retries_a_failed_request_from_its_failed_stage() {
    let env = Env::new(Options {
        ci_fails_first: true,
        ..Options::default()
    });
    let running = env.start().await;
    let id = env
        .submit_one(
            &running.api,
            "Unlucky first time",
            "src/retry.txt",
            "retry\n",
        )
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["failure"], "try_failed");

    // Not for a submit-scope token.
    let (status, body) = running
        .api
        .post(&format!("/api/requests/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 403, "{body}");
    let operator = Api::new(&running.api.base, "test-token-operator");
    let (status, body) = operator
        .post(&format!("/api/requests/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stage"], "pushing_try");
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert!(detail["request"]["failure"].is_null());
    let retried = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "retried")
        .unwrap()
        .clone();
    assert!(
        retried["detail"]
            .as_str()
            .unwrap()
            .contains("op@example.com"),
        "{retried}"
    );
    let uid = detail["request"]["uid"].as_str().unwrap();
    assert_eq!(
        env.commits_with_trailer(&env.try_repo, uid),
        1,
        "the try push was reused"
    );
    // A landed request cannot be retried.
    let (status, _) = operator
        .post(&format!("/api/requests/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 409);
    running.service.stop().await;
}

/// Every route that changes anything, and then some that do not exist: a missing token
/// gets 401, a read-only one 403, before any handler runs. Writes are refused by one layer
/// over the whole router, so a route added later is covered without being listed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutating_route_refuses_missing_and_read_only_tokens() {
    let env = Env::new(Options::default());
    let running = env.start().await;
    let routes = [
        ("POST", "/api/requests"),
        ("POST", "/api/requests/1/cancel"),
        ("POST", "/api/requests/1/retry"),
        ("POST", "/api/repositories/central/close"),
        ("POST", "/api/repositories/central/reopen"),
        ("POST", "/api/bugzilla/requests"),
        ("PUT", "/api/requests/1"),
        ("DELETE", "/api/requests/1"),
        ("PATCH", "/api/status"),
        ("POST", "/"),
        ("POST", "/api/not-a-route-yet"),
    ];
    let http = &running.api.http;
    for (method, path) in routes {
        let url = format!("{}{path}", running.api.base);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let anonymous = http
            .request(method.clone(), &url)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous.status().as_u16(),
            401,
            "{method} {path} without a token"
        );
        let reader = http
            .request(method.clone(), &url)
            .bearer_auth("test-token-reader")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            reader.status().as_u16(),
            403,
            "{method} {path} with a read-only token"
        );
    }
    // Reads stay open.
    for path in ["/", "/api/status", "/api/requests", "/metrics", "/healthz"] {
        let response = http
            .get(format!("{}{path}", running.api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
    }
    // Operator routes also refuse a submit-scope token.
    let (status, _) = running
        .api
        .post("/api/repositories/central/close", &json!({}))
        .await;
    assert_eq!(status, 403);
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_and_retries_from_the_request_page() {
    let env = Env::new(Options {
        ci_fails_first: true,
        ..Options::default()
    });
    let running = env.start().await;
    let id = env
        .submit_one(
            &running.api,
            "Retried by a click",
            "src/click.txt",
            "click\n",
        )
        .await;
    running.api.wait_terminal(id, LIMIT).await;

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = &running.api.base;
    let login_page = http.get(format!("{base}/login")).send().await.unwrap();
    assert!(
        login_page
            .text()
            .await
            .unwrap()
            .contains("id=\"operator-login\"")
    );
    // A submit-scope token is not an operator.
    let refused = http
        .post(format!("{base}/login"))
        .form(&[("token", env.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let logged_in = http
        .post(format!("{base}/login"))
        .form(&[("token", "test-token-operator")])
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status().as_u16(), 303);
    let cookie = logged_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();

    let page = http
        .get(format!("{base}/requests/{id}"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a retry form for the logged-in operator")
        .to_owned();
    let retry_url = format!("{base}/ops/requests/{id}/retry");
    let forged = http
        .post(&retry_url)
        .header("cookie", &session)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    let anonymous = http
        .post(&retry_url)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let clicked = http
        .post(&retry_url)
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(clicked.status().as_u16(), 303);
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let retried = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "retried")
        .unwrap()
        .clone();
    assert_eq!(retried["actor"], "operator:op@example.com");

    // The status page's forms: close a repository, kick a module.
    let page = http
        .get(format!("{base}/"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"action="/ops/repositories/central/close""#),
        "{page}"
    );
    assert!(
        page.contains(r#"action="/ops/modules/ci-runner/kick""#),
        "{page}"
    );
    let closed = http
        .post(format!("{base}/ops/repositories/central/close"))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status().as_u16(), 303);
    let (_, overview) = running.api.get("/api/status").await;
    assert_eq!(overview["actions"][0]["action"], "close", "{overview}");
    let forged = http
        .post(format!("{base}/ops/modules/ci-runner/kick"))
        .header("cookie", &session)
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_the_pushers_holds_requests_and_a_kick_restarts_a_module() {
    let env = Env::new(Options::default());
    let running = env.start().await;
    let operator = Api::new(&running.api.base, "test-token-operator");
    // Wait until the pushers have reported (they beat at start).
    running
        .api
        .wait_status(Duration::from_secs(10), "the pushers report", |s| {
            s["modules"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["module"] == "pusher-1"))
        })
        .await;
    let (status, body) = operator.post("/api/modules/pusher/pause", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = operator
        .post("/api/modules/nonsense/pause", &json!({}))
        .await;
    assert_eq!(status, 404);

    // Supervisors notice within a second; then a new request is not touched.
    let overview = running
        .api
        .wait_status(LIMIT, "pushers pausing", |o| {
            o["modules"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["module"].as_str().unwrap().starts_with("pusher-"))
                .all(|m| m["state"] == "paused")
        })
        .await;
    assert_eq!(overview["verdict"], "DEGRADED", "{overview}");
    let id = env
        .submit_one(&running.api, "After the pause", "src/pause.txt", "pause\n")
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, detail) = running.api.get(&format!("/api/requests/{id}")).await;
    assert_eq!(
        detail["request"]["stage"], "received",
        "paused pushers take nothing"
    );

    let (status, _) = operator
        .post("/api/modules/pusher/resume", &json!({}))
        .await;
    assert_eq!(status, 200);
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");

    // A kick restarts the module, which goes on working.
    let (status, _) = operator
        .post("/api/modules/ci-runner/kick", &json!({}))
        .await;
    assert_eq!(status, 200);
    running
        .api
        .wait_status(LIMIT, "the ci-runner kick", |o| {
            o["modules"].as_array().unwrap().iter().any(|m| {
                m["module"] == "ci-runner"
                    && m["detail"]
                        .as_str()
                        .unwrap()
                        .contains("kicked by op@example.com")
            })
        })
        .await;
    let id = env
        .submit_one(&running.api, "After the kick", "src/kick.txt", "kick\n")
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_tree_closes_the_repository_until_it_opens() {
    use std::sync::{Arc, Mutex};
    // A tree status service (Mozilla treestatus's JSON shape), closed to begin with.
    let tree = Arc::new(Mutex::new(
        json!({"result": {"status": "closed", "reason": "bustage on linux64"}}),
    ));
    let served = tree.clone();
    let app = axum::Router::new().route(
        "/trees/central",
        axum::routing::get(move || {
            let served = served.clone();
            async move { axum::Json(served.lock().unwrap().clone()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/trees/central", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env = Env::new(Options {
        tree_status_url: Some(url),
        ..Options::default()
    });
    let running = env.start().await;
    // The watcher reads the tree at start: wait until central shows closed.
    running
        .api
        .wait_status(LIMIT, "central closing", |o| {
            o["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "central" && r["closed"].is_string())
        })
        .await;
    let id = env
        .submit_one(
            &running.api,
            "Waits for the tree to open",
            "src/tree.txt",
            "tree\n",
        )
        .await;
    let detail = running.api.wait_event(id, LIMIT, "waiting").await;
    let waiting = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "waiting")
        .unwrap()
        .clone();
    assert!(
        waiting["detail"]
            .as_str()
            .unwrap()
            .contains("bustage on linux64"),
        "{waiting}"
    );
    assert_eq!(env.central_log().len(), 1);

    *tree.lock().unwrap() = json!({"result": {"status": "open", "reason": ""}});
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let (_, overview) = running.api.get("/api/status").await;
    let actions: Vec<&str> = overview["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["reopen", "close"], "{overview}");
    running.service.stop().await;
}

/// Write calls are limited per token (429 with Retry-After), service tokens exempt when
/// configured; an expired token gets 401 saying so, one expiring later still works.
#[tokio::test]
async fn write_rate_limits_and_token_expiry() {
    use autoland::config::hash_token;
    let env = Env::new(Options::default());
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    assert!(config.contains("writes_per_minute = 0\n"));
    let mut config = config.replace(
        "writes_per_minute = 0\n",
        "writes_per_minute = 3\nunlimited_service_tokens = true\n",
    );
    config.push_str(&format!(
        "\n[[tokens]]\nname = \"old\"\nuser = \"alice@example.com\"\nsha256 = \"{}\"\nexpires = \"2020-01-31\"\n\n\
         [[tokens]]\nname = \"later\"\nuser = \"alice@example.com\"\nsha256 = \"{}\"\nexpires = 2999-01-01T00:00:00Z\n",
        hash_token("test-token-old"),
        hash_token("test-token-later"),
    ));
    std::fs::write(&env.config_path, config).unwrap();
    let running = env.start().await;
    let base = &running.api.base;

    let old = Api::new(base, "test-token-old");
    let (status, body) = old.post("/api/requests/1/cancel", &json!({})).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("token `old` expired at 2020-01-31T00:00:00Z"),
        "{body}"
    );
    let later = Api::new(base, "test-token-later");
    let (status, body) = later.post("/api/requests/1/cancel", &json!({})).await;
    assert_eq!(status, 404, "a valid token reaches the handler: {body}");

    // Alice's token: three write calls, then 429 with Retry-After.
    for _ in 0..3 {
        let (status, _) = running.api.post("/api/requests/1/cancel", &json!({})).await;
        assert_eq!(status, 404);
    }
    let response = reqwest::Client::new()
        .post(format!("{base}/api/requests/1/cancel"))
        .bearer_auth("test-token-alice")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("more than 3 write calls in a minute"),
        "{body}"
    );
    // Reads are not limited; nor is the service token (configured so).
    let (status, _) = running.api.get("/api/status").await;
    assert_eq!(status, 200);
    let service = Api::new(base, "test-token-service");
    for _ in 0..6 {
        let (status, body) = service.post("/api/requests/1/cancel", &json!({})).await;
        assert_eq!(status, 404, "{body}");
    }
    running.service.stop().await;
}
