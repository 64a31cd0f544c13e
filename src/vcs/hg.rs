//! Mercurial, through one long-lived command server per working copy
//! ([`super::hg_cmdserver`]), with `HGPLAIN=1` and nothing that can prompt.
//!
//! A working copy is a clone in `data/work/<repo>`, made once. Each job pulls the base,
//! strips every non-public changeset (what earlier jobs left), updates cleanly to the
//! branch's public tip and purges unknown and ignored files (`.rej`/`.orig` included).
//! Try pushes are forced (try has many heads); pushes to other destinations never are, and
//! "push creates new remote head" means someone pushed first. "no changes found" (exit 1)
//! means the commits are already there: commits are rebuilt identically on a resume (same
//! base, dates, users and messages), so an interrupted push is recognised that way.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::command::{OUTPUT_LIMIT, failed};
use super::hg_cmdserver::{CommandServer, HgOutput, spawn_once};
use super::interface::{
    CiCheckout, CommandRecord, CommitInfo, CommitSpec, PushTarget, VcsError, VcsSettings,
    WorkingCopy, is_hash, parse_history, remove_dir, require_hash, split_identity,
};
use crate::patch::PatchDate;

/// Runs `hg args` through the command server of the repository in `dir`, starting it in
/// `server` first if there is none.
async fn run_served(
    server: &mut Option<CommandServer>,
    dir: &Path,
    timeout: std::time::Duration,
    args: &[&str],
    records: &mut Vec<CommandRecord>,
) -> Result<HgOutput, VcsError> {
    let server = match server {
        Some(server) => server,
        None => server.insert(CommandServer::start(dir, timeout).await?),
    };
    server.run(args, records).await
}

/// A warm Mercurial working copy.
pub struct HgWorkingCopy {
    dir: PathBuf,
    pull_url: String,
    branch: String,
    settings: VcsSettings,
    server: Option<CommandServer>,
    records: Vec<CommandRecord>,
    /// The public revision the current job started from.
    base: Option<String>,
}

impl HgWorkingCopy {
    /// A working copy in `dir` (cloned on first use).
    pub fn new(
        dir: PathBuf,
        pull_url: String,
        branch: String,
        settings: VcsSettings,
    ) -> HgWorkingCopy {
        HgWorkingCopy {
            dir,
            pull_url,
            branch,
            settings,
            server: None,
            records: Vec::new(),
            base: None,
        }
    }

    /// The command server's process id (tests kill it to check the restart).
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(CommandServer::pid)
    }

    async fn ensure_clone(&mut self) -> Result<(), VcsError> {
        if self.dir.join(".hg").is_dir() {
            // A crash can leave a lock behind; this process owns the working copy.
            let _ = std::fs::remove_file(self.dir.join(".hg/wlock"));
            let _ = std::fs::remove_file(self.dir.join(".hg/store/lock"));
        } else {
            remove_dir(&self.dir).await?;
            let parent = self.dir.parent().map(Path::to_path_buf).unwrap_or_default();
            std::fs::create_dir_all(&parent)
                .map_err(|e| VcsError::io(format!("cannot create {}", parent.display()), e))?;
            let dir = self.dir.to_string_lossy().into_owned();
            let url = self.pull_url.clone();
            let out = spawn_once(
                &parent,
                &["clone", "--noupdate", "--", &url, &dir],
                self.settings.timeout,
                &mut self.records,
            )
            .await?;
            check(&["clone", "--noupdate", "--", &url], out)?;
        }
        Ok(())
    }

    async fn hg(&mut self, args: &[&str]) -> Result<HgOutput, VcsError> {
        self.ensure_clone().await?;
        let timeout = self.settings.timeout;
        run_served(
            &mut self.server,
            &self.dir,
            timeout,
            args,
            &mut self.records,
        )
        .await
    }

    async fn hg_ok(&mut self, args: &[&str]) -> Result<HgOutput, VcsError> {
        let out = self.hg(args).await?;
        check(args, out)
    }

    async fn node(&mut self, revset: &str) -> Result<Option<String>, VcsError> {
        let out = self.hg_ok(&["log", "-r", revset, "-T", "{node}\n"]).await?;
        Ok(out
            .stdout_text()
            .lines()
            .last()
            .map(str::to_owned)
            .filter(|l| !l.is_empty()))
    }

    async fn head(&mut self) -> Result<String, VcsError> {
        self.node(".").await?.ok_or_else(|| VcsError::Command {
            command: "hg log -r .".to_owned(),
            status: 0,
            output: "the working copy has no parent revision".to_owned(),
        })
    }

    /// Strips every changeset that is not public (earlier jobs' commits), updates to
    /// `revision` and removes every file hg does not track.
    async fn clean_to(&mut self, revision: &str) -> Result<(), VcsError> {
        if self.node("not public()").await?.is_some() {
            self.hg_ok(&["debugstrip", "--no-backup", "--force", "-r", "not public()"])
                .await?;
        }
        self.hg_ok(&["update", "--clean", "-r", revision]).await?;
        self.hg_ok(&["purge", "--all", "--no-confirm"]).await?;
        Ok(())
    }

    fn scratch_file(&self, name: &str, content: &str) -> Result<PathBuf, VcsError> {
        self.settings.scratch_file(name, content)
    }

    /// Keeps our pushed commits draft locally (even if the try server publishes them), so
    /// the next job strips them.
    async fn redraft(&mut self) -> Result<(), VcsError> {
        if let Some(base) = self.base.clone() {
            let revset = format!("only(., {base})");
            self.hg_ok(&["phase", "--draft", "--force", "-r", &revset])
                .await?;
        }
        Ok(())
    }
}

