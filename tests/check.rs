//! `autoland check`, the Nagios/Icinga plugin: the real binary against a database written
//! through the library, with its exit status, its one status line and its perfdata.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use autoland::request::NewRequest;
use autoland::store::{Heartbeat, Store, now_ms};

/// A scratch SQLite database and a configuration file naming it.
struct Fixture {
    _dir: tempfile::TempDir,
    config: PathBuf,
    store: Store,
}

/// A configuration the server could only load with its secrets (a token variable and the
/// Bugzilla key, both unset here): the check must not need them.
fn config_text(database_url: &str) -> String {
    format!(
        "database_url = \"{database_url}\"\n\
         listen = \"127.0.0.1:9\"\n\n\
         [[tokens]]\n\
         name = \"ext\"\n\
         user = \"ext@example.com\"\n\
         env = \"AUTOLAND_CHECK_TEST_UNSET_TOKEN\"\n\n\
         [bugzilla]\n\
         url = \"https://bugzilla.example.com\"\n\
         api_key_env = \"AUTOLAND_CHECK_TEST_UNSET_KEY\"\n"
    )
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("autoland.db");
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let store = Store::connect(&url).await.expect("create the database");
        let config = write_config(dir.path(), &config_text(&url));
        Fixture {
            _dir: dir,
            config,
            store,
        }
    }

    async fn beat(&self, module: &str, state: &str, detail: &str, age: Duration) {
        let beat = Heartbeat {
            module: module.to_owned(),
            instance: "host-a:4242".to_owned(),
            host: "host-a".to_owned(),
            pid: 4242,
            state: state.to_owned(),
            detail: detail.to_owned(),
            restarts: 0,
            started_at: now_ms() - 3_600_000,
            beat_at: 0,
        };
        let at = now_ms() - i64::try_from(age.as_millis()).unwrap();
        self.store.heartbeat_at(&beat, at).await.unwrap();
    }

    async fn request(&self) {
        let new = NewRequest {
            source: "api".into(),
            bug: Some(42),
            requester: "alice@example.com".into(),
            try_repo: "try".into(),
            base_repo: "central".into(),
            destinations: vec!["central".into()],
            try_syntax: None,
            patches: vec![],
            attachment_ids: vec![],
        };
        self.store.insert_request(&new, "test", &[]).await.unwrap();
    }

    fn check(&self, args: &[&str]) -> Checked {
        let config = self.config.to_str().unwrap();
        let mut all = vec!["--config", config];
        all.extend_from_slice(args);
        check(&all)
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("autoland.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What the plugin did.
struct Checked {
    code: i32,
    stdout: String,
    output: Output,
}

impl Checked {
    /// The one status line (fails if there is not exactly one).
    fn line(&self) -> &str {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "exactly one status line; stdout: {:?} stderr: {}",
            self.stdout,
            String::from_utf8_lossy(&self.output.stderr)
        );
        lines[0]
    }
}

fn check(args: &[&str]) -> Checked {
    let output = Command::new(env!("CARGO_BIN_EXE_autoland"))
        .arg("check")
        .args(args)
        .env_remove("AUTOLAND_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run autoland check");
    Checked {
        code: output.status.code().expect("exited"),
        stdout: String::from_utf8(output.stdout.clone()).expect("utf-8 output"),
        output,
    }
}

/// The number right after `prefix` in `text`.
fn number_after(text: &str, prefix: &str) -> i64 {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} in {text}"))
        + prefix.len();
    text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("a number after {prefix} in {text}"))
}

#[tokio::test]
async fn healthy_is_ok_with_perfdata() {
    let f = Fixture::new().await;
    f.beat("ci-runner", "running", "idle", Duration::ZERO).await;
    f.beat("pusher-1", "running", "waiting for work", Duration::ZERO)
        .await;
    f.request().await;
    f.request().await;
    let out = f.check(&[]);
    let line = out.line();
    println!("{line}");
    assert_eq!(out.code, 0, "{line}");
    assert!(
        line.starts_with("AUTOLAND OK - 2 modules ok; queue 2; oldest "),
        "{line}"
    );
    assert!(line.contains(" | 'queue'=2;;;0 'oldest_age'="), "{line}");
    let hb = number_after(line, "'hb_pusher-1'=");
    assert!(hb <= 5, "{line}");
    assert!(
        line.contains(&format!("'hb_pusher-1'={hb}s;15;30;0")),
        "{line}"
    );
    assert!(line.contains("'hb_ci-runner'="), "{line}");

    // -v: the same status line, then one line per module instance and the stages.
    let verbose = f.check(&["-v"]);
    assert_eq!(verbose.code, 0);
    let lines: Vec<&str> = verbose.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", verbose.stdout);
    assert!(lines[0].starts_with("AUTOLAND OK - "));
    assert!(lines[1].starts_with("ci-runner host-a:4242 (pid 4242 on host-a): running"));
    assert_eq!(lines[3], "requests by stage: received 2");
}

