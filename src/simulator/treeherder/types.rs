//! The simulator's public vocabulary: what tests seed (pushes, jobs), the states and results
//! a job goes through, the faults it can inject, what it records of each request, and its
//! errors.

use std::time::Duration;

/// A job's `state`, as Treeherder stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Scheduled, not started: `start_timestamp` and `end_timestamp` are 0.
    Pending,
    /// Started: `end_timestamp` is 0.
    Running,
    /// Finished; the `result` says how.
    Completed,
}

impl JobState {
    /// The value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Completed => "completed",
        }
    }
}

/// A job's `result`, as Treeherder stores it (`unknown` until the job completes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobResult {
    /// Not known yet: the result of every pending and running job.
    Unknown,
    /// Passed.
    Success,
    /// Tests failed (orange).
    Testfailed,
    /// The build or harness broke (red).
    Busted,
    /// Infrastructure exception (purple).
    Exception,
    /// Retried automatically; another run of the task follows.
    Retry,
    /// Cancelled by a person.
    Usercancel,
    /// Replaced by a later run (was "coalesced").
    Superseded,
}

impl JobResult {
    /// The value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobResult::Unknown => "unknown",
            JobResult::Success => "success",
            JobResult::Testfailed => "testfailed",
            JobResult::Busted => "busted",
            JobResult::Exception => "exception",
            JobResult::Retry => "retry",
            JobResult::Usercancel => "usercancel",
            JobResult::Superseded => "superseded",
        }
    }
}

/// A job to add to a push with `Simulator::add_job`.
///
/// Every job is a Taskcluster job (`build_system_type` "taskcluster") built with the "opt"
/// option collection; the fields not listed here get the values real Taskcluster jobs show
/// (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// `job_type_name`, the task label, e.g. "test-linux1804-64/opt-mochitest-1".
    pub name: String,
    /// `job_type_symbol`, e.g. "M1".
    pub symbol: String,
    /// `platform` (machine and build platform), e.g. "linux1804-64".
    pub platform: String,
    /// `job_group_name`; Treeherder files ungrouped jobs under "unknown".
    pub group_name: String,
    /// `job_group_symbol`; "?" for ungrouped jobs.
    pub group_symbol: String,
    /// 1 (sheriffed), 2 or 3 (not sheriffed).
    pub tier: u32,
    /// The state the job starts in.
    pub state: JobState,
    /// The result it starts with (`Unknown` unless `state` is `Completed`).
    pub result: JobResult,
    /// The Taskcluster task id (22 characters); one is made up when `None`.
    pub task_id: Option<String>,
    /// The run of the task (`retry_id`).
    pub retry_id: u32,
    /// Where the job's log lives: listed by `job-log-url` as "live_backing_log" once the
    /// job has completed. When `None` and `log_text` is set, the simulator serves the text
    /// itself and lists its own URL.
    pub log_url: Option<String>,
    /// A log the simulator serves at `<url>/simulator/log/<job id>/live_backing.log`
    /// (used only when `log_url` is `None`).
    pub log_text: Option<String>,
}

impl JobSpec {
    /// A pending, ungrouped tier-1 job with no log.
    pub fn new(name: &str, symbol: &str, platform: &str) -> JobSpec {
        JobSpec {
            name: name.to_owned(),
            symbol: symbol.to_owned(),
            platform: platform.to_owned(),
            ..JobSpec::default()
        }
    }
}

impl Default for JobSpec {
    fn default() -> JobSpec {
        JobSpec {
            name: String::new(),
            symbol: "?".to_owned(),
            platform: String::new(),
            group_name: "unknown".to_owned(),
            group_symbol: "?".to_owned(),
            tier: 1,
            state: JobState::Pending,
            result: JobResult::Unknown,
            task_id: None,
            retry_id: 0,
            log_url: None,
            log_text: None,
        }
    }
}

/// One commit of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommit {
    /// The full hash.
    pub revision: String,
    /// As the VCS has it, e.g. "Alice <alice@example.com>".
    pub author: String,
    /// The commit message.
    pub comments: String,
}

/// A push to add with `Simulator::add_push_with`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPush {
    /// The tip revision (40 hex digits for a real push).
    pub revision: String,
    /// Who pushed (an email address).
    pub author: String,
    /// The commits, oldest first; the last should be the tip. Empty means one commit: the
    /// tip, by `author`, with an empty message.
    pub commits: Vec<NewCommit>,
}

/// A failure the simulator injects into every request until it is cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Behave normally.
    None,
    /// The next `remaining` requests (`None`: all of them) answer `status`; the fault
    /// clears itself when `remaining` reaches 0.
    ServerError {
        /// The HTTP status, e.g. 500 or 503.
        status: u16,
        /// How many requests fail; `None` for every one.
        remaining: Option<u32>,
    },
    /// Every request waits this long, then is answered normally.
    Slow(Duration),
}

/// One request the simulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// "GET", "HEAD", ...
    pub method: String,
    /// The path as sent, e.g. "/api/project/try/jobs/".
    pub path: String,
    /// The raw query string ("" when there is none).
    pub query: String,
    /// The status answered.
    pub status: u16,
    /// The `User-Agent` header, `None` when absent.
    pub user_agent: Option<String>,
    /// The `Accept` header, `None` when absent.
    pub accept: Option<String>,
}

/// What the control methods of `Simulator` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be opened.
    #[error("the Treeherder simulator cannot listen on 127.0.0.1: {0}")]
    Bind(#[from] std::io::Error),
    /// Treeherder's URLs only route project names of 0 to 50 word characters or '-'.
    #[error(
        "{0:?} is not a project name Treeherder's URLs accept (0 to 50 letters, digits, '_' or '-')"
    )]
    ProjectName(String),
    /// A project has one push per revision.
    #[error("project {project} already has a push of {revision}")]
    DuplicatePush {
        /// The project.
        project: String,
        /// The revision pushed twice.
        revision: String,
    },
    /// No push has this id.
    #[error("no push {0}")]
    NoPush(i64),
    /// No job has this id.
    #[error("no job {0}")]
    NoJob(i64),
}
