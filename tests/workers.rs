//! Several processes on one PostgreSQL database: `autoland serve --no-pushers` takes the
//! requests, `autoland worker` processes (no web server) land them; `autoland migrate`
//! prepares the database. A trigger the processes know nothing of logs every change of a
//! lease's holder, so a request held by two workers at once would show.

mod common;

use std::time::Duration;

use common::fleet::{
    Killed, RepoPair, add_repositories, migrate, observed_database, patches_for, spawn_worker,
    start_fleet, submit_round_robin, wait_all_finished,
};
use common::{Api, Change, Env, Options, free_port, wait_healthy};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_lands_what_a_serve_without_pushers_accepted() {
    let env = Env::new(Options {
        postgres: true,
        ..Options::default()
    });
    let said = migrate(&env);
    assert!(
        said.contains("is up to date") && said.contains("postgres://"),
        "{said}"
    );

    let port = free_port();
    let serve = Killed(env.spawn_autoland(&["serve", "--no-pushers"], port));
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, Duration::from_secs(30)).await;
    let api = Api::new(&base, &env.token);
    let patches = env.patches(&[Change {
        author: "Alice <alice@example.com>",
        subject: "Landed by a worker",
        files: &[("src/worker.txt", "worker\n")],
    }]);
    let id = api.submit(&patches, &["try", "central"], json!({})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, detail) = api.get(&format!("/api/requests/{id}")).await;
    assert_eq!(
        detail["request"]["stage"], "received",
        "serve --no-pushers takes nothing"
    );

    let worker = Killed(env.spawn_autoland(&["worker"], free_port()));
    let worker_pid = worker.0.id();
    let detail = api.wait_terminal(id, Duration::from_secs(90)).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_eq!(env.central_log()[0].1, "Landed by a worker");
    // The pushing was done by the worker process, the try verdict by serve's watcher.
    let actors: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to_stage"].is_string())
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(
        actors
            .iter()
            .any(|a| a.contains(&format!(":{worker_pid}/pusher-"))),
        "{actors:?}"
    );
    assert!(
        actors
            .iter()
            .any(|a| a.contains(&format!(":{}/result-watcher", serve.0.id()))),
        "{actors:?}"
    );
    drop(worker);
    drop(serve);
}

/// Every request landed, its commit exists exactly once on its destination, its try push
/// is on its own ref, and each destination holds exactly the commits landed on it.
fn assert_landed_exactly_once(
    env: &Env,
    repos: &[RepoPair],
    rows: &[(i64, String, String, String)],
) {
    let failed: Vec<_> = rows.iter().filter(|r| r.2 != "landed").collect();
    assert!(failed.is_empty(), "not landed: {failed:?}");
    for (try_name, central_name, central) in repos {
        let try_path = env.path().join(format!("{try_name}.git"));
        let mine: Vec<_> = rows.iter().filter(|r| &r.3 == central_name).collect();
        for (id, uid, _, _) in &mine {
            assert_eq!(
                env.commits_with_trailer(central, uid),
                1,
                "request {id} on {central_name}"
            );
            // On try, each request has its own ref, whose tip carries its trailer.
            let tip = common::git(
                &try_path,
                &[
                    "log",
                    "-1",
                    "--format=%B",
                    &format!("refs/heads/autoland/{uid}"),
                ],
            );
            assert!(
                tip.contains(&format!("Autoland-Request: {uid}")),
                "request {id} on {try_name}: {tip}"
            );
        }
        assert_eq!(
            env.refs(&try_path).len(),
            mine.len(),
            "{try_name}: one ref per request"
        );
        let count = common::git(central, &["rev-list", "--count", "main"]);
        assert_eq!(
            count.trim().parse::<usize>().unwrap(),
            mine.len() + 1,
            "{central_name}: the import plus one commit per request"
        );
    }
}

