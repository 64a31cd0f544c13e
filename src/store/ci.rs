//! CI runs: one per try push. Adapters (the built-in runner today) fill in the result;
//! the result watcher reads it and moves the request on.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::db::{Store, StoreError, col, now_ms, parse_col};
use crate::request::RequestId;

/// Where a CI run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CiState {
    /// Waiting for a runner.
    Queued,
    /// A runner is on it.
    Running,
    /// The command exited 0.
    Passed,
    /// The command exited non-zero.
    Failed,
    /// The command ran past its timeout and was killed.
    TimedOut,
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
        }
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
}

/// A CI run as stored.
#[derive(Debug, Clone, Serialize)]
pub struct CiRun {
    /// Run number.
    pub id: i64,
    /// Its request.
    pub request_id: RequestId,
    /// Try repository.
    pub repo: String,
    /// Revision under test.
    pub revision: String,
    /// Ref the revision was pushed to.
    pub ref_name: String,
    /// Where it is.
    pub state: CiState,
    /// How many times a runner started it.
    pub attempts: i64,
    /// The command's exit code.
    pub exit_code: Option<i64>,
    /// A short summary (last lines of output).
    pub summary: Option<String>,
    /// Full log file.
    pub log_path: Option<String>,
}

fn run_from_row(row: &AnyRow) -> Result<CiRun, StoreError> {
    Ok(CiRun {
        id: col(row, "id")?,
        request_id: RequestId(col(row, "request_id")?),
        repo: col(row, "repo")?,
        revision: col(row, "revision")?,
        ref_name: col(row, "ref_name")?,
        state: parse_col(row, "state", "ci_runs")?,
        attempts: col(row, "attempts")?,
        exit_code: col(row, "exit_code")?,
        summary: col(row, "summary")?,
        log_path: col(row, "log_path")?,
    })
}

const RUN_COLUMNS: &str =
    "id, request_id, repo, revision, ref_name, state, attempts, exit_code, summary, log_path";

pub(super) async fn insert_ci_run(
    tx: &mut Transaction<'_, Any>,
    id: RequestId,
    run: &NewCiRun,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ci_runs (request_id, repo, revision, ref_name, state, created_at) \
         VALUES ($1, $2, $3, $4, 'queued', $5)",
    )
    .bind(id.0)
    .bind(&run.repo)
    .bind(&run.revision)
    .bind(&run.ref_name)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Claims a queued run, or a running one whose runner's lease expired (it died).
    pub async fn claim_ci_run(
        &self,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<CiRun>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE ci_runs SET state = 'running', lease_owner = $1, lease_until = {now} + $2, \
             attempts = attempts + 1, started_at = $3 \
             WHERE id = (SELECT id FROM ci_runs WHERE state = 'queued' \
                            OR (state = 'running' AND lease_until < {now}) ORDER BY id LIMIT 1{skip}) \
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

    /// Records a run's result, if this runner still holds it.
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

    /// The latest CI run of a request.
    pub async fn ci_run_for(&self, id: RequestId) -> Result<Option<CiRun>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM ci_runs WHERE request_id = $1 ORDER BY id DESC LIMIT 1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }
}
