//! The VCS-neutral interface every implementation provides: [`WorkingCopy`] (apply,
//! commit, push, find an earlier push) and [`CiCheckout`], what a commit is made of, where
//! a push goes, and what can go wrong.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use crate::patch::PatchDate;

/// One command that ran: for logs, failure reports and the benchmark's time split.
#[derive(Debug, Clone)]
pub struct CommandRecord {
    /// Program and arguments, URLs redacted.
    pub argv: Vec<String>,
    /// Wall time.
    pub duration: Duration,
    /// Exit status (-1: killed or timed out).
    pub status: i32,
}

/// What went wrong in a VCS operation.
#[derive(Debug, thiserror::Error)]
pub enum VcsError {
    /// A patch does not apply; the files it failed on and the tool's output.
    #[error("the patch does not apply ({})", files.join(", "))]
    Conflict {
        /// Files that failed.
        files: Vec<String>,
        /// The tool's output (trimmed).
        output: String,
    },
    /// The destination moved since we fetched it (someone else pushed first).
    #[error("the push was refused because the destination moved: {output}")]
    PushRace {
        /// The tool's output.
        output: String,
    },
    /// A command exited with an error.
    #[error("`{command}` failed (exit {status}): {output}")]
    Command {
        /// The command line (no secrets: URLs are redacted).
        command: String,
        /// Exit status, or -1 if killed by a signal.
        status: i32,
        /// stderr/stdout (trimmed).
        output: String,
    },
    /// A command ran past its timeout and was killed.
    #[error("`{command}` did not finish within {seconds} s and was killed")]
    Timeout {
        /// The command line.
        command: String,
        /// The timeout.
        seconds: u64,
    },
    /// Local I/O (writing the patch file, spawning the command).
    #[error("{context}: {error}")]
    Io {
        /// What we were doing.
        context: String,
        /// Why it failed.
        error: std::io::Error,
    },
}

impl VcsError {
    pub(crate) fn io(context: impl Into<String>, error: std::io::Error) -> VcsError {
        VcsError::Io {
            context: context.into(),
            error,
        }
    }
}

/// One commit to make from a patch.
#[derive(Debug, Clone)]
pub struct CommitSpec<'a> {
    /// For messages ("patch 2 (`fix.patch`)").
    pub label: String,
    /// The diff.
    pub diff: &'a str,
    /// `Name <email>`.
    pub author: &'a str,
    /// Author date.
    pub date: Option<PatchDate>,
    /// Full commit message, trailer included.
    pub message: String,
}

/// Where a push goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushTarget {
    /// A try push for a request: forced, to a ref of its own.
    Try {
        /// Push URL.
        url: String,
        /// The request's uid.
        uid: String,
    },
    /// A final destination branch: never forced.
    Branch {
        /// Push URL.
        url: String,
        /// Branch.
        branch: String,
    },
}

impl PushTarget {
    /// The ref a try push goes to.
    pub fn try_ref(uid: &str) -> String {
        format!("refs/heads/autoland/{uid}")
    }
}