impl HgWorkingCopy {
    /// `hg backout` of each revision, newest first, each committed; several are then
    /// folded into one commit (the tree of the last, committed on `start`).
    async fn backout_each(
        &mut self,
        revisions: &[String],
        author: &str,
        message_path: &str,
        start: &str,
    ) -> Result<String, VcsError> {
        let single = revisions.len() == 1;
        for revision in revisions.iter().rev() {
            require_hash("hg backout", revision)?;
            let mut args = vec![
                "backout",
                "-r",
                revision,
                "--tool",
                "internal:fail",
                "--user",
                author,
            ];
            if single {
                args.extend(["--logfile", message_path]);
            } else {
                args.extend(["-m", "autoland: partial backout"]);
            }
            let out = self.hg(&args).await?;
            if out.code != 0 {
                let unresolved = self.hg(&["resolve", "--list"]).await?.stdout_text();
                let mut files: Vec<String> = unresolved
                    .lines()
                    .filter_map(|l| l.strip_prefix("U "))
                    .map(str::to_owned)
                    .collect();
                if files.is_empty() {
                    files.push("(hg backout named no file)".to_owned());
                }
                return Err(VcsError::Conflict {
                    files,
                    output: out.combined(OUTPUT_LIMIT),
                });
            }
        }
        if !single {
            let last = self.head().await?;
            self.hg_ok(&["update", "--clean", "-r", start]).await?;
            self.hg_ok(&["revert", "--all", "--no-backup", "-r", &last])
                .await?;
            self.hg_ok(&["commit", "--user", author, "--logfile", message_path])
                .await?;
        }
        self.head().await
    }
}

fn check(args: &[&str], out: HgOutput) -> Result<HgOutput, VcsError> {
    if out.code == 0 {
        Ok(out)
    } else {
        Err(failed("hg", args, out.code, out.combined(OUTPUT_LIMIT)))
    }
}

/// Files `hg import` could not patch, from its output.
fn rejected_files(text: &str) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    let mut add = |f: &str| {
        let f = f.trim().trim_matches('\'').to_owned();
        if !f.is_empty() && !files.contains(&f) {
            files.push(f);
        }
    };
    for line in text.lines() {
        if let Some(rest) = line.split("saving rejects to file ").nth(1) {
            add(rest.trim().strip_suffix(".rej").unwrap_or(rest));
        } else if let Some(rest) = line.strip_prefix("unable to find '") {
            add(rest.split('\'').next().unwrap_or(rest));
        } else if let Some(rest) = line.strip_prefix("abort: ") {
            if let Some((file, _)) = rest.split_once(": No such file or directory") {
                add(file);
            } else if let Some(file) = rest.strip_suffix(" already exists") {
                add(file);
            }
        }
    }
    files
}

