//! Mercurial landing benchmark (issue 4), on an hg repository of 10,000 files in 100
//! directories and 5,000 commits or `BENCH_COMMITS` (the shape of `benches/landing.rs`'s
//! git repository):
//!
//! 1. **sequence**: the hg commands of one try-only landing, exactly as `HgWorkingCopy`
//!    (`src/vcs/hg.rs`) and `HgCiCheckout` (on the CI runner's reused directory, after the
//!    runner's scrub) run them, timed (a) through one
//!    `CommandServer` per repository and (b) with `spawn_once` (a new `hg` process per
//!    command), on warm clones, landings of both kinds interleaved.
//! 2. **service**: one-patch try-only landings through the real service (`kind = "hg"`,
//!    `ci_command = "true"`), split into hg time (the growth of
//!    `autoland::vcs::command::totals()`, which counts hg commands too) and Autoland's
//!    overhead, as `benches/landing.rs` does for git. The total runs from just before the
//!    POST to the `landed` event's timestamp (1 ms resolution), so the client's polling
//!    delay is not in it (`benches/landing.rs` stops at the GET that sees `landed`).
//!
//! `cargo bench --bench hg_landing` prints the details and markdown tables;
//! `scripts/bench-hg.sh` runs it and prints the tables with the machine's description.
//!
//! Environment: `BENCH_RUNS` (measured landings per mode and through the service, default
//! 10), `BENCH_PARTS` (`sequence`, `service` or `both`, the default), `BENCH_DIR` (where the
//! repositories, clones and database live, default `target/bench-hg`), `BENCH_CACHE` (where
//! the generated central repository is kept and reused, default `target/bench-hg`; it is
//! copied into `BENCH_DIR` when that is elsewhere), `BENCH_POLL_MS` (how often the client
//! asks for the request, default 50), `RUST_LOG` (e.g. `autoland=debug` prints every hg
//! command).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use autoland::ci::local::workspace::scrub;
use autoland::config::Config;
use autoland::service;
use autoland::vcs::CommandRecord;
use autoland::vcs::hg_cmdserver::{CommandServer, HgOutput, spawn_once};
use support::landings::{
    Api, Landing, Ran, Recorder, command_shape, end_medians, install_recorder, median_landing,
    print_timeline_lines, step_medians, timeline_lines,
};
use support::repo::{
    DIRS, FILES, FILES_PER_DIR, FIRST_PATCHED_FILE, HISTORY_FILES, LINES_PER_FILE, commits,
    file_path, patch_for,
};
use support::{Stats, USER, dir_from_env, env_number, load_average, ms, stats};

// The repository's shape (as in `benches/landing.rs`) and the files the landings patch:
// `support::repo`. Every landing of the benchmark patches a file of its own (so no two
// landings make the same changeset).

/// Bumped whenever the generator changes, so a stale reused repository is regenerated.
const GENERATOR_VERSION: &str = "hg-landing-bench-repo v2";

/// Not the 5 ms of `benches/landing.rs`: on 2 cores, 5 ms polling (about 270 GETs per
/// landing) slowed the CI checkout's `hg archive` (before warm checkouts) by about 20 %. The total is taken from
/// the `landed` event instead, so the polling period does not add to it.
const DEFAULT_POLL_MS: u64 = 50;
const HG_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_RUNS: usize = 10;
const MAX_RUNS: usize = 200;
/// The hg events' target (both `CommandServer::run` and `spawn_once`).
const HG_TARGET: &str = "autoland::vcs::hg_cmdserver";
/// The one step of a landing's sequence that is not an hg command.
const SCRUB: &str = "CI scrub of the reused checkout (a walk of the tree, not hg)";

fn main() -> anyhow::Result<()> {
    let recorder = install_recorder(HG_TARGET);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(run(recorder))
}

