//! Mercurial's command server (`hg serve --cmdserver pipe`): one long-lived hg process
//! runs many commands, so each command skips Python's start-up.
//!
//! The protocol (`hg help internals.cmdserver`): the server writes frames of one channel
//! byte, a big-endian `u32` length and that many bytes of data: `o` output, `e` error,
//! `r` the result (a big-endian `i32` exit code, ending a command), `d` debug. The input
//! channels `I` and `L` carry no data: their length is how much input the server wants.
//! The first frame is a hello on `o` listing the capabilities. A command is
//! `runcommand\n`, a `u32` length and the arguments joined by NUL.
//!
//! Nothing may wait for a human: the server runs with `HGPLAIN=1`, `ui.interactive=false`,
//! an editor and a merge tool that fail, and every input request is answered with
//! end-of-file, so a command that wants input fails instead of hanging. The server runs in
//! a process group of its own: a timeout kills the group (hooks and ssh included) and
//! starts a new server; a server found dead before a command reached it is replaced and
//! the command sent again.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::command::{Output, record_totals, remember, tail};
use super::interface::{CommandRecord, VcsError};
use crate::secrets::redact_url;

/// The program.
const HG: &str = "hg";
/// Given to the server and to [`spawn_once`]: nothing prompts, opens an editor or starts a
/// merge tool.
const NON_INTERACTIVE: &[&str] = &[
    "--config",
    "ui.interactive=false",
    "--config",
    "ui.editor=false",
    "--config",
    "ui.merge=internal:fail",
];
/// The environment of every hg process: plain (scriptable) output, UTF-8, C locale.
const ENV: &[(&str, &str)] = &[("HGPLAIN", "1"), ("HGENCODING", "UTF-8"), ("LC_ALL", "C")];
/// The largest frame accepted: a longer one is an error, not an allocation.
const MAX_FRAME: u32 = 256 << 20;
/// The most output (stdout and stderr together) one command may produce.
const MAX_OUTPUT: usize = 256 << 20;
/// The request sent before each command (see [`Server::runcommand`]).
const GETENCODING: &[u8] = b"getencoding\n";
/// The largest answer to it accepted.
const MAX_ENCODING: u32 = 256;
/// The largest hello accepted.
const MAX_HELLO: u32 = 64 << 10;
/// How much of the server's own stderr (not the commands') is kept for error messages.
const STDERR_KEPT: usize = 8 << 10;
/// How much of it goes into an error message.
const STDERR_SHOWN: usize = 2000;
/// How long a closed server may take to exit before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long to wait for a killed server to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// What an hg command printed and how it exited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HgOutput {
    /// Exit code.
    pub code: i32,
    /// Standard output, as hg wrote it.
    pub stdout: Vec<u8>,
    /// Standard error, as hg wrote it.
    pub stderr: Vec<u8>,
}

impl HgOutput {
    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// stderr and stdout together, trimmed to the last `max` bytes (as [`Output::combined`]).
    pub fn combined(&self, max: usize) -> String {
        Output {
            status: self.code,
            stdout: self.stdout_text(),
            stderr: self.stderr_text(),
        }
        .combined(max)
    }
}

/// A Mercurial command server for one repository, restarted when it dies or hangs.
pub struct CommandServer {
    dir: PathBuf,
    timeout: Duration,
    server: Option<Server>,
    restarts: u32,
}

impl CommandServer {
    /// Starts a server in `repo_dir` (which must be an hg repository). `timeout` bounds the
    /// start and every command.
    pub async fn start(repo_dir: &Path, timeout: Duration) -> Result<CommandServer, VcsError> {
        let server = Server::start(repo_dir, timeout).await?;
        Ok(CommandServer {
            dir: repo_dir.to_path_buf(),
            timeout,
            server: Some(server),
            restarts: 0,
        })
    }

    /// Runs one command (args without the leading "hg"), bounded by the timeout, and records
    /// it in `records`. A non-zero exit is not an error: the caller reads `code`.
    ///
    /// A server found dead before the command reached it (exited, or the pipe is broken) is
    /// replaced and the command sent once more. A server that dies or breaks the protocol
    /// while running the command gives an error and is replaced (the command is not sent
    /// again: it may have done its work). A timeout kills and replaces the server and returns
    /// [`VcsError::Timeout`].
    pub async fn run(
        &mut self,
        args: &[&str],
        records: &mut Vec<CommandRecord>,
    ) -> Result<HgOutput, VcsError> {
        let argv = hg_argv(args);
        let command_line = argv.join(" ");
        let block = encode_runcommand(args)
            .map_err(|e| VcsError::io(format!("cannot run `{command_line}`"), e))?;
        let started = Instant::now();
        let result = self.run_block(&block, &command_line).await;
        let duration = started.elapsed();
        record_totals(duration);
        let status = result.as_ref().map_or(-1, |output| output.code);
        tracing::debug!(command = %command_line, ?duration, status, "hg command (server)");
        remember(records, argv, duration, status);
        result
    }

