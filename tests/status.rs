//! The status page and its JSON twin; supervision restarting a module that panics.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use autoland::service;
use common::{Change, Env, Options};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(60);

async fn page(api: &common::Api, path: &str) -> (u16, String, String) {
    let response = api
        .http
        .get(format!("{}{path}", api.base))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, kind, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_verdict_modules_queue_and_a_failed_request() {
    let env = Env::new(Options::default());
    let running = env.start().await;
    let patches = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: "Conflicts <b>badly</b>",
        files: &[("src/lib.txt", "line 1\nmine\n")],
    }]);
    env.push_to_central("src/lib.txt", "line 1\ntheirs\n", "Theirs");
    let id = running
        .api
        .submit(&patches, &["try", "central"], json!({}))
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["failure"], "apply_conflict");

    // Modules have reported by now (they beat at start).
    let (status, kind, html) = page(&running.api, "/").await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(
        html.contains(r#"<div class="verdict UP">UP</div>"#),
        "{html}"
    );
    assert!(
        html.contains("pusher-1") && html.contains("ci-runner"),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"<a href="/requests/{id}">{id}</a>"#)),
        "{html}"
    );
    assert!(html.contains("apply_conflict"), "{html}");
    assert!(html.contains(r#"http-equiv="refresh""#), "auto-refresh");

    let (status, _, html) = page(&running.api, &format!("/requests/{id}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("does not apply"), "{html}");
    assert!(html.contains("src/lib.txt"), "{html}");
    assert!(html.contains("applying → failed"), "{html}");
    // Patch text is escaped, never markup.
    assert!(!html.contains("<b>badly</b>"), "{html}");

    let (_, status_json) = running.api.get("/api/status").await;
    assert_eq!(status_json["verdict"], "UP", "{status_json}");
    assert_eq!(status_json["recent"][0]["id"], id);
    assert!(
        status_json["modules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["module"] == "pusher-1" && m["state"] == "running")
    );
    let (status, _, _) = page(&running.api, "/requests/999").await;
    assert_eq!(status, 404);

    let (status, kind, metrics) = page(&running.api, "/metrics").await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/plain"), "{kind}");
    assert!(
        metrics.contains(r#"autoland_requests{stage="failed"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("autoland_queue_depth 0"), "{metrics}");
    assert!(metrics.contains("autoland_up 1"), "{metrics}");
    assert!(
        metrics.contains(r#"autoland_module_up{module="pusher-1""#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"autoland_stage_duration_seconds_bucket{stage="applying""#),
        "{metrics}"
    );
    let (status, _, ready) = page(&running.api, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(ready.starts_with("ready"), "{ready}");
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_panics_is_restarted_and_the_restart_is_shown() {
    let env = Env::new(Options::default());
    let ctx = Arc::new(service::context(env.config()).await.unwrap());
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let panicked = Arc::new(AtomicBool::new(false));
    let flag = panicked.clone();
    autoland::runtime::supervise(
        &mut tasks,
        ctx.clone(),
        shutdown.clone(),
        "flaky".to_owned(),
        move |_ctx, status, stop| {
            let flag = flag.clone();
            async move {
                if !flag.swap(true, Ordering::SeqCst) {
                    panic!("the flaky module falls over once");
                }
                status.set("running again");
                stop.cancelled().await;
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = service::start(ctx.clone(), listener).await.unwrap();
    let api = common::Api::new(&format!("http://{}", running.addr), &env.token);
    let is_flaky =
        |m: &&Value| m["module"] == "flaky" && m["restarts"] == 1 && m["state"] == "running";
    let status = api
        .wait_status(Duration::from_secs(30), "a recorded restart", |o| {
            o["modules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| is_flaky(&m))
        })
        .await;
    let flaky = status["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(is_flaky)
        .unwrap()
        .clone();
    assert!(panicked.load(Ordering::SeqCst));
    assert_eq!(flaky["state"], "running", "{flaky}");
    let (_, _, html) = page(&api, "/").await;
    assert!(html.contains("flaky"), "{html}");
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_singleton_on_standby_in_every_process_degrades_the_verdict() {
    let env = Env::new(Options::default());
    let running = env.start().await;
    let store = &running.service.ctx.store;
    let beat = |instance: &str, state: &str| autoland::store::Heartbeat {
        module: "bugzilla-poller".to_owned(),
        instance: instance.to_owned(),
        host: "elsewhere".to_owned(),
        pid: 1,
        state: state.to_owned(),
        detail: "another process leads; this one takes over if it stops".to_owned(),
        restarts: 0,
        started_at: 0,
        beat_at: 0,
    };
    // Two serve processes, both on standby: the poller runs nowhere.
    let now = store.clock_ms().await.unwrap();
    store
        .heartbeat_at(&beat("a:1", "standby"), now)
        .await
        .unwrap();
    store
        .heartbeat_at(&beat("b:2", "standby"), now)
        .await
        .unwrap();
    let (_, status) = running.api.get("/api/status").await;
    assert_eq!(status["verdict"], "DEGRADED", "{status:#}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("bugzilla-poller (no process leads)"),
        "{status:#}"
    );
    // One of them leads: all is well again.
    store
        .heartbeat_at(&beat("a:1", "running"), now)
        .await
        .unwrap();
    let (_, status) = running.api.get("/api/status").await;
    assert!(
        !status["reason"]
            .as_str()
            .unwrap()
            .contains("no process leads"),
        "{status:#}"
    );
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_while_paused_does_not_restart_the_module_later() {
    use std::sync::atomic::AtomicUsize;

    use autoland::store::ModuleControl;
    let env = Env::new(Options::default());
    let ctx = Arc::new(service::context(env.config()).await.unwrap());
    let control = |module: &str, paused: bool, kick_seq: i64| ModuleControl {
        module: module.to_owned(),
        paused,
        kick_seq,
        changed_by: "op@example.com".to_owned(),
    };
    // Controls as a process's watcher would publish them (no database polling here).
    ctx.controls.send_replace(vec![control("probe", true, 0)]);
    let starts = Arc::new(AtomicUsize::new(0));
    let counter = starts.clone();
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    autoland::runtime::supervise(
        &mut tasks,
        ctx.clone(),
        shutdown.clone(),
        "probe".to_owned(),
        move |_ctx, _status, stop| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                stop.cancelled().await;
            }
        },
    );
    let settle = || tokio::time::sleep(Duration::from_millis(300));
    let wait_starts = |n: usize| {
        let starts = starts.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while starts.load(Ordering::SeqCst) != n {
                assert!(
                    std::time::Instant::now() < deadline,
                    "never started {n} times"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    settle().await;
    assert_eq!(starts.load(Ordering::SeqCst), 0, "started while paused");
    // Kicked while paused, then resumed: it starts once.
    ctx.controls.send_replace(vec![control("probe", true, 1)]);
    ctx.controls.send_replace(vec![control("probe", false, 1)]);
    wait_starts(1).await;
    // An unrelated change later must not restart it for that old kick.
    ctx.controls
        .send_replace(vec![control("probe", false, 1), control("other", true, 0)]);
    settle().await;
    assert_eq!(
        starts.load(Ordering::SeqCst),
        1,
        "restarted for an old kick"
    );
    // A new kick does.
    ctx.controls.send_replace(vec![control("probe", false, 2)]);
    wait_starts(2).await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
}

/// Every documented series is exported from the start (at zero, with its help text), and
/// Prometheus's own linter finds nothing to say about `/metrics` after a landing.
#[tokio::test]
async fn metrics_exist_from_the_start_and_pass_promtool() {
    let env = Env::new(Options::default());
    let running = env.start().await;
    // The module series are labelled with the modules the heartbeats list: wait for the
    // first heartbeats (on PostgreSQL they can come after the first call).
    running
        .api
        .wait_status(
            Duration::from_secs(30),
            "the modules' first heartbeats",
            |o| o["modules"].as_array().is_some_and(|m| !m.is_empty()),
        )
        .await;
    let (status, _, fresh) = page(&running.api, "/metrics").await;
    assert_eq!(status, 200);
    for series in [
        r#"autoland_push_retries_total{repo="central"} 0"#,
        r#"autoland_tracker_errors_total{kind="unavailable"} 0"#,
        r#"autoland_ci_runs_total{outcome="failed"} 0"#,
        r#"autoland_stage_duration_seconds_count{stage="landing"}"#,
        "# HELP autoland_requests ",
        "# HELP autoland_module_restarts_total ",
        "# TYPE autoland_module_restarts_total counter",
    ] {
        assert!(fresh.contains(series), "{series} missing:\n{fresh}");
    }
    assert!(!fresh.contains("autoland_module_restarts{"), "{fresh}");

    let id = env
        .submit_one(&running.api, "Metrics", "src/metrics.txt", "m\n")
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let (_, _, text) = page(&running.api, "/metrics").await;
    let mut lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install prometheus; scripts/test.sh does)");
    {
        use std::io::Write;
        lint.stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = lint.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
    running.service.stop().await;
}

/// Concurrent viewers share one computation of the overview (single flight), and all
/// get the same answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_viewers_share_one_overview() {
    use std::sync::atomic::Ordering;
    let env = Env::new(Options::default());
    let ctx = Arc::new(service::context(env.config()).await.unwrap());
    ctx.store.migrate().await.unwrap();
    let before = ctx.overviews_computed.load(Ordering::Relaxed);
    let mut viewers = JoinSet::new();
    for _ in 0..20 {
        let ctx = ctx.clone();
        viewers.spawn(async move { ctx.overview().await.map(|o| o.requests_by_stage) });
    }
    let mut answers = Vec::new();
    while let Some(answer) = viewers.join_next().await {
        answers.push(answer.unwrap().unwrap());
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    let computed = ctx.overviews_computed.load(Ordering::Relaxed) - before;
    assert!(
        (1..20).contains(&computed),
        "20 concurrent viewers computed the overview {computed} times"
    );
}
