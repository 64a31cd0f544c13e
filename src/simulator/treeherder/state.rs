//! The simulator's data, shaped like Treeherder's tables: repositories (projects), pushes
//! with their commits, jobs with their reference data (job types, groups, platforms), job
//! logs; plus the request log and the fault. Everything here is synchronous; the HTTP layer
//! holds the lock while it reads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine as _;
use chrono::{NaiveDateTime, Timelike, Utc};
use sha2::{Digest, Sha256};

use super::types::{Error, Fault, JobResult, JobSpec, JobState, LoggedRequest, NewPush};

/// The option collection of every simulated job: "opt", whose hash is
/// `sha1("opt")` as `OptionCollection.calculate_hash` computes it.
pub(super) const OPTION_COLLECTION_HASH: &str = "102210fe594ee9b33d82058545b1ed14f4c8206e";
pub(super) const PLATFORM_OPTION: &str = "opt";

/// Where a hosted log is served (a path real Treeherder does not have).
pub(super) const HOSTED_LOG_PREFIX: &str = "/simulator/log/";

/// The server state every handle and every request shares.
pub(super) type Shared = Arc<Mutex<State>>;

/// Locks the shared state; a handler that panicked leaves it usable.
pub(super) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Seconds since the epoch, as `to_timestamp` gives them (UTC servers).
pub(super) fn now_seconds() -> i64 {
    Utc::now().timestamp()
}

/// The naive UTC time Django stores (`USE_TZ = False`), to the microsecond.
pub(super) fn now_naive() -> NaiveDateTime {
    let now = Utc::now().naive_utc();
    now.with_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now)
}

/// A datetime as Django REST framework's JSON encoder writes a naive one: `isoformat()`,
/// with six fractional digits only when there are microseconds.
pub(super) fn isoformat(t: NaiveDateTime) -> String {
    if t.and_utc().timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

/// `^[\w-]{0,50}$` of Treeherder's `project/(?P<project>[\w-]{0,50})/` URL pattern.
pub(super) fn valid_project_name(name: &str) -> bool {
    name.chars().count() <= 50
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

#[derive(Debug, Clone)]
pub(super) struct Project {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone)]
pub(super) struct Commit {
    pub revision: String,
    pub author: String,
    pub comments: String,
}

#[derive(Debug, Clone)]
pub(super) struct Push {
    pub id: i64,
    pub repository_id: i64,
    pub revision: String,
    pub author: String,
    /// `push.time` in seconds since the epoch.
    pub time: i64,
    /// Oldest first.
    pub commits: Vec<Commit>,
}

/// Where a job's log is.
#[derive(Debug, Clone)]
pub(super) enum LogLocation {
    /// An URL the test gave.
    External(String),
    /// Served by the simulator under [`HOSTED_LOG_PREFIX`]; the text.
    Hosted(String),
}

#[derive(Debug, Clone)]
pub(super) struct JobLog {
    pub id: i64,
    pub location: LogLocation,
}

impl JobLog {
    /// The log's URL; hosted logs are made absolute with the base URL of the request.
    pub fn url(&self, job_id: i64, base: &str) -> String {
        match &self.location {
            LogLocation::External(url) => url.clone(),
            LogLocation::Hosted(_) => format!("{base}{HOSTED_LOG_PREFIX}{job_id}/live_backing.log"),
        }
    }
}

/// A row of one of Treeherder's reference-data tables (job_type, job_group,
/// build_platform): an id for each distinct value, numbered as first seen.
#[derive(Debug, Default)]
pub(super) struct RefTable {
    rows: Vec<String>,
}

impl RefTable {
    fn id_of(&mut self, key: String) -> i64 {
        let index = match self.rows.iter().position(|k| *k == key) {
            Some(index) => index,
            None => {
                self.rows.push(key);
                self.rows.len() - 1
            }
        };
        index as i64 + 1
    }
}

#[derive(Debug, Clone)]
pub(super) struct Job {
    pub id: i64,
    pub push_id: i64,
    pub repository_id: i64,
    pub guid: String,
    pub task_id: String,
    pub retry_id: u32,
    pub job_type_id: i64,
    pub name: String,
    pub symbol: String,
    pub job_group_id: i64,
    pub group_name: String,
    pub group_symbol: String,
    pub build_platform_id: i64,
    pub platform: String,
    pub signature: String,
    pub tier: u32,
    pub who: String,
    pub state: JobState,
    pub result: JobResult,
    /// Seconds since the epoch; 0 when not (yet) known, as Treeherder stores them.
    pub submit_time: i64,
    pub start_time: i64,
    pub end_time: i64,
    pub last_modified: NaiveDateTime,
    pub log: Option<JobLog>,
}

impl Job {
    /// `Job.get_duration`: minutes from start (or submission) to end (or now), at least 1.
    pub fn duration_minutes(&self, now: i64) -> i64 {
        let end = if self.end_time != 0 {
            self.end_time
        } else {
            now
        };
        let start = if self.start_time != 0 {
            self.start_time
        } else {
            self.submit_time
        };
        let seconds = (end - start).max(60) as f64;
        // Python's round() rounds halves to even.
        ((seconds / 60.0).round_ties_even() as i64).max(1)
    }

    /// The logs `job-log-url` and the job detail list: the live backing log, once the job
    /// has completed (Treeherder records log references when a task completes).
    pub fn visible_log(&self) -> Option<&JobLog> {
        if self.state == JobState::Completed {
            self.log.as_ref()
        } else {
            None
        }
    }

    /// The log's `parse_status`: the simulated log parser has always already run.
    pub fn log_parse_status(&self) -> &'static str {
        "parsed"
    }
}