/// A warm working copy of one repository, used by one job at a time.
#[async_trait]
pub trait WorkingCopy: Send {
    /// Makes sure the working copy exists and is healthy (cloning only if not), fetches
    /// the branch tip, resets and cleans everything; returns the tip revision.
    async fn update_to_tip(&mut self) -> Result<String, VcsError>;
    /// After [`WorkingCopy::update_to_tip`]: moves to `revision` instead (an earlier tip
    /// the same commits were built on), if the repository has it. False if it does not.
    async fn reset_to(&mut self, revision: &str) -> Result<bool, VcsError>;
    /// Moves to `revision`, which this or another process pushed earlier to `ref_name` of
    /// the try repository at `url` (built on `base`, a revision of this repository):
    /// fetched from there if this copy does not have it. False if neither has it. What is
    /// checked out afterwards is exactly that revision, with nothing else in the tree.
    async fn checkout_pushed(
        &mut self,
        url: &str,
        ref_name: &str,
        revision: &str,
        base: &str,
    ) -> Result<bool, VcsError>;
    /// Applies one patch and commits it; returns the new revision.
    async fn apply(&mut self, commit: &CommitSpec<'_>) -> Result<String, VcsError>;
    /// Adds an empty commit (the try-syntax commit); returns the new revision.
    async fn commit_empty(
        &mut self,
        author: &str,
        date: Option<PatchDate>,
        message: &str,
    ) -> Result<String, VcsError>;
    /// Looks on the target for commits carrying `marker` (the trailer line); returns the
    /// newest such revision. `since` bounds the search (the tip the push started from).
    async fn find_pushed(
        &mut self,
        target: &PushTarget,
        marker: &str,
        since: Option<&str>,
    ) -> Result<Option<String>, VcsError>;
    /// Pushes the working copy's head; returns the pushed revision.
    async fn push(&mut self, target: &PushTarget) -> Result<String, VcsError>;
    /// After [`WorkingCopy::update_to_tip`]: the commits from `since` (excluded) to the
    /// tip, oldest first, following first parents, at most the newest `limit`. Only the
    /// tip when `since` is none or not in the repository.
    async fn history(
        &mut self,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CommitInfo>, VcsError>;
    /// After [`WorkingCopy::update_to_tip`]: commits, as `author`, one change that undoes
    /// `revisions` (oldest first) on the checked-out tip (`git revert`, `hg backout`);
    /// returns the new revision. Undoing that does not apply is a
    /// [`VcsError::Conflict`] naming the files, with the working copy left clean.
    async fn backout(
        &mut self,
        revisions: &[String],
        author: &str,
        message: &str,
    ) -> Result<String, VcsError>;
    /// The commands run since the last call (for logs and benchmarks).
    fn take_commands(&mut self) -> Vec<CommandRecord>;
}

/// A commit as [`WorkingCopy::history`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full hash.
    pub revision: String,
    /// Its whole message.
    pub message: String,
}

/// Splits `<hash>\0<message>\0...` (what the history commands print) into commits.
pub(crate) fn parse_history(text: &str) -> Vec<CommitInfo> {
    let mut fields = text.split('\0');
    let mut commits = Vec::new();
    while let (Some(revision), Some(message)) = (fields.next(), fields.next()) {
        let revision = revision.trim();
        if is_hash(revision) {
            commits.push(CommitInfo {
                revision: revision.to_owned(),
                message: message.trim_end().to_owned(),
            });
        }
    }
    commits
}

/// The CI directory of one try repository for one runner, reused from run to run (see
/// `ci::local::workspace`, which removes first what the VCS cannot see).
#[async_trait]
pub trait CiCheckout: Send {
    /// The directory.
    fn dir(&self) -> &Path;
    /// Brings `revision` (pushed to `ref_name` of `url`) into the repository the directory
    /// is checked out from, creating that repository (and, for hg, the directory's link
    /// to it) if need be; leaves the directory's files alone, so it can run while they
    /// are scrubbed.
    async fn fetch(&mut self, url: &str, ref_name: &str, revision: &str) -> Result<(), VcsError>;
    /// After [`CiCheckout::fetch`]: makes the directory a checkout of exactly `revision`
    /// with no file the VCS does not track: when it holds an earlier checkout, only what
    /// differs is written; when it does not exist, it is created.
    async fn checkout(&mut self, revision: &str) -> Result<(), VcsError>;
    /// The repository the directory is checked out from (shared by the process's runners).
    fn mirror(&self) -> &Path;
    /// Lets go of the directory before it is thrown away (hg: stops its command server);
    /// the next [`CiCheckout::fetch`] and [`CiCheckout::checkout`] create it again.
    async fn release(&mut self);
    /// Files outside the tree through which a run could make the VCS run code or look
    /// elsewhere (configuration, hooks, the link to the repository): a run that changed one
    /// has its directory thrown away.
    fn guarded(&self) -> Vec<PathBuf>;
    /// Whether the VCS itself notices a tracked file rewritten behind its back whatever
    /// was put back (git: its index compares the inode's change time and number); if not
    /// (hg: size and modification time only), files changed during a run are removed
    /// before the next checkout.
    fn notices_rewrites(&self) -> bool;
}

/// Settings every VCS implementation needs.
#[derive(Debug, Clone)]
pub struct VcsSettings {
    /// Committer identity.
    pub committer: String,
    /// Per-command timeout.
    pub timeout: Duration,
    /// Scratch directory for patch and message files.
    pub scratch: PathBuf,
}

impl VcsSettings {
    /// Writes `content` to a new file in the scratch directory (patches and commit
    /// messages go to the VCS as files, never through arguments); the caller removes it.
    pub fn scratch_file(&self, prefix: &str, content: &str) -> Result<PathBuf, VcsError> {
        std::fs::create_dir_all(&self.scratch)
            .map_err(|e| VcsError::io(format!("cannot create {}", self.scratch.display()), e))?;
        let file = tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(&self.scratch)
            .map_err(|e| VcsError::io("cannot create a scratch file", e))?;
        std::fs::write(file.path(), content)
            .map_err(|e| VcsError::io("cannot write a scratch file", e))?;
        let (_, path) = file
            .keep()
            .map_err(|e| VcsError::io("cannot keep a scratch file", e.error))?;
        Ok(path)
    }
}

/// Whether `text` can only be a full or abbreviated revision hash (what Autoland stored):
/// never an option, a revset or a ref expression.
pub fn is_hash(text: &str) -> bool {
    (4..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Deletes `dir` (if it exists) and everything in it on a blocking thread: a checkout is
/// thousands of files, never removed on the async runtime.
pub(crate) async fn remove_dir(dir: &Path) -> Result<(), VcsError> {
    let owned = dir.to_path_buf();
    let removed = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&owned) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    })
    .await
    .map_err(|e| VcsError::io(format!("cannot remove {}", dir.display()), e.into()))?;
    removed.map_err(|e| VcsError::io(format!("cannot remove {}", dir.display()), e))
}

/// Refuses anything but a revision hash where one is passed to `command`.
pub(crate) fn require_hash(command: &str, revision: &str) -> Result<(), VcsError> {
    if is_hash(revision) {
        return Ok(());
    }
    Err(VcsError::Command {
        command: command.to_owned(),
        status: -1,
        output: format!("`{revision}` is not a revision hash"),
    })
}

/// Splits `Name <email>` into its parts (a bare address gives the address as the name).
pub fn split_identity(identity: &str) -> (String, String) {
    let email = crate::request::email_of(identity).to_owned();
    let name = match identity.find('<') {
        Some(open) => identity[..open].trim().to_owned(),
        None => String::new(),
    };
    if name.is_empty() {
        (email.clone(), email)
    } else {
        (name, email)
    }
}