async fn run(recorder: Recorder) -> anyhow::Result<()> {
    let runs = env_number("BENCH_RUNS", DEFAULT_RUNS as u64, 1..=MAX_RUNS as u64)? as usize;
    let poll = env_number("BENCH_POLL_MS", DEFAULT_POLL_MS, 1..=1000)?;
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "both".to_owned());
    let (do_sequence, do_service) = match parts.as_str() {
        "sequence" => (true, false),
        "service" => (false, true),
        "both" => (true, true),
        other => bail!("BENCH_PARTS must be sequence, service or both, not `{other}`"),
    };
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = dir_from_env("BENCH_DIR", manifest.join("target/bench-hg"))?;
    let cache = dir_from_env("BENCH_CACHE", manifest.join("target/bench-hg"))?;

    println!("# Autoland hg landing benchmark");
    println!();
    let started = Instant::now();
    let (central, how) = ensure_central(&cache, &root, commits()?)?;
    println!(
        "central: {} ({how}: {:.1} s)",
        central.display(),
        started.elapsed().as_secs_f64()
    );
    let commits = hg_out(&central, &["log", "-r", "tip", "-T", "{rev}"])?;
    let files = hg_out(&central, &["files", "-r", "tip"])?.lines().count();
    let commits: usize = commits.trim().parse::<usize>().map(|r| r + 1).unwrap_or(0);
    println!("  {files} files in {DIRS} directories, {commits} commits");
    println!(
        "hg: {}",
        hg_out(&root, &["version", "-q"])?
            .lines()
            .next()
            .unwrap_or("?")
    );
    println!("load average before: {}", load_average());
    println!();

    let scratch = root.join("run");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .with_context(|| format!("cannot remove {}", scratch.display()))?;
    }
    std::fs::create_dir_all(&scratch)?;
    let mut next_file = FIRST_PATCHED_FILE;

    let sequence = if do_sequence {
        Some(run_sequence(&central, &scratch.join("sequence"), runs, &mut next_file).await?)
    } else {
        None
    };
    let service = if do_service {
        Some(
            run_service(
                &recorder,
                &central,
                &scratch.join("service"),
                runs,
                poll,
                &mut next_file,
            )
            .await?,
        )
    } else {
        None
    };
    println!("load average after: {}", load_average());
    println!();

    println!("<!-- hg-landing-bench-tables -->");
    if let Some(sequence) = &sequence {
        sequence.print_tables();
    }
    if let Some(service) = &service {
        service.print_summary(sequence.as_ref(), poll);
    }
    println!("<!-- /hg-landing-bench-tables -->");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The repositories.

/// Makes sure `root/central-N` (N = `history` commits) is a complete central repository
/// from this generator: generated in `cache` (unless one is there) and copied into `root`
/// if that is elsewhere.
fn ensure_central(
    cache: &Path,
    root: &Path,
    history: usize,
) -> anyhow::Result<(PathBuf, &'static str)> {
    let name = format!("central-{history}");
    let stamp = format!("{name}.stamp");
    let wanted = format!("{GENERATOR_VERSION} {FILES} {history}\n");
    let ready = |dir: &Path| {
        dir.join(&name).join(".hg").is_dir()
            && std::fs::read_to_string(dir.join(&stamp)).ok().as_ref() == Some(&wanted)
    };
    let mut how = "reused";
    if !ready(cache) {
        let _ = std::fs::remove_file(cache.join(&stamp));
        generate_central(&cache.join(&name), history)?;
        std::fs::write(cache.join(&stamp), &wanted)?;
        how = "generated";
    }
    if cache != root && !ready(root) {
        let _ = std::fs::remove_file(root.join(&stamp));
        let _ = std::fs::remove_dir_all(root.join(&name));
        let status = Command::new("cp")
            .arg("-a")
            .arg(cache.join(&name))
            .arg(root.join(&name))
            .status()?;
        ensure!(
            status.success(),
            "cannot copy central into {}",
            root.display()
        );
        std::fs::write(root.join(&stamp), &wanted)?;
        how = if how == "generated" {
            "generated and copied"
        } else {
            "copied from the cache"
        };
    }
    Ok((root.join(&name), how))
}

