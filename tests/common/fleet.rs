//! Several processes on one PostgreSQL database: more central/try pairs in an [`Env`]'s
//! configuration, `autoland worker` processes, triggers that log claims and insertions with
//! the database clock, and waits on the database. Shared by `tests/workers.rs` and
//! `benches/workers.rs`.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Api, Change, Env, free_port, git};

/// A process killed (SIGKILL) and reaped when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (try name, central name, central path) of one destination pair.
pub type RepoPair = (String, String, PathBuf);

/// Adds central2..`total` / try2..`total` next to the environment's own pair (git only),
/// each central a clone of `central` and each try empty, the new try repositories running
/// `ci_command`. Returns all `total` pairs, the environment's own first.
pub fn add_repositories(env: &Env, total: usize, ci_command: &str) -> Vec<RepoPair> {
    let mut repos = vec![("try".to_owned(), "central".to_owned(), env.central.clone())];
    let mut extra = String::new();
    let ci = ci_command.replace('\\', "\\\\").replace('"', "\\\"");
    for k in 2..=total {
        let central = env.path().join(format!("central{k}.git"));
        let try_repo = env.path().join(format!("try{k}.git"));
        git(
            env.path(),
            &[
                "clone",
                "--quiet",
                "--bare",
                env.central.to_str().unwrap(),
                central.to_str().unwrap(),
            ],
        );
        std::fs::create_dir_all(&try_repo).unwrap();
        git(
            &try_repo,
            &["init", "--quiet", "--bare", "--initial-branch=main"],
        );
        extra.push_str(&format!(
            "\n[[repositories]]\nname = \"central{k}\"\nkind = \"git\"\npull_url = \"{}\"\n\
             level = \"scm_level_3\"\ntry_repo = \"try{k}\"\n\n[[repositories]]\nname = \"try{k}\"\nkind = \"git\"\n\
             pull_url = \"{}\"\nlevel = \"scm_level_1\"\ntry = true\nbase = \"central{k}\"\n\
             ci_command = \"{ci}\"\nci_timeout_seconds = 60\n",
            central.display(),
            try_repo.display()
        ));
        repos.push((format!("try{k}"), format!("central{k}"), central));
    }
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    // With several try repositories, each central names its own.
    let mut text = text.replacen(
        "name = \"central\"\n",
        "name = \"central\"\ntry_repo = \"try\"\n",
        1,
    );
    text.push_str(&extra);
    std::fs::write(&env.config_path, text).unwrap();
    repos
}

/// Adds a top-level line (such as `listen_notify = false`) to the environment's
/// configuration, before its first `[table]`.
pub fn add_top_level_config(env: &Env, line: &str) {
    const ANCHOR: &str = "listen = \"127.0.0.1:0\"\n";
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    assert!(
        text.contains(ANCHOR),
        "no `{}` line to add after",
        ANCHOR.trim()
    );
    let text = text.replacen(ANCHOR, &format!("{ANCHOR}{line}\n"), 1);
    std::fs::write(&env.config_path, text).unwrap();
}

/// Sets `[timeouts] poll_interval_ms` (the environment's default is 50).
pub fn set_poll_interval(env: &Env, ms: u64) {
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    let (before, after) = text
        .split_once("poll_interval_ms = ")
        .expect("the configuration sets poll_interval_ms");
    let rest = after.split_once('\n').map(|(_, rest)| rest).unwrap_or("");
    let text = format!("{before}poll_interval_ms = {ms}\n{rest}");
    std::fs::write(&env.config_path, text).unwrap();
}

/// The environment's PostgreSQL database URL.
pub fn database_url(env: &Env) -> String {
    format!(
        "postgres://postgres@127.0.0.1:5432/{}",
        env.postgres_database
            .as_ref()
            .expect("a PostgreSQL environment")
    )
}

