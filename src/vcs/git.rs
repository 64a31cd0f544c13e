//! git through the `git` program.
//!
//! A working copy is a normal clone in `data/work/<repo>`, made once and then reused:
//! each job fetches the branch tip, checks it out detached, resets and cleans. Try pushes
//! go to `refs/heads/autoland/<uid>` (forced: it is the request's own ref); final pushes go
//! to the branch and are never forced, so a push that lost a race is refused and retried.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::patch::PatchDate;

use super::command::{self, OUTPUT_LIMIT, Output, failed};
use super::interface::{
    CiCheckout, CommandRecord, CommitInfo, CommitSpec, PushTarget, VcsError, VcsSettings,
    WorkingCopy, is_hash, parse_history, remove_dir, require_hash, split_identity,
};

/// A warm git working copy.
pub struct GitWorkingCopy {
    dir: PathBuf,
    pull_url: String,
    branch: String,
    settings: VcsSettings,
    records: Vec<CommandRecord>,
}

impl GitWorkingCopy {
    /// A working copy in `dir` (cloned on first use).
    pub fn new(
        dir: PathBuf,
        pull_url: String,
        branch: String,
        settings: VcsSettings,
    ) -> GitWorkingCopy {
        GitWorkingCopy {
            dir,
            pull_url,
            branch,
            settings,
            records: Vec::new(),
        }
    }

    async fn git_in(
        &mut self,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Output, VcsError> {
        let (name, email) = split_identity(&self.settings.committer);
        let mut full_env: Vec<(&str, &str)> = vec![
            ("GIT_COMMITTER_NAME", &name),
            ("GIT_COMMITTER_EMAIL", &email),
        ];
        full_env.extend_from_slice(env);
        command::run(
            "git",
            git_args(args),
            dir,
            &full_env,
            self.settings.timeout,
            &mut self.records,
        )
        .await
    }

    async fn git(&mut self, args: &[&str]) -> Result<Output, VcsError> {
        let dir = self.dir.clone();
        self.git_in(&dir, args, &[]).await
    }

    /// Runs git and turns a non-zero exit into an error.
    async fn git_ok(&mut self, args: &[&str]) -> Result<Output, VcsError> {
        let out = self.git(args).await?;
        check(args, out)
    }

    async fn head(&mut self) -> Result<String, VcsError> {
        Ok(self
            .git_ok(&["rev-parse", "HEAD"])
            .await?
            .stdout
            .trim()
            .to_owned())
    }

    /// Whether this clone has `revision` as a commit.
    async fn has_commit(&mut self, revision: &str) -> Result<bool, VcsError> {
        let probe = format!("{revision}^{{commit}}");
        Ok(self
            .git(&["rev-parse", "--quiet", "--verify", &probe])
            .await?
            .status
            == 0)
    }

    async fn ensure_clone(&mut self) -> Result<(), VcsError> {
        if self.dir.join(".git").is_dir() {
            // A crash can leave a lock behind; this process owns the working copy.
            let _ = std::fs::remove_file(self.dir.join(".git/index.lock"));
            let healthy = self
                .git(&["rev-parse", "--is-inside-work-tree"])
                .await
                .map(|o| o.status == 0)
                .unwrap_or(false);
            if healthy {
                return Ok(());
            }
            tracing::warn!(dir = %self.dir.display(), "working copy is broken; cloning it again");
        }
        remove_dir(&self.dir).await?;
        let parent = self.dir.parent().map(Path::to_path_buf).unwrap_or_default();
        std::fs::create_dir_all(&parent)
            .map_err(|e| VcsError::io(format!("cannot create {}", parent.display()), e))?;
        let dir = self.dir.to_string_lossy().into_owned();
        let url = self.pull_url.clone();
        let out = self
            .git_in(
                &parent,
                &["clone", "--quiet", "--no-checkout", "--", &url, &dir],
                &[],
            )
            .await?;
        // The URL in the message (credentials redacted): git's own "unable to connect"
        // does not say which host.
        check(&["clone", &url], out)?;
        Ok(())
    }

    fn scratch_file(&self, name: &str, content: &str) -> Result<PathBuf, VcsError> {
        self.settings.scratch_file(name, content)
    }

    async fn commit(
        &mut self,
        author: &str,
        date: Option<String>,
        message: &str,
        allow_empty: bool,
    ) -> Result<String, VcsError> {
        let (name, email) = split_identity(author);
        let message_file = self.scratch_file("message-", message)?;
        let message_path = message_file.to_string_lossy().into_owned();
        let mut env = vec![
            ("GIT_AUTHOR_NAME", name.as_str()),
            ("GIT_AUTHOR_EMAIL", email.as_str()),
        ];
        if let Some(date) = &date {
            env.push(("GIT_AUTHOR_DATE", date.as_str()));
        }
        let mut args = vec![
            "commit",
            "--quiet",
            "--no-verify",
            "--cleanup=verbatim",
            "-F",
            &message_path,
        ];
        if allow_empty {
            args.push("--allow-empty");
        }
        let dir = self.dir.clone();
        let out = self.git_in(&dir, &args, &env).await;
        let _ = std::fs::remove_file(&message_file);
        check(&args, out?)?;
        self.head().await
    }
}

/// Every git invocation gets these settings first: no pager, no signing, no automatic gc
/// in the middle of a job. (Not `core.hooksPath`: `-c` settings reach a local remote's
/// receive-pack too, and would switch off the server's own hooks.)
fn git_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![
        "-c",
        "core.pager=cat",
        "-c",
        "commit.gpgsign=false",
        "-c",
        "gc.auto=0",
        "-c",
        "advice.detachedHead=false",
    ];
    all.extend_from_slice(args);
    all
}

