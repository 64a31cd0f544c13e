//! A real Buildbot 4.3 master and worker for integration tests: [`Buildbot::start`] makes a
//! master and a worker directory in a temp dir, picks free loopback ports, starts both from
//! the Python venv that `scripts/python-env.sh` makes, and waits until the worker is
//! connected. The master runs `tests/buildbot/master.cfg` (builders `git-build`, `git-test`,
//! `hg-test`, force scheduler `autoland`); see that file for what a build does.
//!
//! Tests drive it over its HTTP API, like Autoland does ([`Buildbot::force`]), and inspect it
//! through typed summaries of the data API ([`Buildbot::buildrequests`],
//! [`Buildbot::builds`]). [`Buildbot::restart_master`] and
//! [`Buildbot::kill_master_and_start`] stop the master cleanly or crash it.
//!
//! Each start has its own directory and ports, so tests of one binary can run in parallel.
//! The master and the worker are killed when the [`Buildbot`] is dropped, and so is any
//! command a build left running. They are also killed (SIGKILL) if the test process dies,
//! through `PR_SET_PDEATHSIG` (tied to the thread that started them: start them from the
//! test's own thread, not from `spawn_blocking`).
//!
//! Venv: `$AUTOLAND_VENV`, else `<CARGO_MANIFEST_DIR>/target/venv`. Temp dirs: in
//! `/dev/shm` when it exists (see [`temp_root`]), or `$AUTOLAND_BUILDBOT_TMPDIR`. With
//! `AUTOLAND_KEEP_BUILDBOT` set, the temp dir (logs, database, builds) is kept.
//!
//! Times on this 2-core machine: the first start in a venv ~6 s (it runs
//! `buildbot create-master` once, ~3.5 s, and keeps the result in the venv), later starts
//! 2.5–3 s (up to 6 s with four starting at once); a clean restart ~6 s; kill and start
//! 2–5 s; a git build ~1–2 s.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The builders that `tests/buildbot/master.cfg` configures.
pub const BUILDERS: [&str; 3] = ["git-build", "git-test", "hg-test"];
/// The force scheduler that can start every builder.
pub const SCHEDULER: &str = "autoland";
/// The exit code of `autoland-ci.sh` that makes a build EXCEPTION (4).
pub const EXIT_EXCEPTION: i32 = 75;

/// How long a start (or the restart of the master) may take before the harness panics.
const START_LIMIT: Duration = Duration::from_secs(90);
/// How long a clean stop of the master may take before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(60);
/// What the master's log says when a clean stop has done its work.
const MASTER_STOPPED: &str = "BuildMaster is stopped";
/// How long the master's process may stay after saying so before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(10);
/// What the worker's log says each time it (re)connects to the master.
const WORKER_READY: &str = "Connected to buildmaster; worker is ready";
/// PATH of the worker: git (/usr/local/bin or /usr/bin), hg (/usr/bin), sh.
const WORKER_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A running master and worker. Dropping it kills both.
pub struct Buildbot {
    dir: tempfile::TempDir,
    venv: PathBuf,
    www_port: u16,
    pb_port: u16,
    master: Option<Child>,
    worker: Option<Child>,
    http: reqwest::Client,
    /// How long [`Buildbot::start`] took, from nothing to a connected worker.
    pub start_time: Duration,
}

/// What a force call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forced {
    /// The buildset's id.
    pub buildset: u64,
    /// Builder name → buildrequest id, one per builder asked for.
    pub requests: HashMap<String, u64>,
}

/// A buildrequest, with the builds that ran for it (several when Buildbot retried it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    pub id: u64,
    pub buildset: u64,
    pub builder: String,
    pub builder_id: u64,
    pub claimed: bool,
    pub complete: bool,
    /// None while pending (the API says -1).
    pub results: Option<i64>,
    /// Numbers (per builder) of the builds of this request, in order.
    pub build_numbers: Vec<u64>,
}

/// A build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub id: u64,
    /// Per builder, from 1.
    pub number: u64,
    pub builder: String,
    pub builder_id: u64,
    pub buildrequest: u64,
    pub complete: bool,
    /// None while running.
    pub results: Option<i64>,
    /// Such as "build successful", "failed autoland-ci.sh (failure)".
    pub state: String,
}

/// A step of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: u64,
    pub number: u64,
    pub name: String,
    pub complete: bool,
    pub results: Option<i64>,
    pub state: String,
}

