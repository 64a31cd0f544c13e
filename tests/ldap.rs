//! Commit permissions from a real OpenLDAP (Debian's slapd on a loopback port, the people
//! of tests/ldap/fixture.ldif): levels from groups, a higher level implying the lower
//! ones, denials that name who was looked up and what they hold, the Bugzilla login in its
//! own attribute, the static table layered over the directory, a cache that forgets a
//! removed member after its TTL, an outage that makes requests wait (never decide), a
//! refused bind at start-up, and StartTLS with a test CA.

mod common;

use std::process::Command;
use std::time::Duration;

use common::ldap::{BIND_PW, Slapd};
use common::{Api, Change, Env, Options};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

/// An environment whose levels come from `slapd` (the static table keeps one service
/// account, layered over the directory).
fn ldap_env(slapd: &Slapd, password: &str, extra: &str) -> Env {
    let env = Env::new(Options {
        users: vec![("release-bot@example.com".into(), "scm_level_3".into())],
        ..Options::default()
    });
    let password_file = env.path().join("ldap-password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let mut config = std::fs::read_to_string(&env.config_path).unwrap();
    config.push_str(&slapd.permissions_toml(&password_file, extra));
    std::fs::write(&env.config_path, config).unwrap();
    env
}

/// [`submit`], then waits until the request ended; returns its detail.
async fn ended(env: &Env, api: &Api, author: &str, requester: &str, to: &[&str]) -> Value {
    let id = submit(env, api, author, requester, to).await;
    api.wait_terminal(id, LIMIT).await
}

/// Submits, with the service token, one patch by `author` asked for by `requester`.
async fn submit(env: &Env, api: &Api, author: &str, requester: &str, to: &[&str]) -> i64 {
    // A file of its own for every submission, so that each patch changes something.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let file = format!("src/ldap-{n}.txt");
    let patches = env.patches(&[Change {
        author,
        subject: "Change from the directory tests",
        files: &[(&file, "x\n")],
    }]);
    let service = Api::new(&api.base, "test-token-service");
    service
        .submit(&patches, to, json!({ "requester": requester }))
        .await
}

fn decisions(detail: &Value) -> Vec<Value> {
    detail["permissions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn levels_come_from_the_directorys_groups() {
    let slapd = Slapd::start(false);
    let env = ldap_env(&slapd, BIND_PW, "");
    let running = env.start().await;
    let api = &running.api;

    // Alice, in scm_level_3: lands on try (scm_level_1: the higher level implies it) and
    // central; the request keeps who satisfied which level, from which group.
    let detail = ended(
        &env,
        api,
        "Alice <alice@example.com>",
        "alice@example.com",
        &["try", "central"],
    )
    .await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let on = decisions(&detail);
    let central = on
        .iter()
        .find(|d| d["repo"] == "central" && d["role"] == "patch 1 author")
        .unwrap_or_else(|| panic!("{detail:#}"));
    assert_eq!(central["identity"], "alice@example.com");
    assert_eq!(central["holds"], "scm_level_3");
    assert_eq!(
        central["source"],
        "LDAP group cn=scm_level_3,ou=groups,dc=example,dc=com"
    );
    assert!(central["decided_at"].as_i64().unwrap() > 0);
    let on_try = on
        .iter()
        .find(|d| d["repo"] == "try" && d["role"] == "patch 1 author")
        .unwrap();
    assert_eq!(on_try["level"], "scm_level_1");
    assert_eq!(on_try["holds"], "scm_level_3");
    let a = detail["request"]["id"].as_i64().unwrap();
    let page = reqwest::get(format!("{}/requests/{a}", api.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<h2>Permission</h2>")
            && page.contains("LDAP group cn=scm_level_3,ou=groups,dc=example,dc=com"),
        "{page}"
    );

    // Dave, in scm_level_1 and scm_level_2 (named by its cn in the mapping): the higher
    // counts; not enough for central, and the denial says what he holds and from where.
    let detail = ended(
        &env,
        api,
        "Dave <dave@example.com>",
        "dave@example.com",
        &["try", "central"],
    )
    .await;
    assert_eq!(
        detail["request"]["failure"], "permission_denied",
        "{detail:#}"
    );
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(
        why.contains("dave@example.com")
            && why.contains(
                "holds scm_level_2 from LDAP group cn=scm_level_2,ou=groups,dc=example,dc=com"
            )
            && why.contains("scm_level_3"),
        "{why}"
    );
    let detail = ended(
        &env,
        api,
        "Dave <dave@example.com>",
        "dave@example.com",
        &["try"],
    )
    .await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert_eq!(decisions(&detail)[0]["holds"], "scm_level_2", "{detail:#}");

    // Erin is in no group: denied, naming the lookup.
    let detail = ended(
        &env,
        api,
        "Erin <erin@example.com>",
        "erin@example.com",
        &["try"],
    )
    .await;
    assert_eq!(
        detail["request"]["failure"], "permission_denied",
        "{detail:#}"
    );
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(
        why.contains("erin@example.com")
            && why.contains(&format!(
                "uid=erin,ou=people,dc=example,dc=com in {} is in no group",
                slapd.url
            )),
        "{why}"
    );
    // Someone the directory does not know.
    let detail = ended(
        &env,
        api,
        "Nobody <nobody@example.com>",
        "alice@example.com",
        &["try"],
    )
    .await;
    let why = detail["request"]["failure_detail"]
        .as_str()
        .unwrap_or_default();
    assert!(
        why.contains("nobody@example.com is not in the directory"),
        "{detail:#}"
    );

    // Frank's Bugzilla login is not his mail: found by the second attribute.
    let detail = ended(
        &env,
        api,
        "Frank <frank@bugzilla.example.com>",
        "frank@bugzilla.example.com",
        &["try", "central"],
    )
    .await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert!(
        decisions(&detail)
            .iter()
            .any(|d| d["identity"] == "frank@bugzilla.example.com" && d["holds"] == "scm_level_3"),
        "{detail:#}"
    );

    // A service account of the static table, layered over the directory.
    let detail = ended(
        &env,
        api,
        "Alice <alice@example.com>",
        "release-bot@example.com",
        &["try", "central"],
    )
    .await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    assert!(
        decisions(&detail)
            .iter()
            .any(|d| d["role"] == "requester" && d["source"] == "static table"),
        "{detail:#}"
    );
    running.service.stop().await;
}

#[tokio::test]
async fn someone_removed_from_a_group_is_denied_after_the_cache_ttl() {
    let slapd = Slapd::start(false);
    let env = ldap_env(
        &slapd,
        BIND_PW,
        "cache_seconds = 1\nnegative_cache_seconds = 1",
    );
    let running = env.start().await;
    let api = &running.api;
    let detail = ended(
        &env,
        api,
        "Bob <bob@example.com>",
        "bob@example.com",
        &["try"],
    )
    .await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    slapd.ldap_modify(
        "ldapmodify",
        "dn: cn=scm_level_1,ou=groups,dc=example,dc=com\nchangetype: modify\n\
         delete: member\nmember: uid=bob,ou=people,dc=example,dc=com\n",
    );
    // The cache keeps what it read for its TTL; past it, the directory is asked again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let detail = ended(
        &env,
        api,
        "Bob <bob@example.com>",
        "bob@example.com",
        &["try"],
    )
    .await;
    assert_eq!(
        detail["request"]["failure"], "permission_denied",
        "{detail:#}"
    );
    let why = detail["request"]["failure_detail"].as_str().unwrap();
    assert!(
        why.contains(&format!(
            "uid=bob,ou=people,dc=example,dc=com in {} is in no group",
            slapd.url
        )),
        "{why}"
    );
    running.service.stop().await;
}

#[tokio::test]
async fn a_directory_outage_makes_requests_wait_never_decides() {
    let mut slapd = Slapd::start(false);
    let env = ldap_env(&slapd, BIND_PW, "");
    let running = env.start().await;
    let api = &running.api;
    slapd.stop();
    let a = submit(
        &env,
        api,
        "Alice <alice@example.com>",
        "alice@example.com",
        &["try", "central"],
    )
    .await;
    let detail = api.wait_event(a, LIMIT, "directory_unavailable").await;
    assert_eq!(detail["request"]["stage"], "authorizing", "{detail:#}");
    let notice = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "directory_unavailable")
        .unwrap()
        .clone();
    assert!(
        notice["detail"].as_str().unwrap().contains(&slapd.url)
            && notice["detail"].as_str().unwrap().contains("unreachable"),
        "{notice}"
    );
    // The status page shows the directory as a degraded dependency.
    let module = |o: &Value| {
        o["modules"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["module"] == "directory"))
            .cloned()
            .unwrap_or_default()
    };
    let overview = api
        .wait_status(LIMIT, "the directory module degraded", |o| {
            module(o)["state"] == "degraded"
        })
        .await;
    assert_eq!(overview["verdict"], "DEGRADED", "{overview:#}");
    // Back: the request goes on and lands, and the bug was told once.
    slapd.run();
    let detail = api.wait_terminal(a, LIMIT).await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    let notices = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "directory_unavailable")
        .count();
    assert_eq!(notices, 1, "{detail:#}");
    api.wait_status(LIMIT, "the directory module running", |o| {
        module(o)["state"] == "running"
    })
    .await;
    running.service.stop().await;
}

