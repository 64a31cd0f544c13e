//! Buildbot as a try repository's CI: each configured builder is a job; a job's attempt
//! is one build request forced over JSON-RPC (the force scheduler is the one way to ask a
//! stock master for a build of an exact revision on an arbitrary ref, without a change
//! source or a try scheduler's credentials, and its answer names the build request at
//! once); results are read from the data API, from the build request (a request can have
//! several builds when Buildbot retries it itself, so its own `results` decide).

use std::time::Duration;

use async_trait::async_trait;

use crate::config::{BuildbotConfig, CiKind, RepoConfig, RepoKind};
use crate::store::{CiJob, CiRun, JobResult, JobState, JobUpdate};

use super::super::adapter::{CiAdapter, CiError, Observation};
use super::client::{Build, Client};
use super::results::{
    CANCELLED, EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS, result_name,
};

/// How many lines of a failed step's log a report keeps.
const TAIL_LINES: usize = 15;

/// A Buildbot master testing one try repository.
pub struct Buildbot {
    client: Client,
    settings: BuildbotConfig,
    repository: String,
    /// For Mercurial: the branch the try push is on (git pushes have their own ref).
    hg_branch: Option<String>,
}

impl Buildbot {
    /// The adapter of try repository `repo` (which has a `[buildbot]` table).
    pub fn new(repo: &RepoConfig, user_agent: &str) -> Result<Buildbot, CiError> {
        let settings = repo.buildbot.clone().ok_or_else(|| {
            CiError::Refused(format!(
                "repository `{}` has no buildbot settings",
                repo.name
            ))
        })?;
        let client = Client::new(
            &settings.url,
            Duration::from_secs(settings.timeout_seconds),
            user_agent,
        )?;
        let repository = settings
            .repository
            .clone()
            .unwrap_or_else(|| repo.push_url().to_owned());
        Ok(Buildbot {
            client,
            settings,
            repository,
            hg_branch: (repo.kind == RepoKind::Hg).then(|| repo.branch().to_owned()),
        })
    }

    /// Marks the build request of one attempt, found again by it after a crash.
    fn token(run: &CiRun, job: &CiJob) -> String {
        format!(
            "autoland:{}:run-{}:{}:attempt-{}:",
            run.revision.get(..12).unwrap_or(&run.revision),
            run.id,
            job.name,
            job.attempt
        )
    }

    /// A build's page in Buildbot's web interface.
    fn build_url(&self, build: &Build) -> String {
        format!(
            "{}/#/builders/{}/builds/{}",
            self.client.base(),
            build.builderid,
            build.number
        )
    }

    /// The last lines of the first step that did not pass.
    async fn failure_tail(&self, build: &Build) -> Result<Option<String>, CiError> {
        let steps = self.client.steps(build.buildid).await?;
        let Some(step) = steps.iter().find(|s| {
            s.results
                .is_some_and(|r| r != SUCCESS && r != WARNINGS && r != SKIPPED)
        }) else {
            return Ok(None);
        };
        let logs = self.client.logs(step.stepid).await?;
        let Some(log) = logs.iter().find(|l| l.name == "stdio").or(logs.first()) else {
            return Ok(Some(format!("step `{}` failed (no log)", step.name)));
        };
        let tail = self
            .client
            .log_tail(log.logid, TAIL_LINES)
            .await?
            .unwrap_or_else(|| "(the log could not be read)".to_owned());
        Ok(Some(format!("step `{}`:\n{tail}", step.name)))
    }
}

/// Autoland's word for a Buildbot result.
fn result_of(code: i64) -> JobResult {
    match code {
        SUCCESS | WARNINGS => JobResult::Success,
        FAILURE => JobResult::Failed,
        SKIPPED => JobResult::Skipped,
        // A master shutdown cancels running builds and does not retry them: infrastructure.
        EXCEPTION | RETRY | CANCELLED => JobResult::Infra,
        _ => JobResult::Infra,
    }
}