#[async_trait]
impl WorkingCopy for HgWorkingCopy {
    async fn update_to_tip(&mut self) -> Result<String, VcsError> {
        self.ensure_clone().await?;
        let url = self.pull_url.clone();
        let out = self.hg(&["pull", "--", &url]).await?;
        if out.code > 1 {
            check(&["pull", "--", &url], out)?;
        }
        let revset = format!(
            "max(public() and branch('{}'))",
            self.branch.replace('\'', "")
        );
        let Some(tip) = self.node(&revset).await? else {
            return Err(VcsError::Command {
                command: format!("hg log -r {revset}"),
                status: 0,
                output: format!("branch `{}` has no public revision", self.branch),
            });
        };
        self.clean_to(&tip).await?;
        self.base = Some(tip.clone());
        Ok(tip)
    }

    async fn reset_to(&mut self, revision: &str) -> Result<bool, VcsError> {
        let revset = format!("public() and id('{}')", revision.replace('\'', ""));
        if self.node(&revset).await?.is_none() {
            return Ok(false);
        }
        self.clean_to(revision).await?;
        self.base = Some(revision.to_owned());
        Ok(true)
    }

    async fn checkout_pushed(
        &mut self,
        url: &str,
        _ref_name: &str,
        revision: &str,
        base: &str,
    ) -> Result<bool, VcsError> {
        if !is_hash(revision) || !is_hash(base) {
            return Ok(false);
        }
        self.ensure_clone().await?;
        if self.node(&format!("id('{revision}')")).await?.is_none() {
            let out = self.hg(&["pull", "-r", revision, "--", url]).await?;
            if out.code > 1 {
                let text = format!("{}\n{}", out.stdout_text(), out.stderr_text());
                if text.contains("unknown revision") || text.contains("filtered revision") {
                    return Ok(false);
                }
                check(&["pull", "-r", revision, "--", url], out)?;
            }
            if self.node(&format!("id('{revision}')")).await?.is_none() {
                return Ok(false);
            }
        }
        // Pulled from a publishing try repository, they came in public: draft again, so
        // the tip stays the destination's and the next job strips them.
        let only = format!("only('{revision}', '{base}')");
        if self.node(&format!("public() and {only}")).await?.is_some() {
            self.hg_ok(&["phase", "--draft", "--force", "-r", &only])
                .await?;
        }
        self.hg_ok(&["update", "--clean", "-r", revision]).await?;
        self.hg_ok(&["purge", "--all", "--no-confirm"]).await?;
        self.base = Some(base.to_owned());
        Ok(true)
    }

    async fn apply(&mut self, commit: &CommitSpec<'_>) -> Result<String, VcsError> {
        let patch_file = self.scratch_file("patch-", commit.diff)?;
        let message_file = self.scratch_file("message-", &commit.message)?;
        let patch_path = patch_file.to_string_lossy().into_owned();
        let message_path = message_file.to_string_lossy().into_owned();
        let (name, email) = split_identity(commit.author);
        let user = format!("{name} <{email}>");
        let date = commit.date.map(|d| d.to_hg());
        let strip = if commit.diff.lines().any(|l| l.starts_with("diff --git ")) {
            "1"
        } else {
            bare_level(commit.diff)
        };
        let mut args = vec![
            "import",
            "-p",
            strip,
            "--user",
            &user,
            "--logfile",
            &message_path,
        ];
        if let Some(date) = &date {
            args.extend(["--date", date]);
        }
        args.extend(["--", &patch_path]);
        let out = self.hg(&args).await;
        let _ = std::fs::remove_file(&patch_file);
        let _ = std::fs::remove_file(&message_file);
        let out = out?;
        if out.code != 0 {
            let text = format!("{}\n{}", out.stdout_text(), out.stderr_text());
            let mut files = rejected_files(&text);
            if files.is_empty() {
                files.push("(hg import named no file)".to_owned());
            }
            return Err(VcsError::Conflict {
                files,
                output: out
                    .combined(OUTPUT_LIMIT)
                    .replace(&patch_path, &commit.label),
            });
        }
        self.head().await
    }

    async fn commit_empty(
        &mut self,
        author: &str,
        date: Option<PatchDate>,
        message: &str,
    ) -> Result<String, VcsError> {
        let message_file = self.scratch_file("message-", message)?;
        let message_path = message_file.to_string_lossy().into_owned();
        let date = date.map(|d| d.to_hg());
        let mut args = vec![
            "--config",
            "ui.allowemptycommit=true",
            "commit",
            "--user",
            author,
            "--logfile",
            &message_path,
        ];
        if let Some(date) = &date {
            args.extend(["--date", date]);
        }
        let out = self.hg(&args).await;
        let _ = std::fs::remove_file(&message_file);
        check(&args, out?)?;
        self.head().await
    }

