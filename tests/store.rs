//! The store on both backends: migrations on an empty database, the transition rules,
//! the event log, and claims that never hand one request to two workers.

use std::collections::HashSet;

use autoland::patch::PatchFormat;
use autoland::request::{FailureCategory, NewRequest, Patch, Stage, Transition};
use autoland::store::{
    Backend, Effects, JobUpdate, ListFilter, NewCiRun, NewPush, PushKind, Store, StoreError,
};

/// The PostgreSQL server to test against (the test script starts it).
fn pg_admin_url() -> String {
    std::env::var("AUTOLAND_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh, uniquely named PostgreSQL database, dropped on drop.
struct PgDatabase {
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create() -> PgDatabase {
        use sqlx::Connection as _;
        let admin = pg_admin_url();
        let name = format!("autoland_test_{}", hex::encode(rand::random::<[u8; 6]>()));
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL is reachable (scripts/test.sh starts it)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        PgDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }

    async fn drop_it(self, store: Store) {
        use sqlx::Connection as _;
        store.close().await;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&pg_admin_url()).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
        }
    }
}

fn new_request(requester: &str) -> NewRequest {
    NewRequest {
        source: "api".into(),
        bug: Some(42),
        requester: requester.into(),
        try_repo: "try".into(),
        base_repo: "central".into(),
        destinations: vec!["central".into()],
        try_syntax: Some("-b o".into()),
        patches: vec![Patch {
            position: 1,
            name: "a.patch".into(),
            format: PatchFormat::PlainDiff,
            author: "Alice <alice@example.com>".into(),
            submitter: None,
            date: None,
            message: "Bug 42 - do it".into(),
            diff: "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n".into(),
            files: vec!["x".into()],
            reviews: vec![],
        }],
        attachment_ids: vec![],
    }
}

/// A job attempted `attempts` times in run `run`.
async fn attempted(store: &Store, run: i64, attempts: i64) {
    for attempt in 1..=attempts {
        let update = JobUpdate {
            name: "build".into(),
            attempt,
            state: None,
            result: None,
            raw_result: None,
            external_id: None,
            log_url: None,
            duration_ms: None,
            summary: None,
        };
        store.record_ci_job(run, &update).await.unwrap();
    }
}

/// A request's retry quota counts its try runs' retries; a run of a landed tip, filed
/// under the same request, counts its push's retries and uses none of the request's.
async fn retries_are_counted_per_request_and_per_push(
    store: &Store,
    try_run: &autoland::store::CiRun,
) {
    attempted(store, try_run.id, 2).await;
    store
        .sheriff_record_pushes(
            "central",
            &[NewPush {
                tip: "def".into(),
                base: None,
                commits: vec!["def".into()],
                kind: PushKind::Landing,
                request_id: Some(try_run.request_id),
                backout_id: None,
            }],
        )
        .await
        .unwrap();
    let push = store.sheriff_pushes_after("central", 0).await.unwrap()[0].clone();
    let tip_run = store
        .sheriff_queue_run(&push, try_run.request_id, "refs/heads/main", "local")
        .await
        .unwrap();
    attempted(store, tip_run, 3).await;
    let tip_run = store.ci_run(tip_run).await.unwrap().unwrap();
    assert_eq!(store.ci_retries_for(try_run).await.unwrap(), 1);
    assert_eq!(store.ci_retries_for(&tip_run).await.unwrap(), 2);
}

