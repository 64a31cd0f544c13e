//! The built-in CI runner: for each queued try run, move the runner's warm directory of
//! that try repository to the pushed revision (see [`super::workspace`]), run the
//! repository's `ci_command` through `sh -c` with a timeout, keep the log, record the result.
//!
//! The command runs in its own process group, so a timeout kills everything it started,
//! and with a parent-death signal, so a crashed Autoland does not leave it running; the
//! run's lease then expires and another runner starts it again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{RepoConfig, RepoKind};
use crate::fault;
use crate::runtime::{Context, ModuleStatus, Work, actor_of, metrics};
use crate::store::{CiRun, CiState, JobResult, JobState, JobUpdate, ms};
use crate::vcs::git::GitCiCheckout;
use crate::vcs::hg::HgCiCheckout;
use crate::vcs::{CiCheckout, VcsSettings};

use super::super::judge::quota;
use super::super::policy::{Decision, decide};
use super::workspace::Workspace;

/// The one job of a built-in run: the try repository's `ci_command`.
pub const JOB: &str = "ci_command";

/// How many lines of the log end the summary shows.
const SUMMARY_LINES: usize = 15;

/// Checkout attempts (each after the previous lease lapsed) before the run fails.
const MAX_CHECKOUT_ATTEMPTS: i64 = 5;

/// Runs queued CI runs until `shutdown`, as the module `name` (its lease owner).
pub async fn run(
    ctx: Arc<Context>,
    name: String,
    status: ModuleStatus,
    shutdown: CancellationToken,
) {
    let owner = ctx.lease_owner(&name);
    // This runner's warm directory of each try repository, made on first use.
    let mut workspaces: HashMap<String, Workspace> = HashMap::new();
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        match ctx.store.claim_ci_run(&owner, ms(ctx.config.lease())).await {
            Ok(Some(run)) => {
                status.set(format!(
                    "running CI run {} for request {}",
                    run.id, run.request_id
                ));
                execute(&ctx, &owner, &name, run, &mut workspaces, &shutdown).await;
                status.set("idle");
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                status.error(format!("cannot claim CI runs: {e}"));
            }
        }
        if !ctx.idle(Work::Ci, &shutdown).await {
            return;
        }
    }
}