    async fn find_pushed(
        &mut self,
        target: &PushTarget,
        marker: &str,
        since: Option<&str>,
    ) -> Result<Option<String>, VcsError> {
        match target {
            // A try repository has many heads and may be huge: nothing is pulled from it.
            // A resumed try push is rebuilt identically and recognised by `push` instead.
            PushTarget::Try { .. } => Ok(None),
            PushTarget::Branch { url, .. } => {
                let url = url.clone();
                let out = self.hg(&["pull", "--", &url]).await?;
                if out.code > 1 {
                    check(&["pull", "--", &url], out)?;
                }
                // Only public changesets count: they are the destination's (a publishing
                // repository); our own unpushed attempts are drafts.
                let marker = marker.replace('\'', "");
                let revset = match since {
                    Some(base)
                        if self
                            .node(&format!("id('{}')", base.replace('\'', "")))
                            .await?
                            .is_some() =>
                    {
                        format!(
                            "last(public() and desc('{marker}') and descendants({base}))",
                            base = base.replace('\'', "")
                        )
                    }
                    _ => format!("last(desc('{marker}') and public())"),
                };
                self.node(&revset).await
            }
        }
    }

    async fn push(&mut self, target: &PushTarget) -> Result<String, VcsError> {
        let head = self.head().await?;
        let (url, force) = match target {
            PushTarget::Try { url, .. } => (url.clone(), true),
            PushTarget::Branch { url, .. } => (url.clone(), false),
        };
        let mut args = vec!["push", "-r", "."];
        if force {
            args.push("--force");
        }
        args.extend(["--", &url]);
        let out = self.hg(&args).await?;
        let text = format!("{}\n{}", out.stdout_text(), out.stderr_text());
        let result = match out.code {
            0 => Ok(head.clone()),
            // Nothing to push: these very commits are already there.
            1 if text.contains("no changes found") => Ok(head.clone()),
            _ if !force
                && (text.contains("push creates new remote head")
                    || text.contains("new remote heads")) =>
            {
                Err(VcsError::PushRace {
                    output: out.combined(OUTPUT_LIMIT),
                })
            }
            _ => check(&args, out).map(|_| head.clone()),
        };
        if force && result.is_ok() {
            self.redraft().await?;
        }
        result
    }

    async fn history(
        &mut self,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CommitInfo>, VcsError> {
        let known = match since.filter(|s| is_hash(s)) {
            Some(rev) => self.node(&format!("id('{rev}')")).await?.is_some(),
            None => false,
        };
        let revset = match since {
            Some(rev) if known => format!("last(only(., '{rev}'), {})", limit.max(1)),
            _ => ".".to_owned(),
        };
        let out = self
            .hg_ok(&["log", "-r", &revset, "-T", "{node}\\0{desc}\\0"])
            .await?;
        Ok(parse_history(&out.stdout_text()))
    }

    async fn backout(
        &mut self,
        revisions: &[String],
        author: &str,
        message: &str,
    ) -> Result<String, VcsError> {
        let start = self.head().await?;
        let message_file = self.scratch_file("message-", message)?;
        let message_path = message_file.to_string_lossy().into_owned();
        let result = self
            .backout_each(revisions, author, &message_path, &start)
            .await;
        let _ = std::fs::remove_file(&message_file);
        if result.is_err() {
            // Leave the working copy clean on the tip; the drafts are stripped by the
            // next job.
            let _ = self.hg(&["update", "--clean", "-r", &start]).await;
            let _ = self.hg(&["purge", "--all", "--no-confirm"]).await;
        }
        result
    }

    fn take_commands(&mut self) -> Vec<CommandRecord> {
        std::mem::take(&mut self.records)
    }
}

/// `-p` level for a plain diff: 0 when its paths carry no `a/`/`b/` prefix.
fn bare_level(diff: &str) -> &'static str {
    let bare = diff.lines().any(|line| {
        line.strip_prefix("+++ ")
            .or_else(|| line.strip_prefix("--- "))
            .map(|p| {
                let p = p.split('\t').next().unwrap_or(p).trim();
                p != "/dev/null" && !p.starts_with("a/") && !p.starts_with("b/")
            })
            .unwrap_or(false)
    });
    if bare { "0" } else { "1" }
}

