//! Landing benchmark: the wall time of a one-patch try-only landing on a large git
//! repository (10,000 files in 100 directories, 5,000 commits), split into the git commands
//! Autoland ran and Autoland's own overhead, next to `scripts/bench-baseline.sh`, a plain
//! shell script running the same git commands on a warm clone.
//!
//! `cargo bench --bench landing` prints the details and a markdown summary table;
//! `scripts/bench.sh` runs it and prints the table with the machine's description.
//!
//! Environment: `BENCH_RUNS` (measured landings, default 10), `BENCH_DIR` (where the
//! repositories, working copies and database live, default `target/bench-landing`; the
//! generated central repository is reused across runs), `BENCH_POLL_MS` (how often the
//! client asks for the request, default 5), `RUST_LOG` (e.g. `autoland=debug` prints every
//! git command).
//!
//! A measurement: from just before `POST /api/requests` until a `GET` (every 5 ms) sees the
//! stage `landed`. Git time is the growth of `autoland::vcs::command::totals()` over the
//! landing; overhead is total − git time, so it includes the HTTP round trips, the
//! database, the wake-ups between modules, the observation delay (up to one poll) and the
//! CI command itself (`true`, about a millisecond).

use std::fmt::Debug;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use autoland::config::{Config, hash_token};
use autoland::service::{self, Context};
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Shape of the generated repository.
const DIRS: usize = 100;
const FILES_PER_DIR: usize = 100;
const FILES: usize = DIRS * FILES_PER_DIR;
const COMMITS: usize = 5_000;
const LINES_PER_FILE: usize = 10;
/// History commits modify files 0..COMMITS-1; the benchmark's patches modify files from
/// here on, so they always apply on central's tip (a try-only landing never moves it).
/// The baseline script patches the last files of the tree.
const FIRST_PATCHED_FILE: usize = COMMITS;
/// Bumped whenever the generator changes, so a stale reused repository is regenerated.
const GENERATOR_VERSION: &str = "landing-bench-repo v1";

const TOKEN: &str = "bench-token-alice";
const USER: &str = "alice@example.com";
const DEFAULT_POLL_MS: u64 = 5;
const LANDING_LIMIT: Duration = Duration::from_secs(120);
const DEFAULT_RUNS: usize = 10;
const MAX_RUNS: usize = 1_000;

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to parse.
    let recorder = Recorder::default();
    let log = std::env::var_os("RUST_LOG").map(|_| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(EnvFilter::from_default_env())
    });
    tracing_subscriber::registry()
        .with(recorder.clone().with_filter(
            Targets::new().with_target("autoland::vcs::command", tracing::Level::DEBUG),
        ))
        .with(log)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(run(recorder))
}

