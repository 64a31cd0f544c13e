//! CI runs and their jobs: one run per try push; a CI adapter (the built-in runner,
//! Buildbot, Treeherder, the webhook) records each job's attempts and the run's verdict;
//! the result watcher reads the verdict and moves the request on.
//!
//! A job to be started on an external CI is written here (state `requested`) before it is
//! sent, so a crash between the two is found again instead of sending twice or not at all.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::db::{Store, StoreError, col, now_ms, parse_col, parse_opt_col};
use crate::request::RequestId;

/// Where a CI run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CiState {
    /// Waiting for a runner or for its CI to start.
    Queued,
    /// A runner or its CI is on it.
    Running,
    /// Every job passed (possibly after a retry).
    Passed,
    /// A job failed (after its retries).
    Failed,
    /// The run took longer than allowed.
    TimedOut,
    /// Its result is no longer wanted (a landing gate's candidate that was rebuilt).
    Cancelled,
}

impl CiState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CiState::Queued => "queued",
            CiState::Running => "running",
            CiState::Passed => "passed",
            CiState::Failed => "failed",
            CiState::TimedOut => "timed_out",
            CiState::Cancelled => "cancelled",
        }
    }

    /// Whether the run has its verdict.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CiState::Passed | CiState::Failed | CiState::TimedOut | CiState::Cancelled
        )
    }
}

impl std::str::FromStr for CiState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            CiState::Queued,
            CiState::Running,
            CiState::Passed,
            CiState::Failed,
            CiState::TimedOut,
            CiState::Cancelled,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or(())
    }
}

/// Where one attempt of a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Recorded, not yet confirmed by the CI (a crash here is resolved by looking it up).
    Requested,
    /// The CI has it and has not started it.
    Pending,
    /// Running.
    Running,
    /// Finished, with a result.
    Completed,
}

impl JobState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Requested => "requested",
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Completed => "completed",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            JobState::Requested,
            JobState::Pending,
            JobState::Running,
            JobState::Completed,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or(())
    }
}

/// A finished job's result, in Autoland's words (each CI's own word is kept beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobResult {
    /// Passed (Buildbot SUCCESS or WARNINGS, Treeherder success).
    Success,
    /// The tests failed (Buildbot FAILURE, Treeherder testfailed).
    Failed,
    /// The infrastructure failed (exception, retry, busted, timeout, a master shutdown).
    Infra,
    /// A person cancelled it (Treeherder usercancel).
    Cancelled,
    /// Not run (Buildbot SKIPPED); counts as neither pass nor failure.
    Skipped,
}

impl JobResult {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobResult::Success => "success",
            JobResult::Failed => "failed",
            JobResult::Infra => "infra",
            JobResult::Cancelled => "cancelled",
            JobResult::Skipped => "skipped",
        }
    }

    /// Whether the job did not fail.
    pub fn is_good(self) -> bool {
        matches!(self, JobResult::Success | JobResult::Skipped)
    }
}

impl std::str::FromStr for JobResult {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            JobResult::Success,
            JobResult::Failed,
            JobResult::Infra,
            JobResult::Cancelled,
            JobResult::Skipped,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or(())
    }
}

/// A CI run to queue together with the `pushed_to_try` transition.
#[derive(Debug, Clone)]
pub struct NewCiRun {
    /// The try repository.
    pub repo: String,
    /// The pushed revision.
    pub revision: String,
    /// The ref it was pushed to.
    pub ref_name: String,
    /// Which CI tests it (`local`, `buildbot`, ...).
    pub ci: String,
    /// The patches and base it tests, by content (for reuse).
    pub content_key: Option<String>,
    /// Reuse a run with the same content key that passed within this long (0: never).
    pub reuse_within_ms: i64,
}