#[tokio::test]
async fn a_refused_bind_is_a_clear_start_up_error() {
    let slapd = Slapd::start(false);
    let env = ldap_env(&slapd, "not-the-password", "");
    for args in [&["serve", "--check"][..], &["serve"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_autoland"))
            .args(args)
            .args(["--config", env.config_path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail: {stderr}");
        assert!(
            stderr.contains("refused Autoland's bind as cn=autoland,ou=services,dc=example,dc=com")
                && stderr.contains("Invalid credentials")
                && stderr.contains("bind password"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("not-the-password"), "{stderr}");
    }
    // With the right password, --check says the directory accepts the bind.
    let good = ldap_env(&slapd, BIND_PW, "");
    let out = Command::new(env!("CARGO_BIN_EXE_autoland"))
        .args([
            "serve",
            "--check",
            "--config",
            good.config_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("accepts Autoland's bind"), "{stdout}");
}

#[tokio::test]
async fn starttls_with_a_test_ca() {
    let slapd = Slapd::start(true);
    let env = ldap_env(&slapd, BIND_PW, "");
    let running = env.start().await;
    let api = &running.api;
    let detail = ended(
        &env,
        api,
        "Alice <alice@example.com>",
        "alice@example.com",
        &["try", "central"],
    )
    .await;
    assert_eq!(detail["request"]["stage"], "landed", "{detail:#}");
    running.service.stop().await;
}