/// Claims that replaced a lease that had not expired: two holders at once.
async fn live_steals(db: &sqlx::PgPool) -> Vec<(String, i64, String, String)> {
    sqlx::query_as(
        "SELECT tbl, row_id, owner, prev_owner FROM claim_log \
         WHERE prev_owner IS NOT NULL AND prev_until > at_ms",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_land_200_requests_over_4_repositories_exactly_once() {
    const N: usize = 200;
    let env = Env::new(Options {
        postgres: true,
        ci_command: "true".to_owned(),
        // Long enough that no lease expires under load: any reclaim would be a bug here.
        lease_seconds: 60,
        ..Options::default()
    });
    let repos = add_repositories(&env, 4, "true");
    let db = observed_database(&env).await;
    let patches = patches_for(&env, N);

    let (serve, workers, api) = start_fleet(&env, &db, &["w1", "w2", "w3"]).await;
    submit_round_robin(&api, &repos, &patches).await;
    let rows = wait_all_finished(&db, N as i64, Duration::from_secs(600)).await;
    assert_landed_exactly_once(&env, &repos, &rows);

    assert_eq!(
        live_steals(&db).await,
        vec![],
        "a lease was taken while held"
    );
    let reclaims: i64 =
        sqlx::query_scalar("SELECT count(*) FROM claim_log WHERE prev_owner IS NOT NULL")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(reclaims, 0, "nobody died, so no lease had to be reclaimed");
    // Workers took turns on each destination: none had a push refused because another
    // worker pushed first.
    let refused: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE kind = 'push_retry'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(refused, 0, "pushes to one destination interleaved");
    // The work was shared: every worker claimed requests.
    let claimers: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT split_part(owner, '/', 1) FROM claim_log WHERE tbl = 'requests' ORDER BY 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(claimers, ["w1", "w2", "w3"]);
    // The workers are on the status page.
    let (_, status) = api.get("/api/status").await;
    for name in ["w1", "w2", "w3"] {
        assert!(
            status["modules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["instance"] == name && m["module"] == "pusher-1"),
            "{name} missing from {status:#}"
        );
    }
    db.close().await;
    drop(workers);
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_requests_are_reclaimed_and_land_exactly_once() {
    const N: usize = 60;
    let env = Env::new(Options {
        postgres: true,
        ci_command: "sleep 0.2".to_owned(),
        lease_seconds: 3,
        ..Options::default()
    });
    let repos = add_repositories(&env, 4, "true");
    let db = observed_database(&env).await;
    let patches = patches_for(&env, N);

    let (serve, mut workers, api) = start_fleet(&env, &db, &["victim", "w2", "w3"]).await;
    let mut victim = workers.remove(0);
    submit_round_robin(&api, &repos, &patches).await;

    // Kill the victim while it holds a request, after some landings.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (landed, held): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM requests WHERE stage = 'landed'), \
                    (SELECT count(*) FROM requests WHERE lease_owner LIKE 'victim/%')",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if landed >= 5 && held > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the victim never held a request (landed {landed})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    victim.0.kill().unwrap(); // SIGKILL
    victim.0.wait().unwrap();
    let killed_at = autoland::store::now_ms();
    // What it held at its death (it may have let one go between the sample and the kill;
    // nobody can take its leases before they lapse, seconds from now).
    let held: i64 =
        sqlx::query_scalar("SELECT count(*) FROM requests WHERE lease_owner LIKE 'victim/%'")
            .fetch_one(&db)
            .await
            .unwrap();

    let rows = wait_all_finished(&db, N as i64, Duration::from_secs(300)).await;
    assert_landed_exactly_once(&env, &repos, &rows);
    assert_eq!(
        live_steals(&db).await,
        vec![],
        "a lease was taken while held"
    );
    let reclaimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM claim_log WHERE tbl = 'requests' AND prev_owner LIKE 'victim/%'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(
        reclaimed >= held,
        "the victim held {held} request(s) at its death; {reclaimed} reclaimed"
    );
    let after_death: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE actor LIKE 'victim/%' AND at > $1")
            .bind(killed_at)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(after_death, 0, "a dead worker wrote events");
    db.close().await;
    drop(workers);
    drop(serve);
}

/// The `leader` module of the serve process named `instance`, as the status page shows it.
fn leader_state(status: &serde_json::Value, instance: &str) -> Option<String> {
    status["modules"]
        .as_array()?
        .iter()
        .find(|m| m["module"] == "leader" && m["instance"] == instance)
        .and_then(|m| m["state"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serves_one_bugzilla_leader_and_killing_it_hands_over() {
    use autoland::simulator::bugzilla::Flavor;
    use common::bugzilla::{attach, autoland_comments, new_bug, simulator};
    let (sim, url) = simulator(Flavor::V53).await;
    let env = Env::new(Options {
        postgres: true,
        ci_command: "true".to_owned(),
        bugzilla: Some(url),
        ..Options::default()
    });
    let tagged_bug = |summary: &str, file: &str| {
        let patch = env
            .patches(&[Change {
                author: "Alice <alice@example.com>",
                subject: summary,
                files: &[(file, "x\n")],
            }])
            .remove(0);
        let bug = new_bug(&sim, summary);
        attach(&sim, bug, "fix.patch", &patch, false);
        sim.set_whiteboard(bug, "[autoland-try]", "alice@example.com");
        bug
    };
    let serve = |name: &str| {
        let port = free_port();
        let data = env.path().join(format!("data-{name}"));
        let child = env.spawn_autoland(
            &[
                "serve",
                "--no-pushers",
                "--name",
                name,
                "--data-dir",
                data.to_str().unwrap(),
            ],
            port,
        );
        (Killed(child), format!("http://127.0.0.1:{port}"))
    };
    // The pushers (which also read bugs, to gather their patches) run in a worker, so
    // every call from a serve process is the poller's or the reporter's.
    let _worker = spawn_worker(&env, "w");
    let comments_by_autoland = |bug: i64| autoland_comments(&sim, bug).len();
    let (mut a, a_base) = serve("serve-a");
    env.wait_serving(&a_base, Duration::from_secs(30)).await;
    let a_api = Api::new(&a_base, &env.token);
    a_api
        .wait_status(Duration::from_secs(30), "serve-a leads", |s| {
            leader_state(s, "serve-a").as_deref() == Some("running")
        })
        .await;
    let (_b, b_base) = serve("serve-b");
    env.wait_serving(&b_base, Duration::from_secs(30)).await;
    let b_api = Api::new(&b_base, &env.token);
    b_api
        .wait_status(Duration::from_secs(30), "serve-b stands by", |s| {
            leader_state(s, "serve-b").as_deref() == Some("standby")
                && s["modules"].as_array().unwrap().iter().any(|m| {
                    m["module"] == "bugzilla-poller"
                        && m["instance"] == "serve-b"
                        && m["state"] == "standby"
                })
        })
        .await;

    // A tagged bug is taken once and reported on once, by the leader only.
    let first = tagged_bug("Bug - first", "src/first.txt");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while comments_by_autoland(first) < 3 || sim.whiteboard(first).unwrap_or_default() != "" {
        assert!(
            std::time::Instant::now() < deadline,
            "first bug not handled: {:?}",
            sim.comments(first)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = sim.request_log();
    let agents = |log: &[autoland::simulator::bugzilla::LoggedRequest], name: &str| {
        log.iter()
            .filter(|r| r.user_agent.ends_with(&format!("({name})")))
            .count()
    };
    assert!(agents(&log, "serve-a") > 0, "{log:?}");
    assert_eq!(agents(&log, "serve-b"), 0, "the standby called Bugzilla");

    // Kill the leader: the standby takes over and handles the next bug.
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let before_kill = sim.request_log().len();
    b_api
        .wait_status(Duration::from_secs(30), "serve-b takes over", |s| {
            leader_state(s, "serve-b").as_deref() == Some("running")
        })
        .await;
    let second = tagged_bug("Bug - second", "src/second.txt");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while comments_by_autoland(second) < 3 || sim.whiteboard(second).unwrap_or_default() != "" {
        assert!(
            std::time::Instant::now() < deadline,
            "second bug not handled after the handover: {:?}\n{}",
            sim.comments(second),
            env.process_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = sim.request_log();
    assert_eq!(
        agents(&log[..before_kill], "serve-b"),
        0,
        "both led at once"
    );
    assert_eq!(
        agents(&log[before_kill..], "serve-a"),
        0,
        "the dead leader called"
    );
    assert!(agents(&log[before_kill..], "serve-b") > 0);
    // Each bug was commented on exactly as one process would.
    assert_eq!(comments_by_autoland(first), 3, "{:?}", sim.comments(first));
    assert_eq!(
        comments_by_autoland(second),
        3,
        "{:?}",
        sim.comments(second)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_longer_than_the_lease_keep_it_by_renewing() {
    const N: usize = 4;
    // CI takes three leases' time; a worker that did not renew would lose the run (and
    // the request) to the other worker, and the CI would run twice.
    let env = Env::new(Options {
        postgres: true,
        ci_command: "sleep 3".to_owned(),
        lease_seconds: 1,
        ..Options::default()
    });
    let repos = add_repositories(&env, 2, "sleep 3");
    let db = observed_database(&env).await;
    let patches = patches_for(&env, N);
    let (serve, workers, api) = start_fleet(&env, &db, &["w1", "w2"]).await;
    submit_round_robin(&api, &repos, &patches).await;
    let rows = wait_all_finished(&db, N as i64, Duration::from_secs(120)).await;
    assert_landed_exactly_once(&env, &repos, &rows);
    let reclaims: Vec<(String, i64, String, String)> = sqlx::query_as(
        "SELECT tbl, row_id, owner, prev_owner FROM claim_log WHERE prev_owner IS NOT NULL",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(reclaims, vec![], "a live worker lost a lease");
    let runs: Vec<i64> = sqlx::query_scalar("SELECT attempts FROM ci_runs ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(runs, vec![1; N], "each CI run ran once");
    db.close().await;
    drop(workers);
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stepping_down_lets_its_singletons_finish_before_another_leads() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use autoland::runtime;
    use autoland::service;
    use tokio_util::sync::CancellationToken;

    let env = Env::new(Options {
        postgres: true,
        ..Options::default()
    });
    // A singleton that takes 1.5 s to finish what it is doing once told to stop (a
    // reporter in the middle of a delivery), counting how many run at once.
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let start = async |name: &str| {
        let ctx = Arc::new(service::context(env.config()).await.unwrap());
        let shutdown = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        runtime::supervise(
            &mut tasks,
            ctx.clone(),
            shutdown.clone(),
            "leader".to_owned(),
            runtime::lead,
        );
        let (running, most, started) = (running.clone(), most.clone(), started.clone());
        runtime::supervise(
            &mut tasks,
            ctx.clone(),
            shutdown.clone(),
            format!("probe-{name}"),
            runtime::singleton(move |_ctx, _status, stop: CancellationToken| {
                let (running, most, started) = (running.clone(), most.clone(), started.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    stop.cancelled().await;
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                }
            }),
        );
        (ctx, shutdown, tasks)
    };
    async fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (a, a_stop, mut a_tasks) = start("a").await;
    wait_until("a leads", || a.is_leader()).await;
    let (b, b_stop, mut b_tasks) = start("b").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!b.is_leader(), "two leaders");
    assert_eq!(started.load(Ordering::SeqCst), 1);

    // A shuts down gracefully: B leads only after A's singleton has finished.
    a_stop.cancel();
    wait_until("b leads", || b.is_leader()).await;
    wait_until("b's singleton runs", || started.load(Ordering::SeqCst) == 2).await;
    assert_eq!(most.load(Ordering::SeqCst), 1, "singletons overlapped");
    while a_tasks.join_next().await.is_some() {}
    b_stop.cancel();
    while b_tasks.join_next().await.is_some() {}
    a.store.close().await;
    b.store.close().await;
}

/// The landing gate with workers on PostgreSQL: the leading `serve` runs the gate, the
/// workers' CI runners test its candidates. The serve is killed while a window is under
/// test; a new one takes the gate over; every request lands once, exactly as tested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_test_the_gates_candidates_and_a_new_serve_takes_the_gate_over() {
    let hold_dir = tempfile::tempdir().unwrap();
    let hold = hold_dir.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    let env = Env::new(Options {
        postgres: true,
        ci_command: format!(
            "while [ -e '{}' ]; do sleep 0.05; done; sh test.sh",
            hold.display()
        ),
        central_extra: "gate = \"speculative\"\nmax_window = 4\nbatch_size = 1".to_owned(),
        ..Options::default()
    });
    let db = observed_database(&env).await;
    let patches = patches_for(&env, 4);
    let (serve, _workers, api) = start_fleet(&env, &db, &["w1", "w2"]).await;
    let mut ids = Vec::new();
    for patch in &patches {
        let id = api
            .submit(std::slice::from_ref(patch), &["central"], json!({}))
            .await;
        api.wait_event(id, Duration::from_secs(60), "entered_gate")
            .await;
        ids.push(id);
    }
    api.wait_status(Duration::from_secs(60), "a window of four", |o| {
        o["gates"][0]["rows"].as_array().is_some_and(|rows| {
            rows.iter()
                .filter(|r| r["candidate_state"] == "testing")
                .count()
                == 4
        })
    })
    .await;
    drop(serve);
    let port = free_port();
    let _serve = Killed(env.spawn_autoland(&["serve", "--no-pushers"], port));
    let base = format!("http://127.0.0.1:{port}");
    env.wait_serving(&base, Duration::from_secs(30)).await;
    let api = Api::new(&base, &env.token);
    std::fs::remove_file(&hold).unwrap();
    for id in &ids {
        let detail = api.wait_terminal(*id, Duration::from_secs(90)).await;
        assert_eq!(
            detail["request"]["stage"],
            "landed",
            "{detail:#}\n{}",
            env.process_logs()
        );
        // The requests land first, then their candidate is marked landed: wait for both.
        let detail = api
            .wait_for(*id, Duration::from_secs(30), |d| {
                d["candidates"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["state"] == "landed"))
            })
            .await;
        let uid = detail["request"]["uid"].as_str().unwrap();
        assert_eq!(env.commits_with_trailer(&env.central, uid), 1);
        // Landed exactly as tested: its candidate's revision.
        let candidate = detail["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["state"] == "landed")
            .cloned()
            .unwrap_or_else(|| panic!("{detail:#}"));
        assert_eq!(
            detail["request"]["destinations"][0]["landed_revision"], candidate["revision"],
            "{detail:#}"
        );
        // The candidates' CI ran in the workers.
        let ran_by: Vec<String> = detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "ci_started")
            .map(|e| e["actor"].as_str().unwrap_or("").to_owned())
            .collect();
        assert!(
            !ran_by.is_empty() && ran_by.iter().all(|a| a.contains("w1") || a.contains("w2")),
            "{ran_by:?}"
        );
    }
    let subjects: Vec<String> = env.central_log().into_iter().map(|(_, s)| s).collect();
    assert_eq!(subjects.len(), 5, "{subjects:?}");
}