#[tokio::test]
async fn a_stale_heartbeat_is_critical() {
    let f = Fixture::new().await;
    f.beat("ci-runner", "running", "idle", Duration::ZERO).await;
    f.beat("pusher-1", "running", "pushing", Duration::from_secs(94))
        .await;
    f.request().await;
    let out = f.check(&[]);
    let line = out.line();
    println!("{line}");
    assert_eq!(out.code, 2, "{line}");
    assert!(
        line.starts_with("AUTOLAND CRITICAL - pusher-1 heartbeat "),
        "what is wrong comes first: {line}"
    );
    let age = number_after(line, "pusher-1 heartbeat ");
    assert!((94..110).contains(&age), "{line}");
    assert!(
        line.contains(&format!(
            "pusher-1 heartbeat {age}s old (crit 30); 1 of 2 modules ok; queue 1; oldest "
        )),
        "{line}"
    );
    assert!(
        line.contains(&format!("'hb_pusher-1'={age}s;15;30;0")),
        "{line}"
    );
    assert!(line.contains("| 'queue'=1;;;0 'oldest_age'="), "{line}");

    // Thresholds are options: with a wider critical range it is only a warning.
    let out = f.check(&["--heartbeat-warning", "60", "--heartbeat-critical", "600"]);
    assert_eq!(out.code, 1, "{}", out.line());
    assert!(out.line().contains("old (warn 60)"), "{}", out.line());
}

#[tokio::test]
async fn a_degraded_module_is_a_warning_with_its_reason() {
    let f = Fixture::new().await;
    f.beat(
        "bugzilla-poller",
        "degraded",
        "Bugzilla rejects Autoland's API key (code 306): check bugzilla.api_key_env",
        Duration::ZERO,
    )
    .await;
    f.beat("pusher-1", "running", "idle", Duration::ZERO).await;
    let out = f.check(&[]);
    let line = out.line();
    assert_eq!(out.code, 1, "{line}");
    assert!(
        line.starts_with(
            "AUTOLAND WARNING - bugzilla-poller degraded: Bugzilla rejects Autoland's API key \
             (code 306): check bugzilla.api_key_env; 1 of 2 modules ok; queue 0 | "
        ),
        "{line}"
    );
}

#[tokio::test]
async fn a_stopped_module_is_a_warning() {
    let f = Fixture::new().await;
    f.beat("pusher-1", "stopped", "shut down", Duration::from_secs(600))
        .await;
    f.beat("result-watcher", "running", "idle", Duration::ZERO)
        .await;
    let out = f.check(&[]);
    assert_eq!(out.code, 1, "{}", out.line());
    assert!(
        out.line()
            .starts_with("AUTOLAND WARNING - pusher-1 stopped "),
        "{}",
        out.line()
    );
}

#[tokio::test]
async fn every_module_stopped_is_critical() {
    let f = Fixture::new().await;
    for module in ["pusher-1", "result-watcher", "ci-runner"] {
        f.beat(module, "stopped", "shut down", Duration::from_secs(60))
            .await;
    }
    let out = f.check(&[]);
    assert_eq!(out.code, 2, "{}", out.line());
    assert!(
        out.line()
            .starts_with("AUTOLAND CRITICAL - every module is stopped: nothing can land; ")
            && out.line().contains("0 of 3 modules ok"),
        "{}",
        out.line()
    );
}

#[tokio::test]
async fn no_heartbeat_at_all_is_critical() {
    let f = Fixture::new().await;
    let out = f.check(&[]);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.line(),
        "AUTOLAND CRITICAL - no module has ever reported; queue 0 | 'queue'=0;;;0 \
         'oldest_age'=0s;;;0"
    );
}

#[tokio::test]
async fn queue_thresholds_and_the_config_from_the_environment() {
    let f = Fixture::new().await;
    f.beat("pusher-1", "running", "idle", Duration::ZERO).await;
    f.request().await;
    let output = Command::new(env!("CARGO_BIN_EXE_autoland"))
        .args(["check", "--queue-warning", "0", "--queue-critical", "5"])
        .env("AUTOLAND_CONFIG", &f.config)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("AUTOLAND WARNING - queue 1 (warn 0); 1 module ok; oldest "),
        "{stdout}"
    );
    assert!(stdout.contains("'queue'=1;0;5;0"), "{stdout}");
}

