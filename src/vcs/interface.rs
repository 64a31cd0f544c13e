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
    /// The commands run since the last call (for logs and benchmarks).
    fn take_commands(&mut self) -> Vec<CommandRecord>;
}

/// Checks out a pushed revision into a fresh directory for a CI run.
#[async_trait]
pub trait CiCheckout: Send + Sync {
    /// Makes `dir` a clean checkout of `revision` (pushed to `ref_name` of `url`).
    async fn checkout(
        &self,
        url: &str,
        ref_name: &str,
        revision: &str,
        dir: &Path,
    ) -> Result<(), VcsError>;
    /// Removes a checkout made by [`CiCheckout::checkout`].
    async fn remove(&self, dir: &Path) -> Result<(), VcsError>;
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