async fn execute(
    ctx: &Context,
    owner: &str,
    runner: &str,
    run: CiRun,
    workspaces: &mut HashMap<String, Workspace>,
    shutdown: &CancellationToken,
) {
    let Some(repo) = ctx.config.repo(&run.repo).cloned() else {
        finish(
            ctx,
            owner,
            &run,
            CiState::Failed,
            None,
            &format!("try repository `{}` is no longer configured", run.repo),
            "",
        )
        .await;
        return;
    };
    let request = ctx.store.request(run.request_id).await.ok().flatten();
    // A run after landing (the sheriff's) tests a landed request's tip: it runs anyway.
    if let Some(r) = request
        .as_ref()
        .filter(|r| r.stage.is_terminal() && run.push_id.is_none())
    {
        let summary = format!("not run: request {} is already {}", r.id, r.stage);
        finish(ctx, owner, &run, CiState::Failed, None, &summary, "").await;
        return;
    }
    if run.attempts > 1 {
        // An earlier attempt's processes may have outlived a crashed Autoland (the
        // parent-death signal only reaches the shell): stop them before starting again.
        let killed = kill_leftovers(&run_token(&run));
        if killed > 0 {
            tracing::warn!(
                run = run.id,
                killed,
                "killed processes left by an earlier attempt"
            );
        }
    }
    let logs = ctx.config.data_dir.join("logs");
    if let Err(e) = std::fs::create_dir_all(&logs) {
        tracing::error!(error = %e, "cannot create the log directory");
    }
    let workspace = workspaces
        .entry(repo.name.clone())
        .or_insert_with(|| Workspace::new(checkout_for(ctx, &repo, runner)));
    // Attempts of the command already made (a crash or a retry before this claim).
    let mut attempt = match ctx.store.ci_jobs(run.id).await {
        Ok(jobs) => {
            jobs.iter()
                .filter(|j| j.state == JobState::Completed)
                .map(|j| j.attempt)
                .max()
                .unwrap_or(0)
                + 1
        }
        Err(e) => {
            tracing::warn!(run = run.id, error = %e, "cannot read the run's jobs");
            return;
        }
    };
    // An attempt recorded before a crash whose verdict was not: finish with it, unless
    // the policy wants another attempt (never run the command more than it allows).
    if attempt > 1 {
        match decision(ctx, &repo, &run).await {
            Some(Decision::Wait { retries }) if !retries.is_empty() => {}
            Some(Decision::Passed { .. }) | Some(Decision::Failed { .. }) => {
                let jobs = ctx.store.ci_jobs(run.id).await.unwrap_or_default();
                let last = jobs
                    .iter()
                    .filter(|j| j.name == JOB)
                    .max_by_key(|j| j.attempt);
                let (state, word) = match last {
                    Some(job) if job.result.is_some_and(JobResult::is_good) => {
                        (CiState::Passed, job.raw_result.clone().unwrap_or_default())
                    }
                    Some(job) if job.raw_result.as_deref() == Some("timeout") => {
                        (CiState::TimedOut, "timeout".to_owned())
                    }
                    Some(job) => (CiState::Failed, job.raw_result.clone().unwrap_or_default()),
                    None => (CiState::Failed, String::new()),
                };
                let summary = format!(
                    "attempt {} ended ({word}) before a restart; its result stands",
                    attempt - 1
                );
                let log = log_of(&logs, &run, attempt - 1);
                finish(
                    ctx,
                    owner,
                    &run,
                    state,
                    None,
                    &summary,
                    &log.to_string_lossy(),
                )
                .await;
                return;
            }
            _ => {}
        }
    }
    let mut earlier = Vec::new();
    loop {
        let log_path = log_of(&logs, &run, attempt);
        let prepared = match workspace
            .prepare(repo.push_url(), &run.ref_name, &run.revision)
            .await
        {
            Ok(prepared) => prepared,
            Err(e) => {
                // The runner could not even get the code: try again later rather than
                // blame the patch. The lease expiring makes another attempt.
                tracing::warn!(run = run.id, error = %e, "CI checkout failed");
                let _ = ctx
                    .store
                    .note(
                        run.request_id,
                        "ci_checkout_failed",
                        actor_of(owner),
                        &e.to_string(),
                    )
                    .await;
                if run.attempts >= MAX_CHECKOUT_ATTEMPTS {
                    let summary = format!(
                        "the CI runner could not check out {} after {} attempts: {e}",
                        short(&run.revision),
                        run.attempts
                    );
                    finish(ctx, owner, &run, CiState::Failed, None, &summary, "").await;
                }
                return;
            }
        };
        let _ = ctx
            .store
            .note(
                run.request_id,
                "ci_started",
                owner,
                &format!(
                    "CI run {} (attempt {attempt}) started on {} for {} {}",
                    run.id,
                    repo.name,
                    short(&run.revision),
                    prepared.describe()
                ),
            )
            .await;
        let try_syntax = request
            .as_ref()
            .and_then(|r| r.try_syntax.clone())
            .unwrap_or_default();
        let command = repo.ci_command.clone().unwrap_or_else(|| "true".to_owned());
        let timeout = Duration::from_secs(repo.ci_timeout_seconds);
        let started = Instant::now();
        workspace.started().await;
        let outcome = run_command(
            ctx,
            owner,
            &run,
            &command,
            workspace.dir(),
            &log_path,
            timeout,
            &try_syntax,
            shutdown,
        )
        .await;
        let elapsed = started.elapsed();
        // Processes that left the command's group (daemons, `setsid`) must not write into
        // the directory the next run reuses.
        let token = run_token(&run);
        if let Ok(strays @ 1..) = tokio::task::spawn_blocking(move || kill_leftovers(&token)).await
        {
            tracing::warn!(
                run = run.id,
                strays,
                "killed processes the CI command left running"
            );
        }
        // Only a command that ended by itself leaves a directory the next run may reuse:
        // one killed (timeout, cancel, shutdown) may have been half-way through anything.
        if matches!(outcome, Outcome::Exited(_) | Outcome::SpawnFailed(_)) {
            workspace.finished();
        }
        let log_tail = read_tail(&log_path);
        let (state, exit_code, headline, result, word) = match outcome {
            Outcome::Exited(0) => (
                CiState::Passed,
                Some(0),
                format!("passed in {:.1} s", elapsed.as_secs_f64()),
                JobResult::Success,
                "exit 0".to_owned(),
            ),
            Outcome::Exited(code) => (
                CiState::Failed,
                Some(i64::from(code)),
                format!(
                    "failed with exit code {code} after {:.1} s",
                    elapsed.as_secs_f64()
                ),
                JobResult::Failed,
                format!("exit {code}"),
            ),
            Outcome::TimedOut => (
                CiState::TimedOut,
                None,
                format!("killed after its {} s timeout", timeout.as_secs()),
                JobResult::Infra,
                "timeout".to_owned(),
            ),
            Outcome::Interrupted => return, // shutdown: the lease lapses and the run starts again
            Outcome::Abandoned(stage) => (
                CiState::Failed,
                None,
                format!(
                    "stopped after {:.1} s: the request is {stage}",
                    elapsed.as_secs_f64()
                ),
                JobResult::Cancelled,
                "abandoned".to_owned(),
            ),
            Outcome::SpawnFailed(e) => (
                CiState::Failed,
                None,
                format!("could not start `sh -c {command}`: {e}"),
                JobResult::Infra,
                "spawn failed".to_owned(),
            ),
        };
        let update = JobUpdate {
            name: JOB.to_owned(),
            attempt,
            state: Some(JobState::Completed),
            result: Some(result),
            raw_result: Some(word.clone()),
            external_id: None,
            log_url: Some(ctx.config.run_log_url(run.id)),
            duration_ms: Some(ms(elapsed)),
            summary: (!result.is_good() && !log_tail.is_empty()).then(|| log_tail.clone()),
        };
        if let Err(e) = ctx.store.record_ci_job(run.id, &update).await {
            tracing::warn!(run = run.id, error = %e, "cannot record the CI job");
            return;
        }
        let decision = decision(ctx, &repo, &run).await;
        if let Some(Decision::Wait { mut retries }) = decision.clone()
            && let Some(retry) = retries.pop()
        {
            let _ = ctx.store.request_ci_job(run.id, JOB, retry.attempt).await;
            metrics::ci_retry(&repo.name, retry.reason.as_str());
            let _ = ctx
                .store
                .note(
                    run.request_id,
                    "ci_retry",
                    actor_of(owner),
                    &format!(
                        "CI run {}: attempt {attempt} {headline}; running it again (attempt {}, {} retry)",
                        run.id,
                        retry.attempt,
                        retry.reason.as_str()
                    ),
                )
                .await;
            earlier.push(format!("attempt {attempt} {word}"));
            attempt = retry.attempt;
            continue;
        }
        let headline = if earlier.is_empty() {
            headline
        } else if result.is_good() {
            metrics::ci_intermittent(&repo.name);
            format!(
                "{headline} on attempt {attempt}, intermittent ({})",
                earlier.join(", ")
            )
        } else {
            format!("{headline} on attempt {attempt} ({})", earlier.join(", "))
        };
        let headline = match decision {
            Some(Decision::Failed {
                quota: Some(quota), ..
            }) => format!("{headline}; not retried: {quota}"),
            _ => headline,
        };
        let summary = if log_tail.is_empty() {
            headline
        } else {
            format!("{headline}; last lines of the log:\n{log_tail}")
        };
        metrics::ci_job(&repo.name, result.as_str());
        finish(
            ctx,
            owner,
            &run,
            state,
            exit_code,
            &summary,
            &log_path.to_string_lossy(),
        )
        .await;
        return;
    }
}