/// Ports handed out by this process, so that two parallel starts never get the same one.
static PORTS_GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a free loopback port")
            .port();
        let mut given = PORTS_GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The venv with buildbot and buildbot-worker, or a panic that says how to make it.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("AUTOLAND_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv"));
    for bin in ["buildbot", "buildbot-worker"] {
        if !venv.join("bin").join(bin).is_file() {
            panic!(
                "no {} in the Python venv {}: run scripts/python-env.sh (scripts/test.sh does it)",
                bin,
                venv.display()
            );
        }
    }
    venv
}

/// Where the temp dirs go: `$AUTOLAND_BUILDBOT_TMPDIR`, else `/dev/shm` when it is a
/// writable directory, else the usual temp dir. The master's sqlite database commits (fsync)
/// on each log chunk: tmpfs spares that disk latency (8 git builds: 7.8 s on tmpfs, 9.3 s on
/// this machine's disk when idle, ~3 times slower on disk under a parallel cargo build).
fn temp_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("AUTOLAND_BUILDBOT_TMPDIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    let writable = std::fs::metadata(shm).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The master configuration kept in the repository.
pub fn master_cfg() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/buildbot/master.cfg")
}

fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

fn count_in(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.matches(needle).count())
        .unwrap_or(0)
}

/// Runs a one-shot command of the venv (create-master, create-worker), panicking with its
/// output when it fails.
async fn run(program: &Path, args: &[&str], cwd: &Path) {
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", WORKER_PATH)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}): {}{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A master directory made by `buildbot create-master` (buildbot.tac and the sqlite
/// database with its schema), made once per venv and copied for each start: it takes ~4 s.
static TEMPLATE: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();

async fn master_template(venv: &Path) -> PathBuf {
    TEMPLATE
        .get_or_init(|| async {
            let template = venv.join("autoland-master-template");
            if template.join("buildbot.tac").is_file() && template.join("state.sqlite").is_file() {
                return template;
            }
            // Made beside the venv's other files and renamed into place, so that a test
            // binary killed half-way, or another binary doing the same, leaves no half
            // template.
            let scratch = tempfile::Builder::new()
                .prefix("autoland-master-template.")
                .tempdir_in(venv)
                .expect("a scratch dir in the venv");
            run(
                &venv.join("bin/buildbot"),
                &["create-master", "--quiet", "--relocatable", "master"],
                scratch.path(),
            )
            .await;
            let made = scratch.path().join("master");
            let _ = std::fs::remove_file(made.join("master.cfg.sample"));
            if std::fs::rename(&made, &template).is_err() {
                // Another process renamed its own first: use that one.
                assert!(
                    template.join("state.sqlite").is_file(),
                    "cannot put the master template at {}",
                    template.display()
                );
            }
            template
        })
        .await
        .clone()
}

/// Sets the child to be killed when the thread that started it ends (the test process died)
/// and starts it in a process group of its own (Ctrl-C in a terminal reaches the test only).
fn guarded(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.process_group(0)
}

fn signal(child: &Child, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's pid (not yet reaped, so not reused).
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Kills (SIGKILL) the processes whose working directory is inside `dir`: commands that a
/// build started in their own process group and that outlived the worker.
fn kill_processes_under(dir: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid as u32 == me {
            continue;
        }
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd"))
            && cwd.starts_with(dir)
        {
            // SAFETY: kill(2) on a process found by its working directory in our temp dir.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

fn opt_results(v: &Value) -> Option<i64> {
    v.as_i64().filter(|r| *r >= 0)
}

fn u(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer {field} in {v}"))
}

impl Buildbot {
    /// Makes and starts a master and a worker, and waits until the worker is connected.
    pub async fn start() -> Buildbot {
        let began = Instant::now();
        let venv = venv();
        let template = master_template(&venv).await;
        let dir = tempfile::Builder::new()
            .prefix("autoland-buildbot.")
            .tempdir_in(temp_root())
            .expect("a temp dir for Buildbot");
        let master_dir = dir.path().join("master");
        std::fs::create_dir(&master_dir).expect("make the master dir");
        for entry in std::fs::read_dir(&template).expect("read the master template") {
            let entry = entry.expect("read the master template");
            std::fs::copy(entry.path(), master_dir.join(entry.file_name()))
                .expect("copy the master template");
        }
        std::fs::copy(master_cfg(), master_dir.join("master.cfg"))
            .expect("copy tests/buildbot/master.cfg");

        let mut bb = Buildbot {
            dir,
            venv,
            www_port: 0,
            pb_port: 0,
            master: None,
            worker: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            start_time: Duration::ZERO,
        };
        // A port can be taken by another process between our look and the master's bind:
        // then try again with others.
        let mut attempt = 0;
        loop {
            attempt += 1;
            bb.www_port = free_port();
            bb.pb_port = free_port();
            bb.spawn_master();
            match bb.wait_api().await {
                Ok(()) => break,
                Err(why) if attempt < 3 && why.contains("Address already in use") => {
                    bb.kill_master();
                }
                Err(why) => bb.fail(&why),
            }
        }
        run(
            &bb.venv.join("bin/buildbot-worker"),
            &[
                "create-worker",
                "--quiet",
                // Reconnects within 2 s of a master restart (default: up to 300 s).
                "--maxdelay",
                "2",
                "worker",
                &format!("127.0.0.1:{}", bb.pb_port),
                "w1",
                "pass",
            ],
            bb.dir.path(),
        )
        .await;
        bb.spawn_worker();
        if let Err(why) = bb.wait_worker(0).await {
            bb.fail(&why);
        }
        bb.start_time = began.elapsed();
        bb
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.www_port)
    }

    /// The data API's root, `http://127.0.0.1:PORT/api/v2`.
    pub fn api(&self) -> String {
        format!("{}/api/v2", self.url())
    }

    /// The temp dir holding `master/` and `worker/` (builds run in `worker/<builder>/build`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn master_log(&self) -> PathBuf {
        self.dir.path().join("master/twistd.log")
    }

    pub fn worker_log(&self) -> PathBuf {
        self.dir.path().join("worker/twistd.log")
    }

    /// The page of a build for humans: `http://127.0.0.1:PORT/#/builders/<id>/builds/<n>`
    /// (what Buildbot's reporters link to).
    pub fn build_url(&self, builder_id: u64, number: u64) -> String {
        format!("{}/#/builders/{builder_id}/builds/{number}", self.url())
    }

    /// The page of a buildrequest for humans: `http://127.0.0.1:PORT/#/buildrequests/<id>`.
    pub fn buildrequest_url(&self, id: u64) -> String {
        format!("{}/#/buildrequests/{id}", self.url())
    }

    fn spawn_master(&mut self) {
        let dir = self.dir.path().join("master");
        let out = std::fs::File::create(dir.join("master.out")).expect("create master.out");
        let err = out.try_clone().expect("master.out");
        let child = guarded(
            Command::new(self.venv.join("bin/buildbot"))
                .args(["start", "--nodaemon", "."])
                .current_dir(&dir)
                .env_clear()
                .env("PATH", WORKER_PATH)
                .env("BUILDBOT_WWW_PORT", self.www_port.to_string())
                .env("BUILDBOT_PB_PORT", self.pb_port.to_string())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
        )
        .spawn()
        .expect("start the Buildbot master");
        self.master = Some(child);
    }

    fn spawn_worker(&mut self) {
        let dir = self.dir.path().join("worker");
        let out = std::fs::File::create(dir.join("worker.out")).expect("create worker.out");
        let err = out.try_clone().expect("worker.out");
        // A clean environment: builds inherit it, and each step's log prints all of it.
        let child = guarded(
            Command::new(self.venv.join("bin/buildbot-worker"))
                .args(["start", "--nodaemon", "."])
                .current_dir(&dir)
                .env_clear()
                .env("PATH", WORKER_PATH)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
        )
        .spawn()
        .expect("start the Buildbot worker");
        self.worker = Some(child);
    }

    /// Panics with what the logs say.
    fn fail(&mut self, why: &str) -> ! {
        let master = self.dir.path().join("master");
        let worker = self.dir.path().join("worker");
        let message = format!(
            "Buildbot in {}: {why}\n--- master twistd.log (tail)\n{}\n--- master stdout/stderr\n{}\n--- worker twistd.log (tail)\n{}\n--- worker stdout/stderr\n{}",
            self.dir.path().display(),
            tail(&master.join("twistd.log"), 40),
            tail(&master.join("master.out"), 20),
            tail(&worker.join("twistd.log"), 20),
            tail(&worker.join("worker.out"), 20),
        );
        self.kill_all();
        panic!("{message}");
    }

    /// Waits until the API answers; Err (with the reason) if the master exited or the time
    /// ran out.
    async fn wait_api(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            // Reads the whole answer: see master.cfg on connections closed mid-answer.
            if let Ok(resp) = self
                .http
                .get(format!("{}/workers", self.api()))
                .send()
                .await
                && resp.status().is_success()
                && resp.bytes().await.is_ok()
            {
                return Ok(());
            }
            if let Some(master) = self.master.as_mut()
                && let Ok(Some(status)) = master.try_wait()
            {
                return Err(format!(
                    "the master exited ({status}) before its API answered: {}",
                    tail(&self.master_log(), 15)
                ));
            }
            // A port taken meanwhile: the master logs it and may go on without that port.
            let log = std::fs::read_to_string(self.master_log()).unwrap_or_default();
            if log.contains("Address already in use") {
                return Err("Address already in use".to_owned());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the master's API did not answer within {START_LIMIT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the worker has connected more than `before` times (its log) and the API
    /// shows it connected.
    async fn wait_worker(&mut self, before: usize) -> Result<(), String> {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if count_in(&self.worker_log(), WORKER_READY) > before && self.worker_connected().await
            {
                return Ok(());
            }
            if let Some(worker) = self.worker.as_mut()
                && let Ok(Some(status)) = worker.try_wait()
            {
                return Err(format!("the worker exited ({status})"));
            }
            if Instant::now() > deadline {
                return Err(format!("the worker did not connect within {START_LIMIT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether `/api/v2/workers` shows worker w1 connected to a master.
    pub async fn worker_connected(&self) -> bool {
        let Ok(resp) = self
            .http
            .get(format!("{}/workers", self.api()))
            .send()
            .await
        else {
            return false;
        };
        let Ok(v) = resp.json::<Value>().await else {
            return false;
        };
        v["workers"].as_array().is_some_and(|ws| {
            ws.iter().any(|w| {
                w["name"] == "w1" && w["connected_to"].as_array().is_some_and(|c| !c.is_empty())
            })
        })
    }

    /// Stops the master cleanly (SIGTERM, as `buildbot stop` does: running builds end
    /// CANCELLED), starts it again on the same ports and database, and waits until the API
    /// answers and the worker is back.
    pub async fn restart_master(&mut self) {
        let before = count_in(&self.worker_log(), WORKER_READY);
        let stopped_before = count_in(&self.master_log(), MASTER_STOPPED);
        if let Some(mut master) = self.master.take() {
            signal(&master, libc::SIGTERM);
            let deadline = Instant::now() + STOP_LIMIT;
            let mut stopped_at: Option<Instant> = None;
            loop {
                if stopped_at.is_none()
                    && count_in(&self.master_log(), MASTER_STOPPED) > stopped_before
                {
                    stopped_at = Some(Instant::now());
                }
                match master.try_wait() {
                    Ok(Some(_)) => break,
                    // Seen once in CI: the master logged that it stopped (builds cancelled,
                    // database written, ports closed) and its process stayed alive for more
                    // than a minute. What a clean stop does is done: end the process.
                    Ok(None) if stopped_at.is_some_and(|t| t.elapsed() > EXIT_GRACE) => {
                        eprintln!(
                            "Buildbot: the master said it stopped but did not exit within {EXIT_GRACE:?}: killed"
                        );
                        let _ = master.kill();
                        let _ = master.wait();
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    _ => {
                        let _ = master.kill();
                        let _ = master.wait();
                        self.master = None;
                        self.fail(&format!("the master did not stop within {STOP_LIMIT:?}"));
                    }
                }
            }
        }
        self.start_master_again(before).await;
    }

    /// Kills the master (SIGKILL: a crash), starts it again and waits until the API answers
    /// and the worker is back.
    pub async fn kill_master_and_start(&mut self) {
        let before = count_in(&self.worker_log(), WORKER_READY);
        self.kill_master();
        self.start_master_again(before).await;
    }

    async fn start_master_again(&mut self, worker_connections_before: usize) {
        self.spawn_master();
        if let Err(why) = self.wait_api().await {
            self.fail(&why);
        }
        if let Err(why) = self.wait_worker(worker_connections_before).await {
            self.fail(&why);
        }
    }

    fn kill_master(&mut self) {
        if let Some(mut master) = self.master.take() {
            let _ = master.kill();
            let _ = master.wait();
        }
    }

    fn kill_all(&mut self) {
        self.kill_master();
        if let Some(mut worker) = self.worker.take() {
            let _ = worker.kill();
            let _ = worker.wait();
        }
        kill_processes_under(self.dir.path());
    }

    /// GET `<api>/<path>` (path such as `builds?buildrequestid=3`) as JSON.
    pub async fn get(&self, path: &str) -> Value {
        let text = self.get_text(path).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// GET a text resource, such as a log: `builds/<id>/steps/<step>/logs/stdio/raw`.
    pub async fn get_text(&self, path: &str) -> String {
        let url = format!("{}/{path}", self.api());
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {status}, reading the body: {e}"));
        assert!(status.is_success(), "GET {url}: {status}: {text}");
        text
    }

    /// POSTs a JSON-RPC call to `<api>/<path>` and returns the whole answer, with the HTTP
    /// status (errors come as 400 or 500 with a JSON-RPC `error`).
    pub async fn json_rpc(&self, path: &str, method: &str, params: Value) -> (u16, Value) {
        let url = format!("{}/{path}", self.api());
        let body = json!({"jsonrpc": "2.0", "method": method, "id": 1, "params": params});
        let resp = self
            .http
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {status}, reading the body: {e}"));
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {url}: {e}: {text}"));
        (status, v)
    }

    /// Forces `builders` on `repository` at `revision` (`branch` may be a full ref such as
    /// `refs/heads/autoland/<uid>`; empty for hg), as Autoland does, and panics unless
    /// Buildbot accepted it.
    pub async fn force(
        &self,
        builders: &[&str],
        repository: &str,
        branch: &str,
        revision: &str,
        reason: &str,
    ) -> Forced {
        let (status, answer) = self
            .json_rpc(
                &format!("forceschedulers/{SCHEDULER}"),
                "force",
                json!({
                    "builderNames": builders,
                    "repository": repository,
                    "branch": branch,
                    "revision": revision,
                    "reason": reason,
                    "username": "autoland",
                }),
            )
            .await;
        assert_eq!(status, 200, "force {builders:?}: {answer}");
        let result = &answer["result"];
        let buildset = result[0]
            .as_u64()
            .unwrap_or_else(|| panic!("no buildset id in {answer}"));
        let ids = self.builder_ids().await;
        let requests = result[1]
            .as_object()
            .unwrap_or_else(|| panic!("no buildrequest ids in {answer}"))
            .iter()
            .map(|(builder_id, brid)| {
                let builder_id: u64 = builder_id.parse().expect("builder ids are integers");
                let name = ids
                    .iter()
                    .find(|(_, id)| **id == builder_id)
                    .map(|(name, _)| name.clone())
                    .unwrap_or_else(|| panic!("unknown builder id {builder_id}"));
                (name, brid.as_u64().expect("buildrequest ids are integers"))
            })
            .collect();
        Forced { buildset, requests }
    }

    /// Builder name → builder id.
    pub async fn builder_ids(&self) -> HashMap<String, u64> {
        let v = self.get("builders?field=builderid&field=name").await;
        v["builders"]
            .as_array()
            .expect("a list of builders")
            .iter()
            .map(|b| {
                (
                    b["name"].as_str().expect("a builder name").to_owned(),
                    u(b, "builderid"),
                )
            })
            .collect()
    }

    fn names(ids: &HashMap<String, u64>) -> HashMap<u64, String> {
        ids.iter().map(|(n, i)| (*i, n.clone())).collect()
    }

    /// Every build, in id order.
    pub async fn builds(&self) -> Vec<Build> {
        let names = Self::names(&self.builder_ids().await);
        self.builds_at("builds?order=buildid", &names).await
    }

    /// The builds of one buildrequest, in id order.
    pub async fn builds_of(&self, buildrequest: u64) -> Vec<Build> {
        let names = Self::names(&self.builder_ids().await);
        self.builds_at(
            &format!("builds?buildrequestid={buildrequest}&order=buildid"),
            &names,
        )
        .await
    }

    async fn builds_at(&self, path: &str, names: &HashMap<u64, String>) -> Vec<Build> {
        let v = self.get(path).await;
        v["builds"]
            .as_array()
            .expect("a list of builds")
            .iter()
            .map(|b| {
                let builder_id = u(b, "builderid");
                Build {
                    id: u(b, "buildid"),
                    number: u(b, "number"),
                    builder: names.get(&builder_id).cloned().unwrap_or_default(),
                    builder_id,
                    buildrequest: u(b, "buildrequestid"),
                    complete: b["complete"].as_bool().unwrap_or(false),
                    results: opt_results(&b["results"]),
                    state: b["state_string"].as_str().unwrap_or_default().to_owned(),
                }
            })
            .collect()
    }

    /// Every buildrequest, in id order, with the numbers of its builds.
    pub async fn buildrequests(&self) -> Vec<BuildRequest> {
        let names = Self::names(&self.builder_ids().await);
        let builds = self.builds_at("builds?order=buildid", &names).await;
        let v = self.get("buildrequests?order=buildrequestid").await;
        v["buildrequests"]
            .as_array()
            .expect("a list of buildrequests")
            .iter()
            .map(|r| {
                let id = u(r, "buildrequestid");
                let builder_id = u(r, "builderid");
                BuildRequest {
                    id,
                    buildset: u(r, "buildsetid"),
                    builder: names.get(&builder_id).cloned().unwrap_or_default(),
                    builder_id,
                    claimed: r["claimed"].as_bool().unwrap_or(false),
                    complete: r["complete"].as_bool().unwrap_or(false),
                    results: opt_results(&r["results"]),
                    build_numbers: builds
                        .iter()
                        .filter(|b| b.buildrequest == id)
                        .map(|b| b.number)
                        .collect(),
                }
            })
            .collect()
    }

    /// One buildrequest, with the numbers of its builds.
    pub async fn buildrequest(&self, id: u64) -> BuildRequest {
        self.buildrequests()
            .await
            .into_iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no buildrequest {id}"))
    }

    /// Waits until each buildrequest is complete, and returns them (in the order given).
    pub async fn wait_complete(&self, ids: &[u64], limit: Duration) -> Vec<BuildRequest> {
        let deadline = Instant::now() + limit;
        loop {
            let all = self.buildrequests().await;
            let wanted: Vec<BuildRequest> = ids
                .iter()
                .filter_map(|id| all.iter().find(|r| r.id == *id).cloned())
                .collect();
            if wanted.len() == ids.len() && wanted.iter().all(|r| r.complete) {
                return wanted;
            }
            assert!(
                Instant::now() < deadline,
                "buildrequests {ids:?} not complete within {limit:?}: {wanted:?}\nbuilds: {:?}\n--- master log\n{}",
                self.builds().await,
                tail(&self.master_log(), 30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until a build of the buildrequest runs a step named `step` (started, maybe
    /// finished), and returns the build.
    pub async fn wait_step_started(&self, buildrequest: u64, step: &str, limit: Duration) -> Build {
        let deadline = Instant::now() + limit;
        loop {
            for build in self.builds_of(buildrequest).await {
                if self.steps(build.id).await.iter().any(|s| s.name == step) {
                    return build;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no build of buildrequest {buildrequest} reached step {step} within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The steps of a build, in order.
    pub async fn steps(&self, build_id: u64) -> Vec<Step> {
        let v = self.get(&format!("builds/{build_id}/steps")).await;
        v["steps"]
            .as_array()
            .expect("a list of steps")
            .iter()
            .map(|s| Step {
                id: u(s, "stepid"),
                number: u(s, "number"),
                name: s["name"].as_str().unwrap_or_default().to_owned(),
                complete: s["complete"].as_bool().unwrap_or(false),
                results: opt_results(&s["results"]),
                state: s["state_string"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// The text of a step's `stdio` log.
    pub async fn stdio(&self, build_id: u64, step: &str) -> String {
        self.get_text(&format!("builds/{build_id}/steps/{step}/logs/stdio/raw"))
            .await
    }

    /// The ids of the buildsets whose reason is exactly `reason` (master.cfg makes the
    /// buildset's reason the force call's `reason`): how a client finds its buildset again
    /// after losing the force call's answer.
    pub async fn buildsets_with_reason(&self, reason: &str) -> Vec<u64> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/buildsets", self.api()),
            &[("reason", reason), ("field", "bsid"), ("field", "reason")],
        )
        .expect("a buildsets URL");
        let path = &url.as_str()[self.api().len() + 1..];
        let v = self.get(path).await;
        v["buildsets"]
            .as_array()
            .expect("a list of buildsets")
            .iter()
            .map(|b| u(b, "bsid"))
            .collect()
    }
}

impl Drop for Buildbot {
    fn drop(&mut self) {
        self.kill_all();
        if std::env::var_os("AUTOLAND_KEEP_BUILDBOT").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("AUTOLAND_KEEP_BUILDBOT: kept {}", self.dir.path().display());
        }
    }
}
