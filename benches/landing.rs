//! Landing benchmark: the wall time of a one-patch try-only landing on a large git
//! repository (10,000 files in 100 directories, 5,000 commits or `BENCH_COMMITS`), split into the git commands
//! Autoland ran and Autoland's own overhead, next to `scripts/bench-baseline.sh`, a plain
//! shell script running the same git commands on a warm clone.
//!
//! `cargo bench --bench landing` prints the details and a markdown summary table;
//! `scripts/bench.sh` runs it and prints the table with the machine's description.
//!
//! Environment: `BENCH_RUNS` (measured landings, default 10), `BENCH_COMMITS` (commits of
//! history, default 5,000; each generated repository is kept as `central-N.git`), `BENCH_DIR` (where the
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

mod support;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use autoland::config::Config;
use autoland::service;
use support::landings::{
    Api, Landing, Recorder, command_shape, end_medians, install_recorder, median_landing,
    print_timeline_lines, step_medians, timeline_lines,
};
use support::repo::{
    DIRS, FILES, FIRST_PATCHED_FILE, commits, file_path, history_file, original_content,
};
use support::{Stats, USER, dir_from_env, env_number, ms, stats};

// The repository's shape and the files the landings patch: `support::repo`. (The
// baseline script patches the last files of the tree.)

/// Bumped whenever the generator changes, so a stale reused repository is regenerated.
const GENERATOR_VERSION: &str = "landing-bench-repo v2";

const DEFAULT_POLL_MS: u64 = 5;
const DEFAULT_RUNS: usize = 10;
const MAX_RUNS: usize = 1_000;

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; there is nothing to parse.
    let recorder = install_recorder("autoland::vcs::command");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(run(recorder))
}

async fn run(recorder: Recorder) -> anyhow::Result<()> {
    let runs = env_number("BENCH_RUNS", DEFAULT_RUNS as u64, 1..=MAX_RUNS as u64)? as usize;
    let poll = env_number("BENCH_POLL_MS", DEFAULT_POLL_MS, 1..=1000)?;
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = dir_from_env("BENCH_DIR", manifest.join("target/bench-landing"))?;

    println!("# Autoland landing benchmark");
    println!();
    let history = commits()?;
    let central = root.join(format!("central-{history}.git"));
    let started = Instant::now();
    let generated = ensure_central(&central, history)?;
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

    let ctx = Arc::new(service::context(config).await?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let service = service::start(ctx, listener).await?;
    let api = Api::new(service.addr, Duration::from_millis(poll))?;

    let cold = api.land(&recorder, FIRST_PATCHED_FILE, "cold").await?;
    println!(
        "cold first landing (clones the working copy, pushes the whole history to try, fills the CI mirror): {:.1} ms, {} git commands taking {:.1} ms",
        ms(cold.total),
        cold.vcs_count,
        ms(cold.vcs_time)
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

/// Generates `central` (with `history` commits) unless a complete one from the same
/// generator is there.
/// Returns whether it generated it.
fn ensure_central(central: &Path, history: usize) -> anyhow::Result<bool> {
    let mut stamp = central.as_os_str().to_owned();
    stamp.push(".stamp");
    let stamp = PathBuf::from(stamp);
    let wanted = format!("{GENERATOR_VERSION} {FILES} {history}\n");
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
        for k in 1..history {
            time += 60;
            let index = history_file(k);
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

/// The service's configuration (git repositories, `ci_command = "true"`); everything else
/// keeps its default, notably `timeouts.poll_interval_ms` (500).
fn config(dir: &Path, central: &Path, try_repo: &Path) -> anyhow::Result<Config> {
    support::config(dir, "git", central, try_repo, &[USER], "")
}

// ---------------------------------------------------------------------------------------
// What overhead means here (a `support::landings::Landing`).

impl Landing {
    fn overhead(&self) -> Duration {
        self.total.saturating_sub(self.vcs_time)
    }

    fn overhead_pct(&self) -> f64 {
        100.0 * ms(self.overhead()) / ms(self.total)
    }
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
            ms(l.vcs_time),
            l.vcs_count,
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
    let Some((shape, same)) = command_shape(landings) else {
        return;
    };
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
        let (gap, run) = step_medians(landings, i);
        gap_medians += gap;
        git_medians += run;
        println!(
            "| {} | {label} | {gap:.1} | {} | {run:.1} |",
            i + 1,
            gap_note(i, &shape)
        );
    }
    let (tail, seen) = end_medians(landings);
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
    let median = median_landing(landings, |l| ms(l.total));
    println!(
        "Timeline of the median landing ({:.1} ms), ms after the POST started (events have 1 ms resolution):",
        ms(median.total)
    );
    println!();
    let mut lines = timeline_lines(median, |r| {
        format!("git {} ({:.1} ms)", r.short(), ms(r.duration))
    });
    lines.push((ms(median.total), "client sees `landed`".to_owned()));
    print_timeline_lines(lines);
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
    let gits: Vec<f64> = landings.iter().map(|l| ms(l.vcs_time)).collect();
    let overheads: Vec<f64> = landings.iter().map(|l| ms(l.overhead())).collect();
    let pcts: Vec<f64> = landings.iter().map(Landing::overhead_pct).collect();
    let seen: Vec<f64> = landings.iter().map(Landing::observation).collect();
    let counts: Vec<u64> = landings.iter().map(|l| l.vcs_count).collect();
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
        cold.vcs_count,
        ms(cold.vcs_time),
        baseline.cold_ms,
        ms(cold.total)
    );
    println!("<!-- /landing-bench-table -->");
    println!(
        "({} warm landings; overhead includes the CI command `true`, about 1 ms, and the client's polling delay.)",
        landings.len()
    );
}