/// The log file of one attempt of a run.
fn log_of(logs: &Path, run: &CiRun, attempt: i64) -> PathBuf {
    if attempt == 1 {
        logs.join(format!("ci-run-{}.log", run.id))
    } else {
        logs.join(format!("ci-run-{}-attempt-{attempt}.log", run.id))
    }
}

/// What the retry policy says after the latest attempt.
async fn decision(ctx: &Context, repo: &RepoConfig, run: &CiRun) -> Option<Decision> {
    let jobs = ctx.store.ci_jobs(run.id).await.ok()?;
    let quota = quota(ctx, repo, run).await.ok()?;
    Some(decide(
        &jobs,
        &[JOB.to_owned()],
        true,
        repo.retry_rules(),
        true,
        quota,
    ))
}

async fn finish(
    ctx: &Context,
    owner: &str,
    run: &CiRun,
    state: CiState,
    exit_code: Option<i64>,
    summary: &str,
    log_path: &str,
) {
    match ctx
        .store
        .finish_ci_run(run.id, owner, state, exit_code, summary, log_path)
        .await
    {
        Ok(true) => {
            metrics::ci_outcome(state.as_str());
            ctx.wake(Work::Watcher).await;
            let _ = ctx
                .store
                .note(
                    run.request_id,
                    "ci_finished",
                    actor_of(owner),
                    &format!("CI run {} {}", run.id, state.as_str()),
                )
                .await;
        }
        Ok(false) => tracing::warn!(run = run.id, "lost the CI run's lease before recording it"),
        Err(e) => tracing::error!(run = run.id, error = %e, "cannot record the CI result"),
    }
}

