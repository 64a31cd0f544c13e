//! The end-to-end harness: real git or Mercurial repositories in a temp dir, the real
//! service (in this process, or as the `autoland` binary for crash tests), and verbs to
//! drive it. Scenarios take a [`Kind`] so each runs on both VCSs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoland::config::{Config, hash_token};
use autoland::service::{self, Service};
use serde_json::{Value, json};

pub mod bugzilla;
pub mod buildbot;
pub mod fleet;
pub mod ldap;
pub mod postgres;

/// The test suite that a try run executes: fails when any tracked file says BROKEN.
pub const TEST_SCRIPT: &str = "#!/bin/sh\nif grep -rq BROKEN --exclude=test.sh .; then echo 'FAIL: something is BROKEN'; exit 1; fi\necho 'all tests passed'\n";

/// Which VCS the repositories use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// git.
    #[default]
    Git,
    /// Mercurial.
    Hg,
}

/// Options for an environment.
#[derive(Clone)]
pub struct Options {
    /// The VCS.
    pub kind: Kind,
    /// The try repository's CI command.
    pub ci_command: String,
    /// Lease length (short, so crash tests recover fast).
    pub lease_seconds: u64,
    /// Extra `[permissions.users]` lines.
    pub users: Vec<(String, String)>,
    /// Base URL of a Bugzilla (simulator) to configure, with API key `autoland-key`.
    pub bugzilla: Option<String>,
    /// A tree status URL for central.
    pub tree_status_url: Option<String>,
    /// The CI command fails its first run ("flaky infrastructure"), then runs normally.
    pub ci_fails_first: bool,
    /// Use a PostgreSQL database of its own whatever `AUTOLAND_TEST_DATABASE` says.
    pub postgres: bool,
    /// Serve both repositories from a VCS host on 127.0.0.1 (hg: `hg serve` over HTTP;
    /// git: `git daemon`) and point the configuration at those URLs.
    pub http: bool,
    /// Extra TOML for the try repository (`ci = ...`, retry settings, its CI's table).
    pub try_extra: String,
    /// Extra TOML for central (`gate = ...`, lanes).
    pub central_extra: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kind: Kind::Git,
            ci_command: "sh test.sh".to_owned(),
            lease_seconds: 3,
            users: vec![
                ("alice@example.com".into(), "scm_level_3".into()),
                ("carol@example.com".into(), "scm_level_3".into()),
                ("bob@example.com".into(), "scm_level_1".into()),
            ],
            bugzilla: None,
            tree_status_url: None,
            ci_fails_first: false,
            postgres: false,
            http: false,
            try_extra: String::new(),
            central_extra: String::new(),
        }
    }
}

/// A child process killed when dropped (test servers).
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves an hg repository over HTTP on a free loopback port, with pushes allowed.
fn hg_serve(repo: &Path) -> (ChildGuard, String) {
    let port = free_port();
    let guard = hg_serve_on(repo, port);
    (guard, format!("http://127.0.0.1:{port}/"))
}

/// Serves a bare git repository with `git daemon` on a free loopback port, with pushes
/// allowed (the git VCS host of the outage tests).
fn git_daemon(repo: &Path) -> (ChildGuard, String) {
    let port = free_port();
    let guard = git_daemon_on(repo, port);
    (guard, format!("git://127.0.0.1:{port}/"))
}

