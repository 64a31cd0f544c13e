//! Outages of the services Autoland depends on, each with its asserted outcome
//! (`docs/reliability.md` lists them):
//! - the VCS host (`hg serve`, `git daemon`) stopped during a push: the stage waits and
//!   retries with backoff naming the host and lands when it is back; down for good, the
//!   request fails after `max_transient_attempts`, naming the host;
//! - Bugzilla down for a long stretch (compressed: many poll and retry periods) while a
//!   request lands and another bug is tagged: the status page shows the trackers degraded,
//!   every report arrives once and in order when Bugzilla is back, and the poller finds
//!   the tag set during the outage;
//! - PostgreSQL restarted in the middle of landings with a serve and two workers: the
//!   processes reconnect, every request lands exactly once, no lease is held twice, and
//!   the status page says what happened;
//! - the data directory's disk full (a real tmpfs), and the database's own disk full.

mod common;

use std::time::Duration;

use autoland::simulator::bugzilla::{Fault, Flavor};
use common::bugzilla::{
    attach, autoland_comments, new_bug, request_for_bug, simulator, wait_reports_delivered,
};
use common::{Api, Change, ChildGuard, Env, Kind, Options};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(90);

/// The port central is served on (an `http: true` environment).
fn central_port(env: &Env) -> u16 {
    let config = std::fs::read_to_string(&env.config_path).unwrap();
    let url = config
        .lines()
        .find_map(|l| {
            l.strip_prefix("pull_url = \"http://127.0.0.1:")
                .or_else(|| l.strip_prefix("pull_url = \"git://127.0.0.1:"))
        })
        .unwrap();
    url.split('/').next().unwrap().parse().unwrap()
}

/// Serves central again on `port`.
fn serve_central_again(env: &Env, port: u16) -> ChildGuard {
    match env.kind {
        Kind::Hg => common::hg_serve_on(&env.central, port),
        Kind::Git => common::git_daemon_on(&env.central, port),
    }
}