/// Runs `autoland migrate` on the environment's configuration; returns what it printed.
pub fn migrate(env: &Env) -> String {
    let migrate = Command::new(env!("CARGO_BIN_EXE_autoland"))
        .args(["migrate", "--config", env.config_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    String::from_utf8_lossy(&migrate.stdout).into_owned()
}

/// Starts `serve --no-pushers` and the named workers, and waits until they are up and
/// listening; returns them (killed when dropped) and a client of the serve.
pub async fn start_fleet(
    env: &Env,
    db: &sqlx::PgPool,
    names: &[impl AsRef<str>],
) -> (Killed, Vec<Killed>, Api) {
    let port = free_port();
    let serve = Killed(env.spawn_autoland(&["serve", "--no-pushers"], port));
    let workers: Vec<Killed> = names
        .iter()
        .map(|n| spawn_worker(env, n.as_ref()))
        .collect();
    let base = format!("http://127.0.0.1:{port}");
    env.wait_serving(&base, Duration::from_secs(30)).await;
    let refs: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    wait_workers_started(db, &refs, Duration::from_secs(30)).await;
    // Give the wake-listeners time to connect and LISTEN.
    tokio::time::sleep(Duration::from_secs(1)).await;
    (serve, workers, Api::new(&base, &env.token))
}

/// Prepares the database (`autoland migrate`) and records, with triggers the processes
/// under test know nothing of:
///
/// - in `claim_log`, every change of a lease's owner: who took it, when (database clock,
///   `at_ms` in milliseconds and `at_us` in microseconds), and whose live or expired lease
///   it replaced (`prev_owner`, `prev_until`);
/// - in `created_log`, when each request row was inserted (`at_us`, database clock).
pub async fn observed_database(env: &Env) -> sqlx::PgPool {
    migrate(env);
    let db = sqlx::PgPool::connect(&database_url(env)).await.unwrap();
    for statement in [
        "CREATE TABLE claim_log (tbl TEXT NOT NULL, row_id BIGINT NOT NULL, owner TEXT NOT NULL, \
         at_ms BIGINT NOT NULL, prev_owner TEXT, prev_until BIGINT, at_us BIGINT NOT NULL)",
        "CREATE FUNCTION log_claim() RETURNS trigger AS $$ \
         DECLARE now_s DOUBLE PRECISION := EXTRACT(EPOCH FROM clock_timestamp()); BEGIN \
           IF NEW.lease_owner IS NOT NULL AND NEW.lease_owner IS DISTINCT FROM OLD.lease_owner THEN \
             INSERT INTO claim_log VALUES (TG_TABLE_NAME, NEW.id, NEW.lease_owner, \
               CAST(now_s * 1000 AS BIGINT), OLD.lease_owner, OLD.lease_until, \
               CAST(now_s * 1000000 AS BIGINT)); \
           END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER log_request_claims AFTER UPDATE ON requests \
         FOR EACH ROW EXECUTE FUNCTION log_claim()",
        "CREATE TRIGGER log_ci_claims AFTER UPDATE ON ci_runs \
         FOR EACH ROW EXECUTE FUNCTION log_claim()",
        "CREATE TABLE created_log (request_id BIGINT NOT NULL, at_us BIGINT NOT NULL)",
        "CREATE FUNCTION log_created() RETURNS trigger AS $$ BEGIN \
           INSERT INTO created_log VALUES (NEW.id, \
             CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)); \
           RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER log_request_inserts AFTER INSERT ON requests \
         FOR EACH ROW EXECUTE FUNCTION log_created()",
    ] {
        sqlx::query(statement).execute(&db).await.unwrap();
    }
    db
}

/// One patch per request, each adding its own file, made before anything runs.
pub fn patches_for(env: &Env, n: usize) -> Vec<String> {
    let files: Vec<(String, String)> = (0..n)
        .map(|i| (format!("src/request-{i}.txt"), format!("request {i}\n")))
        .collect();
    let subjects: Vec<String> = (0..n).map(|i| format!("Request {i}")).collect();
    (0..n)
        .map(|i| {
            env.patches(&[Change {
                author: "Alice <alice@example.com>",
                subject: &subjects[i],
                files: &[(files[i].0.as_str(), files[i].1.as_str())],
            }])
            .remove(0)
        })
        .collect()
}

/// Starts `autoland worker --name NAME` with a data directory of its own.
pub fn spawn_worker(env: &Env, name: &str) -> Killed {
    let data = env.path().join(format!("data-{name}"));
    Killed(env.spawn_autoland(
        &[
            "worker",
            "--name",
            name,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        free_port(),
    ))
}

/// Submits one request per patch, to [tryK, centralK], the pairs taken round-robin.
/// Returns the request ids.
pub async fn submit_round_robin(api: &Api, repos: &[RepoPair], patches: &[String]) -> Vec<i64> {
    let mut ids = Vec::with_capacity(patches.len());
    for (i, patch) in patches.iter().enumerate() {
        let (try_name, central_name, _) = &repos[i % repos.len()];
        ids.push(
            api.submit(
                std::slice::from_ref(patch),
                &[try_name.as_str(), central_name.as_str()],
                json!({}),
            )
            .await,
        );
    }
    ids
}

/// Waits until each named instance has written a heartbeat for its `pusher-1`.
pub async fn wait_workers_started(db: &sqlx::PgPool, names: &[&str], limit: Duration) {
    let deadline = Instant::now() + limit;
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    loop {
        let started: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM heartbeats WHERE module = 'pusher-1' AND instance = ANY($1)",
        )
        .bind(&names)
        .fetch_one(db)
        .await
        .unwrap();
        if started == names.len() as i64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {started} of the workers {names:?} started in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every request is finished, looking every `every`; returns
/// (id, uid, stage, destination) rows.
pub async fn wait_all_finished_every(
    db: &sqlx::PgPool,
    n: i64,
    limit: Duration,
    every: Duration,
) -> Vec<(i64, String, String, String)> {
    let deadline = Instant::now() + limit;
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM requests WHERE stage IN ('landed', 'failed', 'cancelled')",
        )
        .fetch_one(db)
        .await
        .unwrap();
        if done == n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {n} requests finished in {limit:?}"
        );
        tokio::time::sleep(every).await;
    }
    sqlx::query_as(
        "SELECT r.id, r.uid, r.stage, d.repo FROM requests r \
         JOIN request_destinations d ON d.request_id = r.id ORDER BY r.id",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

/// [`wait_all_finished_every`] 200 ms.
pub async fn wait_all_finished(
    db: &sqlx::PgPool,
    n: i64,
    limit: Duration,
) -> Vec<(i64, String, String, String)> {
    wait_all_finished_every(db, n, limit, Duration::from_millis(200)).await
}