    /// The pid of the current server process (also its process group), if one is running.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(|server| server.child.id())
    }

    /// How many times the server was replaced.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// The timeout of each command (and of starting a server).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the timeout of the following commands (and server starts).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Stops the server: closes its input so it exits, killing it if it does not.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.close().await;
        }
    }

    async fn run_block(&mut self, block: &[u8], command_line: &str) -> Result<HgOutput, VcsError> {
        let deadline = Instant::now() + self.timeout;
        let mut resent = false;
        loop {
            match tokio::time::timeout_at(deadline, self.attempt(block)).await {
                Ok(Ok(output)) => return Ok(output),
                Ok(Err(Failure::Start(error))) => return Err(error),
                Ok(Err(Failure::NotSent(error))) if !resent => {
                    let stderr = self.discard().await;
                    tracing::warn!(
                        dir = %self.dir.display(),
                        %error,
                        stderr,
                        "the hg command server was gone; starting a new one"
                    );
                    resent = true;
                }
                Ok(Err(Failure::NotSent(error) | Failure::Broken(error))) => {
                    let stderr = self.discard().await;
                    self.replace().await;
                    let stderr = if stderr.is_empty() {
                        String::new()
                    } else {
                        format!(" (server stderr: {stderr})")
                    };
                    return Err(VcsError::io(
                        format!("the hg command server failed running `{command_line}`{stderr}"),
                        error,
                    ));
                }
                Err(_elapsed) => {
                    self.discard().await;
                    self.replace().await;
                    return Err(VcsError::Timeout {
                        command: command_line.to_owned(),
                        seconds: self.timeout.as_secs(),
                    });
                }
            }
        }
    }

    /// One try on the current server, starting one first if needed.
    async fn attempt(&mut self, block: &[u8]) -> Result<HgOutput, Failure> {
        if self.server.as_ref().is_some_and(|server| server.busy) {
            // A cancelled `run` left it in the middle of a command.
            tracing::warn!(
                dir = %self.dir.display(),
                "the hg command server was interrupted mid-command; replacing it"
            );
            self.discard().await;
        }
        let server = match &mut self.server {
            Some(server) => server,
            slot @ None => {
                let server = Server::start(&self.dir, self.timeout)
                    .await
                    .map_err(Failure::Start)?;
                self.restarts += 1;
                slot.insert(server)
            }
        };
        server.runcommand(block).await
    }

    /// Kills the current server (if any); returns the tail of its stderr.
    async fn discard(&mut self) -> String {
        match self.server.take() {
            Some(server) => server.kill().await,
            None => String::new(),
        }
    }

    /// Starts a new server now, so the next command does not wait for it; a failure is
    /// only logged (the next command tries again).
    async fn replace(&mut self) {
        match Server::start(&self.dir, self.timeout).await {
            Ok(server) => {
                self.server = Some(server);
                self.restarts += 1;
            }
            Err(error) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    %error,
                    "cannot start a new hg command server"
                );
            }
        }
    }
}

impl Drop for CommandServer {
    fn drop(&mut self) {
        // The child itself is killed on drop; this also ends its hooks.
        if let Some(server) = &self.server {
            kill_group(server.child.id());
        }
    }
}

/// Runs `hg <args>` as a process of its own (same environment and settings as the server),
/// bounded by `timeout`; for comparison with [`CommandServer`].
pub async fn spawn_once(
    repo_dir: &Path,
    args: &[&str],
    timeout: Duration,
    records: &mut Vec<CommandRecord>,
) -> Result<HgOutput, VcsError> {
    let argv = hg_argv(args);
    let command_line = argv.join(" ");
    let mut command = hg_command(repo_dir);
    command
        .args(NON_INTERACTIVE)
        .args(args)
        .stdin(Stdio::null());
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| VcsError::io(format!("cannot run `{command_line}`"), e))?;
    let pid = child.id();
    let result = {
        let wait = child.wait_with_output();
        tokio::pin!(wait);
        let result = tokio::time::timeout(timeout, &mut wait).await;
        if result.is_err() {
            // While the child is still ours (unreaped): its group, hooks included.
            kill_group(pid);
        }
        result
    };
    let duration = started.elapsed();
    record_totals(duration);
    tracing::debug!(command = %command_line, ?duration, "hg command");
    let mut record = |status| {
        remember(records, argv.clone(), duration, status);
    };
    match result {
        Err(_elapsed) => {
            record(-1);
            Err(VcsError::Timeout {
                command: command_line,
                seconds: timeout.as_secs(),
            })
        }
        Ok(Err(e)) => {
            record(-1);
            Err(VcsError::io(format!("`{command_line}` failed"), e))
        }
        Ok(Ok(output)) => {
            let code = output.status.code().unwrap_or(-1);
            record(code);
            Ok(HgOutput {
                code,
                stdout: output.stdout,
                stderr: output.stderr,
            })
        }
    }
}

