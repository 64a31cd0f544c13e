//! The working copies of a process: one warm copy per repository, each used by one job
//! at a time.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::interface::{VcsSettings, WorkingCopy};
use super::{git, hg};
use crate::config::{Config, RepoKind};

/// A working copy shared between pushers: one job holds it at a time.
pub type SharedWorkingCopy = Arc<Mutex<Box<dyn WorkingCopy>>>;

/// The working copies of this process, one per repository that patches are applied on.
#[derive(Clone, Default)]
pub struct WorkingCopies {
    copies: HashMap<String, SharedWorkingCopy>,
}

impl WorkingCopies {
    /// One (not yet cloned) working copy per non-try repository, under `data_dir/work`.
    pub fn new(config: &Config) -> WorkingCopies {
        let settings = VcsSettings {
            committer: config.committer.clone(),
            timeout: config.vcs_timeout(),
            scratch: config.data_dir.join("tmp"),
        };
        let mut copies = HashMap::new();
        for repo in config.repositories.iter().filter(|r| !r.is_try) {
            let dir = config.data_dir.join("work").join(&repo.name);
            let copy: Box<dyn WorkingCopy> = match repo.kind {
                RepoKind::Git => Box::new(git::GitWorkingCopy::new(
                    dir,
                    repo.pull_url.clone(),
                    repo.branch().to_owned(),
                    settings.clone(),
                )),
                RepoKind::Hg => Box::new(hg::HgWorkingCopy::new(
                    dir,
                    repo.pull_url.clone(),
                    repo.branch().to_owned(),
                    settings.clone(),
                )),
            };
            copies.insert(repo.name.clone(), Arc::new(Mutex::new(copy)));
        }
        WorkingCopies { copies }
    }

    /// The working copy of a repository.
    pub fn get(&self, repo: &str) -> Option<SharedWorkingCopy> {
        self.copies.get(repo).cloned()
    }
}