async fn run(recorder: Recorder) -> anyhow::Result<()> {
    let runs = match std::env::var("BENCH_RUNS") {
        Ok(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_RUNS).contains(n))
            .with_context(|| format!("BENCH_RUNS must be 1 to {MAX_RUNS}, not `{text}`"))?,
        Err(_) => DEFAULT_RUNS,
    };
    let poll = match std::env::var("BENCH_POLL_MS") {
        Ok(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .with_context(|| format!("BENCH_POLL_MS must be 1 to 1000, not `{text}`"))?,
        Err(_) => DEFAULT_POLL_MS,
    };
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("target/bench-landing"));
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let root = root.canonicalize()?;

    println!("# Autoland landing benchmark");
    println!();
    let central = root.join("central.git");
    let started = Instant::now();
    let generated = ensure_central(&root, &central)?;
    println!(
        "central.git: {} ({}: {:.1} s)",
        central.display(),
        if generated { "generated" } else { "reused" },
        started.elapsed().as_secs_f64()
    );
    let commits = git_out(&central, &["rev-list", "--count", "main"])?;
    let files = git_out(&central, &["ls-tree", "-r", "--name-only", "main"])?
        .lines()
        .count();
    println!(
        "  {files} files in {DIRS} directories, {} commits",
        commits.trim()
    );

    // Everything else starts fresh: an empty try repository and an empty data directory,
    // so the first landing is a real cold start.
    let scratch = root.join("run");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .with_context(|| format!("cannot remove {}", scratch.display()))?;
    }
    let try_repo = scratch.join("try.git");
    std::fs::create_dir_all(&try_repo)?;
    git(
        &try_repo,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    )?;

    let config = config(&scratch, &central, &try_repo)?;
    println!(
        "service: poll_interval_ms = {} (default; in-process wake-ups move requests on), ci_command = \"true\", {} pushers, SQLite in {}",
        config.timeouts.poll_interval_ms,
        config.pusher.concurrency,
        config.data_dir.display()
    );
    println!("client: POST, then GET every {poll} ms until `landed`");
    println!("git: {}", git_out(&scratch, &["--version"])?.trim());
    println!();

    let ctx = Arc::new(Context::new(config).await?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let service = service::start(ctx, listener).await?;
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        base: format!("http://{}", service.addr),
        poll: Duration::from_millis(poll),
    };

    let cold = api.land(&recorder, FIRST_PATCHED_FILE, "cold").await?;
    println!(
        "cold first landing (clones the working copy, pushes the whole history to try, fills the CI mirror): {:.1} ms, {} git commands taking {:.1} ms",
        ms(cold.total),
        cold.git_count,
        ms(cold.git_time)
    );
    println!();

    // The shell script's landings are interleaved with Autoland's, alternating which goes
    // first, so that drift on a noisy machine hits both alike. (The script runs while the
    // service is idle; `block_in_place` keeps the runtime's other worker serving it.)
    let mut baseline = tokio::task::block_in_place(|| {
        Baseline::prepare(&manifest, &central, &try_repo, &scratch.join("baseline"))
    })?;
    println!(
        "cold first round of the shell script (clone, mirror, one landing): {:.1} ms",
        baseline.cold_ms
    );
    println!();
    let mut landings = Vec::with_capacity(runs);
    for run in 1..=runs {
        if run % 2 == 0 {
            tokio::task::block_in_place(|| baseline.land())?;
        }
        landings.push(
            api.land(&recorder, FIRST_PATCHED_FILE + run, &format!("run {run}"))
                .await?,
        );
        if run % 2 == 1 {
            tokio::task::block_in_place(|| baseline.land())?;
        }
    }
    service.stop().await;

    print_runs(&landings, &baseline.runs_ms);
    print_timeline(&landings);
    print_summary(&landings, &cold, &baseline, poll);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The repositories.

/// Generates `central.git` unless a complete one from the same generator is there.
/// Returns whether it generated it.
fn ensure_central(root: &Path, central: &Path) -> anyhow::Result<bool> {
    let stamp = root.join("central.stamp");
    let wanted = format!("{GENERATOR_VERSION} {FILES} {COMMITS}\n");
    if central.join("HEAD").exists()
        && std::fs::read_to_string(&stamp).ok().as_ref() == Some(&wanted)
    {
        return Ok(false);
    }
    let _ = std::fs::remove_file(&stamp);
    if central.exists() {
        std::fs::remove_dir_all(central)?;
    }
    std::fs::create_dir_all(central)?;
    git(
        central,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    )?;
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet", "--done"])
        .current_dir(central)
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot run git fast-import")?;
    {
        let stdin = child.stdin.take().context("fast-import has no stdin")?;
        let mut out = BufWriter::new(stdin);
        let mut time = 1_600_000_000_u64;
        let commit = |out: &mut BufWriter<_>, message: &str, time: u64| -> std::io::Result<()> {
            writeln!(out, "commit refs/heads/main")?;
            writeln!(out, "author Bench Author <author@example.com> {time} +0000")?;
            writeln!(
                out,
                "committer Bench Author <author@example.com> {time} +0000"
            )?;
            writeln!(out, "data {}\n{message}", message.len())
        };
        commit(&mut out, "Initial import", time)?;
        for index in 0..FILES {
            write_file(&mut out, index, &original_content(index))?;
        }
        for k in 1..COMMITS {
            time += 60;
            let index = k - 1;
            commit(
                &mut out,
                &format!("Change {} (commit {k})", file_path(index)),
                time,
            )?;
            let content = format!("{}changed by commit {k}\n", original_content(index));
            write_file(&mut out, index, &content)?;
        }
        writeln!(out, "done")?;
        out.flush()?;
    }
    let status = child.wait()?;
    ensure!(status.success(), "git fast-import failed: {status}");
    // What a served repository looks like: one delta-compressed pack with a bitmap.
    git(central, &["repack", "-a", "-d", "-q"])?;
    std::fs::write(&stamp, wanted)?;
    Ok(true)
}