/// Why one try at a command failed.
enum Failure {
    /// No server could be started.
    Start(VcsError),
    /// The server was gone before it got the command: sending it again is safe.
    NotSent(io::Error),
    /// The server died or broke the protocol after getting the command.
    Broken(io::Error),
}

/// One running `hg serve --cmdserver pipe`.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The tail of the server's own stderr (commands' stderr comes on the `e` channel).
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_task: JoinHandle<()>,
    /// A command was sent and its result not read yet.
    busy: bool,
    /// The server offers `getencoding`, sent before each command to tell whether the
    /// command reached a live server.
    probe: bool,
}

impl Server {
    async fn start(dir: &Path, timeout: Duration) -> Result<Server, VcsError> {
        if !dir.join(".hg").is_dir() {
            return Err(VcsError::io(
                format!("cannot start an hg command server in {}", dir.display()),
                io::Error::new(io::ErrorKind::NotFound, "not a Mercurial repository"),
            ));
        }
        let mut command = hg_command(dir);
        command
            .args(["serve", "--cmdserver", "pipe"])
            .args(NON_INTERACTIVE);
        Server::spawn(command, timeout).await
    }

    /// Spawns `command` (a command server) and reads its hello.
    async fn spawn(mut command: Command, timeout: Duration) -> Result<Server, VcsError> {
        let what = "hg serve --cmdserver pipe";
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| VcsError::io(format!("cannot run `{what}`"), e))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill_group(child.id());
            return Err(VcsError::io(
                format!("cannot run `{what}`"),
                io::Error::other("no pipes to the child"),
            ));
        };
        let kept = Arc::new(Mutex::new(Vec::new()));
        let stderr_task = tokio::spawn(keep_tail(stderr, Arc::clone(&kept)));
        let mut server = Server {
            child,
            stdin,
            stdout: BufReader::with_capacity(64 << 10, stdout),
            stderr: kept,
            stderr_task,
            busy: false,
            probe: false,
        };
        let error = match tokio::time::timeout(timeout, read_hello(&mut server.stdout)).await {
            Ok(Ok(hello)) => {
                if !hello.encoding.eq_ignore_ascii_case("UTF-8") {
                    tracing::warn!(encoding = hello.encoding, "hg command server encoding");
                }
                server.probe = hello.capabilities.iter().any(|c| c == "getencoding");
                return Ok(server);
            }
            Ok(Err(error)) => error,
            Err(_elapsed) => {
                server.kill().await;
                return Err(VcsError::Timeout {
                    command: what.to_owned(),
                    seconds: timeout.as_secs(),
                });
            }
        };
        let stderr = server.kill().await;
        let context = if stderr.is_empty() {
            format!("`{what}` did not start")
        } else {
            format!("`{what}` did not start: {stderr}")
        };
        Err(VcsError::io(context, error))
    }

    /// Sends one `runcommand` block and reads the response.
    async fn runcommand(&mut self, block: &[u8]) -> Result<HgOutput, Failure> {
        match self.child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => {
                return Err(Failure::NotSent(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    format!("the server exited ({status})"),
                )));
            }
            Err(error) => return Err(Failure::NotSent(error)),
        }
        self.busy = true;
        // `getencoding` first, in the same write: the server handles requests in order, so
        // no answer to it means the server died before it could start the command (even if
        // it was killed just before we wrote). A failed write did not deliver the command.
        let mut request = Vec::with_capacity(GETENCODING.len() + block.len());
        if self.probe {
            request.extend_from_slice(GETENCODING);
        }
        request.extend_from_slice(block);
        self.stdin
            .write_all(&request)
            .await
            .map_err(Failure::NotSent)?;
        self.stdin.flush().await.map_err(Failure::NotSent)?;
        if self.probe {
            read_encoding(&mut self.stdout)
                .await
                .map_err(Failure::NotSent)?;
        }
        let output = read_response(&mut self.stdout, &mut self.stdin)
            .await
            .map_err(Failure::Broken)?;
        self.busy = false;
        Ok(output)
    }

    /// Kills the server and its process group; returns the tail of its stderr.
    async fn kill(mut self) -> String {
        kill_group(self.child.id());
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(KILL_WAIT, self.child.wait()).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), &mut self.stderr_task).await;
        self.stderr_tail()
    }

    /// Closes the server's input (it exits at end-of-file), killing it if it does not exit.
    async fn close(self) {
        let Server {
            mut child,
            stdin,
            busy,
            ..
        } = self;
        drop(stdin);
        if !busy && let Ok(Ok(_)) = tokio::time::timeout(SHUTDOWN_GRACE, child.wait()).await {
            return;
        }
        kill_group(child.id());
        let _ = child.start_kill();
        let _ = tokio::time::timeout(KILL_WAIT, child.wait()).await;
    }

    fn stderr_tail(&self) -> String {
        let kept = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        tail(String::from_utf8_lossy(&kept).trim(), STDERR_SHOWN)
    }
}

