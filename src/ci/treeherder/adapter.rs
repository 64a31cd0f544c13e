//! Treeherder as a try repository's CI, read through its documented read-only REST API:
//!
//! - `GET /api/project/{project}/push/?revision={rev}` finds the push (its id is kept);
//! - `GET /api/jobs/?push_id={id}` lists its jobs, following `next` until the last page;
//! - a job's attempts are the jobs of the same `job_type_name` (and platform) in id order
//!   (Treeherder shows a retried job as a new job; the old one ends `retry`);
//! - **completeness**: a push is complete when it has at least one job, none is pending
//!   or running, and no job appeared or changed for `settle_seconds` (jobs are scheduled
//!   in waves; the settle time keeps a gap between waves from ending the run);
//! - a push that is not complete after `complete_within_seconds` times out.
//!
//! Autoland cannot ask Treeherder for a retry (the API is read-only): the retries that
//! count are those the CI made itself. Every call carries a `User-Agent` naming Autoland,
//! as Treeherder requires.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use crate::config::{CiKind, RepoConfig, TreeherderConfig};
use crate::store::{CiJob, CiRun, JobResult, JobState, JobUpdate, now_ms};

use super::super::adapter::{CiAdapter, CiError, Observation, tail_of};

/// At most this many pages of jobs are read per look (2,000 jobs each by default).
const MAX_PAGES: usize = 100;

/// Lines of a failed job's log kept for the report.
const TAIL_LINES: usize = 15;

/// A Treeherder project whose pushes are one try repository's runs.
pub struct Treeherder {
    http: reqwest::Client,
    settings: TreeherderConfig,
    base: String,
}

/// The fields of a job Autoland reads. `/api/jobs/` sends each job as a list of values
/// named by the page's `job_property_names`; objects are taken too.
#[derive(Debug, Clone, Deserialize)]
struct Job {
    id: i64,
    #[serde(default)]
    push_id: Option<i64>,
    #[serde(default)]
    job_type_name: Option<String>,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    result: Option<String>,
    /// Minutes, as Treeherder computes it (at least 1).
    #[serde(default)]
    duration: Option<i64>,
}

/// One page's jobs, as objects.
fn jobs_of_page(page: &Value) -> Result<Vec<Job>, CiError> {
    let names: Vec<&str> = page
        .get("job_property_names")
        .and_then(Value::as_array)
        .map(|n| n.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let rows = page
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    rows.into_iter()
        .map(|row| {
            let object = match row {
                Value::Array(values) => Value::Object(
                    names
                        .iter()
                        .zip(values)
                        .map(|(name, value)| ((*name).to_owned(), value))
                        .collect(),
                ),
                other => other,
            };
            serde_json::from_value(object).map_err(|e| {
                CiError::Unreachable(format!("unexpected job in Treeherder's job list: {e}"))
            })
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
struct LogRef {
    #[serde(default)]
    name: Option<String>,
    url: String,
}

impl Treeherder {
    /// The adapter of try repository `repo` (which has a `[treeherder]` table).
    pub fn new(repo: &RepoConfig, user_agent: &str) -> Result<Treeherder, CiError> {
        let settings = repo.treeherder.clone().ok_or_else(|| {
            CiError::Refused(format!(
                "repository `{}` has no treeherder settings",
                repo.name
            ))
        })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_seconds))
            .user_agent(user_agent)
            .build()
            .map_err(|e| CiError::Unreachable(format!("cannot build an HTTP client: {e}")))?;
        let base = settings.url.trim_end_matches('/').to_owned();
        Ok(Treeherder {
            http,
            settings,
            base,
        })
    }

    async fn get(&self, url: &str) -> Result<Value, CiError> {
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                CiError::Unreachable(format!("Treeherder at {} is unreachable: {e}", self.base))
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| CiError::Unreachable(format!("Treeherder at {}: {e}", self.base)))?;
        if !status.is_success() {
            let line = text.lines().next().unwrap_or("");
            return Err(CiError::Unreachable(format!(
                "Treeherder answered {status} to {url}: {}",
                line.get(..300).unwrap_or(line)
            )));
        }
        serde_json::from_str(&text).map_err(|e| {
            CiError::Unreachable(format!(
                "Treeherder sent something that is not JSON for {url}: {e}"
            ))
        })
    }

    async fn push_id(&self, revision: &str) -> Result<Option<i64>, CiError> {
        let url = format!(
            "{}/api/project/{}/push/?revision={revision}",
            self.base, self.settings.project
        );
        let answer = self.get(&url).await?;
        Ok(answer
            .get("results")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .and_then(|p| p.get("id"))
            .and_then(Value::as_i64))
    }

    async fn jobs(&self, push: i64) -> Result<Vec<Job>, CiError> {
        let mut url = format!("{}/api/jobs/?push_id={push}", self.base);
        let mut jobs = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = self.get(&url).await?;
            // A filter Treeherder did not apply would hand over another push's jobs.
            let batch = jobs_of_page(&page)?;
            if let Some(other) = batch.iter().find(|j| j.push_id.is_some_and(|p| p != push)) {
                return Err(CiError::Unreachable(format!(
                    "Treeherder answered jobs of push {:?} when asked for push {push}",
                    other.push_id
                )));
            }
            jobs.extend(batch);
            match page.get("next").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => url = self.same_host(next),
                _ => return Ok(jobs),
            }
        }
        Err(CiError::Unreachable(format!(
            "push {push} has more than {MAX_PAGES} pages of jobs"
        )))
    }

    /// `next` links are absolute; keep following them on the configured host (a proxy
    /// may make Treeherder see another host name).
    fn same_host(&self, next: &str) -> String {
        match next.find("/api/") {
            Some(i) => format!("{}{}", self.base, &next[i..]),
            None => next.to_owned(),
        }
    }

    async fn log_url(&self, job: i64) -> Option<String> {
        let url = format!(
            "{}/api/project/{}/job-log-url/?job_id={job}",
            self.base, self.settings.project
        );
        let answer = self.get(&url).await.ok()?;
        let logs: Vec<LogRef> = serde_json::from_value(answer).ok()?;
        logs.iter()
            .find(|l| l.name.as_deref() == Some("live_backing_log"))
            .or(logs.first())
            .map(|l| l.url.clone())
    }

    async fn tail(&self, url: &str) -> Option<String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return None;
        }
        let response = self.http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        Some(tail_of(response, TAIL_LINES).await)
    }

    fn job_page(&self, run: &CiRun, job: i64) -> String {
        format!(
            "{}/jobs?repo={}&revision={}&selectedJob={job}",
            self.base, self.settings.project, run.revision
        )
    }
}