/// A CI run as stored.
#[derive(Debug, Clone, Serialize)]
pub struct CiRun {
    /// Run number.
    pub id: i64,
    /// Its request (for a landing gate's candidate: the candidate's last request).
    pub request_id: RequestId,
    /// The landing gate's candidate it tests, if it is one.
    pub candidate_id: Option<i64>,
    /// The destination push whose tip it tests after landing (the sheriff's), if it is one.
    pub push_id: Option<i64>,
    /// Try repository.
    pub repo: String,
    /// Revision under test.
    pub revision: String,
    /// Ref the revision was pushed to.
    pub ref_name: String,
    /// Which CI tests it.
    pub ci: String,
    /// Where it is.
    pub state: CiState,
    /// How many times a runner started it.
    pub attempts: i64,
    /// The command's exit code (built-in runner).
    pub exit_code: Option<i64>,
    /// A short summary (last lines of output, or the jobs).
    pub summary: Option<String>,
    /// Full log file (built-in runner).
    pub log_path: Option<String>,
    /// The CI's own id for the run (a Treeherder push id).
    pub external_id: Option<String>,
    /// The run whose pass this one reused.
    pub reused_from: Option<i64>,
    /// When it was queued (ms).
    pub created_at: i64,
    /// When it got its verdict (ms).
    pub finished_at: Option<i64>,
    /// When a job last appeared or changed (ms).
    pub last_change_at: Option<i64>,
    /// When the CI said no more jobs will come (a webhook's `"complete": true`).
    pub complete_at: Option<i64>,
}

/// One attempt of one job of a run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CiJob {
    /// Row id.
    pub id: i64,
    /// Its run.
    pub run_id: i64,
    /// The job's name (a Buildbot builder, a Treeherder job type, a webhook job).
    pub name: String,
    /// 1 for the first run of the job, 2 for its first retry, ...
    pub attempt: i64,
    /// Where it is.
    pub state: JobState,
    /// Its result once completed.
    pub result: Option<JobResult>,
    /// The CI's own word for the result (`EXCEPTION`, `testfailed`, ...).
    pub raw_result: Option<String>,
    /// The CI's id for it (a Buildbot buildrequest, a Treeherder job).
    pub external_id: Option<String>,
    /// Where a person reads its log.
    pub log_url: Option<String>,
    /// How long it ran.
    pub duration_ms: Option<i64>,
    /// The last lines of its log, when it failed.
    pub summary: Option<String>,
}

/// What a CI adapter saw of one attempt of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobUpdate {
    /// The job's name.
    pub name: String,
    /// Which attempt.
    pub attempt: i64,
    /// Where it is.
    pub state: Option<JobState>,
    /// Its result once completed.
    pub result: Option<JobResult>,
    /// The CI's word for the result.
    pub raw_result: Option<String>,
    /// The CI's id for it.
    pub external_id: Option<String>,
    /// Its log, for people.
    pub log_url: Option<String>,
    /// How long it ran.
    pub duration_ms: Option<i64>,
    /// The last lines of its log.
    pub summary: Option<String>,
}

/// A finished run with its jobs, as the try report on a bug shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run.
    pub run: CiRun,
    /// Every attempt of every job.
    pub jobs: Vec<CiJob>,
}

/// How one job ended over all its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome<'a> {
    /// The job's name.
    pub name: &'a str,
    /// Its last attempt.
    pub last: &'a CiJob,
    /// How many attempts it took.
    pub attempts: i64,
    /// Passed after an earlier attempt did not.
    pub intermittent: bool,
}

impl RunReport {
    /// Each job's outcome (by its last attempt), in name order.
    pub fn outcomes(&self) -> Vec<JobOutcome<'_>> {
        outcomes(&self.jobs)
    }
}

/// Each job's outcome by its last attempt, in name order.
pub fn outcomes(jobs: &[CiJob]) -> Vec<JobOutcome<'_>> {
    let mut names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let attempts: Vec<&CiJob> = jobs.iter().filter(|j| j.name == name).collect();
            let last = attempts.iter().max_by_key(|j| j.attempt)?;
            let good = last.result.is_some_and(JobResult::is_good);
            let earlier_bad = attempts
                .iter()
                .any(|j| j.attempt < last.attempt && !j.result.is_some_and(JobResult::is_good));
            Some(JobOutcome {
                name,
                last,
                attempts: i64::try_from(attempts.len()).unwrap_or(i64::MAX),
                intermittent: good && earlier_bad,
            })
        })
        .collect()
}

/// How a run's jobs ended, counted by their last attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally<'a> {
    /// Jobs (not attempts).
    pub jobs: usize,
    /// Jobs whose last attempt passed (or was skipped).
    pub passed: usize,
    /// Jobs whose last attempt did not pass, in name order.
    pub failed: Vec<JobOutcome<'a>>,
    /// Jobs that passed only on a later attempt, in name order.
    pub intermittent: Vec<JobOutcome<'a>>,
}