fn write_file(out: &mut impl Write, index: usize, content: &str) -> std::io::Result<()> {
    writeln!(out, "M 100644 inline {}", file_path(index))?;
    writeln!(out, "data {}\n{content}", content.len())
}

fn file_path(index: usize) -> String {
    format!(
        "d{:02}/f{:03}.txt",
        index / FILES_PER_DIR,
        index % FILES_PER_DIR
    )
}

fn original_content(index: usize) -> String {
    let path = file_path(index);
    (1..=LINES_PER_FILE)
        .map(|line| format!("{path} line {line}\n"))
        .collect()
}

/// A unified diff changing the last line of file `index` (never touched by history).
fn patch_for(index: usize, label: &str) -> String {
    let path = file_path(index);
    let keep = 3;
    let first = LINES_PER_FILE - keep + 1;
    let mut diff = format!("--- a/{path}\n+++ b/{path}\n@@ -{first},{keep} +{first},{keep} @@\n");
    for line in first..LINES_PER_FILE {
        diff.push_str(&format!(" {path} line {line}\n"));
    }
    diff.push_str(&format!("-{path} line {LINES_PER_FILE}\n"));
    diff.push_str(&format!(
        "+{path} line {LINES_PER_FILE}, changed by the benchmark ({label})\n"
    ));
    diff
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    git_out(dir, args).map(|_| ())
}

fn git_out(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .with_context(|| format!("cannot run git {args:?}"))?;
    ensure!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The service's configuration, as a file would say it (so fields added later with
/// defaults need no change here). Everything not named keeps its default, notably
/// `timeouts.poll_interval_ms` (500).
fn config(dir: &Path, central: &Path, try_repo: &Path) -> anyhow::Result<Config> {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
data_dir = {data_dir}

[[repositories]]
name = "central"
kind = "git"
pull_url = {central}
level = "scm_level_3"

[[repositories]]
name = "try"
kind = "git"
pull_url = {try_repo}
level = "scm_level_1"
try = true
base = "central"
ci_command = "true"
ci_timeout_seconds = 60

[permissions.users]
"{USER}" = "scm_level_3"

[[tokens]]
name = "bench"
user = "{USER}"
sha256 = "{hash}"
"#,
        data_dir = toml_string(&dir.join("data")),
        central = toml_string(central),
        try_repo = toml_string(try_repo),
        hash = hash_token(TOKEN),
    );
    let config: Config = toml::from_str(&text).context("the benchmark's configuration")?;
    config.validate()?;
    Ok(config)
}

/// A path as a TOML string.
fn toml_string(path: &Path) -> String {
    toml::Value::String(path.to_string_lossy().into_owned()).to_string()
}

// ---------------------------------------------------------------------------------------
// Recording every git command with its end time (from the `vcs command` debug event).

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Ran>>>);

#[derive(Clone, Debug)]
struct Ran {
    end: Instant,
    duration: Duration,
    command: String,
}

impl Ran {
    fn start(&self) -> Instant {
        self.end.checked_sub(self.duration).unwrap_or(self.end)
    }
}

impl Recorder {
    fn len(&self) -> usize {
        self.0.lock().map(|v| v.len()).unwrap_or(0)
    }

    fn since(&self, from: usize) -> Vec<Ran> {
        self.0
            .lock()
            .map(|v| v.get(from..).unwrap_or_default().to_vec())
            .unwrap_or_default()
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let end = Instant::now();
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let (Some(command), Some(duration)) = (fields.command, fields.duration)
            && let Ok(mut all) = self.0.lock()
        {
            all.push(Ran {
                end,
                duration,
                command,
            });
        }
    }
}