/// One commit adding every file, then `history` - 1 commits that each change one file (the
/// content of `benches/landing.rs`'s git history), made in one process through Mercurial's
/// own API by `benches/support/hg_history.py` (about 20 s for 5,000 commits).
fn generate_central(central: &Path, history: usize) -> anyhow::Result<()> {
    if central.exists() {
        std::fs::remove_dir_all(central)?;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/support/hg_history.py");
    let status = Command::new(hg_python()?)
        .arg(&script)
        .arg(central)
        .args([
            FILES.to_string(),
            FILES_PER_DIR.to_string(),
            LINES_PER_FILE.to_string(),
            HISTORY_FILES.to_string(),
            history.to_string(),
        ])
        .env("HGPLAIN", "1")
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    ensure!(status.success(), "{} failed: {status}", script.display());
    Ok(())
}

/// The Python that runs `hg` (its `#!` line): the one that can import Mercurial, which
/// need not be the first `python3` on the PATH.
fn hg_python() -> anyhow::Result<PathBuf> {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    let hg = std::env::split_paths(&paths)
        .map(|dir| dir.join("hg"))
        .find(|candidate| candidate.is_file())
        .context("no hg on the PATH")?;
    let text = std::fs::read(&hg).with_context(|| format!("cannot read {}", hg.display()))?;
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first);
    let interpreter = line
        .strip_prefix("#!")
        .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
        .with_context(|| format!("{} has no #! line", hg.display()))?;
    // `#!/usr/bin/env python3` names the program after `env`.
    let program = match interpreter.as_slice() {
        [env, program, ..] if env.ends_with("/env") => program,
        [program, ..] => program,
        [] => bail!("{} has an empty #! line", hg.display()),
    };
    Ok(PathBuf::from(program))
}

fn hg(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    hg_out(dir, args).map(|_| ())
}