fn check(args: &[&str], out: Output) -> Result<Output, VcsError> {
    if out.status == 0 {
        Ok(out)
    } else {
        Err(failed("git", args, out.status, out.combined(OUTPUT_LIMIT)))
    }
}

/// The `-p` level for `git apply`: 1 when every `+++`/`---` path has an `a/`/`b/` prefix
/// (git, hg and most tools), 0 for bare `diff -u old new` paths.
fn strip_level(diff: &str) -> &'static str {
    if diff.lines().any(|l| l.starts_with("diff --git ")) {
        return "-p1";
    }
    let bare = diff.lines().any(|line| {
        let path = line
            .strip_prefix("+++ ")
            .or_else(|| line.strip_prefix("--- "));
        match path {
            Some(p) => {
                let p = p.split('\t').next().unwrap_or(p).trim();
                p != "/dev/null" && !p.starts_with("a/") && !p.starts_with("b/")
            }
            None => false,
        }
    });
    if bare { "-p0" } else { "-p1" }
}

/// Files `git apply` complained about, from its stderr.
fn conflicting_files(stderr: &str) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix("error: ") else {
            continue;
        };
        let file = if let Some(p) = rest.strip_prefix("patch failed: ") {
            p.rsplit_once(':').map(|(f, _)| f).unwrap_or(p)
        } else if let Some((f, _)) = rest
            .split_once(": patch does not apply")
            .or_else(|| rest.split_once(": does not exist in index"))
            .or_else(|| rest.split_once(": already exists in index"))
            .or_else(|| rest.split_once(": already exists in working directory"))
            .or_else(|| rest.split_once(": No such file or directory"))
        {
            f
        } else {
            continue;
        };
        if !files.iter().any(|x| x == file) {
            files.push(file.to_owned());
        }
    }
    files
}

fn is_push_race(out: &Output) -> bool {
    let text = format!("{}\n{}", out.stderr, out.stdout);
    text.contains("[rejected]")
        || text.contains("non-fast-forward")
        || text.contains("fetch first")
        || text.contains("cannot lock ref")
        || text.contains("[remote rejected]") && text.contains("failed to update ref")
}

#[async_trait]
impl WorkingCopy for GitWorkingCopy {
    async fn update_to_tip(&mut self) -> Result<String, VcsError> {
        self.ensure_clone().await?;
        let url = self.pull_url.clone();
        let refspec = format!("+refs/heads/{0}:refs/remotes/origin/{0}", self.branch);
        self.git_ok(&["fetch", "--quiet", "--no-tags", "--", &url, &refspec])
            .await?;
        let tip = format!("refs/remotes/origin/{}", self.branch);
        // `checkout --force` resets the index and the tracked files; `clean` the rest.
        self.git_ok(&["checkout", "--quiet", "--force", "--detach", &tip])
            .await?;
        self.git_ok(&["clean", "-ffdxq"]).await?;
        self.head().await
    }