#[derive(Default)]
struct Fields {
    command: Option<String>,
    duration: Option<Duration>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        match field.name() {
            "command" => self.command = Some(format!("{value:?}")),
            "duration" => self.duration = parse_duration(&format!("{value:?}")),
            _ => {}
        }
    }
}

/// Parses `Duration`'s `Debug` text (`1.5s`, `12.3ms`, `4.5µs`, `100ns`).
fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => number,
        "ms" => number / 1e3,
        "µs" | "us" => number / 1e6,
        "ns" => number / 1e9,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// `git -c a=b -c c=d fetch --quiet -- /path ...` → `fetch --quiet …`, paths and hashes
/// shortened, for the timeline.
fn short_command(command: &str) -> String {
    let mut words = command.split(' ').skip(1).peekable();
    while words.peek() == Some(&"-c") {
        words.next();
        words.next();
    }
    words
        .map(|w| {
            if w.starts_with('/') {
                w.rsplit('/')
                    .next()
                    .map(|last| format!("…/{last}"))
                    .unwrap_or_default()
            } else if w.len() >= 40 && w.chars().all(|c| c.is_ascii_hexdigit()) {
                format!("{}…", &w[..8])
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------
// Landing through the API.

struct Api {
    http: reqwest::Client,
    base: String,
    poll: Duration,
}

/// One measured landing.
struct Landing {
    total: Duration,
    git_count: u64,
    git_time: Duration,
    /// The git commands it ran, in order.
    commands: Vec<Ran>,
    t0: Instant,
    /// Events: kind and milliseconds after the POST started.
    events: Vec<(String, f64)>,
    /// When the `landed` event was recorded, ms after the POST started (±0.5: events have
    /// millisecond timestamps).
    landed_at: f64,
    polls: u32,
}

impl Landing {
    fn overhead(&self) -> Duration {
        self.total.saturating_sub(self.git_time)
    }

    fn overhead_pct(&self) -> f64 {
        100.0 * ms(self.overhead()) / ms(self.total)
    }

    /// From the `landed` event to the client seeing it: the cost of observing by polling.
    fn observation(&self) -> f64 {
        (ms(self.total) - self.landed_at).max(0.0)
    }
}

impl Api {
    async fn land(&self, recorder: &Recorder, file: usize, label: &str) -> anyhow::Result<Landing> {
        let body = json!({
            "patches": [{
                "name": format!("bench-{}.patch", label.replace(' ', "-")),
                "content": patch_for(file, label),
                "message": format!("Bench: change {} ({label})", file_path(file)),
            }],
            "destinations": ["try"],
        });
        let (count_before, time_before) = autoland::vcs::command::totals();
        let first_record = recorder.len();
        let wall_before = epoch_ms();
        let t0 = Instant::now();
        let response = self
            .http
            .post(format!("{}/api/requests", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        ensure!(
            status.as_u16() == 201,
            "submission refused ({status}): {answer}"
        );
        let id = answer["id"].as_i64().context("no id in the answer")?;
        let mut polls = 0;
        let detail = loop {
            polls += 1;
            let detail: Value = self
                .http
                .get(format!("{}/api/requests/{id}", self.base))
                .bearer_auth(TOKEN)
                .send()
                .await?
                .json()
                .await?;
            match detail["request"]["stage"].as_str() {
                Some("landed") => break detail,
                Some(stage @ ("failed" | "cancelled")) => {
                    bail!("request {id} ({label}) ended {stage}: {detail:#}")
                }
                _ => {}
            }
            if t0.elapsed() > LANDING_LIMIT {
                bail!("request {id} ({label}) did not land within {LANDING_LIMIT:?}: {detail:#}");
            }
            tokio::time::sleep(self.poll).await;
        };
        let observed = Instant::now();
        let (count_after, time_after) = autoland::vcs::command::totals();
        let events: Vec<(String, f64)> = detail["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .map(|e| {
                        let kind = match e["to_stage"].as_str() {
                            Some(to) => format!("→ {to}"),
                            None => e["kind"].as_str().unwrap_or("?").to_owned(),
                        };
                        // `at` is whole milliseconds: take the middle of that millisecond.
                        let at = e["at"].as_f64().unwrap_or(f64::NAN) + 0.5;
                        (kind, at - wall_before)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let landed_at = events
            .iter()
            .rev()
            .find(|(kind, _)| kind == "→ landed")
            .map_or(f64::NAN, |(_, at)| *at);
        Ok(Landing {
            total: observed - t0,
            git_count: count_after - count_before,
            git_time: time_after.saturating_sub(time_before),
            commands: recorder.since(first_record),
            t0,
            events,
            landed_at,
            polls,
        })
    }
}

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// The baseline script.

/// `scripts/bench-baseline.sh` on the same repositories, in a work directory it keeps:
/// the first call makes the cold round, later calls run warm landings.
struct Baseline {
    script: PathBuf,
    central: PathBuf,
    try_repo: PathBuf,
    work: PathBuf,
    cold_ms: f64,
    runs_ms: Vec<f64>,
    commands: usize,
}

impl Baseline {
    /// Prepares the work directory: the script's cold round.
    fn prepare(
        manifest: &Path,
        central: &Path,
        try_repo: &Path,
        work: &Path,
    ) -> anyhow::Result<Baseline> {
        let mut baseline = Baseline {
            script: manifest.join("scripts/bench-baseline.sh"),
            central: central.to_owned(),
            try_repo: try_repo.to_owned(),
            work: work.to_owned(),
            cold_ms: f64::NAN,
            runs_ms: Vec::new(),
            commands: 0,
        };
        let text = baseline.call(0)?;
        baseline.cold_ms = field(&text, "BASELINE_COLD_MS")?
            .first()
            .copied()
            .context("the baseline's first call made no cold round")?;
        Ok(baseline)
    }

    /// One warm landing by the script; returns its wall time (ms).
    fn land(&mut self) -> anyhow::Result<f64> {
        let text = self.call(1)?;
        let runs = field(&text, "BASELINE_RUNS_MS")?;
        ensure!(
            runs.len() == 1,
            "the baseline reported {} runs, not 1",
            runs.len()
        );
        self.commands = field(&text, "BASELINE_COMMANDS")?
            .first()
            .map_or(0, |n| *n as usize);
        self.runs_ms.push(runs[0]);
        Ok(runs[0])
    }

    fn call(&self, runs: usize) -> anyhow::Result<String> {
        let out = Command::new("sh")
            .arg(&self.script)
            .arg(&self.central)
            .arg(&self.try_repo)
            .arg(&self.work)
            .arg(runs.to_string())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {}", self.script.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        ensure!(
            out.status.success(),
            "{} failed ({}):\n{text}",
            self.script.display(),
            out.status
        );
        Ok(text)
    }
}

/// The numbers on the script's `KEY n n n` line.
fn field(text: &str, key: &str) -> anyhow::Result<Vec<f64>> {
    let line = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .filter(|rest| rest.is_empty() || rest.starts_with(' '))
        })
        .with_context(|| format!("no `{key}` line in the baseline's output:\n{text}"))?;
    line.split_whitespace()
        .map(|v| {
            v.parse::<f64>()
                .with_context(|| format!("bad number `{v}` in `{key}`"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Reporting.

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(values: &[f64]) -> Stats {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    Stats {
        median,
        min: sorted.first().copied().unwrap_or(f64::NAN),
        max: sorted.last().copied().unwrap_or(f64::NAN),
    }
}

fn print_runs(landings: &[Landing], shell: &[f64]) {
    println!(
        "## Warm landings: Autoland, and the shell script with the same git commands ({} each, interleaved)",
        landings.len()
    );
    println!();
    println!(
        "| run | total ms | git ms | git commands | overhead ms | overhead % | `landed` → seen ms | GETs | shell script ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, l) in landings.iter().enumerate() {
        println!(
            "| {} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {} | {:.1} |",
            i + 1,
            ms(l.total),
            ms(l.git_time),
            l.git_count,
            ms(l.overhead()),
            l.overhead_pct(),
            l.observation(),
            l.polls,
            shell.get(i).copied().unwrap_or(f64::NAN)
        );
    }
    println!();
}

/// Medians, position by position, of every git command and of the gap before it: the gaps
/// are where Autoland's own time goes (one request's commands run one after another).
fn print_timeline(landings: &[Landing]) {
    let Some(first) = landings.first() else {
        return;
    };
    let shape: Vec<String> = first
        .commands
        .iter()
        .map(|r| short_command(&r.command))
        .collect();
    let same = landings.iter().all(|l| {
        l.commands.len() == shape.len()
            && l.commands
                .iter()
                .zip(&shape)
                .all(|(r, s)| short_command(&r.command).split(' ').next() == s.split(' ').next())
    });
    println!("## Where a warm landing's time goes (medians over the runs)");
    println!();
    if !same {
        println!("(the landings did not all run the same git commands; no timeline)");
        println!();
        return;
    }
    let overlapping = landings.iter().any(|l| {
        l.commands
            .windows(2)
            .any(|w| w[1].start() + Duration::from_micros(200) < w[0].end)
    });
    if overlapping {
        println!(
            "(note: some git commands overlapped; gaps below are not all on the critical path)"
        );
        println!();
    }
    println!(
        "| # | git command | gap before it (Autoland) ms | what Autoland does in the gap | git ms |"
    );
    println!("|---:|---|---:|---|---:|");
    let mut gap_medians = 0.0;
    let mut git_medians = 0.0;
    for (i, label) in shape.iter().enumerate() {
        let gaps: Vec<f64> = landings
            .iter()
            .map(|l| {
                let before = if i == 0 { l.t0 } else { l.commands[i - 1].end };
                ms(l.commands[i].start().saturating_duration_since(before))
            })
            .collect();
        let runs: Vec<f64> = landings
            .iter()
            .map(|l| ms(l.commands[i].duration))
            .collect();
        let (gap, run) = (stats(&gaps).median, stats(&runs).median);
        gap_medians += gap;
        git_medians += run;
        println!(
            "| {} | {label} | {gap:.1} | {} | {run:.1} |",
            i + 1,
            gap_note(i, &shape)
        );
    }
    let last_end = |l: &Landing| ms(l.commands.last().map_or(l.t0, |r| r.end) - l.t0);
    let tails: Vec<f64> = landings
        .iter()
        .map(|l| (l.landed_at - last_end(l)).max(0.0))
        .collect();
    let tail = stats(&tails).median;
    let seen: Vec<f64> = landings.iter().map(Landing::observation).collect();
    let seen = stats(&seen).median;
    gap_medians += tail + seen;
    println!(
        "| | (end) | {tail:.1} | finish the CI run, `ci_finished` note, result watcher wake-up, `landed` transition | |"
    );
    println!(
        "| | (client) | {seen:.1} | `landed` committed → the client's next GET sees it (measurement, not Autoland) | |"
    );
    println!("| | **sum of medians** | **{gap_medians:.1}** | | **{git_medians:.1}** |");
    println!();

    // The events of the median landing, to name what happens in each gap.
    let mut order: Vec<usize> = (0..landings.len()).collect();
    order.sort_by(|a, b| landings[*a].total.cmp(&landings[*b].total));
    let median = &landings[order[order.len() / 2]];
    println!(
        "Timeline of the median landing ({:.1} ms), ms after the POST started (events have 1 ms resolution):",
        ms(median.total)
    );
    println!();
    let mut lines: Vec<(f64, String)> = median
        .events
        .iter()
        .map(|(kind, at)| (*at, format!("event {kind}")))
        .collect();
    for r in &median.commands {
        lines.push((
            ms(r.start().saturating_duration_since(median.t0)),
            format!(
                "git {} ({:.1} ms)",
                short_command(&r.command),
                ms(r.duration)
            ),
        ));
    }
    lines.push((ms(median.total), "client sees `landed`".to_owned()));
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!("```");
    for (at, what) in lines {
        println!("{at:8.1}  {what}");
    }
    println!("```");
    println!();
}

/// What the service does between command `i - 1` and command `i` of a try-only landing.
fn gap_note(i: usize, shape: &[String]) -> &'static str {
    let word = |j: usize| shape.get(j).map_or("", |s| s.as_str());
    if i == 0 {
        "POST (request stored), pusher wake-up and claim, 3 transitions (gathering, authorizing, applying), patches read"
    } else if word(i).starts_with("apply") {
        "patch written to a scratch file"
    } else if word(i).starts_with("commit") {
        "message written to a scratch file"
    } else if word(i).starts_with("rev-parse HEAD") && word(i - 1).starts_with("rev-parse HEAD") {
        "`applied` transition (→ pushing_try); the push starts by reading HEAD again"
    } else if word(i).starts_with("fetch") && word(i - 1).starts_with("push") {
        "`pushed` transition (→ awaiting_try, CI run queued), CI runner wake-up and claim, `ci_started` note"
    } else if word(i).starts_with("worktree remove") {
        "the CI command: request read, log file, `sh -c true` (fork, exec, wait)"
    } else {
        ""
    }
}

fn print_summary(landings: &[Landing], cold: &Landing, baseline: &Baseline, poll_ms: u64) {
    let totals: Vec<f64> = landings.iter().map(|l| ms(l.total)).collect();
    let gits: Vec<f64> = landings.iter().map(|l| ms(l.git_time)).collect();
    let overheads: Vec<f64> = landings.iter().map(|l| ms(l.overhead())).collect();
    let pcts: Vec<f64> = landings.iter().map(Landing::overhead_pct).collect();
    let seen: Vec<f64> = landings.iter().map(Landing::observation).collect();
    let counts: Vec<u64> = landings.iter().map(|l| l.git_count).collect();
    let count = counts.first().copied().unwrap_or(0);
    let count_text = if counts.iter().all(|c| *c == count) {
        format!("{count}")
    } else {
        format!(
            "{}–{}",
            counts.iter().min().unwrap_or(&0),
            counts.iter().max().unwrap_or(&0)
        )
    };
    let (t, g, o, p, s, b) = (
        stats(&totals),
        stats(&gits),
        stats(&overheads),
        stats(&pcts),
        stats(&seen),
        stats(&baseline.runs_ms),
    );
    let row = |measure: &str, x: &Stats| {
        println!(
            "| {measure} | {:.1} ms | {:.1} ms | {:.1} ms |",
            x.median, x.min, x.max
        );
    };
    println!("## Summary");
    println!();
    println!("<!-- landing-bench-table -->");
    println!("| measure | median | min | max |");
    println!("|---|---:|---:|---:|");
    row("Autoland total (POST → `landed` seen)", &t);
    row(
        &format!("git commands inside Autoland ({count_text} per landing)"),
        &g,
    );
    println!(
        "| Autoland overhead (total − git), ms | {:.1} ms | {:.1} ms | {:.1} ms |",
        o.median, o.min, o.max
    );
    println!(
        "| Autoland overhead, % of total | {:.1} % | {:.1} % | {:.1} % |",
        p.median, p.min, p.max
    );
    row(
        &format!("… of which the client's polling delay (GET every {poll_ms} ms)"),
        &s,
    );
    row(
        &format!(
            "plain shell script, same git commands ({} per landing + `sh -c true`)",
            baseline.commands
        ),
        &b,
    );
    let paired: Vec<f64> = landings
        .iter()
        .zip(&baseline.runs_ms)
        .map(|(l, shell)| ms(l.total) - shell)
        .collect();
    row(
        "Autoland total − shell script, run by run (interleaved)",
        &stats(&paired),
    );
    println!(
        "| cold first landing ({} git commands, {:.1} ms of git; shell script's cold round: {:.1} ms) | {:.1} ms | | |",
        cold.git_count,
        ms(cold.git_time),
        baseline.cold_ms,
        ms(cold.total)
    );
    println!("<!-- /landing-bench-table -->");
    println!(
        "({} warm landings; overhead includes the CI command `true`, about 1 ms, and the client's polling delay.)",
        landings.len()
    );
}