/// Reads `stderr` to its end, keeping the last [`STDERR_KEPT`] bytes in `kept`.
async fn keep_tail(mut stderr: ChildStderr, kept: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > STDERR_KEPT {
                    let excess = kept.len() - STDERR_KEPT;
                    kept.drain(..excess);
                }
            }
        }
    }
}

/// An hg command in `dir` with the non-interactive environment, in a process group of its
/// own (so a timeout kills its hooks too), killed if dropped.
fn hg_command(dir: &Path) -> Command {
    let mut command = Command::new(HG);
    command
        .current_dir(dir)
        .envs(ENV.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    command
}

/// SIGKILLs the process group led by `pid` (a child spawned with `process_group(0)`, not
/// reaped yet: `Child::id` is `None` once it is).
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|pid| i32::try_from(pid).ok())
        && pid > 0
    {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; the group is
        // our unreaped child's, so its id cannot have been reused.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// `hg` and the arguments, URLs redacted: the argv of a [`CommandRecord`].
fn hg_argv(args: &[&str]) -> Vec<String> {
    std::iter::once(HG.to_owned())
        .chain(args.iter().map(|arg| redact_url(arg)))
        .collect()
}

/// The bytes of a `runcommand` request.
fn encode_runcommand(args: &[&str]) -> io::Result<Vec<u8>> {
    if args.iter().any(|arg| arg.contains('\0')) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an argument contains a NUL byte",
        ));
    }
    let joined = args.join("\0");
    let length = u32::try_from(joined.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the arguments are too long"))?;
    let mut block = Vec::with_capacity(15 + joined.len());
    block.extend_from_slice(b"runcommand\n");
    block.extend_from_slice(&length.to_be_bytes());
    block.extend_from_slice(joined.as_bytes());
    Ok(block)
}

/// What the server says first.
#[derive(Debug, PartialEq, Eq)]
struct Hello {
    capabilities: Vec<String>,
    encoding: String,
}

/// Parses a hello ("key: value" lines); it must offer `runcommand`.
fn parse_hello(data: &[u8]) -> io::Result<Hello> {
    let text = String::from_utf8_lossy(data);
    let mut capabilities = None;
    let mut encoding = String::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "capabilities" => {
                capabilities = Some(value.split_whitespace().map(str::to_owned).collect());
            }
            "encoding" => encoding = value.trim().to_owned(),
            _ => {}
        }
    }
    let capabilities: Vec<String> = capabilities.ok_or_else(|| {
        invalid_data(format!(
            "the hello lists no capabilities: {:?}",
            tail(&text, 200)
        ))
    })?;
    if !capabilities.iter().any(|c| c == "runcommand") {
        return Err(invalid_data(format!(
            "the server does not offer runcommand (capabilities: {})",
            capabilities.join(" ")
        )));
    }
    Ok(Hello {
        capabilities,
        encoding,
    })
}

/// Reads the hello frame (skipping debug and other optional frames before it).
async fn read_hello<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Hello> {
    loop {
        let (channel, length) = read_header(reader).await?;
        match channel {
            b'o' => {
                if length > MAX_HELLO {
                    return Err(invalid_data(format!("a hello of {length} bytes")));
                }
                let mut data = Vec::new();
                read_data(reader, length, &mut data).await?;
                return parse_hello(&data);
            }
            c if c.is_ascii_uppercase() => {
                return Err(invalid_data(format!(
                    "the server asked for channel {:?} before its hello",
                    char::from(c)
                )));
            }
            _ => skip_data(reader, length).await?,
        }
    }
}

/// Reads the answer to `getencoding`.
async fn read_encoding<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Vec<u8>> {
    loop {
        let (channel, length) = read_header(reader).await?;
        match channel {
            b'r' => {
                if length > MAX_ENCODING {
                    return Err(invalid_data(format!("an encoding of {length} bytes")));
                }
                let mut encoding = Vec::new();
                read_data(reader, length, &mut encoding).await?;
                return Ok(encoding);
            }
            c if c.is_ascii_uppercase() => {
                return Err(invalid_data(format!(
                    "the server requires channel {:?} for getencoding",
                    char::from(c)
                )));
            }
            _ => skip_data(reader, length).await?,
        }
    }
}

/// Reads one command's frames up to its result, answering input requests with end-of-file.
async fn read_response<R, W>(reader: &mut R, writer: &mut W) -> io::Result<HgOutput>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut output = HgOutput::default();
    loop {
        let (channel, length) = read_header(reader).await?;
        match channel {
            b'o' | b'e' => {
                let total = (output.stdout.len() + output.stderr.len())
                    .saturating_add(usize::try_from(length).unwrap_or(usize::MAX));
                if total > MAX_OUTPUT {
                    return Err(invalid_data(format!(
                        "the command printed more than {MAX_OUTPUT} bytes"
                    )));
                }
                let buf = if channel == b'o' {
                    &mut output.stdout
                } else {
                    &mut output.stderr
                };
                read_data(reader, length, buf).await?;
            }
            b'r' => {
                if length != 4 {
                    return Err(invalid_data(format!(
                        "a result of {length} bytes (expected 4)"
                    )));
                }
                let mut code = [0u8; 4];
                reader.read_exact(&mut code).await?;
                output.code = i32::from_be_bytes(code);
                return Ok(output);
            }
            b'I' | b'L' => {
                // Autoland never answers prompts: end-of-file makes the command fail.
                writer.write_all(&0u32.to_be_bytes()).await?;
                writer.flush().await?;
            }
            c if c.is_ascii_uppercase() => {
                return Err(invalid_data(format!(
                    "the server requires unsupported channel {:?}",
                    char::from(c)
                )));
            }
            // `d` (debug) and unknown optional channels.
            _ => skip_data(reader, length).await?,
        }
    }
}