/// The CI directory of an hg try repository: a share of a local mirror (which keeps the
/// history when the directory is thrown away), with a command server of its own, moved to
/// each run's revision with `pull -r`, `purge --all` and `update --clean`.
pub struct HgCiCheckout {
    mirror: PathBuf,
    dir: PathBuf,
    settings: VcsSettings,
    server: Option<CommandServer>,
}

impl HgCiCheckout {
    /// A directory `dir` sharing the mirror kept at `mirror`.
    pub fn new(mirror: PathBuf, dir: PathBuf, settings: VcsSettings) -> HgCiCheckout {
        HgCiCheckout {
            mirror,
            dir,
            settings,
            server: None,
        }
    }

    /// A one-off `hg` (no server) in `dir`. (Nothing reads a CI directory's command
    /// records: they are not kept.)
    async fn hg_once(&self, dir: &Path, args: &[&str]) -> Result<HgOutput, VcsError> {
        let out = spawn_once(dir, args, self.settings.timeout, &mut Vec::new()).await?;
        check(args, out)
    }

    /// Makes the directory a share of the mirror (created first if need be), no files yet.
    async fn create(&mut self) -> Result<(), VcsError> {
        remove_dir(&self.dir).await?;
        if !self.mirror.join(".hg").is_dir() {
            std::fs::create_dir_all(&self.mirror)
                .map_err(|e| VcsError::io(format!("cannot create {}", self.mirror.display()), e))?;
            self.hg_once(&self.mirror, &["init"]).await?;
        }
        let (source, target) = (
            self.mirror.to_string_lossy().into_owned(),
            self.dir.to_string_lossy().into_owned(),
        );
        self.hg_once(
            &self.mirror,
            &[
                "--config",
                "extensions.share=",
                "share",
                "--noupdate",
                "--",
                &source,
                &target,
            ],
        )
        .await?;
        Ok(())
    }

    async fn hg(&mut self, args: &[&str]) -> Result<HgOutput, VcsError> {
        let timeout = self.settings.timeout;
        run_served(&mut self.server, &self.dir, timeout, args, &mut Vec::new()).await
    }

    async fn hg_ok(&mut self, args: &[&str]) -> Result<HgOutput, VcsError> {
        let out = self.hg(args).await?;
        check(args, out)
    }
}

#[async_trait]
impl CiCheckout for HgCiCheckout {
    fn dir(&self) -> &Path {
        &self.dir
    }

    async fn fetch(&mut self, url: &str, _ref_name: &str, revision: &str) -> Result<(), VcsError> {
        require_hash("hg pull", revision)?;
        if !self.dir.join(".hg").is_dir() {
            self.release().await;
            self.create().await?;
        }
        let pull = ["pull", "-r", revision, "--", url];
        let out = self.hg(&pull).await?;
        if out.code > 1 {
            check(&pull, out)?;
        }
        Ok(())
    }

    async fn checkout(&mut self, revision: &str) -> Result<(), VcsError> {
        require_hash("hg update", revision)?;
        // Untracked and ignored files out first, so none stands in the update's way
        // (nothing to do in a new share: one round trip).
        self.hg_ok(&["purge", "--all", "--no-confirm"]).await?;
        self.hg_ok(&["update", "--clean", "-r", revision]).await?;
        Ok(())
    }

    fn mirror(&self) -> &Path {
        &self.mirror
    }

    async fn release(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    fn guarded(&self) -> Vec<PathBuf> {
        let own = self.dir.join(".hg");
        vec![
            own.join("hgrc"),
            own.join("sharedpath"),
            own.join("requires"),
            self.mirror.join(".hg").join("hgrc"),
        ]
    }

    fn notices_rewrites(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_name_their_files() {
        let out = "applying patch\npatching file src/lib.rs\nHunk #1 FAILED at 3\n\
                   1 out of 1 hunks FAILED -- saving rejects to file src/lib.rs.rej\n\
                   unable to find 'docs/gone.md' for patching\nabort: patch failed to apply\n";
        assert_eq!(rejected_files(out), vec!["src/lib.rs", "docs/gone.md"]);
    }

    #[test]
    fn plain_diffs_pick_their_strip_level() {
        assert_eq!(bare_level("--- a/x\n+++ b/x\n"), "1");
        assert_eq!(bare_level("--- x.orig\n+++ x\n"), "0");
    }
}