async fn exercise(store: &Store) {
    let id = store
        .insert_request(&new_request("alice@example.com"), "test", &[])
        .await
        .unwrap();
    let request = store.request(id).await.unwrap().unwrap();
    assert_eq!(request.stage, Stage::Received);
    assert_eq!(request.destinations.len(), 1);
    assert_eq!(store.patches(id).await.unwrap()[0].files, ["x"]);

    // Only one of many concurrent claims wins.
    let mut claims = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        claims.push(tokio::spawn(async move {
            store.claim_request(&format!("worker-{n}"), 60_000).await
        }));
    }
    let mut winners = 0;
    for claim in claims {
        if claim.await.unwrap().unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one worker may hold the request");
    assert!(store.claim_request("late", 60_000).await.unwrap().is_none());

    // Transitions go through the state machine; a stale `from` is refused.
    store
        .transition(
            id,
            Stage::Received,
            &Transition::StartGathering,
            "t",
            "go",
            Effects::default(),
        )
        .await
        .unwrap();
    let stale = store
        .transition(
            id,
            Stage::Received,
            &Transition::StartGathering,
            "t",
            "again",
            Effects::default(),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::StageChanged { .. })),
        "{stale:?}"
    );
    let illegal = store
        .transition(
            id,
            Stage::Gathering,
            &Transition::PushedToTry,
            "t",
            "skip",
            Effects::default(),
        )
        .await;
    assert!(
        matches!(illegal, Err(StoreError::Illegal(_))),
        "{illegal:?}"
    );
    for (from, t) in [
        (Stage::Gathering, Transition::Gathered),
        (Stage::Authorizing, Transition::Authorized),
        (Stage::Applying, Transition::Applied),
    ] {
        store
            .transition(id, from, &t, "t", "ok", Effects::default())
            .await
            .unwrap();
    }
    store
        .transition(
            id,
            Stage::PushingTry,
            &Transition::PushedToTry,
            "t",
            "pushed",
            Effects {
                try_revision: Some("abc".into()),
                ci_run: Some(NewCiRun {
                    repo: "try".into(),
                    revision: "abc".into(),
                    ref_name: "refs/heads/autoland/x".into(),
                    ci: "local".into(),
                    content_key: None,
                    reuse_within_ms: 0,
                }),
                ..Effects::default()
            },
        )
        .await
        .unwrap();
    let run = store
        .claim_ci_run("runner", 60_000)
        .await
        .unwrap()
        .expect("queued run");
    assert_eq!(run.revision, "abc");
    assert!(
        store
            .claim_ci_run("runner-2", 60_000)
            .await
            .unwrap()
            .is_none()
    );
    retries_are_counted_per_request_and_per_push(store, &run).await;
    store
        .transition(
            id,
            Stage::AwaitingTry,
            &Transition::Fail(FailureCategory::TryFailed),
            "t",
            "tests failed",
            Effects::default(),
        )
        .await
        .unwrap();
    let request = store.request(id).await.unwrap().unwrap();
    assert_eq!(request.stage, Stage::Failed);
    assert_eq!(request.failure, Some(FailureCategory::TryFailed));
    assert_eq!(request.failure_detail.as_deref(), Some("tests failed"));
    assert_eq!(request.try_revision.as_deref(), Some("abc"));

    let events = store.events(id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "received",
            "gathering_started",
            "gathered",
            "authorized",
            "applied",
            "pushed_to_try",
            "failed"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        store
            .list_requests(ListFilter::Open, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_requests(ListFilter::All, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // Listing brings every request's destinations along (in one query).
    let listed = store.list_requests(ListFilter::All, 10).await.unwrap();
    assert_eq!(listed[0].destinations.len(), 1);
    assert_eq!(listed[0].destinations[0].repo, "central");

    // Many requests get distinct uids.
    let mut uids = HashSet::new();
    for _ in 0..20 {
        let id = store
            .insert_request(&new_request("alice@example.com"), "t", &[])
            .await
            .unwrap();
        uids.insert(store.request(id).await.unwrap().unwrap().uid);
    }
    assert_eq!(uids.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_keeps_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    exercise(&store).await;
    // Migrating again is a no-op.
    store.migrate().await.unwrap();
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_the_rules() {
    let db = PgDatabase::create().await;
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    exercise(&store).await;
    store.migrate().await.unwrap();
    db.drop_it(store).await;
}

#[tokio::test]
async fn unsupported_urls_are_refused_without_leaking_passwords() {
    let err = Store::connect("mysql://root:secret@localhost/x")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unsupported database URL"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}
