//! Running a VCS program: argv only (no shell), non-interactive environment, a timeout,
//! captured output, and a record of what ran and how long it took.

use crate::secrets::redact_url;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::interface::{CommandRecord, VcsError};

static COMMANDS_RUN: AtomicU64 = AtomicU64::new(0);
static COMMAND_NANOS: AtomicU64 = AtomicU64::new(0);

/// Totals over every VCS command this process ran: (count, wall time). The benchmark uses
/// them to split a landing into Autoland's own time and the VCS's.
pub fn totals() -> (u64, Duration) {
    (
        COMMANDS_RUN.load(Ordering::Relaxed),
        Duration::from_nanos(COMMAND_NANOS.load(Ordering::Relaxed)),
    )
}

/// Adds one command that took `duration` to [`totals`]: for VCS commands not run through
/// [`run`] (hg's command server and `spawn_once`).
pub(crate) fn record_totals(duration: Duration) {
    COMMANDS_RUN.fetch_add(1, Ordering::Relaxed);
    COMMAND_NANOS.fetch_add(
        u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status.
    pub status: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// stderr and stdout together, trimmed to the last `max` bytes.
    pub fn combined(&self, max: usize) -> String {
        let mut text = String::new();
        text.push_str(self.stderr.trim());
        if !self.stdout.trim().is_empty() {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(self.stdout.trim());
        }
        // It goes into events, failure details and bug comments: no URL credentials
        // (Mercurial, for one, prints `https://TOKEN@host` as it is).
        tail(&redact_url(&text), max)
    }
}

/// The last `max` bytes of `text`, cut at a character boundary, marked when cut.
pub fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[...]\n{}", &text[start..])
}

/// How much of a failed command's output an error keeps (its end).
pub const OUTPUT_LIMIT: usize = 4000;

/// The error for `program args` that exited with `status`: the command line with URLs
/// redacted, and the end of what it printed.
pub fn failed(program: &str, args: &[&str], status: i32, output: String) -> VcsError {
    let mut command = program.to_owned();
    for arg in args {
        command.push(' ');
        command.push_str(&redact_url(arg));
    }
    VcsError::Command {
        command,
        status,
        output,
    }
}

/// How many command records a working copy keeps: the newest (for logs and benchmarks,
/// which take them as they go). Without a bound a long-running process kept every command
/// it ever ran (the soak found its workers growing by ~0.7 MiB a minute).
pub const KEPT_RECORDS: usize = 512;

/// Records a command that ran, dropping the oldest half once there are [`KEPT_RECORDS`].
pub fn remember(
    records: &mut Vec<CommandRecord>,
    argv: Vec<String>,
    duration: Duration,
    status: i32,
) {
    if records.len() >= KEPT_RECORDS {
        records.drain(..KEPT_RECORDS / 2);
    }
    records.push(CommandRecord {
        argv,
        duration,
        status,
    });
}

/// Runs `program args` in `dir` with `env`, killing it after `timeout`.
/// Returns the output whatever the exit status; the caller decides what a failure means.
pub async fn run<I, S>(
    program: &str,
    args: I,
    dir: &Path,
    env: &[(&str, &str)],
    timeout: Duration,
    records: &mut Vec<CommandRecord>,
) -> Result<Output, VcsError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let argv: Vec<String> = std::iter::once(program.to_owned())
        .chain(args.iter().map(|a| redact_url(&a.to_string_lossy())))
        .collect();
    let mut command = Command::new(program);
    command
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Nothing may prompt or open an editor.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_EDITOR", "true")
        .env("HGPLAIN", "1")
        .env("LC_ALL", "C");
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| VcsError::io(format!("cannot run `{program}`"), e))?;
    let result = tokio::time::timeout(timeout, child.wait_with_output()).await;
    let duration = started.elapsed();
    COMMANDS_RUN.fetch_add(1, Ordering::Relaxed);
    COMMAND_NANOS.fetch_add(
        u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    tracing::debug!(command = %argv.join(" "), ?duration, "vcs command");
    let output = match result {
        Err(_) => {
            remember(records, argv.clone(), duration, -1);
            return Err(VcsError::Timeout {
                command: argv.join(" "),
                seconds: timeout.as_secs(),
            });
        }
        Ok(Err(e)) => return Err(VcsError::io(format!("`{}` failed", argv.join(" ")), e)),
        Ok(Ok(output)) => output,
    };
    let status = output.status.code().unwrap_or(-1);
    remember(records, argv, duration, status);
    Ok(Output {
        status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_bounded_and_keep_the_newest() {
        let mut records = Vec::new();
        for n in 0..(KEPT_RECORDS * 3) {
            let status = i32::try_from(n).unwrap_or(i32::MAX);
            remember(&mut records, vec!["git".to_owned()], Duration::ZERO, status);
        }
        assert!(records.len() <= KEPT_RECORDS);
        let newest = i32::try_from(KEPT_RECORDS * 3 - 1).unwrap_or(i32::MAX);
        assert_eq!(records.last().map(|r| r.status), Some(newest));
    }

    #[test]
    fn tail_cuts_at_char_boundaries() {
        let text = "é".repeat(10);
        let cut = tail(&text, 5);
        assert!(cut.starts_with("[...]\n"));
        assert!(cut.ends_with('é'));
    }

    #[test]
    fn what_a_command_printed_loses_url_credentials() {
        let out = Output {
            status: 255,
            stdout: String::new(),
            stderr: "pushing to https://s3cr3ttoken@hg.example.com/try\nabort: HTTP Error 500"
                .to_owned(),
        };
        let text = out.combined(OUTPUT_LIMIT);
        assert!(!text.contains("s3cr3ttoken"), "{text}");
        assert!(
            text.contains("hg.example.com/try") && text.contains("HTTP Error 500"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn timeouts_kill_and_say_so() {
        let mut records = Vec::new();
        let err = run(
            "sleep",
            ["5"],
            Path::new("."),
            &[],
            Duration::from_millis(100),
            &mut records,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, VcsError::Timeout { .. }), "{err}");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].status, -1);
    }
}