#[test]
fn an_unreachable_database_is_critical_and_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &config_text("postgres://postgres:hunter2@127.0.0.1:1/none"),
    );
    let out = check(&["--config", config.to_str().unwrap()]);
    let line = out.line();
    println!("{line}");
    assert_eq!(out.code, 2, "{line}");
    assert!(
        line.starts_with(
            "AUTOLAND CRITICAL - cannot read database postgres://postgres:***@127.0.0.1:1/none: "
        ),
        "{line}"
    );
    assert!(!out.stdout.contains("hunter2"), "{line}");
    assert!(!String::from_utf8_lossy(&out.output.stderr).contains("hunter2"));
}

#[test]
fn a_missing_sqlite_file_is_critical_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nowhere.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let config = write_config(dir.path(), &config_text(&url));
    let out = check(&["--config", config.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.line());
    assert!(
        out.line()
            .starts_with("AUTOLAND CRITICAL - cannot read database sqlite://"),
        "{}",
        out.line()
    );
    assert!(!db.exists(), "the check must not create the database");
}

#[test]
fn a_database_that_does_not_answer_times_out_as_critical() {
    // Accepts connections (the kernel does) but never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &config_text(&format!("postgres://postgres@127.0.0.1:{port}/none")),
    );
    let started = Instant::now();
    let out = check(&["--config", config.to_str().unwrap(), "--timeout", "1"]);
    assert_eq!(out.code, 2, "{}", out.line());
    assert_eq!(
        out.line(),
        format!(
            "AUTOLAND CRITICAL - database postgres://postgres@127.0.0.1:{port}/none did not answer within 1s"
        )
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    drop(silent);
}

#[tokio::test]
async fn usage_and_configuration_errors_are_unknown() {
    let f = Fixture::new().await;
    let out = f.check(&["--queue-warning", "abc"]);
    assert_eq!(out.code, 3);
    assert!(
        out.line()
            .starts_with("AUTOLAND UNKNOWN - --queue-warning: invalid range `abc`"),
        "{}",
        out.line()
    );
    for args in [
        &["--heartbeat-critical", "30:10"][..],
        &["--timeout", "0"],
        &["-w", "10", "-c", "20"],
        &["--bogus"],
    ] {
        let out = f.check(args);
        assert_eq!(out.code, 3, "{args:?}");
        assert!(out.line().starts_with("AUTOLAND UNKNOWN - "), "{args:?}");
    }

    let out = check(&[]);
    assert_eq!(out.code, 3);
    assert!(out.line().contains("--config FILE or set AUTOLAND_CONFIG"));

    let dir = tempfile::tempdir().unwrap();
    let bad = write_config(
        dir.path(),
        "database_url = \"postgres://u:hunter2@db/x\" garbage\n",
    );
    let out = check(&["--config", bad.to_str().unwrap()]);
    assert_eq!(out.code, 3, "{}", out.line());
    assert!(
        out.line().contains("is invalid at line 1"),
        "{}",
        out.line()
    );
    assert!(!out.stdout.contains("hunter2"), "{}", out.line());

    let out = check(&["--config", "/nonexistent/autoland.toml"]);
    assert_eq!(out.code, 3);
    assert!(
        out.line()
            .starts_with("AUTOLAND UNKNOWN - cannot read configuration file /nonexistent/")
    );
}

/// The PostgreSQL server to test against (scripts/test.sh starts it).
fn pg_admin_url() -> String {
    std::env::var("AUTOLAND_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[tokio::test]
async fn the_check_reads_postgresql_too() {
    use sqlx::Connection as _;
    let admin = pg_admin_url();
    let name = format!("autoland_check_{}", hex::encode(rand::random::<[u8; 6]>()));
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL is reachable (scripts/test.sh starts it)");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    let url = format!("{base}/{name}");

    let store = Store::connect(&url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture {
        config: write_config(dir.path(), &config_text(&url)),
        _dir: dir,
        store,
    };
    f.beat("pusher-1", "running", "idle", Duration::ZERO).await;
    f.request().await;
    let out = f.check(&["--age-critical", "3600"]);
    let healthy = out.line().to_owned();
    f.beat("pusher-1", "running", "idle", Duration::from_secs(40))
        .await;
    let stale = f.check(&[]);

    f.store.close().await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await;

    assert_eq!(out.code, 0, "{healthy}");
    assert!(
        healthy.starts_with("AUTOLAND OK - 1 module ok; queue 1; oldest "),
        "{healthy}"
    );
    assert!(healthy.contains("'oldest_age'="), "{healthy}");
    assert!(healthy.contains(";;3600;0"), "{healthy}");
    assert_eq!(stale.code, 2, "{}", stale.line());
    assert!(
        stale
            .line()
            .starts_with("AUTOLAND CRITICAL - pusher-1 heartbeat 4")
    );
}
