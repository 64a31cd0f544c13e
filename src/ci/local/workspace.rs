//! The built-in runner's warm CI directories: one per try repository and runner, moved
//! from run to run to the revision under test instead of being created and deleted.
//!
//! A run must still start from exactly the pushed revision, with nothing an earlier run
//! left. The VCS removes what it can see (`git checkout --force` + `clean -ffdx`, `hg update
//! --clean` + `purge --all`). What it cannot see is removed here first:
//!
//! - nested repositories (a `.git` or `.hg` below the root): both VCSs skip them;
//! - on hg, files changed during the previous run with their size and modification time
//!   put back (its dirstate compares only those; git's index also compares the inode's
//!   change time and number): every file whose inode changed (`ctime`, which no program
//!   can set) since the previous run started is deleted, and hg writes the tracked ones
//!   again.
//!
//! A run that did not end by itself (timed out, cancelled, interrupted, or Autoland
//! crashed during it) leaves its directory marked; so does a run that changed the
//! repository's configuration or hooks. A marked directory is thrown away and created
//! again. Throwing away is a rename; the deletion runs on a blocking thread, never on the
//! async runtime.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::vcs::{CiCheckout, VcsError};

/// The directory trash is moved to, next to the warm directories.
const TRASH: &str = ".trash";

/// How a run's directory was made ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// The previous run's directory, moved to the new revision.
    Reused {
        /// Files the VCS could not see that were removed first (nested repositories,
        /// files changed during the previous run).
        scrubbed: usize,
    },
    /// A new directory: there was none, or the previous one was thrown away.
    Created {
        /// Why there was no directory to reuse.
        reason: String,
    },
}

impl Prepared {
    /// For the run's notes.
    pub fn describe(&self) -> String {
        match self {
            Prepared::Reused { scrubbed: 0 } => "in its reused checkout".to_owned(),
            Prepared::Reused { scrubbed } => format!(
                "in its reused checkout ({scrubbed} file(s) changed by the previous run removed first)"
            ),
            Prepared::Created { reason } => format!("in a new checkout ({reason})"),
        }
    }
}

/// One warm directory: a [`CiCheckout`] and the record of its last run.
///
/// Two files next to the directory keep that record across restarts:
///
/// - `<dir>.started`, rewritten as a run starts: its change time is the run's start *on
///   the file system's clock*, the clock the run's own writes are stamped with, so no
///   margin is needed between the two clocks;
/// - `<dir>.state`: `running` or `finished` (the run ended by itself), then the change
///   times of the [guarded](CiCheckout::guarded) files as the run started.
pub struct Workspace {
    checkout: Box<dyn CiCheckout>,
    started: PathBuf,
    state: PathBuf,
    /// The guarded files' change times when the current run started.
    guards: Vec<Option<Duration>>,
}

/// Why the previous run's directory is not reused.
struct Refusal {
    reason: String,
    /// The run changed the mirror's configuration or hooks: throw the mirror away too.
    mirror_too: bool,
}

impl Refusal {
    fn new(reason: impl Into<String>) -> Refusal {
        Refusal {
            reason: reason.into(),
            mirror_too: false,
        }
    }
}

/// What the state file says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// A run started and did not end by itself.
    Running,
    /// The last run ended by itself; the guarded files' change times as it started.
    Finished(Vec<Option<Duration>>),
}