#[async_trait]
impl CiAdapter for Buildbot {
    fn kind(&self) -> CiKind {
        CiKind::Buildbot
    }

    fn can_retry(&self) -> bool {
        true
    }

    fn expected_jobs(&self) -> Vec<String> {
        self.settings.builders.clone()
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.settings.poll_ms)
    }

    async fn start_job(&self, run: &CiRun, job: &CiJob) -> Result<String, CiError> {
        let token = Self::token(run, job);
        // Sent before a crash? Then a buildset carries this token.
        for buildset in self.client.buildsets_with(&token).await? {
            if buildset
                .reason
                .as_deref()
                .is_some_and(|r| r.contains(&token))
            {
                let requests = self.client.buildrequests_of(buildset.bsid).await?;
                if let Some(request) = requests.first() {
                    tracing::info!(run = run.id, job = %job.name, buildrequest = request.buildrequestid,
                        "found the build request sent before a restart");
                    return Ok(request.buildrequestid.to_string());
                }
            }
        }
        let (_, buildrequest) = self
            .client
            .force(
                &self.settings.scheduler,
                &job.name,
                &self.repository,
                self.hg_branch.as_deref().unwrap_or(&run.ref_name),
                &run.revision,
                &token,
            )
            .await?;
        Ok(buildrequest.to_string())
    }

    async fn observe(&self, _run: &CiRun, jobs: &[CiJob]) -> Result<Observation, CiError> {
        let mut updates = Vec::new();
        for job in jobs {
            if job.state == JobState::Completed || job.state == JobState::Requested {
                continue;
            }
            let Some(id) = job
                .external_id
                .as_deref()
                .and_then(|i| i.parse::<i64>().ok())
            else {
                continue;
            };
            let Some(request) = self.client.buildrequest(id).await? else {
                // The master lost it (a new database?): ask again as a new attempt.
                updates.push(JobUpdate {
                    name: job.name.clone(),
                    attempt: job.attempt,
                    state: Some(JobState::Completed),
                    result: Some(JobResult::Infra),
                    raw_result: Some("LOST".to_owned()),
                    summary: Some(format!("Buildbot no longer knows build request {id}")),
                    ..JobUpdate::default()
                });
                continue;
            };
            let builds = self.client.builds_of(id).await?;
            let last = builds.last();
            let log_url = last.map(|b| self.build_url(b));
            if !request.complete {
                updates.push(JobUpdate {
                    name: job.name.clone(),
                    attempt: job.attempt,
                    state: Some(if last.is_some_and(|b| !b.complete) || request.claimed {
                        JobState::Running
                    } else {
                        JobState::Pending
                    }),
                    log_url,
                    ..JobUpdate::default()
                });
                continue;
            }
            let code = request.results.unwrap_or(EXCEPTION);
            let result = result_of(code);
            let duration_ms = last.and_then(|b| match (b.started_at, b.complete_at) {
                (Some(s), Some(e)) => Some(e.saturating_sub(s).saturating_mul(1000)),
                _ => None,
            });
            let summary = match last {
                Some(build) if !result.is_good() => {
                    let tail = self.failure_tail(build).await.ok().flatten();
                    let state = build.state_string.clone().unwrap_or_default();
                    Some(match tail {
                        Some(tail) => format!("{state}\n{tail}"),
                        None => state,
                    })
                }
                None if !result.is_good() => Some(
                    "completed without a build (collapsed or cancelled before it started)"
                        .to_owned(),
                ),
                _ => None,
            };
            updates.push(JobUpdate {
                name: job.name.clone(),
                attempt: job.attempt,
                state: Some(JobState::Completed),
                result: Some(result),
                raw_result: Some(result_name(code)),
                log_url,
                duration_ms,
                summary,
                ..JobUpdate::default()
            });
        }
        Ok(Observation {
            updates,
            complete: true,
            external_id: None,
        })
    }
}