/// Serves a bare git repository with `git daemon` on `port` (again, after a test stopped
/// it).
pub fn git_daemon_on(repo: &Path, port: u16) -> ChildGuard {
    // `git daemon` would run `git-daemon` as a child of its own, which killing `git`
    // leaves serving: start the program itself.
    let exec_path = git(repo, &["--exec-path"]);
    let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
        .args([
            "--reuseaddr",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={}", repo.display()),
            "--export-all",
            "--enable=receive-pack",
            &repo.display().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("git daemon starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "git daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    ChildGuard(child)
}

/// Serves an hg repository over HTTP on `port` (again, after a test stopped it).
pub fn hg_serve_on(repo: &Path, port: u16) -> ChildGuard {
    let child = Command::new("hg")
        .args([
            "serve",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--config",
            "web.push_ssl=False",
            "--config",
            "web.allow-push=*",
        ])
        .current_dir(repo)
        .env("HGPLAIN", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("hg serve starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "hg serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    ChildGuard(child)
}

/// A sandbox with a central and a try repository and a configuration.
pub struct Env {
    pub kind: Kind,
    /// `hg serve` processes (killed with the environment).
    pub servers: Vec<ChildGuard>,
    pub dir: tempfile::TempDir,
    pub central: PathBuf,
    pub try_repo: PathBuf,
    pub scratch: PathBuf,
    pub token: String,
    pub config_path: PathBuf,
    /// The PostgreSQL database this environment created (dropped with it), when the suite
    /// runs on PostgreSQL.
    pub postgres_database: Option<String>,
}

/// The suites run on SQLite, and on PostgreSQL with `AUTOLAND_TEST_DATABASE=postgres`
/// (scripts/test.sh runs them both ways): each environment then gets a database of its own.
fn postgres_database(forced: bool) -> Option<String> {
    if !forced && std::env::var("AUTOLAND_TEST_DATABASE").ok().as_deref() != Some("postgres") {
        return None;
    }
    let name = format!(
        "autoland_e2e_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    psql(&format!("CREATE DATABASE {name}"));
    Some(name)
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-q",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(name) = &self.postgres_database {
            let _ = Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .output();
        }
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Someone Else")
        .env("GIT_AUTHOR_EMAIL", "else@example.com")
        .env("GIT_COMMITTER_NAME", "Someone Else")
        .env("GIT_COMMITTER_EMAIL", "else@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn hg(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("hg")
        .args(args)
        .current_dir(dir)
        .env("HGPLAIN", "1")
        .env("HGUSER", "Someone Else <else@example.com>")
        .output()
        .expect("hg runs");
    assert!(
        out.status.success(),
        "hg {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One commit to turn into a patch.
pub struct Change<'a> {
    pub author: &'a str,
    pub subject: &'a str,
    pub files: &'a [(&'a str, &'a str)],
}

impl Change<'_> {
    /// Writes the change's files into the working directory `work`.
    fn write_into(&self, work: &Path) {
        for (file, content) in self.files {
            let path = work.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
    }
}

impl Env {
    pub fn new(options: Options) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let kind = options.kind;
        let (central, try_repo) = match kind {
            Kind::Git => (dir.path().join("central.git"), dir.path().join("try.git")),
            Kind::Hg => (dir.path().join("central-hg"), dir.path().join("try-hg")),
        };
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(&scratch).unwrap();
        let lines: String = (1..=10).map(|i| format!("line {i}\n")).collect();
        let seed = |work: &Path| {
            std::fs::create_dir_all(work.join("src")).unwrap();
            std::fs::write(work.join("test.sh"), TEST_SCRIPT).unwrap();
            std::fs::write(work.join("README"), "sample\n").unwrap();
            std::fs::write(work.join("src/lib.txt"), &lines).unwrap();
        };
        match kind {
            Kind::Git => {
                for bare in [&central, &try_repo] {
                    std::fs::create_dir_all(bare).unwrap();
                    git(
                        bare,
                        &["init", "--quiet", "--bare", "--initial-branch=main"],
                    );
                }
                git(
                    &scratch,
                    &["clone", "--quiet", central.to_str().unwrap(), "work"],
                );
                let work = scratch.join("work");
                git(&work, &["checkout", "--quiet", "-b", "main"]);
                seed(&work);
                git(&work, &["add", "."]);
                git(&work, &["commit", "--quiet", "-m", "Initial import"]);
                git(&work, &["push", "--quiet", "origin", "main"]);
            }
            Kind::Hg => {
                hg(dir.path(), &["init", central.to_str().unwrap()]);
                hg(dir.path(), &["init", try_repo.to_str().unwrap()]);
                // Try keeps pushes as drafts, as Mozilla's does.
                std::fs::write(try_repo.join(".hg/hgrc"), "[phases]\npublish = False\n").unwrap();
                hg(
                    &scratch,
                    &["clone", "--quiet", central.to_str().unwrap(), "work"],
                );
                let work = scratch.join("work");
                seed(&work);
                hg(&work, &["addremove", "--quiet"]);
                hg(&work, &["commit", "--quiet", "-m", "Initial import"]);
                hg(&work, &["push", "--quiet"]);
            }
        }

        let ci_command = if options.ci_fails_first {
            let marker = dir.path().join("ci-failed-once");
            format!(
                "if [ ! -e '{m}' ]; then touch '{m}'; echo 'flaky infrastructure'; exit 1; fi; {ci}",
                m = marker.display(),
                ci = options.ci_command
            )
        } else {
            options.ci_command.clone()
        };
        let postgres_database = postgres_database(options.postgres);
        let mut servers = Vec::new();
        let (central_url, try_url) = if options.http {
            let serve = match kind {
                Kind::Hg => hg_serve,
                Kind::Git => git_daemon,
            };
            let (central_server, central_url) = serve(&central);
            let (try_server, try_url) = serve(&try_repo);
            servers.push(central_server);
            servers.push(try_server);
            (central_url, try_url)
        } else {
            (
                central.display().to_string(),
                try_repo.display().to_string(),
            )
        };
        let token = "test-token-alice".to_owned();
        let users: String = options
            .users
            .iter()
            .map(|(u, l)| format!("\"{u}\" = \"{l}\"\n"))
            .collect();
        let config = format!(
            r#"
listen = "127.0.0.1:0"
data_dir = "data"
{database}

[timeouts]
lease_seconds = {lease}
poll_interval_ms = 50
vcs_command_seconds = 60
tree_status_seconds = 1

[pusher]
push_backoff_ms = 50

# The harness submits as fast as it likes (tests/operations.rs sets its own limit).
[limits]
writes_per_minute = 0

[[repositories]]
name = "central"
kind = "{kind}"
pull_url = "{central}"
level = "scm_level_3"
{tree_status}
{central_extra}

[[repositories]]
name = "try"
kind = "{kind}"
pull_url = "{try_repo}"
level = "scm_level_1"
try = true
base = "central"
ci_command = "{ci}"
ci_timeout_seconds = 60
{try_extra}

[permissions.users]
{users}
[[tokens]]
name = "alice-test"
user = "alice@example.com"
sha256 = "{hash}"

[[tokens]]
name = "bob-test"
user = "bob@example.com"
sha256 = "{bob_hash}"

[[tokens]]
name = "reader"
user = "reader@example.com"
sha256 = "{reader_hash}"
scope = "read"

[[tokens]]
name = "operator"
user = "op@example.com"
sha256 = "{operator_hash}"
scope = "operator"

[[tokens]]
name = "bugzilla-extension"
user = "service@example.com"
sha256 = "{service_hash}"
service = true

[[tokens]]
name = "bugs-only"
user = "bugzilla@example.com"
sha256 = "{bugs_hash}"
service = "bugs"
"#,
            lease = options.lease_seconds,
            kind = match kind {
                Kind::Git => "git",
                Kind::Hg => "hg",
            },
            database = postgres_database
                .as_ref()
                .map(|name| format!("database_url = \"postgres://postgres@127.0.0.1:5432/{name}\""))
                .unwrap_or_default(),
            central = central_url,
            try_repo = try_url,
            ci = ci_command.replace('\\', "\\\\").replace('"', "\\\""),
            hash = hash_token(&token),
            service_hash = hash_token("test-token-service"),
            bugs_hash = hash_token("test-token-bugs"),
            bob_hash = hash_token("test-token-bob"),
            reader_hash = hash_token("test-token-reader"),
            tree_status = options
                .tree_status_url
                .as_ref()
                .map(|u| format!("tree_status_url = \"{u}\""))
                .unwrap_or_default(),
            operator_hash = hash_token("test-token-operator"),
            try_extra = options.try_extra,
            central_extra = options.central_extra,
        );
        let config = match &options.bugzilla {
            Some(url) => {
                std::fs::write(dir.path().join("bugzilla-key"), "autoland-key\n").unwrap();
                format!(
                    "{config}\n[bugzilla]\nurl = \"{url}\"\napi_key_file = \"bugzilla-key\"\n\
                     poll_interval_seconds = 1\npoll_overlap_seconds = 5\ntimeout_seconds = 5\n\
                     retry_max_seconds = 1\n"
                )
            }
            None => config,
        };
        let config_path = dir.path().join("autoland.toml");
        std::fs::write(&config_path, config).unwrap();
        Env {
            kind,
            servers,
            dir,
            central,
            try_repo,
            scratch,
            token,
            config_path,
            postgres_database,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path).expect("test config is valid")
    }

    /// Starts the service in this process.
    pub async fn start(&self) -> Running {
        let ctx = Arc::new(service::context(self.config()).await.expect("store opens"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service = service::start(ctx, listener).await.unwrap();
        let api = Api::new(&format!("http://{}", service.addr), &self.token);
        Running { service, api }
    }

    /// Commits `changes` on top of central's tip in a scratch clone and returns them as
    /// `git format-patch` texts.
    /// Submits, as Alice, one patch that writes `content` to `file`, for try then
    /// central; returns the request's id.
    pub async fn submit_one(&self, api: &Api, subject: &str, file: &str, content: &str) -> i64 {
        let patches = self.patches(&[Change {
            author: "Alice <alice@example.com>",
            subject,
            files: &[(file, content)],
        }]);
        api.submit(&patches, &["try", "central"], json!({})).await
    }

    pub fn patches(&self, changes: &[Change<'_>]) -> Vec<String> {
        if self.kind == Kind::Hg {
            return self.hg_patches(changes);
        }
        let work = self.scratch.join("work");
        git(&work, &["fetch", "--quiet", "origin"]);
        git(
            &work,
            &["checkout", "--quiet", "--force", "--detach", "origin/main"],
        );
        for change in changes {
            change.write_into(&work);
            git(&work, &["add", "-A"]);
            git(
                &work,
                &[
                    "commit",
                    "--quiet",
                    &format!("--author={}", change.author),
                    "-m",
                    change.subject,
                ],
            );
        }
        let out = git(
            &work,
            &["format-patch", "--stdout", &format!("-{}", changes.len())],
        );
        // Split the mbox into one text per patch.
        let mut patches: Vec<String> = Vec::new();
        for line in out.split_inclusive('\n') {
            if line.starts_with("From ") && line.contains("Mon Sep 17 00:00:00 2001") {
                patches.push(String::new());
            }
            if let Some(last) = patches.last_mut() {
                last.push_str(line);
            }
        }
        patches
    }

    /// `hg export` texts of `changes` committed on central's tip in a scratch clone.
    fn hg_patches(&self, changes: &[Change<'_>]) -> Vec<String> {
        let work = self.scratch.join("work");
        hg(&work, &["pull", "--quiet"]);
        let drafts = hg(&work, &["log", "-r", "draft()", "-T", "{node}\n"]);
        if !drafts.trim().is_empty() {
            hg(
                &work,
                &["debugstrip", "--no-backup", "--force", "-r", "draft()"],
            );
        }
        hg(
            &work,
            &["update", "--clean", "--quiet", "-r", "max(public())"],
        );
        let mut nodes = Vec::new();
        for change in changes {
            change.write_into(&work);
            hg(&work, &["addremove", "--quiet"]);
            hg(
                &work,
                &[
                    "commit",
                    "--quiet",
                    "-u",
                    change.author,
                    "-m",
                    change.subject,
                ],
            );
            nodes.push(hg(&work, &["log", "-r", ".", "-T", "{node}"]));
        }
        nodes
            .iter()
            .map(|node| hg(&work, &["export", "-r", node]))
            .collect()
    }

    /// Someone else pushes a commit to central.
    pub fn push_to_central(&self, file: &str, content: &str, subject: &str) {
        if self.kind == Kind::Hg {
            let other = self.scratch.join("other-hg");
            if !other.exists() {
                hg(
                    &self.scratch,
                    &[
                        "clone",
                        "--quiet",
                        self.central.to_str().unwrap(),
                        "other-hg",
                    ],
                );
            }
            hg(&other, &["pull", "--quiet", "--update"]);
            let path = other.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
            hg(&other, &["addremove", "--quiet"]);
            hg(&other, &["commit", "--quiet", "-m", subject]);
            hg(&other, &["push", "--quiet"]);
            return;
        }
        let other = self.scratch.join("other");
        if !other.exists() {
            git(
                &self.scratch,
                &["clone", "--quiet", self.central.to_str().unwrap(), "other"],
            );
        }
        git(&other, &["pull", "--quiet", "--ff-only", "origin", "main"]);
        let path = other.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        git(&other, &["add", "-A"]);
        git(&other, &["commit", "--quiet", "-m", subject]);
        git(&other, &["push", "--quiet", "origin", "HEAD:main"]);
    }

    /// central's main: (author email, subject) newest first.
    pub fn central_log(&self) -> Vec<(String, String)> {
        if self.kind == Kind::Hg {
            return hg(
                &self.central,
                &["log", "-T", "{author|email}\t{desc|firstline}\n"],
            )
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(a, s)| (a.to_owned(), s.to_owned()))
            .collect();
        }
        git(&self.central, &["log", "--format=%ae%x09%s", "main"])
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(a, s)| (a.to_owned(), s.to_owned()))
            .collect()
    }

    /// How many commits reachable from any ref of `repo` carry `Autoland-Request: <uid>`.
    pub fn commits_with_trailer(&self, repo: &Path, uid: &str) -> usize {
        if self.kind == Kind::Hg {
            let revset = format!("desc('Autoland-Request: {uid}')");
            return hg(repo, &["log", "-r", &revset, "-T", "{node}\n"])
                .lines()
                .count();
        }
        git(
            repo,
            &[
                "log",
                "--all",
                "--format=%H",
                "--fixed-strings",
                &format!("--grep=Autoland-Request: {uid}"),
            ],
        )
        .lines()
        .count()
    }

    /// Refs of a repository.
    pub fn refs(&self, repo: &Path) -> Vec<String> {
        git(repo, &["for-each-ref", "--format=%(refname)"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// central's tip revision.
    pub fn central_tip(&self) -> String {
        match self.kind {
            Kind::Git => git(&self.central, &["rev-parse", "main"]).trim().to_owned(),
            Kind::Hg => hg(&self.central, &["log", "-r", "tip", "-T", "{node}"]),
        }
    }

    /// Makes someone else's commit land on central while Autoland's first push to central
    /// is under way (git: from central's pre-receive hook, before the ref update; hg: from
    /// a pre-push hook in Autoland's working copy, after its pull). Returns a marker file
    /// that exists once the race happened.
    pub fn race_next_central_push(&self) -> PathBuf {
        let marker = self.path().join("raced");
        match self.kind {
            Kind::Git => {
                let other = self.scratch.join("racer");
                git(
                    &self.scratch,
                    &["clone", "--quiet", self.central.to_str().unwrap(), "racer"],
                );
                self.hook(
                    &self.central,
                    "pre-receive",
                    &format!(
                        "#!/bin/sh\n[ -e '{marker}' ] && exit 0\ntouch '{marker}'\n\
                         unset GIT_DIR GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES\n\
                         cd '{other}' && echo racer > racer.txt && git add racer.txt && \
                         git -c user.name=Racer -c user.email=racer@example.com commit -q -m 'Racing commit' && \
                         git push -q origin HEAD:main\nexit 0\n",
                        marker = marker.display(),
                        other = other.display()
                    ),
                );
            }
            Kind::Hg => {
                let other = self.scratch.join("racer");
                hg(
                    &self.scratch,
                    &["clone", "--quiet", self.central.to_str().unwrap(), "racer"],
                );
                self.hg_pre_push_hook(
                    "race",
                    &format!(
                        "#!/bin/sh\ncase \"$HG_ARGS\" in *central-hg*) ;; *) exit 0 ;; esac\n\
                         [ -e '{marker}' ] && exit 0\ntouch '{marker}'\n\
                         cd '{other}' && hg pull -q -u && echo racer > racer.txt && hg addremove -q && \
                         hg commit -q -u 'Racer <racer@example.com>' -m 'Racing commit' && hg push -q\nexit 0\n",
                        marker = marker.display(),
                        other = other.display()
                    ),
                );
            }
        }
        marker
    }

    /// Gives Autoland's hg working copy of central (cloned ahead, as Autoland would)
    /// a `pre-push` hook running `script`.
    pub fn hg_pre_push_hook(&self, name: &str, script: &str) {
        let work = self.path().join("data/work");
        if !work.join("central").exists() {
            std::fs::create_dir_all(&work).unwrap();
            hg(
                &work,
                &[
                    "clone",
                    "--quiet",
                    "--noupdate",
                    self.central.to_str().unwrap(),
                    "central",
                ],
            );
        }
        let path = self.path().join(format!("{name}.sh"));
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let hgrc = work.join("central/.hg/hgrc");
        let mut text = std::fs::read_to_string(&hgrc).unwrap_or_default();
        text.push_str(&format!(
            "\n[hooks]\npre-push.{name} = {}\n",
            path.display()
        ));
        std::fs::write(&hgrc, text).unwrap();
    }

    /// How many pushes try received: refs on git, heads on hg.
    pub fn try_pushes(&self) -> usize {
        match self.kind {
            Kind::Git => self.refs(&self.try_repo).len(),
            Kind::Hg => hg(&self.try_repo, &["log", "-r", "head()", "-T", "{node}\n"])
                .lines()
                .filter(|l| !l.is_empty())
                .count(),
        }
    }

    /// The message of the newest commit on try.
    pub fn try_tip_message(&self) -> String {
        match self.kind {
            Kind::Git => {
                let try_ref = self.refs(&self.try_repo)[0].clone();
                git(&self.try_repo, &["log", "-1", "--format=%B", &try_ref])
            }
            Kind::Hg => hg(&self.try_repo, &["log", "-r", "tip", "-T", "{desc}"]),
        }
    }

    /// Subjects of the newest `n` commits pushed to try, newest first.
    pub fn try_subjects(&self, n: usize) -> Vec<String> {
        let out = match self.kind {
            Kind::Git => {
                let try_ref = self.refs(&self.try_repo)[0].clone();
                git(
                    &self.try_repo,
                    &["log", "--format=%s", &format!("-{n}"), &try_ref],
                )
            }
            Kind::Hg => hg(
                &self.try_repo,
                &["log", "-l", &n.to_string(), "-T", "{desc|firstline}\n"],
            ),
        };
        out.lines().map(str::to_owned).collect()
    }

    /// Runs `script` after a push was recorded by a repository (git `post-receive`, hg
    /// `changegroup`).
    pub fn after_push_hook(&self, repo: &Path, script: &str) {
        match self.kind {
            Kind::Git => self.hook(repo, "post-receive", script),
            Kind::Hg => {
                let path = repo.join(".hg/after-push.sh");
                std::fs::write(&path, script).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
                let mut hgrc = std::fs::read_to_string(repo.join(".hg/hgrc")).unwrap_or_default();
                hgrc.push_str(&format!(
                    "\n[hooks]\nchangegroup.test = {}\n",
                    path.display()
                ));
                std::fs::write(repo.join(".hg/hgrc"), hgrc).unwrap();
            }
        }
    }

    /// Adds a line (`max_transient_attempts = 3`) to the configuration's `[pusher]` table.
    pub fn add_pusher_setting(&self, line: &str) {
        let config = std::fs::read_to_string(&self.config_path).unwrap();
        assert!(config.contains("[pusher]\n"), "no [pusher] table");
        let config = config.replacen("[pusher]\n", &format!("[pusher]\n{line}\n"), 1);
        std::fs::write(&self.config_path, config).unwrap();
    }

    pub fn hook(&self, repo: &Path, name: &str, script: &str) {
        let path = repo.join("hooks").join(name);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Starts `autoland serve` as a separate process (for kill -9 tests).
    pub fn spawn_serve(&self, port: u16) -> Child {
        self.spawn_autoland(&["serve"], port)
    }

    /// Runs `autoland <args> --config <this environment's config, listening on port>`.
    pub fn spawn_autoland(&self, args: &[&str], port: u16) -> Child {
        self.spawn_autoland_with(args, port, &[])
    }

    /// `spawn_autoland` with extra environment variables (the crash matrix's
    /// `AUTOLAND_FAULT_AT`).
    pub fn spawn_autoland_with(&self, args: &[&str], port: u16, vars: &[(&str, &str)]) -> Child {
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        let text = text.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        // One file per process: several may start at once.
        let path = self.path().join(format!("autoland-process-{port}.toml"));
        std::fs::write(&path, text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_autoland"))
            .args(args)
            .args(["--config", path.to_str().unwrap()])
            .stdout(std::fs::File::create(self.path().join("serve.out")).unwrap())
            .stderr(
                std::fs::File::create(self.path().join(format!("serve-{}.log", rand_suffix())))
                    .unwrap(),
            )
            .envs(vars.iter().copied())
            .spawn()
            .expect("autoland binary starts")
    }
}

impl Env {
    /// The stderr of every process `spawn_autoland` started, for failure messages.
    pub fn process_logs(&self) -> String {
        let mut logs = String::new();
        if let Ok(entries) = std::fs::read_dir(self.path()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("serve-") && name.ends_with(".log") {
                    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(40).collect();
                    logs.push_str(&format!("--- {name} (last lines)\n"));
                    for line in tail.into_iter().rev() {
                        logs.push_str(line);
                        logs.push('\n');
                    }
                }
            }
        }
        logs
    }

    /// Waits until the `autoland serve` at `base` answers, showing the processes' logs if
    /// it does not.
    pub async fn wait_serving(&self, base: &str, limit: Duration) {
        wait_healthy_or(base, limit, || self.process_logs()).await;
    }

    /// Starts `autoland serve` as a process of its own on a free port (for kill -9
    /// tests), waits until it serves, and returns it with Alice's API client.
    pub async fn serve_process(&self) -> (Child, Api) {
        self.serve_process_with(&[]).await
    }

    /// [`Env::serve_process`] with extra environment variables (the crash matrix's
    /// `AUTOLAND_FAULT_AT`).
    pub async fn serve_process_with(&self, vars: &[(&str, &str)]) -> (Child, Api) {
        let port = free_port();
        let child = self.spawn_autoland_with(&["serve"], port, vars);
        let base = format!("http://127.0.0.1:{port}");
        self.wait_serving(&base, Duration::from_secs(90)).await;
        (child, Api::new(&base, &self.token))
    }
}

/// The repository `name` as `/api/status` shows it (its `closed` reason, ...).
pub fn repository(overview: &Value, name: &str) -> Value {
    overview["repositories"]
        .as_array()
        .and_then(|repos| repos.iter().find(|r| r["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no repository `{name}` in {overview:#}"))
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running in-process service.
pub struct Running {
    pub service: Service,
    pub api: Api,
}

/// A client of the JSON API.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Api {
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    /// POSTs a JSON body with the token; returns status and body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("server answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("server answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The log of a request's latest CI run, as served (plain text).
    pub async fn ci_log(&self, id: i64) -> String {
        self.http
            .get(format!("{}/api/requests/{id}/ci-log", self.base))
            .send()
            .await
            .expect("server answers")
            .text()
            .await
            .expect("a text body")
    }

    /// Submits patches to destinations; panics unless accepted.
    pub async fn submit(&self, patches: &[String], destinations: &[&str], extra: Value) -> i64 {
        let mut body = json!({
            "patches": patches.iter().enumerate().map(|(i, p)| json!({"name": format!("{:04}.patch", i + 1), "content": p})).collect::<Vec<_>>(),
            "destinations": destinations,
        });
        if let (Some(obj), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        let (status, answer) = self.post("/api/requests", &body).await;
        assert_eq!(status, 201, "submission refused: {answer}");
        answer["id"].as_i64().expect("id")
    }

    /// Waits (up to `limit`) until the request is in a terminal stage; returns its detail.
    pub async fn wait_terminal(&self, id: i64, limit: Duration) -> Value {
        self.wait_for(id, limit, |d| {
            matches!(
                d["request"]["stage"].as_str(),
                Some("landed" | "failed" | "cancelled")
            )
        })
        .await
    }

    /// Waits (up to `limit`) until `done(overview)` holds for `GET /api/status`; returns
    /// that overview. `what` names the awaited condition in the failure message.
    pub async fn wait_status(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (_, overview) = self.get("/api/status").await;
            if done(&overview) {
                return overview;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not happen in {limit:?}: {overview}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the request has an event of `kind`; returns its detail.
    pub async fn wait_event(&self, id: i64, limit: Duration, kind: &str) -> Value {
        self.wait_for(id, limit, |d| {
            d["events"]
                .as_array()
                .is_some_and(|events| events.iter().any(|e| e["kind"] == kind))
        })
        .await
    }

    /// Waits until the request waits on try; returns the revision it pushed there.
    pub async fn wait_try_revision(&self, id: i64, limit: Duration) -> String {
        let detail = self
            .wait_for(id, limit, |d| d["request"]["stage"] == "awaiting_try")
            .await;
        detail["request"]["try_revision"]
            .as_str()
            .expect("a request awaiting try has a try revision")
            .to_owned()
    }

    /// Waits until `done(detail)` holds.
    pub async fn wait_for(&self, id: i64, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(response) = self
                .http
                .get(format!("{}/api/requests/{id}", self.base))
                .send()
                .await
                && let Ok(detail) = response.json::<Value>().await
            {
                if done(&detail) {
                    return detail;
                }
                if Instant::now() > deadline {
                    panic!("request {id} did not get there in {limit:?}: {detail:#}");
                }
            }
            if Instant::now() > deadline {
                panic!("request {id}: server not answering after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The detail of the request's latest event of `kind` (empty when it has none, so it
/// can be used inside a wait's condition).
pub fn event_detail(detail: &Value, kind: &str) -> String {
    detail["events"]
        .as_array()
        .and_then(|events| events.iter().rev().find(|e| e["kind"] == kind))
        .and_then(|e| e["detail"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The stages a request went through, from its transition events.
pub fn stages(detail: &Value) -> Vec<String> {
    let mut out = vec!["received".to_owned()];
    for e in detail["events"].as_array().unwrap() {
        if let Some(to) = e["to_stage"].as_str()
            && out.last().map(String::as_str) != Some(to)
        {
            out.push(to.to_owned());
        }
    }
    out
}

/// Waits until `path` exists.
pub async fn wait_for_file(path: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear in {limit:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the server at `base` answers /healthz.
pub async fn wait_healthy(base: &str, limit: Duration) {
    wait_healthy_or(base, limit, String::new).await;
}

/// Waits until the server at `base` answers /healthz; if it does not, fails with
/// `explain()` in the message.
async fn wait_healthy_or(base: &str, limit: Duration, explain: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server at {base} not healthy after {limit:?}\n{}",
            explain()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
