//! What an external CI looks like to Autoland: a system that is asked for jobs (or starts
//! them itself) and is read for their state. One adapter per try repository; the poller
//! (`super::poller`) drives every adapter the same way and the retry policy
//! (`super::policy`) judges the jobs, whatever the CI.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::CiKind;
use crate::store::{CiJob, CiRun, JobUpdate};

/// Why a CI could not be asked or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CiError {
    /// The CI did not answer, or answered with an error worth retrying later.
    #[error("{0}")]
    Unreachable(String),
    /// The CI refused what was asked (a builder or scheduler that does not exist); asking
    /// again will not help.
    #[error("{0}")]
    Refused(String),
}

/// What a look at the CI found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// Jobs (and attempts) as the CI reports them.
    pub updates: Vec<JobUpdate>,
    /// The CI will not add jobs to this run any more.
    pub complete: bool,
    /// The CI's id for the run, once known (a Treeherder push).
    pub external_id: Option<String>,
}

/// An external CI testing one try repository.
#[async_trait]
pub trait CiAdapter: Send + Sync {
    /// Which kind it is.
    fn kind(&self) -> CiKind;

    /// Whether Autoland can ask for one more attempt of a single job.
    fn can_retry(&self) -> bool;

    /// The jobs every run has (empty when the CI decides which jobs a push gets).
    fn expected_jobs(&self) -> Vec<String>;

    /// How long between two looks at a running run.
    fn poll_interval(&self) -> Duration;

    /// A run not complete after this long fails as timed out (`None`: only the request's
    /// own try timeout applies).
    fn deadline(&self) -> Option<Duration> {
        None
    }

    /// Starts attempt `job.attempt` of `job.name` for `run`, which is recorded (state
    /// `requested`) but maybe not sent: an adapter first looks for it on the CI (a crash
    /// may have come between sending and recording) and only sends if it is not there.
    /// Returns the CI's id for the job.
    async fn start_job(&self, run: &CiRun, job: &CiJob) -> Result<String, CiError>;

    /// Reads the state of `run`'s jobs (`jobs`: as recorded so far).
    async fn observe(&self, run: &CiRun, jobs: &[CiJob]) -> Result<Observation, CiError>;
}

/// The adapters of this process, by try repository.
#[derive(Clone, Default)]
pub struct CiAdapters {
    by_repo: Vec<(String, Arc<dyn CiAdapter>)>,
}

impl CiAdapters {
    /// Adds the adapter of try repository `repo`.
    pub fn insert(&mut self, repo: &str, adapter: Arc<dyn CiAdapter>) {
        self.by_repo.retain(|(name, _)| name != repo);
        self.by_repo.push((repo.to_owned(), adapter));
    }

    /// The adapter of `repo`.
    pub fn for_repo(&self, repo: &str) -> Option<&Arc<dyn CiAdapter>> {
        self.by_repo
            .iter()
            .find(|(name, _)| name == repo)
            .map(|(_, a)| a)
    }

    /// The kinds of CI these adapters talk to (as stored with each run).
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<&'static str> = self
            .by_repo
            .iter()
            .map(|(_, a)| a.kind().as_str())
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }

    /// Whether there is nothing to poll.
    pub fn is_empty(&self) -> bool {
        self.by_repo.is_empty()
    }
}

/// The last `lines` lines of a response's body, read as a stream so that a huge log is
/// never held in memory (at most the last 1 MiB is kept).
pub async fn tail_of(mut response: reqwest::Response, lines: usize) -> String {
    const KEEP: usize = 1 << 20;
    let mut kept: Vec<u8> = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        kept.extend_from_slice(&chunk);
        if kept.len() > 2 * KEEP {
            kept.drain(..kept.len() - KEEP);
        }
    }
    let text = String::from_utf8_lossy(&kept);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