/// Counts how the jobs ended.
pub fn tally(jobs: &[CiJob]) -> Tally<'_> {
    let all = outcomes(jobs);
    let (good, failed): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|o| o.last.result.is_some_and(JobResult::is_good));
    Tally {
        jobs: good.len() + failed.len(),
        passed: good.len(),
        intermittent: good.into_iter().filter(|o| o.intermittent).collect(),
        failed,
    }
}

pub(super) fn run_from_row(row: &AnyRow) -> Result<CiRun, StoreError> {
    Ok(CiRun {
        id: col(row, "id")?,
        request_id: RequestId(col(row, "request_id")?),
        candidate_id: col(row, "candidate_id")?,
        push_id: col(row, "push_id")?,
        repo: col(row, "repo")?,
        revision: col(row, "revision")?,
        ref_name: col(row, "ref_name")?,
        ci: col(row, "ci")?,
        state: parse_col(row, "state", "ci_runs")?,
        attempts: col(row, "attempts")?,
        exit_code: col(row, "exit_code")?,
        summary: col(row, "summary")?,
        log_path: col(row, "log_path")?,
        external_id: col(row, "external_id")?,
        reused_from: col(row, "reused_from")?,
        created_at: col(row, "created_at")?,
        finished_at: col(row, "finished_at")?,
        last_change_at: col(row, "last_change_at")?,
        complete_at: col(row, "complete_at")?,
    })
}

pub(super) const RUN_COLUMNS: &str = "id, request_id, candidate_id, push_id, repo, revision, ref_name, ci, state, attempts, \
     exit_code, summary, log_path, external_id, reused_from, created_at, finished_at, \
     last_change_at, complete_at";

fn job_from_row(row: &AnyRow) -> Result<CiJob, StoreError> {
    Ok(CiJob {
        id: col(row, "id")?,
        run_id: col(row, "run_id")?,
        name: col(row, "name")?,
        attempt: col(row, "attempt")?,
        state: parse_col(row, "state", "ci_jobs")?,
        result: parse_opt_col(row, "result", "ci_jobs")?,
        raw_result: col(row, "raw_result")?,
        external_id: col(row, "external_id")?,
        log_url: col(row, "log_url")?,
        duration_ms: col(row, "duration_ms")?,
        summary: col(row, "summary")?,
    })
}

const JOB_COLUMNS: &str = "id, run_id, name, attempt, state, result, raw_result, external_id, \
     log_url, duration_ms, summary";