async fn read_header<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<(u8, u32)> {
    let mut header = [0u8; 5];
    reader.read_exact(&mut header).await?;
    let [channel, a, b, c, d] = header;
    Ok((channel, u32::from_be_bytes([a, b, c, d])))
}

fn check_length(length: u32) -> io::Result<()> {
    if length > MAX_FRAME {
        return Err(invalid_data(format!(
            "a frame of {length} bytes (the limit is {MAX_FRAME})"
        )));
    }
    Ok(())
}

/// Appends a frame's `length` bytes to `buf` (allocating only as data arrives).
async fn read_data<R: AsyncRead + Unpin>(
    reader: &mut R,
    length: u32,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    check_length(length)?;
    let read = (&mut *reader)
        .take(u64::from(length))
        .read_to_end(buf)
        .await?;
    if read as u64 != u64::from(length) {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Reads and drops a frame's `length` bytes.
async fn skip_data<R: AsyncRead + Unpin>(reader: &mut R, length: u32) -> io::Result<()> {
    check_length(length)?;
    let skipped = tokio::io::copy(
        &mut (&mut *reader).take(u64::from(length)),
        &mut tokio::io::sink(),
    )
    .await?;
    if skipped != u64::from(length) {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![channel];
        bytes.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    fn header(channel: u8, length: u32) -> Vec<u8> {
        let mut bytes = vec![channel];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes
    }

    async fn respond(bytes: &[u8]) -> (io::Result<HgOutput>, Vec<u8>) {
        let mut reader = bytes;
        let mut written = Vec::new();
        let result = read_response(&mut reader, &mut written).await;
        (result, written)
    }

    #[tokio::test]
    async fn responses_are_demultiplexed() {
        let bytes = [
            frame(b'o', b"out 1\n"),
            frame(b'd', b"debug"),
            frame(b'e', b"err\n"),
            frame(b'x', b"unknown optional channel"),
            frame(b'o', b"out 2\n"),
            frame(b'r', &255i32.to_be_bytes()),
            frame(b'o', b"next command"),
        ]
        .concat();
        let (result, written) = respond(&bytes).await;
        let output = result.unwrap();
        assert_eq!(output.code, 255);
        assert_eq!(output.stdout_text(), "out 1\nout 2\n");
        assert_eq!(output.stderr_text(), "err\n");
        assert_eq!(output.combined(100), "err\nout 1\nout 2");
        assert!(written.is_empty());
        let negative = [frame(b'r', &(-1i32).to_be_bytes())].concat();
        assert_eq!(respond(&negative).await.0.unwrap().code, -1);
    }

    #[tokio::test]
    async fn input_requests_get_end_of_file() {
        let bytes = [
            frame(b'o', b"question? "),
            header(b'L', 4096),
            header(b'I', 100),
            frame(b'e', b"abort: response expected\n"),
            frame(b'r', &255i32.to_be_bytes()),
        ]
        .concat();
        let (result, written) = respond(&bytes).await;
        assert_eq!(result.unwrap().code, 255);
        assert_eq!(written, [0u8; 8]);
    }

    #[tokio::test]
    async fn malformed_responses_are_errors() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("required channel", frame(b'Z', b"")),
            ("huge frame", header(b'o', u32::MAX)),
            ("huge skipped frame", header(b'd', MAX_FRAME + 1)),
            ("short result", frame(b'r', &[0, 0])),
            ("long result", frame(b'r', &[0; 8])),
            ("truncated header", vec![b'o', 0, 0]),
            (
                "truncated data",
                [header(b'o', 10), b"abc".to_vec()].concat(),
            ),
            (
                "truncated skip",
                [header(b'd', 10), b"abc".to_vec()].concat(),
            ),
            ("no result", frame(b'o', b"out")),
            ("empty", Vec::new()),
        ];
        for (what, bytes) in cases {
            let (result, _) = respond(&bytes).await;
            assert!(result.is_err(), "{what}: {result:?}");
        }
    }

    #[test]
    fn runcommand_blocks() {
        let block = encode_runcommand(&["log", "-T", "{node}"]).unwrap();
        assert_eq!(
            block,
            [
                b"runcommand\n".as_slice(),
                &13u32.to_be_bytes(),
                b"log\0-T\0{node}"
            ]
            .concat()
        );
        let empty = encode_runcommand(&[]).unwrap();
        assert_eq!(empty, [b"runcommand\n".as_slice(), &[0; 4]].concat());
        assert!(encode_runcommand(&["a\0b"]).is_err());
    }

    #[tokio::test]
    async fn hellos() {
        let hello = parse_hello(
            b"capabilities: getencoding runcommand\nencoding: UTF-8\npid: 12\npgid: 12",
        )
        .unwrap();
        assert_eq!(hello.capabilities, ["getencoding", "runcommand"]);
        assert_eq!(hello.encoding, "UTF-8");
        let err = parse_hello(b"capabilities: getencoding\nencoding: UTF-8").unwrap_err();
        assert!(err.to_string().contains("runcommand"), "{err}");
        assert!(parse_hello(b"encoding: UTF-8").is_err());
        assert!(parse_hello(&[0xff, 0xfe, b'\n', b':']).is_err());

        let bytes = [
            frame(b'd', b"debug first"),
            frame(b'o', b"capabilities: runcommand\nencoding: UTF-8"),
        ]
        .concat();
        assert!(read_hello(&mut bytes.as_slice()).await.is_ok());
        for bad in [
            header(b'o', MAX_HELLO + 1),
            header(b'L', 10),
            frame(b'o', b"garbage"),
            Vec::new(),
        ] {
            assert!(read_hello(&mut bad.as_slice()).await.is_err());
        }
    }

    /// A fake server: `sh -c script` in a temporary directory.
    async fn fake_server(script: &str) -> Result<Server, VcsError> {
        let mut command = Command::new("sh");
        command
            .args(["-c", script])
            .process_group(0)
            .kill_on_drop(true);
        Server::spawn(command, Duration::from_secs(10)).await
    }

    #[tokio::test]
    async fn servers_that_do_not_start_are_errors() {
        // octal 030 = 24 bytes: "capabilities: getencoding" minus the final "g".
        let no_runcommand = "printf 'o\\000\\000\\000\\030capabilities: getencodin'; sleep 10";
        let err = fake_server(no_runcommand).await.err().unwrap();
        assert!(err.to_string().contains("runcommand"), "{err}");

        let err = fake_server("echo 'abort: boom' >&2; exit 255")
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("abort: boom"), "{err}");

        let mut command = Command::new("sleep");
        command.arg("10").kill_on_drop(true);
        let started = Instant::now();
        let err = Server::spawn(command, Duration::from_millis(200))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, VcsError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn garbage_after_the_hello_breaks_the_command_not_the_process() {
        let script = "printf 'o\\000\\000\\000\\030capabilities: runcommand'; \
                      head -c 17 >/dev/null; printf 'Q\\000\\000\\000\\000'; sleep 10";
        let mut server = fake_server(script).await.unwrap();
        let block = encode_runcommand(&["id"]).unwrap();
        match server.runcommand(&block).await {
            Err(Failure::Broken(error)) => {
                assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}")
            }
            Err(_) => panic!("expected a broken server"),
            Ok(output) => panic!("expected an error, got {output:?}"),
        }
        server.kill().await;
    }

    #[tokio::test]
    async fn a_server_dying_before_the_command_is_told_apart() {
        // 044 = 36 bytes. The fake reads the request, then exits without answering.
        let hello = "printf 'o\\000\\000\\000\\044capabilities: getencoding runcommand'";
        let mut server = fake_server(&format!("{hello}; head -c 29 >/dev/null"))
            .await
            .unwrap();
        assert!(server.probe);
        let block = encode_runcommand(&["id"]).unwrap();
        assert!(matches!(
            server.runcommand(&block).await,
            Err(Failure::NotSent(_))
        ));
        server.kill().await;

        // It answered `getencoding`, so it had the command when it died.
        let script = format!("{hello}; head -c 29 >/dev/null; printf 'r\\000\\000\\000\\005UTF-8'");
        let mut server = fake_server(&script).await.unwrap();
        assert!(matches!(
            server.runcommand(&block).await,
            Err(Failure::Broken(_))
        ));
        server.kill().await;
    }

    #[tokio::test]
    async fn encodings() {
        let ok = [frame(b'd', b"x"), frame(b'r', b"UTF-8")].concat();
        assert_eq!(read_encoding(&mut ok.as_slice()).await.unwrap(), b"UTF-8");
        for bad in [
            header(b'r', MAX_ENCODING + 1),
            frame(b'I', b""),
            frame(b'r', b"UTF")[..7].to_vec(),
            Vec::new(),
        ] {
            assert!(read_encoding(&mut bad.as_slice()).await.is_err());
        }
    }

    fn hg_init() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("hg")
            .arg("init")
            .current_dir(dir.path())
            .env("HGPLAIN", "1")
            .status()
            .unwrap();
        assert!(status.success());
        dir
    }

    async fn commit_file(server: &mut CommandServer, records: &mut Vec<CommandRecord>) {
        std::fs::write(server.dir.join("a.txt"), "hello\n").unwrap();
        let out = server
            .run(
                &[
                    "commit",
                    "-A",
                    "-m",
                    "first",
                    "-u",
                    "Test <test@example.com>",
                ],
                records,
            )
            .await
            .unwrap();
        assert_eq!(out.code, 0, "{}", out.combined(1000));
    }

    #[tokio::test]
    async fn runs_commands() {
        let repo = hg_init();
        let mut server = CommandServer::start(repo.path(), LONG).await.unwrap();
        assert!(server.pid().is_some());
        let mut records = Vec::new();

        // The non-interactive settings reach the commands.
        let out = server
            .run(&["config", "ui.interactive"], &mut records)
            .await;
        assert_eq!(out.unwrap().stdout_text(), "false\n");
        let out = server.run(&["config", "ui.merge"], &mut records).await;
        assert_eq!(out.unwrap().stdout_text(), "internal:fail\n");

        std::fs::write(repo.path().join("a.txt"), "hello\n").unwrap();
        let out = server.run(&["status"], &mut records).await.unwrap();
        assert_eq!((out.code, out.stdout_text().as_str()), (0, "? a.txt\n"));

        commit_file(&mut server, &mut records).await;
        let out = server.run(&["status"], &mut records).await.unwrap();
        assert_eq!((out.code, out.stdout.as_slice()), (0, b"".as_slice()));

        let out = server
            .run(&["log", "-T", "{node}\\n{desc}"], &mut records)
            .await
            .unwrap();
        let text = out.stdout_text();
        let (node, desc) = text.split_once('\n').unwrap();
        assert_eq!(node.len(), 40);
        assert!(node.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(desc, "first");
        let mut spawned = Vec::new();
        let once = spawn_once(
            repo.path(),
            &["log", "-T", "{node}\\n{desc}"],
            LONG,
            &mut spawned,
        )
        .await
        .unwrap();
        assert_eq!(once, out);
        assert_eq!(spawned[0].argv, ["hg", "log", "-T", "{node}\\n{desc}"]);

        assert_eq!(records.len(), 6);
        assert_eq!(records[0].argv, ["hg", "config", "ui.interactive"]);
        assert!(records.iter().all(|r| r.status == 0));
        assert_eq!(server.restarts(), 0);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn failing_commands_return_their_code() {
        let repo = hg_init();
        let mut server = CommandServer::start(repo.path(), LONG).await.unwrap();
        let mut records = Vec::new();
        let out = server
            .run(&["log", "-r", "no-such-revision"], &mut records)
            .await
            .unwrap();
        assert_eq!(out.code, 255);
        assert!(out.stderr_text().contains("unknown revision"), "{out:?}");
        assert_eq!(records[0].status, 255);

        let out = server
            .run(&["no-such-command"], &mut records)
            .await
            .unwrap();
        assert_ne!(out.code, 0);
        assert!(out.stderr_text().contains("unknown command"), "{out:?}");

        // Without a message the editor runs, and it is `false`.
        std::fs::write(repo.path().join("a.txt"), "x\n").unwrap();
        let out = server
            .run(
                &["commit", "-A", "-u", "Test <t@example.com>"],
                &mut records,
            )
            .await
            .unwrap();
        assert_ne!(out.code, 0);
        assert!(out.stderr_text().contains("edit failed"), "{out:?}");

        // The server is still fine.
        let out = server
            .run(&["id", "-r", "null"], &mut records)
            .await
            .unwrap();
        assert_eq!(out.stdout_text(), "000000000000 tip\n");
        assert_eq!(server.restarts(), 0);
    }

    #[tokio::test]
    async fn prompts_get_end_of_file_instead_of_hanging() {
        let repo = hg_init();
        let mut server = CommandServer::start(repo.path(), Duration::from_secs(20))
            .await
            .unwrap();
        let mut records = Vec::new();
        for command in ["debuguiprompt", "debuguigetpass"] {
            let out = server
                .run(&["--config", "ui.interactive=true", command], &mut records)
                .await
                .unwrap();
            assert_eq!(out.code, 255, "{out:?}");
            assert!(out.stderr_text().contains("response expected"), "{out:?}");
        }
        assert_eq!(server.restarts(), 0);
    }

    fn sigkill(pid: u32) {
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn process_is_dead(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
            Err(_) => true,
        }
    }

    /// How many live processes are in process group `pgid`.
    fn group_members(pgid: u32) -> usize {
        let pgid = pgid.to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                // After the name: state, ppid, pgrp.
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
                fields.len() > 2 && fields[2] == pgid && !matches!(fields[0], "Z" | "X")
            })
            .count()
    }

    #[tokio::test]
    async fn a_killed_server_is_replaced() {
        let repo = hg_init();
        let mut server = CommandServer::start(repo.path(), LONG).await.unwrap();
        let mut records = Vec::new();
        let first = server.run(&["id"], &mut records).await.unwrap();

        // Killed, and dead (a zombie) before the next command.
        let pid = server.pid().unwrap();
        sigkill(pid);
        let started = std::time::Instant::now();
        while !process_is_dead(pid) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{pid} lives on"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let again = server.run(&["id"], &mut records).await.unwrap();
        assert_eq!(again, first);
        assert_eq!(server.restarts(), 1);
        assert_ne!(server.pid(), Some(pid));

        // Killed right before the next command: it may still be dying when the command is
        // written (and read it), but it cannot answer the `getencoding` sent first.
        for round in 2..=6 {
            sigkill(server.pid().unwrap());
            let again = server.run(&["id"], &mut records).await.unwrap();
            assert_eq!(again, first);
            assert_eq!(server.restarts(), round);
        }
        assert_eq!(records.len(), 7);
        assert!(records.iter().all(|r| r.status == 0));
    }

    #[tokio::test]
    async fn timeouts_kill_and_replace_the_server() {
        let repo = hg_init();
        let mut server = CommandServer::start(repo.path(), LONG).await.unwrap();
        let mut records = Vec::new();
        let old_pid = server.pid().unwrap();
        server.set_timeout(Duration::from_millis(300));
        let started = Instant::now();
        let err = server
            .run(
                &["--config", "hooks.pre-status=sleep 5", "status"],
                &mut records,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, VcsError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
        assert_eq!(records[0].status, -1);
        assert!(process_is_dead(old_pid));
        // The hook went with it.
        assert_eq!(group_members(old_pid), 0);

        server.set_timeout(LONG);
        let out = server.run(&["status"], &mut records).await.unwrap();
        assert_eq!(out.code, 0);
        assert_eq!(server.restarts(), 1);
    }

    #[tokio::test]
    async fn spawned_commands_time_out_with_their_hooks() {
        let repo = hg_init();
        let mut records = Vec::new();
        let started = Instant::now();
        let hook = "hooks.pre-status=sleep 7.31";
        let err = spawn_once(
            repo.path(),
            &["--config", hook, "status"],
            Duration::from_millis(500),
            &mut records,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, VcsError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
        assert_eq!(records[0].status, -1);
        assert_eq!(records[0].argv, ["hg", "--config", hook, "status"]);
        let sleeping = || {
            std::fs::read_dir("/proc")
                .unwrap()
                .filter_map(|entry| {
                    let dir = entry.ok()?.path();
                    let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
                    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
                    let zombie = stat
                        .rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']));
                    (cmdline == b"sleep\x007.31\x00" && !zombie).then_some(())
                })
                .count()
        };
        let started = std::time::Instant::now();
        while sleeping() > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "the hook lives on"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[tokio::test]
    async fn a_cancelled_command_does_not_confuse_the_next() {
        let repo = hg_init();
        let mut server = CommandServer::start(repo.path(), LONG).await.unwrap();
        let mut records = Vec::new();
        let hung = server.run(
            &["--config", "hooks.pre-status=sleep 5", "status"],
            &mut records,
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(300), hung)
                .await
                .is_err()
        );
        let out = server
            .run(&["id", "-r", "null"], &mut records)
            .await
            .unwrap();
        assert_eq!(out.stdout_text(), "000000000000 tip\n");
        assert_eq!(server.restarts(), 1);
    }

    #[tokio::test]
    async fn only_repositories_get_a_server() {
        let dir = tempfile::tempdir().unwrap();
        let err = CommandServer::start(dir.path(), LONG).await.err().unwrap();
        assert!(
            err.to_string().contains("not a Mercurial repository"),
            "{err}"
        );
        let err = CommandServer::start(&dir.path().join("missing"), LONG)
            .await
            .err()
            .unwrap();
        assert!(matches!(err, VcsError::Io { .. }), "{err}");
    }

    #[tokio::test]
    async fn the_server_is_much_faster_than_spawning() {
        const RUNS: usize = 100;
        let repo = hg_init();
        let mut server = CommandServer::start(repo.path(), LONG).await.unwrap();
        let mut records = Vec::new();
        commit_file(&mut server, &mut records).await;

        let started = Instant::now();
        let mut served = Vec::new();
        for _ in 0..RUNS {
            served.push(server.run(&["id"], &mut records).await.unwrap());
        }
        let server_time = started.elapsed();

        let started = Instant::now();
        let mut spawned = Vec::new();
        for _ in 0..RUNS {
            spawned.push(
                spawn_once(repo.path(), &["id"], LONG, &mut records)
                    .await
                    .unwrap(),
            );
        }
        let spawn_time = started.elapsed();

        println!(
            "{RUNS} x `hg id`: command server {server_time:?} ({:?} each), \
             spawning {spawn_time:?} ({:?} each)",
            server_time / RUNS as u32,
            spawn_time / RUNS as u32,
        );
        assert!(served.iter().chain(&spawned).all(|o| *o == served[0]));
        assert_eq!(served[0].code, 0);
        assert_eq!(served[0].stdout.len(), "0123456789ab tip\n".len());
        assert_eq!(records.len(), 1 + 2 * RUNS);
        assert_eq!(server.restarts(), 0);
    }
}