fn result_of(word: &str) -> JobResult {
    match word {
        "success" => JobResult::Success,
        "testfailed" => JobResult::Failed,
        "usercancel" => JobResult::Cancelled,
        "skipped" => JobResult::Skipped,
        // busted, exception, retry and anything new: the infrastructure.
        _ => JobResult::Infra,
    }
}

#[async_trait]
impl CiAdapter for Treeherder {
    fn kind(&self) -> CiKind {
        CiKind::Treeherder
    }

    fn can_retry(&self) -> bool {
        false
    }

    fn expected_jobs(&self) -> Vec<String> {
        Vec::new()
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.settings.poll_ms)
    }

    fn deadline(&self) -> Option<Duration> {
        Some(Duration::from_secs(self.settings.complete_within_seconds))
    }

    async fn start_job(&self, _run: &CiRun, job: &CiJob) -> Result<String, CiError> {
        Err(CiError::Refused(format!(
            "Treeherder's API is read-only: Autoland cannot start job `{}`",
            job.name
        )))
    }

    async fn observe(&self, run: &CiRun, recorded: &[CiJob]) -> Result<Observation, CiError> {
        let push = match run
            .external_id
            .as_deref()
            .and_then(|p| p.parse::<i64>().ok())
        {
            Some(push) => push,
            None => match self.push_id(&run.revision).await? {
                Some(push) => push,
                // Not on Treeherder yet: nothing to record.
                None => return Ok(Observation::default()),
            },
        };
        let mut jobs = self.jobs(push).await?;
        jobs.sort_by_key(|j| j.id);
        let mut updates = Vec::new();
        let mut attempts: Vec<(String, i64)> = Vec::new();
        let mut busy = false;
        for job in &jobs {
            let name = match (&job.platform, &job.job_type_name) {
                (Some(p), Some(n)) if !p.is_empty() => format!("{p} {n}"),
                (_, Some(n)) => n.clone(),
                (_, None) => format!("job {}", job.id),
            };
            let attempt = match attempts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => {
                    *count += 1;
                    *count
                }
                None => {
                    attempts.push((name.clone(), 1));
                    1
                }
            };
            let state = match job.state.as_deref() {
                Some("completed") => JobState::Completed,
                Some("running") => JobState::Running,
                _ => JobState::Pending,
            };
            if state != JobState::Completed {
                busy = true;
            }
            let known = recorded
                .iter()
                .find(|r| r.name == name && r.attempt == attempt);
            if known.is_some_and(|k| k.state == JobState::Completed) {
                continue;
            }
            let result = (state == JobState::Completed)
                .then(|| job.result.as_deref().map(result_of))
                .flatten();
            let (log_url, summary) = match result {
                Some(r) if !r.is_good() => {
                    let log = self.log_url(job.id).await;
                    let tail = match &log {
                        Some(url) => self.tail(url).await,
                        None => None,
                    };
                    (log, tail)
                }
                _ => (None, None),
            };
            updates.push(JobUpdate {
                name,
                attempt,
                state: Some(state),
                result,
                raw_result: job.result.clone().filter(|_| state == JobState::Completed),
                external_id: Some(job.id.to_string()),
                log_url: log_url.or_else(|| Some(self.job_page(run, job.id))),
                duration_ms: job
                    .duration
                    .filter(|_| state == JobState::Completed)
                    .map(|minutes| minutes.saturating_mul(60_000)),
                summary,
            });
        }
        let settle = i64::try_from(self.settings.settle_seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        let quiet_since = run.last_change_at.unwrap_or(run.created_at);
        let complete = !jobs.is_empty()
            && !busy
            && updates.is_empty()
            && now_ms().saturating_sub(quiet_since) >= settle;
        Ok(Observation {
            updates,
            complete,
            external_id: Some(push.to_string()),
        })
    }
}