impl Workspace {
    /// A workspace for `checkout` (its directory need not exist).
    pub fn new(checkout: Box<dyn CiCheckout>) -> Workspace {
        let dir = checkout.dir().to_path_buf();
        let beside = |suffix: &str| {
            let mut name = dir.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        Workspace {
            started: beside(".started"),
            state: beside(".state"),
            checkout,
            guards: Vec::new(),
        }
    }

    /// The directory runs happen in.
    pub fn dir(&self) -> &Path {
        self.checkout.dir()
    }

    /// Makes the directory exactly `revision` (pushed to `ref_name` of `url`): the
    /// previous run's directory when it can be trusted, a new one otherwise.
    pub async fn prepare(
        &mut self,
        url: &str,
        ref_name: &str,
        revision: &str,
    ) -> Result<Prepared, VcsError> {
        let dir = self.dir().to_path_buf();
        let refusal = match self.reusable() {
            Ok(start) => {
                // The scrub (a blocking thread) and the fetch (a VCS process) at once.
                let since = (!self.checkout.notices_rewrites()).then_some(start);
                let (scrubbed, fetched) = tokio::join!(
                    scrub(dir.clone(), since),
                    self.checkout.fetch(url, ref_name, revision)
                );
                // A fetch that failed (try unreachable) says nothing about the directory.
                fetched?;
                let moved = match scrubbed {
                    Ok(n) => self.checkout.checkout(revision).await.map(|()| n),
                    Err(e) => Err(e),
                };
                match moved {
                    Ok(scrubbed) => return Ok(Prepared::Reused { scrubbed }),
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), error = %e,
                            "cannot reuse the CI directory; making a new one");
                        Refusal::new(format!("moving the previous one failed: {e}"))
                    }
                }
            }
            Err(refusal) => refusal,
        };
        if dir.exists() || refusal.mirror_too {
            self.discard(refusal.mirror_too).await?;
        }
        let reason = refusal.reason;
        self.checkout.fetch(url, ref_name, revision).await?;
        self.checkout.checkout(revision).await?;
        Ok(Prepared::Created { reason })
    }

    /// When the previous run started (file-system clock), if its directory may be reused;
    /// otherwise why not.
    fn reusable(&self) -> Result<SystemTime, Refusal> {
        let thrown = |why: &str| {
            Err(Refusal::new(format!(
                "{why}, so its directory was thrown away"
            )))
        };
        if !self.dir().exists() {
            return Err(Refusal::new("there was none yet"));
        }
        let (Some(state), Ok(started)) = (self.read_state(), std::fs::metadata(&self.started))
        else {
            return thrown("the previous run there left no record");
        };
        let State::Finished(before) = state else {
            return thrown(
                "the previous run there did not end by itself (timed out, stopped or \
                 interrupted)",
            );
        };
        let guarded = self.checkout.guarded();
        let now = guard_times(&guarded);
        if before.len() != now.len() {
            return thrown("the previous run's record does not match this checkout");
        }
        if let Some(file) = guarded
            .iter()
            .zip(before.iter().zip(&now))
            .find(|(_, (was, is))| was != is)
            .map(|(file, _)| file)
        {
            let mirror = self.checkout.mirror();
            let mirror_too = file.starts_with(mirror);
            let what = if mirror_too {
                format!("its directory and the mirror {} were", mirror.display())
            } else {
                "its directory was".to_owned()
            };
            return Err(Refusal {
                reason: format!(
                    "the previous run changed {}, so {what} thrown away",
                    file.display()
                ),
                mirror_too,
            });
        }
        Ok(changed_at(&started))
    }

    /// Records that a run starts now (before its command is spawned). Where the VCS does
    /// not notice rewrites itself (hg), the start is stamped once the file-system clock has
    /// moved past the checkout's last write (at most a clock tick, a few milliseconds), so
    /// that what the checkout wrote is older than the start and everything the run writes
    /// is not.
    pub async fn started(&mut self) {
        let first = self.stamp_start();
        if let Some(first) = first.filter(|_| !self.checkout.notices_rewrites()) {
            for attempt in 0..100 {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                match self.stamp_start() {
                    Some(now) if now > first => break,
                    Some(_) => {}
                    None => break,
                }
            }
        }
        self.guards = guard_times(&self.checkout.guarded());
        self.write_state(&State::Running);
    }

    /// Rewrites `<dir>.started`; returns its change time.
    fn stamp_start(&self) -> Option<SystemTime> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let written = std::fs::write(&self.started, format!("{nanos}\n"))
            .and_then(|()| std::fs::metadata(&self.started));
        match written {
            Ok(meta) => Some(changed_at(&meta)),
            Err(e) => {
                tracing::warn!(file = %self.started.display(), error = %e,
                    "cannot record the CI run's start");
                let _ = std::fs::remove_file(&self.started);
                None
            }
        }
    }

    /// Records that the run ended by itself: the next run may reuse the directory. Not
    /// called for a run that timed out or was stopped.
    pub fn finished(&mut self) {
        self.write_state(&State::Finished(self.guards.clone()));
    }

    /// Throws the directory away: renamed into the trash at once, deleted on a blocking
    /// thread in the background.
    async fn discard(&mut self, mirror_too: bool) -> Result<(), VcsError> {
        self.checkout.release().await;
        let dir = self.dir().to_path_buf();
        let _ = std::fs::remove_file(&self.state);
        if dir.exists() {
            throw_away(&dir).await?;
        }
        let mirror = self.checkout.mirror().to_path_buf();
        if mirror_too && mirror.exists() {
            throw_away(&mirror).await?;
        }
        Ok(())
    }

    fn read_state(&self) -> Option<State> {
        let text = std::fs::read_to_string(&self.state).ok()?;
        let mut lines = text.lines();
        match lines.next()? {
            "running" => Some(State::Running),
            "finished" => {
                let guards = lines.next()?.strip_prefix("guards")?;
                let times = guards
                    .split_whitespace()
                    .map(|word| match word {
                        "-" => Some(None),
                        nanos => nanos.parse().ok().map(|n| Some(Duration::from_nanos(n))),
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(State::Finished(times))
            }
            _ => None,
        }
    }

    /// Replaces the state file (write then rename). A state that cannot be written makes
    /// the next run start from a new directory: never a reason to fail a run.
    fn write_state(&self, state: &State) {
        let text = match state {
            State::Running => "running\n".to_owned(),
            State::Finished(times) => {
                let words: Vec<String> = times
                    .iter()
                    .map(|t| t.map_or_else(|| "-".to_owned(), |t| t.as_nanos().to_string()))
                    .collect();
                format!("finished\nguards {}\n", words.join(" "))
            }
        };
        let mut temporary = self.state.clone().into_os_string();
        temporary.push(".new");
        let temporary = PathBuf::from(temporary);
        let written = std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &self.state));
        if let Err(e) = written {
            tracing::warn!(file = %self.state.display(), error = %e,
                "cannot record the CI directory's state");
            let _ = std::fs::remove_file(&self.state);
        }
    }
}