/// A made-up Taskcluster task id: a "nice" slugid (UUID v4, first bit clear) derived from
/// the job id, and the UUID it encodes (which makes the job guid).
fn task_id_for(job_id: i64) -> (String, String) {
    let digest = Sha256::digest(format!("treeherder-simulator-task-{job_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes[0] &= 0x7f;
    (
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        uuid_string(&bytes),
    )
}

fn uuid_string(bytes: &[u8; 16]) -> String {
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The UUID a slugid encodes, if it is one.
fn slugid_uuid(task_id: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(task_id)
        .ok()?;
    let bytes: [u8; 16] = bytes.try_into().ok()?;
    Some(uuid_string(&bytes))
}

pub(super) struct State {
    /// "http://127.0.0.1:PORT", for requests without a `Host` header.
    pub base_url: String,
    pub projects: Vec<Project>,
    pub pushes: BTreeMap<i64, Push>,
    pub jobs: BTreeMap<i64, Job>,
    job_types: RefTable,
    job_groups: RefTable,
    platforms: RefTable,
    next_push: i64,
    next_job: i64,
    next_log: i64,
    last_push_time: i64,
    pub log: Vec<LoggedRequest>,
    pub fault: Fault,
}

impl State {
    pub fn new() -> State {
        State {
            base_url: String::new(),
            projects: Vec::new(),
            pushes: BTreeMap::new(),
            jobs: BTreeMap::new(),
            job_types: RefTable::default(),
            job_groups: RefTable::default(),
            platforms: RefTable::default(),
            next_push: 1,
            next_job: 1,
            next_log: 1,
            last_push_time: 0,
            log: Vec::new(),
            fault: Fault::None,
        }
    }

    pub fn project(&self, name: &str) -> Option<&Project> {
        self.projects.iter().find(|p| p.name == name)
    }

    pub fn project_by_id(&self, id: i64) -> Option<&Project> {
        self.projects.iter().find(|p| p.id == id)
    }

    /// The repository id of `name`, made if new.
    pub fn add_project(&mut self, name: &str) -> Result<i64, Error> {
        if !valid_project_name(name) {
            return Err(Error::ProjectName(name.to_owned()));
        }
        if let Some(project) = self.project(name) {
            return Ok(project.id);
        }
        let id = self.projects.len() as i64 + 1;
        self.projects.push(Project {
            id,
            name: name.to_owned(),
        });
        Ok(id)
    }

    pub fn add_push(&mut self, project: &str, push: NewPush) -> Result<i64, Error> {
        let repository_id = self.add_project(project)?;
        if self
            .pushes
            .values()
            .any(|p| p.repository_id == repository_id && p.revision == push.revision)
        {
            return Err(Error::DuplicatePush {
                project: project.to_owned(),
                revision: push.revision,
            });
        }
        let commits = if push.commits.is_empty() {
            vec![(push.revision.clone(), push.author.clone(), String::new())]
        } else {
            push.commits
                .into_iter()
                .map(|c| (c.revision, c.author, c.comments))
                .collect()
        };
        let commits = commits
            .into_iter()
            .map(|(revision, author, comments)| Commit {
                revision,
                author,
                comments,
            })
            .collect();
        // Pushes are listed newest first by time: keep every push strictly after the last.
        let time = now_seconds().max(self.last_push_time + 1);
        self.last_push_time = time;
        let id = self.next_push;
        self.next_push += 1;
        self.pushes.insert(
            id,
            Push {
                id,
                repository_id,
                revision: push.revision,
                author: push.author,
                time,
                commits,
            },
        );
        Ok(id)
    }

    pub fn add_job(&mut self, push_id: i64, spec: JobSpec) -> Result<i64, Error> {
        let (repository_id, who) = match self.pushes.get(&push_id) {
            Some(push) => (push.repository_id, push.author.clone()),
            None => return Err(Error::NoPush(push_id)),
        };
        let id = self.next_job;
        self.next_job += 1;
        let (made_task_id, made_uuid) = task_id_for(id);
        let (task_id, uuid) = match spec.task_id {
            Some(task_id) => {
                let uuid = slugid_uuid(&task_id).unwrap_or_else(|| made_uuid.clone());
                (task_id, uuid)
            }
            None => (made_task_id, made_uuid),
        };
        let signature = hex::encode(Sha256::digest(
            format!(
                "{}\n{}\n{}\n{}\n{}\n{}",
                spec.name,
                spec.symbol,
                spec.group_name,
                spec.group_symbol,
                spec.platform,
                PLATFORM_OPTION
            )
            .as_bytes(),
        ))[..40]
            .to_owned();
        let log = match (spec.log_url, spec.log_text) {
            (Some(url), _) => Some(LogLocation::External(url)),
            (None, Some(text)) => Some(LogLocation::Hosted(text)),
            (None, None) => None,
        }
        .map(|location| {
            let id = self.next_log;
            self.next_log += 1;
            JobLog { id, location }
        });
        let now = now_seconds();
        let (start_time, end_time) = match spec.state {
            JobState::Pending => (0, 0),
            JobState::Running => (now, 0),
            JobState::Completed => (now, now),
        };
        let job = Job {
            id,
            push_id,
            repository_id,
            guid: format!("{uuid}/{}", spec.retry_id),
            task_id,
            retry_id: spec.retry_id,
            job_type_id: self
                .job_types
                .id_of(format!("{}\n{}", spec.name, spec.symbol)),
            name: spec.name,
            symbol: spec.symbol,
            job_group_id: self
                .job_groups
                .id_of(format!("{}\n{}", spec.group_name, spec.group_symbol)),
            group_name: spec.group_name,
            group_symbol: spec.group_symbol,
            build_platform_id: self.platforms.id_of(spec.platform.clone()),
            platform: spec.platform,
            signature,
            tier: spec.tier,
            who,
            state: spec.state,
            result: spec.result,
            submit_time: now,
            start_time,
            end_time,
            last_modified: now_naive(),
            log,
        };
        self.jobs.insert(id, job);
        Ok(id)
    }

    pub fn update_job(
        &mut self,
        job_id: i64,
        state: JobState,
        result: JobResult,
    ) -> Result<(), Error> {
        let job = self.jobs.get_mut(&job_id).ok_or(Error::NoJob(job_id))?;
        let now = now_seconds();
        match state {
            JobState::Pending => {
                job.start_time = 0;
                job.end_time = 0;
            }
            JobState::Running => {
                if job.start_time == 0 {
                    job.start_time = now;
                }
                job.end_time = 0;
            }
            JobState::Completed => {
                if job.start_time == 0 {
                    job.start_time = now;
                }
                if job.end_time == 0 {
                    job.end_time = now;
                }
            }
        }
        job.state = state;
        job.result = result;
        job.last_modified = now_naive();
        Ok(())
    }

    /// The text of a hosted log, by job id.
    pub fn hosted_log(&self, job_id: i64) -> Option<&str> {
        match &self.jobs.get(&job_id)?.log.as_ref()?.location {
            LogLocation::Hosted(text) => Some(text),
            LogLocation::External(_) => None,
        }
    }
}