    async fn apply(&mut self, commit: &CommitSpec<'_>) -> Result<String, VcsError> {
        let patch_file = self.scratch_file("patch-", commit.diff)?;
        let patch_path = patch_file.to_string_lossy().into_owned();
        let args = [
            "apply",
            "--index",
            "--whitespace=nowarn",
            strip_level(commit.diff),
            "--",
            &patch_path,
        ];
        let out = self.git(&args).await;
        let _ = std::fs::remove_file(&patch_file);
        let out = out?;
        if out.status != 0 {
            let mut files = conflicting_files(&out.stderr);
            if files.is_empty() {
                files.push("(git apply named no file)".to_owned());
            }
            return Err(VcsError::Conflict {
                files,
                output: out
                    .combined(OUTPUT_LIMIT)
                    .replace(&patch_path, &commit.label),
            });
        }
        self.commit(
            commit.author,
            commit.date.map(|d| d.to_git()),
            &commit.message,
            true,
        )
        .await
    }

    async fn commit_empty(
        &mut self,
        author: &str,
        date: Option<PatchDate>,
        message: &str,
    ) -> Result<String, VcsError> {
        self.commit(author, date.map(|d| d.to_git()), message, true)
            .await
    }

    async fn reset_to(&mut self, revision: &str) -> Result<bool, VcsError> {
        if !self.has_commit(revision).await? {
            return Ok(false);
        }
        self.git_ok(&["checkout", "--quiet", "--force", "--detach", revision])
            .await?;
        self.git_ok(&["clean", "-ffdxq"]).await?;
        Ok(true)
    }

    async fn checkout_pushed(
        &mut self,
        url: &str,
        ref_name: &str,
        revision: &str,
        _base: &str,
    ) -> Result<bool, VcsError> {
        if !is_hash(revision) {
            return Ok(false);
        }
        self.ensure_clone().await?;
        if !self.has_commit(revision).await? {
            let refspec = format!("+{ref_name}:refs/autoland/pushed");
            let args = ["fetch", "--quiet", "--no-tags", "--", url, &refspec];
            let out = self.git(&args).await?;
            if out.status != 0 {
                if out.stderr.contains("couldn't find remote ref") {
                    return Ok(false);
                }
                check(&args, out)?;
            }
            if !self.has_commit(revision).await? {
                return Ok(false);
            }
        }
        self.git_ok(&["checkout", "--quiet", "--force", "--detach", revision])
            .await?;
        self.git_ok(&["clean", "-ffdxq"]).await?;
        Ok(true)
    }