/// Each file's change time (since the epoch), none for a missing file.
fn guard_times(files: &[PathBuf]) -> Vec<Option<Duration>> {
    files
        .iter()
        .map(|file| {
            std::fs::symlink_metadata(file).ok().map(|meta| {
                changed_at(&meta)
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
            })
        })
        .collect()
}

/// When an inode last changed (`ctime`: content, mode, links, renames).
fn changed_at(meta: &std::fs::Metadata) -> SystemTime {
    let seconds = u64::try_from(meta.ctime()).unwrap_or(0);
    let nanos = u32::try_from(meta.ctime_nsec()).unwrap_or(0);
    UNIX_EPOCH + Duration::new(seconds, nanos)
}

/// Removes, below `root`, what the VCS would not: nested repositories and, with `since`,
/// every non-directory whose inode changed since then (without, nothing is looked up but
/// names and types). The root's own `.git`/`.hg` is left alone. Runs on a blocking
/// thread; returns how many entries it removed.
pub async fn scrub(root: PathBuf, since: Option<SystemTime>) -> Result<usize, VcsError> {
    tokio::task::spawn_blocking(move || scrub_blocking(&root, since))
        .await
        .map_err(|e| VcsError::io("the CI directory's scrub did not finish", e.into()))?
}

fn scrub_blocking(root: &Path, since: Option<SystemTime>) -> Result<usize, VcsError> {
    let mut removed = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| VcsError::io(format!("cannot read {}", dir.display()), e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| VcsError::io(format!("cannot read {}", dir.display()), e))?;
            let path = entry.path();
            let name = entry.file_name();
            let inspect = |e| VcsError::io(format!("cannot inspect {}", path.display()), e);
            let kind = entry.file_type().map_err(inspect)?;
            let repository = name == ".git" || name == ".hg";
            if repository && dir == root {
                continue;
            }
            let changed = || -> Result<bool, VcsError> {
                Ok(match since {
                    Some(since) => changed_at(&entry.metadata().map_err(inspect)?) >= since,
                    None => false,
                })
            };
            if kind.is_dir() {
                if repository {
                    remove_tree(&path)?;
                    removed += 1;
                } else {
                    pending.push(path);
                }
            } else if repository || changed()? {
                std::fs::remove_file(&path)
                    .map_err(|e| VcsError::io(format!("cannot remove {}", path.display()), e))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Deletes a tree, first making writable any directory a run made read-only.
fn remove_tree(path: &Path) -> Result<(), VcsError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        // Another runner's background deletion got there first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push(entry.path());
                }
            }
        }
    }
    std::fs::remove_dir_all(path)
        .map_err(|e| VcsError::io(format!("cannot remove {}", path.display()), e))
}

/// Renames `dir` into the trash next to it, then deletes it on a blocking thread without
/// waiting. If it cannot be renamed, deletes it in place (still on a blocking thread).
pub async fn throw_away(dir: &Path) -> Result<(), VcsError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    let trash = parent.join(TRASH);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let target = trash.join(format!("{name}-{nanos}"));
    let renamed = std::fs::create_dir_all(&trash).and_then(|()| std::fs::rename(dir, &target));
    match renamed {
        Ok(()) => {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = remove_tree(&target) {
                    tracing::warn!(error = %e, "cannot empty the CI trash");
                }
            });
            Ok(())
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot move to the trash; deleting in place");
            let dir = dir.to_path_buf();
            tokio::task::spawn_blocking(move || remove_tree(&dir))
                .await
                .map_err(|e| VcsError::io("the deletion did not finish", e.into()))?
        }
    }
}