/// The VCS host down (central's server stopped): the stage waits and tries again with a
/// backoff, saying which host; when the host is back, the request lands.
async fn a_vcs_host_down_makes_the_stage_wait_and_it_lands_when_back(kind: Kind) {
    let mut env = Env::new(Options {
        kind,
        http: true,
        ..Options::default()
    });
    let port = central_port(&env);
    drop(env.servers.remove(0));
    let running = env.start().await;
    let id = env
        .submit_one(
            &running.api,
            "While the host is down",
            "src/down.txt",
            "down\n",
        )
        .await;
    let detail = running.api.wait_event(id, LIMIT, "retry_scheduled").await;
    let retry = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "retry_scheduled")
        .unwrap()
        .clone();
    let said = retry["detail"].as_str().unwrap();
    assert!(
        said.contains(&format!("127.0.0.1:{port}")) && said.contains("retrying in"),
        "{said}"
    );
    assert!(
        !detail["request"]["stage"]
            .as_str()
            .unwrap()
            .contains("failed")
    );
    env.servers.insert(0, serve_central_again(&env, port));
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_eq!(env.central_log()[0].1, "While the host is down");
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hg_a_vcs_host_down_makes_the_stage_wait_and_it_lands_when_back() {
    a_vcs_host_down_makes_the_stage_wait_and_it_lands_when_back(Kind::Hg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_a_vcs_host_down_makes_the_stage_wait_and_it_lands_when_back() {
    a_vcs_host_down_makes_the_stage_wait_and_it_lands_when_back(Kind::Git).await;
}

/// Down for good: the request fails after `max_transient_attempts`, naming the host.
async fn a_vcs_host_down_for_good_fails_after_the_attempts_naming_it(kind: Kind) {
    let mut env = Env::new(Options {
        kind,
        http: true,
        ..Options::default()
    });
    env.add_pusher_setting("max_transient_attempts = 3");
    let port = central_port(&env);
    drop(env.servers.remove(0));
    let running = env.start().await;
    let id = env
        .submit_one(&running.api, "Never lands", "src/never.txt", "never\n")
        .await;
    let detail = running.api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["failure"], "push_failed", "{detail:#}");
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(
        why.contains("after 3 attempts") && why.contains(&format!("127.0.0.1:{port}")),
        "{why}"
    );
    let retries = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "retry_scheduled")
        .count();
    assert_eq!(retries, 2, "{detail:#}");
    running.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hg_a_vcs_host_down_for_good_fails_after_the_attempts_naming_it() {
    a_vcs_host_down_for_good_fails_after_the_attempts_naming_it(Kind::Hg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_a_vcs_host_down_for_good_fails_after_the_attempts_naming_it() {
    a_vcs_host_down_for_good_fails_after_the_attempts_naming_it(Kind::Git).await;
}

/// Waits until the request ended with every report sent (none given up); its detail.
async fn delivered(api: &Api, id: i64) -> Value {
    let detail = wait_reports_delivered(api, id, LIMIT).await;
    let reports = detail["reports"].as_array().cloned().unwrap_or_default();
    assert!(
        reports.iter().all(|r| r["sent_at"].is_number()),
        "a report was given up: {reports:#?}"
    );
    detail
}

/// The comments a request's outbox holds, in the order they were queued.
fn queued_comments(detail: &Value) -> Vec<String> {
    let mut reports = detail["reports"].as_array().cloned().unwrap_or_default();
    reports.sort_by_key(|r| r["id"].as_i64());
    reports
        .iter()
        .filter(|r| r["kind"] == "comment")
        .map(|r| r["body"].as_str().unwrap_or_default().trim().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_bugzilla_outage_loses_no_report_and_no_tag() {
    let (sim, url) = simulator(Flavor::V53).await;
    let env = Env::new(Options {
        bugzilla: Some(url),
        ..Options::default()
    });
    let patch = |file: &str| {
        env.patches(&[Change {
            author: "Alice <alice@example.com>",
            subject: &format!("Bug - write {file}"),
            files: &[(file, "x\n")],
        }])
        .remove(0)
    };
    let running = env.start().await;
    let api = &running.api;
    let a = new_bug(&sim, "Lands during the outage");
    attach(&sim, a, "a.patch", &patch("src/a.txt"), false);
    let b = new_bug(&sim, "Tagged during the outage");
    attach(&sim, b, "b.patch", &patch("src/b.txt"), false);
    sim.set_whiteboard(a, "[autoland-central]", "alice@example.com");
    let first = request_for_bug(api, a).await;
    api.wait_for(first, LIMIT, |d| {
        !matches!(
            d["request"]["stage"].as_str(),
            Some("received" | "gathering")
        )
    })
    .await;

    // Bugzilla goes down; while it is, A lands and B is tagged.
    sim.set_fault(Fault::ServerError {
        status: 503,
        remaining: None,
    });
    let down = std::time::Instant::now();
    sim.set_whiteboard(b, "[autoland-central]", "alice@example.com");
    let landed = api.wait_terminal(first, LIMIT).await;
    assert_eq!(landed["request"]["stage"], "landed", "{landed:#}");
    let overview = api
        .wait_status(LIMIT, "the Bugzilla modules degraded", |o| {
            let degraded = |name: &str| {
                o["modules"].as_array().is_some_and(|m| {
                    m.iter()
                        .any(|m| m["module"] == name && m["state"] == "degraded")
                })
            };
            degraded("bugzilla-poller") && degraded("bugzilla-reporter")
        })
        .await;
    let modules = overview["modules"].to_string();
    assert!(
        modules.contains("503"),
        "the status says what failed: {modules}"
    );
    // Long: many poll intervals (1 s), retry periods (1 s) and the poll overlap (5 s).
    let outage = Duration::from_secs(12);
    tokio::time::sleep(outage.saturating_sub(down.elapsed())).await;
    let (_, list) = api.get("/api/requests?all=true").await;
    assert_eq!(
        list["requests"].as_array().map(Vec::len),
        Some(1),
        "nothing could be read from Bugzilla: {list:#}"
    );
    sim.set_fault(Fault::None);

    // Back: A's reports arrive once each, in the order they were queued; B is found.
    let detail = delivered(api, first).await;
    let reports = detail["reports"].as_array().unwrap();
    assert!(
        reports
            .iter()
            .any(|r| r["attempts"].as_i64().unwrap_or(0) > 1),
        "a report was tried during the outage: {reports:#?}"
    );
    let posted: Vec<String> = autoland_comments(&sim, a)
        .iter()
        .map(|c| c.trim().to_owned())
        .collect();
    assert_eq!(posted, queued_comments(&detail));
    assert!(posted.len() >= 3, "{posted:#?}");
    assert!(posted.last().unwrap().contains("landed"), "{posted:#?}");
    assert_eq!(sim.whiteboard(a).unwrap(), "");
    let second = request_for_bug(api, b).await;
    let detail = delivered(api, second).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let posted: Vec<String> = autoland_comments(&sim, b)
        .iter()
        .map(|c| c.trim().to_owned())
        .collect();
    assert_eq!(posted, queued_comments(&detail));
    let overview = api
        .wait_status(LIMIT, "the Bugzilla modules running again", |o| {
            o["modules"].as_array().is_some_and(|m| {
                m.iter()
                    .filter(|m| {
                        m["module"]
                            .as_str()
                            .is_some_and(|n| n.starts_with("bugzilla"))
                    })
                    .all(|m| m["state"] == "running")
            })
        })
        .await;
    let bugzilla_running = overview["modules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["module"]
                .as_str()
                .is_some_and(|n| n.starts_with("bugzilla"))
                && m["state"] == "running"
        })
        .count();
    assert_eq!(bugzilla_running, 2, "poller and reporter: {overview:#}");
    running.service.stop().await;
}

/// A tmpfs mounted over a directory for the length of a test (needs root, as the test
/// script runs).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mounting a {size} tmpfs on {} failed (the disk-full test needs root): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }

    /// Fills the file system with `path` until a write fails with ENOSPC.
    fn fill(&self, path: &std::path::Path) {
        use std::io::Write;
        let mut file = std::fs::File::create(path).unwrap();
        let chunk = vec![0_u8; 64 * 1024];
        loop {
            if let Err(e) = file.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(28), "{e}");
                break;
            }
        }
        let small = [0_u8; 512];
        while file.write_all(&small).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn submission(patch: &str) -> Value {
    serde_json::json!({
        "patches": [{ "name": "0001.patch", "content": patch }],
        "destinations": ["try", "central"],
    })
}

/// The data directory's disk full (the database on another disk, as with PostgreSQL):
/// the request says so and waits — it never fails for it — the status page says so, the
/// service keeps answering; space freed, it lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_disk_is_said_and_waited_out() {
    let env = Env::new(Options::default());
    let data = env.path().join("data");
    let database = env.path().join("elsewhere.db");
    common::fleet::add_top_level_config(
        &env,
        &format!(
            "database_url = \"sqlite://{}?mode=rwc\"",
            database.display()
        ),
    );
    env.add_pusher_setting("max_transient_attempts = 2");
    let disk = Tmpfs::mount(&data, "24m");
    let running = env.start().await;
    let api = &running.api;
    let warm = env
        .submit_one(api, "Before the disk fills", "src/warm.txt", "warm\n")
        .await;
    let detail = api.wait_terminal(warm, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let (_, overview) = api.get("/api/status").await;
    assert_eq!(overview["disk"]["full"], false, "{:#}", overview["disk"]);

    let filler = data.join("filler");
    disk.fill(&filler);
    let patches = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: "While the disk is full",
        files: &[("src/full.txt", "full\n")],
    }]);
    let (status, body) = api.post("/api/requests", &submission(&patches[0])).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let detail = api.wait_event(id, LIMIT, "waiting").await;
    let said = common::event_detail(&detail, "waiting");
    assert!(
        said.contains("is full") && said.contains("No space left on device"),
        "{said}"
    );
    let overview = api
        .wait_status(LIMIT, "the status page saying the disk is full", |o| {
            o["disk"]["full"] == true
                && o["reason"].as_str().is_some_and(|r| r.contains("is full"))
                && o["modules"].as_array().is_some_and(|m| {
                    m.iter().any(|m| {
                        m["state"] == "degraded"
                            && m["detail"]
                                .as_str()
                                .is_some_and(|d| d.contains("No space left on device"))
                    })
                })
        })
        .await;
    assert_eq!(overview["verdict"], "DEGRADED", "{overview:#}");
    let (page_status, _) = api.get("/api/requests?all=true").await;
    assert_eq!(page_status, 200, "the service keeps answering");
    // Two transient attempts would have failed it by now; a full disk is waited out.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, detail) = api.get(&format!("/api/requests/{id}")).await;
    assert_ne!(detail["request"]["stage"], "failed", "{detail:#}");

    std::fs::remove_file(&filler).unwrap();
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    api.wait_status(LIMIT, "the disk no longer full", |o| {
        o["disk"]["full"] == false
    })
    .await;
    running.service.stop().await;
}