fn hg_out(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("hg")
        .args(args)
        .current_dir(dir)
        .env("HGPLAIN", "1")
        .env("LC_ALL", "C")
        .output()
        .with_context(|| format!("cannot run hg {args:?}"))?;
    ensure!(
        out.status.success(),
        "hg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An empty try repository that does not publish what is pushed to it.
fn make_try(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    hg(dir, &["init"])?;
    std::fs::write(dir.join(".hg/hgrc"), "[phases]\npublish = False\n")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Part 1: the landing's hg command sequence, through a command server or spawned.

/// How the commands of one repository run.
enum Runner {
    Server(Box<CommandServer>),
    Spawn(PathBuf),
}

impl Runner {
    async fn run(
        &mut self,
        args: &[&str],
        records: &mut Vec<CommandRecord>,
    ) -> anyhow::Result<HgOutput> {
        Ok(match self {
            Runner::Server(server) => server.run(args, records).await?,
            Runner::Spawn(dir) => spawn_once(dir, args, HG_TIMEOUT, records).await?,
        })
    }

    /// Runs a command that must succeed (or, with `ok_one`, exit 1).
    async fn ok(
        &mut self,
        label: &str,
        args: &[&str],
        ok_one: bool,
        steps: &mut Vec<Step>,
    ) -> anyhow::Result<HgOutput> {
        let mut records = Vec::new();
        let out = self.run(args, &mut records).await?;
        ensure!(
            out.code == 0 || (ok_one && out.code == 1),
            "hg {args:?} failed ({}): {}",
            out.code,
            out.combined(2000)
        );
        let duration = records.last().map_or(Duration::ZERO, |r| r.duration);
        steps.push(Step {
            label: label.to_owned(),
            duration,
        });
        Ok(out)
    }
}

/// One timed command of a landing.
#[derive(Clone, Debug)]
struct Step {
    label: String,
    duration: Duration,
}

/// A working copy and a CI mirror, both run one way.
struct Lane {
    mode: &'static str,
    clone: Runner,
    mirror: Runner,
    scratch: PathBuf,
    checkout: PathBuf,
    /// When the last CI command started (what the scrub compares change times with).
    run_started: std::time::SystemTime,
    try_repo: String,
    central: String,
    /// Setup costs: clone, server start-ups.
    setup: Vec<Step>,
    landings: Vec<SeqLanding>,
}

struct SeqLanding {
    total: Duration,
    steps: Vec<Step>,
}

impl SeqLanding {
    fn sum(&self, ci: bool) -> Duration {
        self.steps
            .iter()
            .filter(|s| s.label.starts_with("CI ") == ci)
            .map(|s| s.duration)
            .sum()
    }
}

impl Lane {
    async fn new(
        mode: &'static str,
        dir: &Path,
        central: &Path,
        try_repo: &Path,
    ) -> anyhow::Result<Lane> {
        std::fs::create_dir_all(dir)?;
        let clone_dir = dir.join("work");
        let mirror_dir = dir.join("mirror");
        let mut setup = Vec::new();
        // As `HgWorkingCopy::ensure_clone` and `HgCiCheckout::checkout` do.
        let mut records = Vec::new();
        let central_text = central.to_string_lossy().into_owned();
        let clone_text = clone_dir.to_string_lossy().into_owned();
        let out = spawn_once(
            dir,
            &["clone", "--noupdate", "--", &central_text, &clone_text],
            HG_TIMEOUT,
            &mut records,
        )
        .await?;
        ensure!(out.code == 0, "clone failed: {}", out.combined(2000));
        setup.push(Step {
            label: "clone --noupdate (spawned)".to_owned(),
            duration: records[0].duration,
        });
        // As `HgCiCheckout::create` does: the runner's directory shares a mirror.
        std::fs::create_dir_all(&mirror_dir)?;
        hg(&mirror_dir, &["init"])?;
        let share_dir = dir.join("ci-checkout");
        let (mirror_text, share_text) = (
            mirror_dir.to_string_lossy().into_owned(),
            share_dir.to_string_lossy().into_owned(),
        );
        hg(
            &mirror_dir,
            &[
                "--config",
                "extensions.share=",
                "share",
                "--noupdate",
                "--",
                &mirror_text,
                &share_text,
            ],
        )?;
        let mirror_dir = share_dir;
        let (clone, mirror) = if mode == "server" {
            let t = Instant::now();
            let clone = CommandServer::start(&clone_dir, HG_TIMEOUT).await?;
            setup.push(Step {
                label: "start the working copy's command server".to_owned(),
                duration: t.elapsed(),
            });
            let t = Instant::now();
            let mirror = CommandServer::start(&mirror_dir, HG_TIMEOUT).await?;
            setup.push(Step {
                label: "start the CI mirror's command server".to_owned(),
                duration: t.elapsed(),
            });
            (
                Runner::Server(Box::new(clone)),
                Runner::Server(Box::new(mirror)),
            )
        } else {
            (Runner::Spawn(clone_dir), Runner::Spawn(mirror_dir))
        };
        let scratch = dir.join("tmp");
        std::fs::create_dir_all(&scratch)?;
        Ok(Lane {
            mode,
            clone,
            mirror,
            checkout: dir.join("ci-checkout"),
            run_started: std::time::SystemTime::now(),
            scratch,
            try_repo: try_repo.to_string_lossy().into_owned(),
            central: central_text,
            setup,
            landings: Vec::new(),
        })
    }

    /// One try-only landing of a patch to file `file`: `HgWorkingCopy::update_to_tip`,
    /// `apply`, `push` and `HgCiCheckout::checkout` + `remove`, command for command.
    async fn land(&mut self, file: usize, label: &str) -> anyhow::Result<SeqLanding> {
        let mut steps = Vec::new();
        let t0 = Instant::now();
        let wc = &mut self.clone;
        // update_to_tip
        wc.ok(
            "pull (central)",
            &["pull", "--", &self.central],
            true,
            &mut steps,
        )
        .await?;
        let tip = node(
            wc,
            "log -r max(public() and branch('default'))",
            "max(public() and branch('default'))",
            &mut steps,
        )
        .await?
        .context("no public tip")?;
        // clean_to
        if node(wc, "log -r not public()", "not public()", &mut steps)
            .await?
            .is_some()
        {
            wc.ok(
                "debugstrip --no-backup --force -r 'not public()'",
                &["debugstrip", "--no-backup", "--force", "-r", "not public()"],
                false,
                &mut steps,
            )
            .await?;
        }
        wc.ok(
            "update --clean -r TIP",
            &["update", "--clean", "-r", &tip],
            false,
            &mut steps,
        )
        .await?;
        wc.ok(
            "purge --all --no-confirm",
            &["purge", "--all", "--no-confirm"],
            false,
            &mut steps,
        )
        .await?;
        // apply
        let patch = self.scratch.join(format!("patch-{file}"));
        let message = self.scratch.join(format!("message-{file}"));
        std::fs::write(&patch, patch_for(file, label))?;
        std::fs::write(
            &message,
            format!(
                "Bench: change {} ({label})\n\nAutoland-Request: bench-{}-{file}",
                file_path(file),
                self.mode
            ),
        )?;
        let patch_text = patch.to_string_lossy().into_owned();
        let message_text = message.to_string_lossy().into_owned();
        let date = format!("{} 0", 1_700_000_000 + file);
        wc.ok(
            "import",
            &[
                "import",
                "-p",
                "1",
                "--user",
                "alice@example.com <alice@example.com>",
                "--logfile",
                &message_text,
                "--date",
                &date,
                "--",
                &patch_text,
            ],
            false,
            &mut steps,
        )
        .await?;
        let _ = std::fs::remove_file(&patch);
        let _ = std::fs::remove_file(&message);
        node(wc, "log -r . (after import)", ".", &mut steps).await?;
        // push
        let head = node(wc, "log -r . (before push)", ".", &mut steps)
            .await?
            .context("no head")?;
        wc.ok(
            "push -r . --force (try)",
            &["push", "-r", ".", "--force", "--", &self.try_repo],
            false,
            &mut steps,
        )
        .await?;
        let only = format!("only(., {tip})");
        wc.ok(
            "phase --draft --force -r only(., TIP)",
            &["phase", "--draft", "--force", "-r", &only],
            false,
            &mut steps,
        )
        .await?;
        // CI checkout: `Workspace::prepare` and `HgCiCheckout::checkout` on the runner's
        // reused directory (the first landing finds it empty, as a new one is).
        let t = Instant::now();
        let scrubbed = scrub(self.checkout.clone(), Some(self.run_started)).await?;
        ensure!(
            scrubbed == 0,
            "the CI command `true` changed {scrubbed} files"
        );
        steps.push(Step {
            label: SCRUB.to_owned(),
            duration: t.elapsed(),
        });
        let ci = &mut self.mirror;
        ci.ok(
            "CI pull -r REV (try → shared mirror)",
            &["pull", "-r", &head, "--", &self.try_repo],
            true,
            &mut steps,
        )
        .await?;
        ci.ok(
            "CI purge --all --no-confirm",
            &["purge", "--all", "--no-confirm"],
            false,
            &mut steps,
        )
        .await?;
        ci.ok(
            "CI update --clean -r REV",
            &["update", "--clean", "-r", &head],
            false,
            &mut steps,
        )
        .await?;
        self.run_started = std::time::SystemTime::now();
        Ok(SeqLanding {
            total: t0.elapsed(),
            steps,
        })
    }
}

/// `HgWorkingCopy::node`: the last node of `revset`.
async fn node(
    runner: &mut Runner,
    label: &str,
    revset: &str,
    steps: &mut Vec<Step>,
) -> anyhow::Result<Option<String>> {
    let out = runner
        .ok(
            label,
            &["log", "-r", revset, "-T", "{node}\n"],
            false,
            steps,
        )
        .await?;
    Ok(out
        .stdout_text()
        .lines()
        .last()
        .map(str::to_owned)
        .filter(|l| !l.is_empty()))
}

struct Sequence {
    lanes: Vec<Lane>,
    cold: Vec<(&'static str, SeqLanding)>,
}

async fn run_sequence(
    central: &Path,
    dir: &Path,
    runs: usize,
    next_file: &mut usize,
) -> anyhow::Result<Sequence> {
    let try_repo = dir.join("try");
    make_try(&try_repo)?;
    println!("## Part 1: the hg command sequence of a landing, command server vs spawning");
    println!();
    let mut lanes = vec![
        Lane::new("server", &dir.join("server"), central, &try_repo).await?,
        Lane::new("spawn", &dir.join("spawn"), central, &try_repo).await?,
    ];
    // One unmeasured landing each: the first push fills try with the whole history, the
    // first CI pull fills the mirror.
    let mut cold = Vec::new();
    for lane in &mut lanes {
        let file = take(next_file);
        let landing = lane.land(file, "warm-up").await?;
        println!(
            "warm-up landing ({}): {:.1} ms",
            lane.mode,
            ms(landing.total)
        );
        cold.push((lane.mode, landing));
    }
    for run in 0..runs {
        // Alternate which mode goes first, so drift hits both alike.
        let order: [usize; 2] = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let file = take(next_file);
            let landing = lanes[i].land(file, &format!("run {}", run + 1)).await?;
            lanes[i].landings.push(landing);
        }
    }
    println!();
    println!(
        "| run | server: total ms | server: working copy ms | server: CI ms | spawn: total ms | spawn: working copy ms | spawn: CI ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for run in 0..runs {
        let (a, b) = (&lanes[0].landings[run], &lanes[1].landings[run]);
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            run + 1,
            ms(a.total),
            ms(a.sum(false)),
            ms(a.sum(true)),
            ms(b.total),
            ms(b.sum(false)),
            ms(b.sum(true)),
        );
    }
    println!();
    for lane in &mut lanes {
        for step in &lane.setup {
            println!(
                "setup ({}): {}: {:.1} ms",
                lane.mode,
                step.label,
                ms(step.duration)
            );
        }
        if let Runner::Server(server) = &lane.clone {
            ensure!(server.restarts() == 0, "the command server restarted");
        }
    }
    println!();
    Ok(Sequence { lanes, cold })
}

fn take(next: &mut usize) -> usize {
    let file = *next;
    *next += 1;
    assert!(file < FILES, "out of files to patch");
    file
}

impl Sequence {
    /// Per-command medians, in the order of the first landing (labels that only some
    /// landings have, like `debugstrip`, show how many had them).
    fn command_medians(lane: &Lane) -> (Vec<String>, BTreeMap<String, Vec<f64>>) {
        let mut order = Vec::new();
        let mut by_label: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for landing in &lane.landings {
            for step in &landing.steps {
                if !by_label.contains_key(&step.label) {
                    order.push(step.label.clone());
                }
                by_label
                    .entry(step.label.clone())
                    .or_default()
                    .push(ms(step.duration));
            }
        }
        (order, by_label)
    }

    fn print_tables(&self) {
        let (server, spawn) = (&self.lanes[0], &self.lanes[1]);
        let n = server.landings.len();
        println!(
            "### Part 1: one landing's hg commands, command server vs `spawn_once` ({n} landings each, interleaved)"
        );
        println!();
        let (order, served) = Self::command_medians(server);
        let (_, spawned) = Self::command_medians(spawn);
        println!(
            "| # | hg command (as `HgWorkingCopy` / `HgCiCheckout` run it) | command server ms | spawned ms | saved ms |"
        );
        println!("|---:|---|---:|---:|---:|");
        let mut hg_rows = 0;
        for (i, label) in order.iter().enumerate() {
            let a = stats(served.get(label).map_or(&[][..], Vec::as_slice)).median;
            let b = stats(spawned.get(label).map_or(&[][..], Vec::as_slice)).median;
            let count = served.get(label).map_or(0, Vec::len);
            let note = if count < n {
                format!(" ({count} of {n} landings)")
            } else {
                String::new()
            };
            if label != SCRUB {
                hg_rows += 1;
            }
            println!(
                "| {} | `{label}`{note} | {a:.1} | {b:.1} | {:.1} |",
                i + 1,
                b - a
            );
        }
        println!();
        let sums = |lane: &Lane, ci: Option<bool>| -> Stats {
            let v: Vec<f64> = lane
                .landings
                .iter()
                .map(|l| match ci {
                    None => ms(l.total),
                    Some(ci) => ms(l.sum(ci)),
                })
                .collect();
            stats(&v)
        };
        let row = |what: &str, a: Stats, b: Stats| {
            println!(
                "| {what} | {:.1} ({:.1}–{:.1}) | {:.1} ({:.1}–{:.1}) | {:.1} | {:.0} % |",
                a.median,
                a.min,
                a.max,
                b.median,
                b.min,
                b.max,
                b.median - a.median,
                100.0 * (b.median - a.median) / b.median
            );
        };
        let wc_cmds = order.iter().filter(|l| !l.starts_with("CI ")).count();
        println!(
            "| per landing (median, min–max) | command server ms | spawned ms | saved ms | saved |"
        );
        println!("|---|---:|---:|---:|---:|");
        row(
            &format!("working copy: {wc_cmds} hg commands"),
            sums(server, Some(false)),
            sums(spawn, Some(false)),
        );
        row(
            "CI checkout: scrub, `pull -r`, `purge --all`, `update --clean`",
            sums(server, Some(true)),
            sums(spawn, Some(true)),
        );
        row(
            &format!("whole landing ({} hg commands + the scrub)", hg_rows),
            sums(server, None),
            sums(spawn, None),
        );
        println!();
        let setup: Vec<String> = self
            .lanes
            .iter()
            .flat_map(|l| l.setup.iter())
            .map(|s| format!("{} {:.0} ms", s.label, ms(s.duration)))
            .collect();
        let cold: Vec<String> = self
            .cold
            .iter()
            .map(|(mode, l)| format!("{mode} {:.0} ms", ms(l.total)))
            .collect();
        println!(
            "One-off costs: {}; unmeasured first landings: {} (the first fills try and its mirror).",
            setup.join(", "),
            cold.join(", ")
        );
        println!();
    }

    /// The service's mix, as a sum of per-command medians: every hg command through a
    /// command server (the working copy's and the CI directory's; the scrub is not hg).
    fn service_mix(&self) -> f64 {
        let (_, served) = Self::command_medians(&self.lanes[0]);
        served
            .iter()
            .filter(|(label, _)| label.as_str() != SCRUB)
            .map(|(_, v)| stats(v).median)
            .sum()
    }
}

// ---------------------------------------------------------------------------------------
// Part 2: landings through the service.

/// The service's configuration (hg repositories, `ci_command = "true"`).
fn config(dir: &Path, central: &Path, try_repo: &Path) -> anyhow::Result<Config> {
    support::config(dir, "hg", central, try_repo, &[USER], "")
}

struct ServiceRuns {
    landings: Vec<Landing>,
    cold: Landing,
}

async fn run_service(
    recorder: &Recorder,
    central: &Path,
    dir: &Path,
    runs: usize,
    poll: u64,
    next_file: &mut usize,
) -> anyhow::Result<ServiceRuns> {
    println!("## Part 2: landings through the service");
    println!();
    let try_repo = dir.join("try");
    make_try(&try_repo)?;
    let config = config(dir, central, &try_repo)?;
    println!(
        "service: poll_interval_ms = {}, ci_command = \"true\", {} pushers, SQLite in {}",
        config.timeouts.poll_interval_ms,
        config.pusher.concurrency,
        config.data_dir.display()
    );
    println!("client: POST, then GET every {poll} ms until `landed`");
    println!();
    let ctx = Arc::new(service::context(config).await?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let service = service::start(ctx, listener).await?;
    let api = Api::new(service.addr, Duration::from_millis(poll))?;
    let cold = api.land(recorder, take(next_file), "cold").await?;
    println!(
        "cold first landing (clones the working copy, starts its command server, pushes the whole history to try, fills the CI mirror): {:.1} ms, {} hg commands taking {:.1} ms",
        cold.to_landed(),
        cold.vcs_count,
        ms(cold.vcs_time)
    );
    println!();
    let mut landings = Vec::with_capacity(runs);
    for run in 1..=runs {
        landings.push(
            api.land(recorder, take(next_file), &format!("run {run}"))
                .await?,
        );
    }
    service.stop().await;

    println!(
        "| run | POST → `landed` ms | hg ms | hg commands | overhead ms | overhead % | `landed` → seen by the client ms | GETs |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, l) in landings.iter().enumerate() {
        println!(
            "| {} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {} |",
            i + 1,
            l.to_landed(),
            ms(l.vcs_time),
            l.vcs_count,
            l.overhead(),
            l.overhead_pct(),
            l.observation(),
            l.polls
        );
    }
    println!();
    print_timeline(&landings);
    Ok(ServiceRuns { landings, cold })
}

// What the total and the overhead are here (a `support::landings::Landing`).
impl Landing {
    /// From just before the POST to the `landed` event (ms, ±0.5).
    fn to_landed(&self) -> f64 {
        if self.landed_at.is_finite() {
            self.landed_at
        } else {
            ms(self.total)
        }
    }

    /// Autoland's own time (ms): until `landed`, less the hg commands.
    fn overhead(&self) -> f64 {
        self.to_landed() - ms(self.vcs_time)
    }

    fn overhead_pct(&self) -> f64 {
        100.0 * self.overhead() / self.to_landed()
    }
}

/// Medians, position by position, of every hg command and of the gap before it.
fn print_timeline(landings: &[Landing]) {
    let Some((shape, same)) = command_shape(landings) else {
        return;
    };
    println!("### Where a warm landing's time goes (medians over the runs)");
    println!();
    if !same {
        println!("(the landings did not all run the same hg commands; no timeline)");
        println!();
        return;
    }
    println!("| # | hg command | how | gap before it (Autoland) ms | hg ms |");
    println!("|---:|---|---|---:|---:|");
    let mut gap_sum = 0.0;
    let mut hg_sum = 0.0;
    for (i, label) in shape.iter().enumerate() {
        let (gap, run) = step_medians(landings, i);
        gap_sum += gap;
        hg_sum += run;
        println!(
            "| {} | `{label}` | {} | {gap:.1} | {run:.1} |",
            i + 1,
            landings[0].commands[i].how()
        );
    }
    let (tail, seen) = end_medians(landings);
    gap_sum += tail;
    println!("| | (end: the CI command `true`, `landed`) | | {tail:.1} | |");
    println!("| | (client: `landed` → the next GET sees it; not in the total) | | ({seen:.1}) | |");
    println!("| | **sum of medians** | | **{gap_sum:.1}** | **{hg_sum:.1}** |");
    println!();

    let median = median_landing(landings, Landing::to_landed);
    println!(
        "Timeline of the median landing ({:.1} ms to `landed`), ms after the POST started:",
        median.to_landed()
    );
    println!();
    let mut lines = timeline_lines(median, |r| {
        format!("hg {} ({}, {:.1} ms)", r.short(), r.how(), ms(r.duration))
    });
    let last_gets = median.gets.len().saturating_sub(3);
    for (sent, answered) in &median.gets[last_gets..] {
        lines.push((*sent, format!("client GET (answered at {answered:.1})")));
    }
    lines.push((ms(median.total), "client sees `landed`".to_owned()));
    print_timeline_lines(lines);
}

impl ServiceRuns {
    fn print_summary(&self, sequence: Option<&Sequence>, poll_ms: u64) {
        let landings = &self.landings;
        let v = |f: &dyn Fn(&Landing) -> f64| -> Stats {
            stats(&landings.iter().map(f).collect::<Vec<_>>())
        };
        let t = v(&Landing::to_landed);
        let seen_total = v(&|l| ms(l.total));
        let g = v(&|l| ms(l.vcs_time));
        let o = v(&Landing::overhead);
        let p = v(&|l| l.overhead_pct());
        let s = v(&Landing::observation);
        let counts: Vec<u64> = landings.iter().map(|l| l.vcs_count).collect();
        let (lo, hi) = (
            counts.iter().min().copied().unwrap_or(0),
            counts.iter().max().copied().unwrap_or(0),
        );
        let count = if lo == hi {
            format!("{lo}")
        } else {
            format!("{lo}–{hi}")
        };
        println!(
            "### Part 2: one-patch try-only landings through the service ({} warm landings)",
            landings.len()
        );
        println!();
        println!("| measure | median | min | max |");
        println!("|---|---:|---:|---:|");
        let row = |m: &str, x: &Stats, unit: &str| {
            println!(
                "| {m} | {:.1} {unit} | {:.1} {unit} | {:.1} {unit} |",
                x.median, x.min, x.max
            );
        };
        row("Autoland total (POST → `landed` event)", &t, "ms");
        row(
            &format!("hg commands inside Autoland ({count} per landing)"),
            &g,
            "ms",
        );
        row("Autoland overhead (total − hg), ms", &o, "ms");
        row("Autoland overhead, % of total", &p, "%");
        if let Some(sequence) = sequence {
            println!(
                "| part 1's hg commands run directly (all through command servers, as the service does; sum of per-command medians) | {:.1} ms | | |",
                sequence.service_mix()
            );
        }
        row(
            &format!("POST → the client sees `landed` (GET every {poll_ms} ms)"),
            &seen_total,
            "ms",
        );
        row(
            "… of which the polling delay (not in the total above)",
            &s,
            "ms",
        );
        println!(
            "| cold first landing ({} hg commands, {:.1} ms of hg) | {:.1} ms | | |",
            self.cold.vcs_count,
            ms(self.cold.vcs_time),
            self.cold.to_landed()
        );
        println!();
        println!(
            "(Overhead includes the CI command `true`; the scrub of the reused CI checkout (a \
             walk of its 10,000 files, not an hg command) runs while the CI pull runs; the \
             client's polling delay is not in the total.)"
        );
        println!();
    }
}

// ---------------------------------------------------------------------------------------
// The recorded hg commands (`support::landings::Ran`, from the hg debug events).

impl Ran {
    /// "server" or "spawned".
    fn how(&self) -> &'static str {
        if self.message.contains("server") {
            "server"
        } else {
            "spawned"
        }
    }
}