    async fn find_pushed(
        &mut self,
        target: &PushTarget,
        marker: &str,
        since: Option<&str>,
    ) -> Result<Option<String>, VcsError> {
        match target {
            PushTarget::Try { url, uid } => {
                self.ensure_clone().await?;
                let url = url.clone();
                let reference = PushTarget::try_ref(uid);
                let out = self.git_ok(&["ls-remote", "--", &url, &reference]).await?;
                Ok(out
                    .stdout
                    .lines()
                    .find_map(|l| l.split_whitespace().next().map(str::to_owned)))
            }
            PushTarget::Branch { url, branch } => {
                self.ensure_clone().await?;
                let url = url.clone();
                let refspec = format!("+refs/heads/{branch}:refs/autoland/destination");
                self.git_ok(&["fetch", "--quiet", "--no-tags", "--", &url, &refspec])
                    .await?;
                let known_since = match since {
                    Some(rev) => self.has_commit(rev).await?,
                    None => false,
                };
                let range = match (since, known_since) {
                    (Some(rev), true) => format!("{rev}..refs/autoland/destination"),
                    _ => "refs/autoland/destination".to_owned(),
                };
                let grep = format!("--grep={marker}");
                let out = self
                    .git_ok(&[
                        "rev-list",
                        "--max-count=1",
                        "--fixed-strings",
                        &grep,
                        &range,
                    ])
                    .await?;
                Ok(out
                    .stdout
                    .lines()
                    .next()
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty()))
            }
        }
    }

    async fn push(&mut self, target: &PushTarget) -> Result<String, VcsError> {
        let head = self.head().await?;
        let (url, refspec, force) = match target {
            PushTarget::Try { url, uid } => (
                url.clone(),
                format!("HEAD:{}", PushTarget::try_ref(uid)),
                true,
            ),
            PushTarget::Branch { url, branch } => {
                (url.clone(), format!("HEAD:refs/heads/{branch}"), false)
            }
        };
        let mut args = vec!["push", "--quiet", "--porcelain"];
        if force {
            args.push("--force");
        }
        args.extend(["--", &url, &refspec]);
        let out = self.git(&args).await?;
        if out.status == 0 {
            return Ok(head);
        }
        if !force && is_push_race(&out) {
            return Err(VcsError::PushRace {
                output: out.combined(OUTPUT_LIMIT),
            });
        }
        check(&args, out).map(|_| head)
    }

    async fn history(
        &mut self,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CommitInfo>, VcsError> {
        let known = match since.filter(|s| is_hash(s)) {
            Some(rev) => self.has_commit(rev).await?,
            None => false,
        };
        let range = match since {
            Some(rev) if known => format!("{rev}..HEAD"),
            _ => "HEAD".to_owned(),
        };
        let count = if known { limit.max(1) } else { 1 }.to_string();
        let out = self
            .git_ok(&[
                "log",
                "--first-parent",
                "--reverse",
                "--format=%H%x00%B%x00",
                "--max-count",
                &count,
                &range,
                "--",
            ])
            .await?;
        Ok(parse_history(&out.stdout))
    }

    async fn backout(
        &mut self,
        revisions: &[String],
        author: &str,
        message: &str,
    ) -> Result<String, VcsError> {
        let mut args = vec!["revert", "--no-commit", "--no-edit"];
        // Newest first, so each revert applies on a tree that still has what it undoes.
        for revision in revisions.iter().rev() {
            require_hash("git revert", revision)?;
            args.push(revision);
        }
        let out = self.git(&args).await?;
        if out.status != 0 {
            let unmerged = self
                .git(&["diff", "--name-only", "--diff-filter=U"])
                .await?
                .stdout;
            let mut files: Vec<String> = unmerged.lines().map(str::to_owned).collect();
            if files.is_empty() {
                files.push("(git revert named no file)".to_owned());
            }
            let output = out.combined(OUTPUT_LIMIT);
            let _ = self.git(&["revert", "--abort"]).await;
            self.git_ok(&["reset", "--quiet", "--hard", "HEAD"]).await?;
            self.git_ok(&["clean", "-ffdxq"]).await?;
            return Err(VcsError::Conflict { files, output });
        }
        self.commit(author, None, message, false).await
    }

    fn take_commands(&mut self) -> Vec<CommandRecord> {
        std::mem::take(&mut self.records)
    }
}

/// The CI directory of a git try repository: a `git worktree` of a bare mirror that
/// fetches just the pushed ref, created once and moved to each run's revision with
/// `checkout --force` + `clean -ffdx`.
pub struct GitCiCheckout {
    mirror: PathBuf,
    dir: PathBuf,
    settings: VcsSettings,
    /// When the worktree's index was last written as this checkout left it: an index the
    /// run wrote is searched for flags that would hide files from the next checkout.
    index_left: Option<std::time::SystemTime>,
}

impl GitCiCheckout {
    /// A directory `dir` checked out from the mirror kept at `mirror`.
    pub fn new(mirror: PathBuf, dir: PathBuf, settings: VcsSettings) -> GitCiCheckout {
        GitCiCheckout {
            mirror,
            dir,
            settings,
            index_left: None,
        }
    }

    /// When the worktree's index (in the admin directory its `.git` file names) was last
    /// written: git replaces it by a rename on every write.
    fn index_written(&self) -> Option<std::time::SystemTime> {
        let link = std::fs::read_to_string(self.dir.join(".git")).ok()?;
        let admin = link.trim().strip_prefix("gitdir:")?.trim();
        std::fs::metadata(Path::new(admin).join("index"))
            .and_then(|m| m.modified())
            .ok()
    }