/// CI kinds as an SQL list (`'buildbot', 'treeherder'`); the names are the program's own
/// (`CiKind::as_str`), quotes are dropped all the same.
fn sql_list(kinds: &[&str]) -> String {
    kinds
        .iter()
        .map(|k| format!("'{}'", k.replace('\'', "")))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn insert_ci_run(
    tx: &mut Transaction<'_, Any>,
    id: RequestId,
    run: &NewCiRun,
) -> Result<(), StoreError> {
    let now = now_ms();
    let reused = match (&run.content_key, run.reuse_within_ms) {
        (Some(key), within) if within > 0 => {
            let row = sqlx::query(
                "SELECT id, revision, finished_at FROM ci_runs WHERE repo = $1 \
                 AND content_key = $2 AND state = 'passed' AND reused_from IS NULL \
                 AND ci = $4 AND finished_at >= $3 ORDER BY id DESC LIMIT 1",
            )
            .bind(&run.repo)
            .bind(key)
            .bind(now.saturating_sub(within))
            .bind(&run.ci)
            .fetch_optional(&mut **tx)
            .await?;
            match row {
                Some(row) => Some((col::<i64>(&row, "id")?, col::<String>(&row, "revision")?)),
                None => None,
            }
        }
        _ => None,
    };
    match reused {
        None => {
            sqlx::query(
                "INSERT INTO ci_runs (request_id, repo, revision, ref_name, ci, content_key, \
                 state, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7)",
            )
            .bind(id.0)
            .bind(&run.repo)
            .bind(&run.revision)
            .bind(&run.ref_name)
            .bind(&run.ci)
            .bind(&run.content_key)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Some((from, revision)) => {
            let summary = format!(
                "not tested again: the same patches on the same base passed in run {from} \
                 (revision {})",
                revision.get(..12).unwrap_or(&revision)
            );
            sqlx::query(
                "INSERT INTO ci_runs (request_id, repo, revision, ref_name, ci, content_key, \
                 state, summary, reused_from, created_at, finished_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'passed', $7, $8, $9, $9)",
            )
            .bind(id.0)
            .bind(&run.repo)
            .bind(&run.revision)
            .bind(&run.ref_name)
            .bind(&run.ci)
            .bind(&run.content_key)
            .bind(summary)
            .bind(from)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

impl Store {
    /// Claims a queued run of the built-in runner, or a running one whose runner's lease
    /// expired (it died).
    pub async fn claim_ci_run(
        &self,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<CiRun>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE ci_runs SET state = 'running', lease_owner = $1, lease_until = {now} + $2, \
             attempts = attempts + 1, started_at = $3 \
             WHERE id = (SELECT id FROM ci_runs WHERE ci = 'local' AND (state = 'queued' \
                            OR (state = 'running' AND lease_until < {now})) ORDER BY id LIMIT 1{skip}) \
             AND (state = 'queued' OR (state = 'running' AND lease_until < {now})) \
             RETURNING {RUN_COLUMNS}",
            skip = self.skip_locked(),
            now = self.now_sql(),
        ))
        .bind(owner)
        .bind(lease_ms)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Claims, for one look, a run of an external CI (`kinds`) that is due: queued, or
    /// running with its next check due, and not held by another poller.
    pub async fn claim_due_ci_run(
        &self,
        kinds: &[&str],
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<CiRun>, StoreError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let list = sql_list(kinds);
        let due = format!(
            "ci IN ({list}) AND state IN ('queued', 'running') \
             AND (lease_until IS NULL OR lease_until < {now}) \
             AND (next_check_at IS NULL OR next_check_at <= {now})",
            now = self.now_sql()
        );
        let row = sqlx::query(&format!(
            "UPDATE ci_runs SET state = 'running', lease_owner = $1, lease_until = {now} + $2, \
             attempts = attempts + CASE WHEN state = 'queued' THEN 1 ELSE 0 END, \
             started_at = COALESCE(started_at, $3) \
             WHERE id = (SELECT id FROM ci_runs WHERE {due} \
                         ORDER BY COALESCE(next_check_at, 0), id LIMIT 1{skip}) \
             AND {due} RETURNING {RUN_COLUMNS}",
            skip = self.skip_locked(),
            now = self.now_sql(),
        ))
        .bind(owner)
        .bind(lease_ms)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Lets go of a run claimed with [`Store::claim_due_ci_run`], to be looked at again
    /// in `next_check_ms`.
    pub async fn release_ci_run(
        &self,
        run_id: i64,
        owner: &str,
        next_check_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "UPDATE ci_runs SET lease_owner = NULL, lease_until = NULL, \
             next_check_at = {} + $1 WHERE id = $2 AND lease_owner = $3",
            self.now_sql()
        ))
        .bind(next_check_ms)
        .bind(run_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How long (ms, database clock) until an external run is due (its next check, or its
    /// holder's lease running out), if any is waiting.
    pub async fn next_ci_check(&self, kinds: &[&str]) -> Result<Option<i64>, StoreError> {
        if kinds.is_empty() {
            return Ok(None);
        }
        let list = sql_list(kinds);
        let row = sqlx::query(&format!(
            "SELECT MIN(CASE WHEN COALESCE(lease_until, 0) > COALESCE(next_check_at, 0) \
             THEN lease_until ELSE COALESCE(next_check_at, 0) END) AS due, MAX({now}) AS now \
             FROM ci_runs WHERE ci IN ({list}) AND state IN ('queued', 'running')",
            now = self.now_sql()
        ))
        .fetch_one(&self.pool)
        .await?;
        let due: Option<i64> = col(&row, "due")?;
        let now: Option<i64> = col(&row, "now")?;
        Ok(due.map(|d| d.saturating_sub(now.unwrap_or(d)).max(0)))
    }

    /// Extends a runner's lease; false if it lost it.
    pub async fn renew_ci_lease(
        &self,
        run_id: i64,
        owner: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE ci_runs SET lease_until = {} + $1 \
             WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
            self.now_sql()
        ))
        .bind(lease_ms)
        .bind(run_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a built-in runner's result, if this runner still holds the run.
    pub async fn finish_ci_run(
        &self,
        run_id: i64,
        owner: &str,
        state: CiState,
        exit_code: Option<i64>,
        summary: &str,
        log_path: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE ci_runs SET state = $1, exit_code = $2, summary = $3, log_path = $4, \
             finished_at = $5, lease_owner = NULL, lease_until = NULL \
             WHERE id = $6 AND lease_owner = $7 AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(exit_code)
        .bind(summary)
        .bind(log_path)
        .bind(now_ms())
        .bind(run_id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a run its verdict unless it has one (external CIs, the webhook); true if this
    /// call gave it.
    pub async fn conclude_ci_run(
        &self,
        run_id: i64,
        state: CiState,
        summary: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE ci_runs SET state = $1, summary = $2, finished_at = $3, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $4 AND state IN ('queued', 'running')",
        )
        .bind(state.as_str())
        .bind(summary)
        .bind(now_ms())
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a queued run as running (a webhook's first delivery).
    pub async fn start_ci_run(&self, run_id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE ci_runs SET state = 'running', started_at = COALESCE(started_at, $1), \
             attempts = attempts + 1 WHERE id = $2 AND state = 'queued'",
        )
        .bind(now_ms())
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records that the CI will add no more jobs to a run.
    pub async fn mark_ci_run_complete(&self, run_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE ci_runs SET complete_at = COALESCE(complete_at, $1) WHERE id = $2")
            .bind(now_ms())
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the CI's own id for a run (a Treeherder push).
    pub async fn set_ci_run_external(&self, run_id: i64, external: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE ci_runs SET external_id = $1 WHERE id = $2")
            .bind(external)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The latest CI run of a request.
    pub async fn ci_run_for(&self, id: RequestId) -> Result<Option<CiRun>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM ci_runs WHERE request_id = $1 AND push_id IS NULL \
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// A CI run by number.
    pub async fn ci_run(&self, run_id: i64) -> Result<Option<CiRun>, StoreError> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM ci_runs WHERE id = $1"))
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The latest run of `revision` on the try repository `repo`.
    pub async fn ci_run_of_revision(
        &self,
        repo: &str,
        revision: &str,
    ) -> Result<Option<CiRun>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM ci_runs WHERE repo = $1 AND revision = $2 \
             ORDER BY id DESC LIMIT 1"
        ))
        .bind(repo)
        .bind(revision)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// Every attempt of every job of a run, by name then attempt.
    pub async fn ci_jobs(&self, run_id: i64) -> Result<Vec<CiJob>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM ci_jobs WHERE run_id = $1 ORDER BY name, attempt"
        ))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// A run with its jobs.
    pub async fn run_report(&self, run: CiRun) -> Result<RunReport, StoreError> {
        let jobs = self.ci_jobs(run.id).await?;
        Ok(RunReport { run, jobs })
    }

    /// Writes down that attempt `attempt` of job `name` is about to be asked of the CI.
    /// Returns the job as stored (an earlier call's row if there was one).
    pub async fn request_ci_job(
        &self,
        run_id: i64,
        name: &str,
        attempt: i64,
    ) -> Result<CiJob, StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO ci_jobs (run_id, name, attempt, state, created_at, updated_at) \
             VALUES ($1, $2, $3, 'requested', $4, $4) \
             ON CONFLICT (run_id, name, attempt) DO NOTHING",
        )
        .bind(run_id)
        .bind(name)
        .bind(attempt)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.touch_ci_run(run_id).await?;
        self.ci_job(run_id, name, attempt).await
    }

    /// One attempt of one job of a run.
    async fn ci_job(&self, run_id: i64, name: &str, attempt: i64) -> Result<CiJob, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM ci_jobs WHERE run_id = $1 AND name = $2 AND attempt = $3"
        ))
        .bind(run_id)
        .bind(name)
        .bind(attempt)
        .fetch_one(&self.pool)
        .await?;
        job_from_row(&row)
    }

    /// Records what a CI said about one attempt of a job (creating the row if the CI
    /// started it on its own). A completed attempt never changes again. Returns whether
    /// anything changed.
    pub async fn record_ci_job(&self, run_id: i64, update: &JobUpdate) -> Result<bool, StoreError> {
        let now = now_ms();
        // A job the CI started on its own is new: insert it as seen.
        let inserted = sqlx::query(
            "INSERT INTO ci_jobs (run_id, name, attempt, state, result, raw_result, \
             external_id, log_url, duration_ms, summary, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (run_id, name, attempt) DO NOTHING",
        )
        .bind(run_id)
        .bind(&update.name)
        .bind(update.attempt)
        .bind(update.state.unwrap_or(JobState::Pending).as_str())
        .bind(update.result.map(JobResult::as_str))
        .bind(&update.raw_result)
        .bind(&update.external_id)
        .bind(&update.log_url)
        .bind(update.duration_ms)
        .bind(&update.summary)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 1 {
            self.touch_ci_run(run_id).await?;
            return Ok(true);
        }
        let old = self.ci_job(run_id, &update.name, update.attempt).await?;
        if old.state == JobState::Completed {
            return Ok(false);
        }
        let new = CiJob {
            state: update.state.unwrap_or(old.state),
            result: update.result.or(old.result),
            raw_result: update.raw_result.clone().or(old.raw_result.clone()),
            external_id: update.external_id.clone().or(old.external_id.clone()),
            log_url: update.log_url.clone().or(old.log_url.clone()),
            duration_ms: update.duration_ms.or(old.duration_ms),
            summary: update.summary.clone().or(old.summary.clone()),
            ..old.clone()
        };
        if new == old {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE ci_jobs SET state = $1, result = $2, raw_result = $3, external_id = $4, \
             log_url = $5, duration_ms = $6, summary = $7, updated_at = $8 \
             WHERE id = $9 AND state <> 'completed'",
        )
        .bind(new.state.as_str())
        .bind(new.result.map(JobResult::as_str))
        .bind(&new.raw_result)
        .bind(&new.external_id)
        .bind(&new.log_url)
        .bind(new.duration_ms)
        .bind(&new.summary)
        .bind(now)
        .bind(old.id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            self.touch_ci_run(run_id).await?;
        }
        Ok(done.rows_affected() == 1)
    }

    async fn touch_ci_run(&self, run_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE ci_runs SET last_change_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Retries (attempts after the first) used by what `run` tests: every run of its
    /// request, or for a run of a landed tip every run of that push (such runs are filed
    /// under a landing request, whose quota they must not use up).
    pub async fn ci_retries_for(&self, run: &CiRun) -> Result<i64, StoreError> {
        let query = match run.push_id {
            Some(push) => sqlx::query(
                "SELECT COUNT(*) AS n FROM ci_jobs j JOIN ci_runs r ON r.id = j.run_id \
                 WHERE r.push_id = $1 AND j.attempt > 1",
            )
            .bind(push),
            None => sqlx::query(
                "SELECT COUNT(*) AS n FROM ci_jobs j JOIN ci_runs r ON r.id = j.run_id \
                 WHERE r.request_id = $1 AND r.push_id IS NULL AND j.attempt > 1",
            )
            .bind(run.request_id.0),
        };
        let row = query.fetch_one(&self.pool).await?;
        col(&row, "n")
    }

    /// Retries used on a try repository since `since_ms`.
    pub async fn ci_retries_of_repo_since(
        &self,
        repo: &str,
        since_ms: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM ci_jobs j JOIN ci_runs r ON r.id = j.run_id \
             WHERE r.repo = $1 AND j.attempt > 1 AND j.created_at >= $2",
        )
        .bind(repo)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        col(&row, "n")
    }

    /// Forgets a delivery whose processing failed, so that the CI's resend is taken.
    pub async fn forget_delivery(&self, digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhook_deliveries WHERE digest = $1")
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a webhook delivery's signature; false if it was seen before (a replay).
    /// Deliveries older than `keep_ms` are forgotten (their timestamps are refused anyway).
    pub async fn record_delivery(&self, digest: &str, keep_ms: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(now.saturating_sub(keep_ms))
            .execute(&self.pool)
            .await?;
        let done = sqlx::query(
            "INSERT INTO webhook_deliveries (digest, received_at) VALUES ($1, $2) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