/// The warm directory of `repo` for the runner `runner`, and the mirror it comes from
/// (shared by the process's runners).
fn checkout_for(ctx: &Context, repo: &RepoConfig, runner: &str) -> Box<dyn CiCheckout> {
    let settings = VcsSettings {
        committer: ctx.config.committer.clone(),
        timeout: ctx.config.vcs_timeout(),
        scratch: ctx.config.data_dir.join("tmp"),
    };
    let ci = ctx.config.data_dir.join("ci");
    let dir = ci.join(format!("{}-{runner}", repo.name));
    match repo.kind {
        RepoKind::Git => Box::new(GitCiCheckout::new(
            ci.join(format!("{}.git", repo.name)),
            dir,
            settings,
        )),
        RepoKind::Hg => Box::new(HgCiCheckout::new(
            ci.join(format!("{}.hg", repo.name)),
            dir,
            settings,
        )),
    }
}

enum Outcome {
    Exited(i32),
    TimedOut,
    Interrupted,
    /// The request ended (cancelled) while its CI ran.
    Abandoned(crate::request::Stage),
    SpawnFailed(std::io::Error),
}

#[allow(clippy::too_many_arguments)]
async fn run_command(
    ctx: &Context,
    owner: &str,
    run: &CiRun,
    command: &str,
    dir: &Path,
    log_path: &PathBuf,
    timeout: Duration,
    try_syntax: &str,
    shutdown: &CancellationToken,
) -> Outcome {
    let log = match std::fs::File::create(log_path) {
        Ok(f) => f,
        Err(e) => return Outcome::SpawnFailed(e),
    };
    let log_err = match log.try_clone() {
        Ok(f) => f,
        Err(e) => return Outcome::SpawnFailed(e),
    };
    let mut cmd = tokio::process::Command::new("sh");
    // The command runs the patch's code: it gets none of Autoland's environment (tokens,
    // API keys, webhook secrets), only what a build needs to find its tools.
    cmd.env_clear();
    for name in PASSED_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .env("AUTOLAND_REQUEST_ID", run.request_id.to_string())
        .env("AUTOLAND_REVISION", &run.revision)
        .env("AUTOLAND_TRY_SYNTAX", try_syntax)
        .env(RUN_MARK, run_token(run))
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent; it asks the
    // kernel to kill the child if the Autoland process dies.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::SpawnFailed(e),
    };
    fault::point("ci.running");
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    let kill_group = || {
        if let Some(pgid) = pgid {
            // SAFETY: plain syscall on a process group this runner created.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    };
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let renew_every = ctx.config.lease() / 3;
    loop {
        tokio::select! {
            status = child.wait() => {
                kill_group(); // anything the command left running in the background
                return match status {
                    Ok(s) => Outcome::Exited(s.code().unwrap_or(-1)),
                    Err(e) => Outcome::SpawnFailed(e),
                };
            }
            _ = &mut deadline => {
                kill_group();
                let _ = child.wait().await;
                return Outcome::TimedOut;
            }
            _ = shutdown.cancelled() => {
                kill_group();
                let _ = child.wait().await;
                return Outcome::Interrupted;
            }
            _ = tokio::time::sleep(renew_every) => {
                if let Ok(false) = ctx.store.renew_ci_lease(run.id, owner, ms(ctx.config.lease())).await {
                    tracing::warn!(run = run.id, "lost the CI run's lease; stopping it");
                    kill_group();
                    let _ = child.wait().await;
                    return Outcome::Interrupted;
                }
                if run.push_id.is_none()
                    && let Ok(Some(request)) = ctx.store.request(run.request_id).await
                    && request.stage.is_terminal() {
                        kill_group();
                        let _ = child.wait().await;
                        return Outcome::Abandoned(request.stage);
                    }
            }
        }
    }
}

/// The environment variable that marks every process of a CI run.
const RUN_MARK: &str = "AUTOLAND_CI_RUN";

/// The only variables of Autoland's environment a CI command sees (besides the
/// `AUTOLAND_*` ones describing the run): enough to find tools and write temporary files.
const PASSED_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];

/// Identifies one CI run's processes (the revision carries the request's unique trailer).
fn run_token(run: &CiRun) -> String {
    format!("{}:{}", run.id, run.revision)
}

/// Kills every process whose environment carries this run's mark; returns how many.
fn kill_leftovers(token: &str) -> usize {
    let needle = format!("{RUN_MARK}={token}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            // SAFETY: plain syscall; the process carries this run's mark.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed += 1;
        }
    }
    killed
}

fn read_tail(path: &Path) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(SUMMARY_LINES);
    lines[start..].join("\n")
}

fn short(revision: &str) -> &str {
    revision.get(..12).unwrap_or(revision)
}
