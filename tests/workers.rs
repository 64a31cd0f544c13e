//! Several processes on one PostgreSQL database: `autoland serve --no-pushers` takes the
//! requests, an `autoland worker` (no web server) lands them; `autoland migrate` prepares
//! the database.

mod common;

use std::process::{Child, Command};
use std::time::Duration;

use common::{Api, Change, Env, Options, free_port, wait_healthy};
use serde_json::json;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_lands_what_a_serve_without_pushers_accepted() {
    let env = Env::new(Options {
        postgres: true,
        ..Options::default()
    });
    let migrate = Command::new(env!("CARGO_BIN_EXE_autoland"))
        .args(["migrate", "--config", env.config_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let said = String::from_utf8_lossy(&migrate.stdout);
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