    /// A run that marked files assume-unchanged or skip-worktree (`git update-index`)
    /// would hide them from `checkout --force`: an index changed since this checkout left
    /// it is searched for such flags, and any makes the checkout fail (so the directory is
    /// made again).
    async fn refuse_hidden_files(&self) -> Result<(), VcsError> {
        if self.index_left.is_some() && self.index_left == self.index_written() {
            return Ok(());
        }
        let out = self.git(&self.dir, &["ls-files", "-v", "-z"]).await?;
        let flagged = out.stdout.split('\0').find(|entry| {
            entry
                .chars()
                .next()
                .is_some_and(|tag| tag.is_ascii_lowercase() || tag == 'S')
        });
        match flagged {
            Some(entry) => Err(VcsError::io(
                "the CI directory's git index",
                std::io::Error::other(format!(
                    "the previous run marked `{}` assume-unchanged or skip-worktree \
                     (`git update-index`), which checkout would trust; a CI command should \
                     not set index flags",
                    entry.get(2..).unwrap_or(entry)
                )),
            )),
            None => Ok(()),
        }
    }

    async fn git(&self, dir: &Path, args: &[&str]) -> Result<Output, VcsError> {
        let mut records = Vec::new();
        let out = command::run(
            "git",
            git_args(args),
            dir,
            &[],
            self.settings.timeout,
            &mut records,
        )
        .await?;
        check(args, out)
    }
}

#[async_trait]
impl CiCheckout for GitCiCheckout {
    fn dir(&self) -> &Path {
        &self.dir
    }

    async fn fetch(&mut self, url: &str, ref_name: &str, revision: &str) -> Result<(), VcsError> {
        require_hash("git checkout", revision)?;
        if !self.mirror.join("HEAD").exists() {
            std::fs::create_dir_all(&self.mirror)
                .map_err(|e| VcsError::io(format!("cannot create {}", self.mirror.display()), e))?;
            self.git(&self.mirror, &["init", "--quiet", "--bare"])
                .await?;
        }
        let refspec = format!("+{ref_name}:{ref_name}");
        self.git(
            &self.mirror,
            &["fetch", "--quiet", "--no-tags", "--", url, &refspec],
        )
        .await?;
        Ok(())
    }

    async fn checkout(&mut self, revision: &str) -> Result<(), VcsError> {
        require_hash("git checkout", revision)?;
        if self.dir.join(".git").is_file() {
            self.refuse_hidden_files().await?;
            // The index and every tracked file back to `revision` (files the run added
            // to the index included), then everything untracked or ignored out.
            self.git(
                &self.dir,
                &["checkout", "--quiet", "--force", "--detach", revision],
            )
            .await?;
            self.git(&self.dir, &["clean", "-ffdxq"]).await?;
            self.index_left = self.index_written();
            return Ok(());
        }
        remove_dir(&self.dir).await?;
        // Forget worktrees whose directories are gone (thrown away), then add this one.
        self.git(&self.mirror, &["worktree", "prune"]).await?;
        let dir_text = self.dir.to_string_lossy().into_owned();
        self.git(
            &self.mirror,
            &[
                "worktree", "add", "--quiet", "--force", "--detach", &dir_text, revision,
            ],
        )
        .await?;
        self.index_left = self.index_written();
        Ok(())
    }

    fn mirror(&self) -> &Path {
        &self.mirror
    }

    async fn release(&mut self) {
        self.index_left = None;
    }

    fn guarded(&self) -> Vec<PathBuf> {
        vec![
            self.mirror.join("config"),
            self.mirror.join("hooks"),
            self.dir.join(".git"),
        ]
    }

    fn notices_rewrites(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_level_follows_the_paths() {
        assert_eq!(strip_level("diff --git a/x b/x\n--- a/x\n+++ b/x\n"), "-p1");
        assert_eq!(strip_level("--- a/x\t2020\n+++ b/x\t2020\n"), "-p1");
        assert_eq!(strip_level("--- x.orig\n+++ x\n"), "-p0");
        assert_eq!(strip_level("--- /dev/null\n+++ b/new\n"), "-p1");
    }

    #[test]
    fn conflicts_name_their_files() {
        let stderr = "error: patch failed: src/lib.rs:12\nerror: src/lib.rs: patch does not apply\n\
                      error: docs/a b.md: does not exist in index\n";
        assert_eq!(conflicting_files(stderr), vec!["src/lib.rs", "docs/a b.md"]);
    }
}