/// The database's own disk full (SQLite in the data directory): a submission is refused
/// with 503 and a message saying why, reads go on; space freed, submissions are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_disk_refuses_writes_clearly_and_recovers() {
    let env = Env::new(Options::default());
    let data = env.path().join("data");
    let disk = Tmpfs::mount(&data, "24m");
    let running = env.start().await;
    let api = &running.api;
    let patches = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: "Refused, then taken",
        files: &[("src/later.txt", "later\n")],
    }]);
    let filler = data.join("filler");
    disk.fill(&filler);
    let (status, body) = api.post("/api/requests", &submission(&patches[0])).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("disk is full")),
        "{body}"
    );
    let (status, overview) = api.get("/api/status").await;
    assert_eq!(status, 200);
    assert_eq!(overview["disk"]["full"], true, "{overview:#}");
    std::fs::remove_file(&filler).unwrap();
    let id = api
        .submit(&patches, &["try", "central"], serde_json::json!({}))
        .await;
    let detail = api.wait_terminal(id, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    running.service.stop().await;
}

/// PostgreSQL (a server of the test's own) stopped and started again while a serve and two
/// workers land requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_landing_loses_and_duplicates_nothing() {
    use common::fleet::{add_repositories, add_top_level_config, migrate, start_fleet};
    const N: usize = 24;
    let pg = common::postgres::OwnPostgres::start();
    let env = Env::new(Options {
        ci_command: "sleep 0.3".to_owned(),
        lease_seconds: 3,
        ..Options::default()
    });
    let repos = add_repositories(&env, 2, "sleep 0.3");
    add_top_level_config(&env, &format!("database_url = \"{}\"", pg.url()));
    migrate(&env);
    let db = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let patches = common::fleet::patches_for(&env, N);
    let (serve, workers, api) = start_fleet(&env, &db, &["w1", "w2"]).await;
    let ids = common::fleet::submit_round_robin(&api, &repos, &patches).await;

    // Once some have landed and others are under way, the database goes away.
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let (landed, held): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM requests WHERE stage = 'landed'), \
                    (SELECT count(*) FROM requests WHERE lease_owner IS NOT NULL)",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if landed >= 3 && held > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "nothing landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.close().await;
    pg.down();
    let down = std::time::Instant::now();
    // The status page says so (it answered 500 "internal error" before).
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let (status, answer) = api.get("/api/status").await;
        if status == 503 {
            let message = answer["message"].as_str().unwrap_or_default();
            assert!(message.contains("database is unreachable"), "{answer}");
            // Said at once, not after the pool's 30 s wait for a connection.
            assert!(
                down.elapsed() < Duration::from_secs(20),
                "{:?}",
                down.elapsed()
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status} {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Down for longer than a lease and a heartbeat period (5 s): every process notices.
    tokio::time::sleep(Duration::from_secs(7).saturating_sub(down.elapsed())).await;
    pg.up();

    let db = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let rows = common::fleet::wait_all_finished(&db, N as i64, Duration::from_secs(180)).await;
    let failed: Vec<_> = rows.iter().filter(|r| r.2 != "landed").collect();
    assert!(failed.is_empty(), "not landed: {failed:?}");
    for (_, central_name, central) in &repos {
        let mine: Vec<_> = rows.iter().filter(|r| &r.3 == central_name).collect();
        for (id, uid, _, _) in &mine {
            assert_eq!(
                env.commits_with_trailer(central, uid),
                1,
                "request {id} on {central_name}"
            );
        }
        let count = common::git(central, &["rev-list", "--count", "main"]);
        assert_eq!(
            count.trim().parse::<usize>().unwrap(),
            mine.len() + 1,
            "{central_name}: the import plus one commit per request"
        );
    }
    assert_eq!(ids.len(), N);
    let finished: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        finished,
        ids.iter().copied().collect(),
        "the requests submitted are the ones that finished"
    );
    // Each process put the outage it saw in the audit log, which the status page shows.
    let overview = api
        .wait_status(LIMIT, "the outage in the audit log", |o| {
            o["actions"].as_array().is_some_and(|a| {
                a.iter()
                    .filter(|a| a["action"] == "database_outage")
                    .count()
                    >= 3
            })
        })
        .await;
    let said: Vec<&str> = overview["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "database_outage")
        .filter_map(|a| a["detail"].as_str())
        .collect();
    for worker in ["w1", "w2"] {
        assert!(
            said.iter()
                .any(|d| d.starts_with(worker) && d.contains("could not reach the database")),
            "{said:#?}"
        );
    }
    // Every module of every process beats again once its process reaches the database
    // (each was silent for longer than a heartbeat counts as live).
    let overview = api
        .wait_status(Duration::from_secs(20), "every module up again", |o| {
            o["verdict"] == "UP"
        })
        .await;
    let modules = overview["modules"].as_array().unwrap();
    assert!(
        modules
            .iter()
            .all(|m| m["heartbeat_age_seconds"].as_i64().unwrap() < 15),
        "{overview:#}"
    );
    db.close().await;
    drop(workers);
    drop(serve);
}