/// Deletes what an earlier process left in the trash under `parent`, in the background.
pub fn empty_trash(parent: &Path) {
    let trash = parent.join(TRASH);
    if !trash.exists() {
        return;
    }
    tokio::task::spawn_blocking(move || {
        if let Ok(entries) = std::fs::read_dir(&trash) {
            for entry in entries.flatten() {
                if let Err(e) = remove_tree(&entry.path()) {
                    tracing::warn!(error = %e, "cannot empty the CI trash");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, content: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    #[tokio::test]
    async fn scrub_removes_nested_repositories_and_files_changed_since() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        touch(&root.join(".git/config"), "mine");
        touch(&root.join("old.txt"), "old");
        touch(&root.join("src/old.txt"), "old");
        std::thread::sleep(Duration::from_millis(30));
        let marker = root.join("../marker");
        touch(&marker, "start");
        let since = changed_at(&std::fs::metadata(&marker).unwrap());
        touch(&root.join("src/new.txt"), "new");
        touch(&root.join("nested/.hg/store/x"), "x");
        touch(&root.join("nested/written-by-the-run.txt"), "y");
        touch(&root.join("deep/a/.git"), "gitdir: elsewhere");
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        let removed = scrub(root.to_path_buf(), Some(since)).await.unwrap();
        assert_eq!(removed, 5);
        assert!(
            root.join(".git/config").exists(),
            "the root's repository stays"
        );
        assert!(root.join("old.txt").exists() && root.join("src/old.txt").exists());
        for gone in [
            "src/new.txt",
            "nested/.hg",
            "nested/written-by-the-run.txt",
            "deep/a/.git",
            "escape",
        ] {
            assert!(!root.join(gone).exists(), "{gone} should be gone");
        }
    }

    #[tokio::test]
    async fn thrown_away_directories_leave_at_once_even_when_read_only() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("slot");
        touch(&dir.join("locked/file"), "x");
        std::fs::set_permissions(dir.join("locked"), std::fs::Permissions::from_mode(0o500))
            .unwrap();
        throw_away(&dir).await.unwrap();
        assert!(!dir.exists());
        let trash = parent.path().join(TRASH);
        for _ in 0..500 {
            if std::fs::read_dir(&trash).unwrap().next().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the trash was never emptied");
    }

    /// A checkout that writes one tracked file and guards one configuration file.
    struct Plain {
        dir: PathBuf,
        config: PathBuf,
    }

    #[async_trait::async_trait]
    impl CiCheckout for Plain {
        fn dir(&self) -> &Path {
            &self.dir
        }
        async fn fetch(&mut self, _: &str, _: &str, _: &str) -> Result<(), VcsError> {
            Ok(())
        }
        async fn checkout(&mut self, revision: &str) -> Result<(), VcsError> {
            touch(&self.dir.join("tracked.txt"), revision);
            Ok(())
        }
        fn mirror(&self) -> &Path {
            self.config.parent().unwrap()
        }
        async fn release(&mut self) {}
        fn guarded(&self) -> Vec<PathBuf> {
            vec![self.config.clone()]
        }
        fn notices_rewrites(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn a_directory_is_reused_only_after_a_run_that_ended_by_itself_and_changed_no_guard() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("try-ci-runner");
        let config = parent.path().join("mirror/config");
        touch(&config, "[core]\n");
        let mut workspace = Workspace::new(Box::new(Plain {
            dir: dir.clone(),
            config: config.clone(),
        }));
        let created = |p: Prepared, why: &str| match p {
            Prepared::Created { reason } => assert!(reason.contains(why), "{reason}"),
            other => panic!("reused: {other:?}"),
        };
        created(
            workspace.prepare("u", "r", "one").await.unwrap(),
            "none yet",
        );
        workspace.started().await;
        workspace.finished();
        let reused = workspace.prepare("u", "r", "two").await.unwrap();
        assert_eq!(reused, Prepared::Reused { scrubbed: 0 });

        workspace.started().await;
        touch(&dir.join("junk.txt"), "junk");
        touch(&dir.join("tracked.txt"), "changed");
        workspace.finished();
        let reused = workspace.prepare("u", "r", "three").await.unwrap();
        assert_eq!(reused, Prepared::Reused { scrubbed: 2 });
        assert!(!dir.join("junk.txt").exists());
        assert_eq!(
            std::fs::read_to_string(dir.join("tracked.txt")).unwrap(),
            "three"
        );

        workspace.started().await;
        touch(&config, "[core]\nfsmonitor = evil\n");
        workspace.finished();
        let why = format!("changed {}", config.display());
        created(workspace.prepare("u", "r", "four").await.unwrap(), &why);
        assert!(!config.exists(), "the tampered mirror was kept");

        workspace.started().await;
        touch(&dir.join("half-written.o"), "x");
        created(
            workspace.prepare("u", "r", "five").await.unwrap(),
            "did not end by itself",
        );
        assert!(!dir.join("half-written.o").exists());
        assert!(dir.join("tracked.txt").exists());
    }
}
