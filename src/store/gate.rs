//! The landing gate's records: each candidate (what was built on which tip, pushed where,
//! tested by which CI run, and how it ended) with its requests, and each lane's window.
//!
//! A candidate row is written before its ref exists (state `building`), gets its revision
//! and CI run in one transaction after the push (`testing`), and is marked `landing`, with
//! the tip the push starts from, before the destination is pushed: after a crash, the
//! executor finds every candidate in the state its last durable step left it.

use serde::Serialize;
use sqlx::any::AnyRow;

use super::db::{Store, StoreError, col, now_ms, parse_col};
use crate::request::RequestId;

/// Where a candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateState {
    /// Recorded; being built and pushed to its try ref.
    Building,
    /// Pushed; its CI run is under way.
    Testing,
    /// Its CI run passed; waits for those below it to land.
    Passed,
    /// Its CI run failed, or its patches did not apply.
    Failed,
    /// Its landing on the destination is under way.
    Landing,
    /// On the destination.
    Landed,
    /// Its landing was refused (the destination moved); its requests were queued again.
    Refused,
    /// No longer needed (something below it changed, or the gate restarted).
    Cancelled,
}

impl CandidateState {
    /// Every state.
    pub const ALL: [CandidateState; 8] = [
        CandidateState::Building,
        CandidateState::Testing,
        CandidateState::Passed,
        CandidateState::Failed,
        CandidateState::Landing,
        CandidateState::Landed,
        CandidateState::Refused,
        CandidateState::Cancelled,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateState::Building => "building",
            CandidateState::Testing => "testing",
            CandidateState::Passed => "passed",
            CandidateState::Failed => "failed",
            CandidateState::Landing => "landing",
            CandidateState::Landed => "landed",
            CandidateState::Refused => "refused",
            CandidateState::Cancelled => "cancelled",
        }
    }

    /// Whether the candidate may still land or be tested (a failed one never lands).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            CandidateState::Building
                | CandidateState::Testing
                | CandidateState::Passed
                | CandidateState::Landing
        )
    }
}

impl std::str::FromStr for CandidateState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        CandidateState::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

/// A candidate as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// Its number (also its try ref: `autoland/gate-<id>`).
    pub id: i64,
    /// The gated destination.
    pub repo: String,
    /// The lane it belongs to.
    pub lane: String,
    /// The candidate it is built on (none: the destination's tip).
    pub parent_id: Option<i64>,
    /// Where it is.
    pub state: CandidateState,
    /// The destination tip its chain is built on.
    pub base: Option<String>,
    /// The tested revision (pushed to try).
    pub revision: Option<String>,
    /// Its CI run.
    pub run_id: Option<i64>,
    /// The tip its landing push started from.
    pub landed_on: Option<String>,
    /// Why it failed or was cancelled.
    pub detail: Option<String>,
    /// Its own requests, in order.
    pub requests: Vec<RequestId>,
    /// The requests of the candidates below it, tested together with it.
    pub ahead: Vec<RequestId>,
    /// When it was recorded (ms).
    pub created_at: i64,
    /// When it ended (ms).
    pub finished_at: Option<i64>,
}

/// A request waiting in (or being landed by) a gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatedRequest {
    /// The request.
    pub id: RequestId,
    /// Higher first (an operator's "move to the front").
    pub priority: i64,
    /// `gated` or `gate_landing`.
    pub stage: crate::request::Stage,
}

const CANDIDATE_COLUMNS: &str = "id, repo, lane, parent_id, state, base, revision, run_id, \
     landed_on, detail, created_at, finished_at";

fn candidate_from_row(row: &AnyRow) -> Result<Candidate, StoreError> {
    Ok(Candidate {
        id: col(row, "id")?,
        repo: col(row, "repo")?,
        lane: col(row, "lane")?,
        parent_id: col(row, "parent_id")?,
        state: parse_col(row, "state", "gate_candidates")?,
        base: col(row, "base")?,
        revision: col(row, "revision")?,
        run_id: col(row, "run_id")?,
        landed_on: col(row, "landed_on")?,
        detail: col(row, "detail")?,
        requests: Vec::new(),
        ahead: Vec::new(),
        created_at: col(row, "created_at")?,
        finished_at: col(row, "finished_at")?,
    })
}

/// The CI run of a candidate, queued with its `testing` state.
#[derive(Debug, Clone)]
pub struct CandidateRun {
    /// The try repository.
    pub repo: String,
    /// Which CI tests it.
    pub ci: String,
    /// The request the run is filed under (the candidate's last own request): its
    /// events show the run, and the runners read it.
    pub request: RequestId,
}

impl Store {
    /// Records a new candidate (state `building`) before anything is built or pushed.
    pub async fn gate_new_candidate(
        &self,
        repo: &str,
        lane: &str,
        parent_id: Option<i64>,
        ahead: &[RequestId],
        own: &[RequestId],
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO gate_candidates (repo, lane, parent_id, state, created_at) \
             VALUES ($1, $2, $3, 'building', $4) RETURNING id",
        )
        .bind(repo)
        .bind(lane)
        .bind(parent_id)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = col(&row, "id")?;
        let members = ahead
            .iter()
            .map(|r| (*r, 1_i64))
            .chain(own.iter().map(|r| (*r, 0_i64)));
        for (position, (request, is_ahead)) in members.enumerate() {
            sqlx::query(
                "INSERT INTO gate_members (candidate_id, request_id, position, ahead) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(request.0)
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .bind(is_ahead)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// The candidate is on its try ref as `revision` (built on the destination's `base`):
    /// `testing`, with its CI run queued, in one transaction. Returns the run's number.
    pub async fn gate_candidate_pushed(
        &self,
        id: i64,
        base: &str,
        revision: &str,
        ref_name: &str,
        run: &CandidateRun,
        heads: &[(RequestId, String)],
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO ci_runs (request_id, candidate_id, repo, revision, ref_name, ci, state, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7) RETURNING id",
        )
        .bind(run.request.0)
        .bind(id)
        .bind(&run.repo)
        .bind(revision)
        .bind(ref_name)
        .bind(&run.ci)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let run_id: i64 = col(&row, "id")?;
        let updated = sqlx::query(
            "UPDATE gate_candidates SET state = 'testing', base = $1, revision = $2, run_id = $3 \
             WHERE id = $4 AND state = 'building'",
        )
        .bind(base)
        .bind(revision)
        .bind(run_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        for (request, head) in heads {
            sqlx::query(
                "UPDATE gate_members SET head = $1 WHERE candidate_id = $2 AND request_id = $3",
            )
            .bind(head)
            .bind(id)
            .bind(request.0)
            .execute(&mut *tx)
            .await?;
        }
        if updated.rows_affected() != 1 {
            // Cancelled meanwhile (a restart): the run is not wanted.
            tx.rollback().await?;
            return Err(StoreError::Corrupt {
                table: "gate_candidates",
                detail: format!("candidate {id} is no longer being built"),
            });
        }
        tx.commit().await?;
        Ok(run_id)
    }

    /// Moves a candidate from one of `from` to `to` (with `detail`, kept if `None`);
    /// false if it was in none of them.
    pub async fn gate_set_state(
        &self,
        id: i64,
        from: &[CandidateState],
        to: CandidateState,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        let list = from
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let finished = (!to.is_open()).then(now_ms);
        let done = sqlx::query(&format!(
            "UPDATE gate_candidates SET state = $1, detail = COALESCE($2, detail), \
             finished_at = COALESCE(finished_at, $3) WHERE id = $4 AND state IN ({list})"
        ))
        .bind(to.as_str())
        .bind(detail)
        .bind(finished)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Cancels a candidate and gives its CI run (if still going) the verdict `cancelled`,
    /// which stops the built-in runner's command and the external CI's polling.
    pub async fn gate_cancel(&self, id: i64, why: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE gate_candidates SET state = 'cancelled', detail = $1, \
             finished_at = COALESCE(finished_at, $2) \
             WHERE id = $3 AND state IN ('building', 'testing', 'passed')",
        )
        .bind(why)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE ci_runs SET state = 'cancelled', summary = $1, finished_at = $2, \
             lease_owner = NULL, lease_until = NULL \
             WHERE candidate_id = $3 AND state IN ('queued', 'running')",
        )
        .bind(format!("cancelled by the gate: {why}"))
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the tip a candidate's landing push starts from, and marks it `landing`.
    pub async fn gate_landing(&self, id: i64, on: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE gate_candidates SET state = 'landing', landed_on = $1 \
             WHERE id = $2 AND state IN ('passed', 'landing')",
        )
        .bind(on)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A candidate with its requests.
    pub async fn gate_candidate(&self, id: i64) -> Result<Option<Candidate>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CANDIDATE_COLUMNS} FROM gate_candidates WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut candidate = candidate_from_row(&row)?;
        self.fill_members(std::slice::from_mut(&mut candidate))
            .await?;
        Ok(Some(candidate))
    }

    /// The candidates of `repo` that may still land or be tested (building, testing,
    /// passed, landing), oldest first, with their requests.
    pub async fn gate_open_candidates(&self, repo: &str) -> Result<Vec<Candidate>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CANDIDATE_COLUMNS} FROM gate_candidates WHERE repo = $1 \
             AND state IN ('building', 'testing', 'passed', 'landing') ORDER BY id"
        ))
        .bind(repo)
        .fetch_all(&self.pool)
        .await?;
        let mut candidates = rows
            .iter()
            .map(candidate_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.fill_members(&mut candidates).await?;
        Ok(candidates)
    }

    /// The latest candidates of `repo` (any state), newest first.
    pub async fn gate_recent_candidates(
        &self,
        repo: &str,
        limit: i64,
    ) -> Result<Vec<Candidate>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CANDIDATE_COLUMNS} FROM gate_candidates WHERE repo = $1 \
             ORDER BY id DESC LIMIT $2"
        ))
        .bind(repo)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut candidates = rows
            .iter()
            .map(candidate_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.fill_members(&mut candidates).await?;
        Ok(candidates)
    }

    /// The candidates a request was part of, newest first.
    pub async fn gate_candidates_of(
        &self,
        request: RequestId,
    ) -> Result<Vec<Candidate>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CANDIDATE_COLUMNS} FROM gate_candidates WHERE id IN \
             (SELECT candidate_id FROM gate_members WHERE request_id = $1 AND ahead = 0) \
             ORDER BY id DESC"
        ))
        .bind(request.0)
        .fetch_all(&self.pool)
        .await?;
        let mut candidates = rows
            .iter()
            .map(candidate_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.fill_members(&mut candidates).await?;
        Ok(candidates)
    }

    async fn fill_members(&self, candidates: &mut [Candidate]) -> Result<(), StoreError> {
        for candidate in candidates {
            let rows = sqlx::query(
                "SELECT request_id, ahead FROM gate_members WHERE candidate_id = $1 \
                 ORDER BY position",
            )
            .bind(candidate.id)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let request = RequestId(col(&row, "request_id")?);
                let ahead: i64 = col(&row, "ahead")?;
                if ahead != 0 {
                    candidate.ahead.push(request);
                } else {
                    candidate.requests.push(request);
                }
            }
        }
        Ok(())
    }

    /// The requests in `repo`'s gate (stages `gated` and `gate_landing`), by request
    /// number.
    pub async fn gated_requests(&self, repo: &str) -> Result<Vec<GatedRequest>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.gate_priority, r.stage FROM requests r \
             WHERE r.stage IN ('gated', 'gate_landing') AND EXISTS \
             (SELECT 1 FROM request_destinations d WHERE d.request_id = r.id AND d.repo = $1) \
             ORDER BY r.id",
        )
        .bind(repo)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(GatedRequest {
                    id: RequestId(col(row, "id")?),
                    priority: col(row, "gate_priority")?,
                    stage: parse_col(row, "stage", "requests")?,
                })
            })
            .collect()
    }

    /// Every request waiting in some gate (stage `gated`), with its destination.
    pub async fn gated_everywhere(&self) -> Result<Vec<(RequestId, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, d.repo FROM requests r JOIN request_destinations d \
             ON d.request_id = r.id WHERE r.stage = 'gated' ORDER BY r.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((RequestId(col(row, "id")?), col(row, "repo")?)))
            .collect()
    }

    /// Moves a gated request to the front of its queue: a priority above every other
    /// request in the gate. Returns the new priority.
    pub async fn gate_promote(&self, id: RequestId) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT COALESCE(MAX(gate_priority), 0) AS top FROM requests \
             WHERE stage IN ('gated', 'gate_landing')",
        )
        .fetch_one(&mut *tx)
        .await?;
        let top: i64 = col(&row, "top")?;
        let priority = top.saturating_add(1);
        sqlx::query("UPDATE requests SET gate_priority = $1 WHERE id = $2")
            .bind(priority)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(priority)
    }

    /// Records a lane's window (for the status page).
    pub async fn gate_set_window(
        &self,
        repo: &str,
        lane: &str,
        window: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE gate_lanes SET window_size = $1, updated_at = $2 WHERE repo = $3 AND lane = $4",
        )
        .bind(window)
        .bind(now_ms())
        .bind(repo)
        .bind(lane)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO gate_lanes (repo, lane, window_size, updated_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(repo)
            .bind(lane)
            .bind(window)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Each lane of `repo` with its window, by name.
    pub async fn gate_windows(&self, repo: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT lane, window_size FROM gate_lanes WHERE repo = $1 ORDER BY lane")
                .bind(repo)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| Ok((col(row, "lane")?, col(row, "window_size")?)))
            .collect()
    }

    /// The commit each of a candidate's own requests ends with, as built for its test.
    pub async fn gate_heads(&self, id: i64) -> Result<Vec<(RequestId, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT request_id, head FROM gate_members WHERE candidate_id = $1 AND ahead = 0 \
             AND head IS NOT NULL ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((RequestId(col(row, "request_id")?), col(row, "head")?)))
            .collect()
    }

    /// Forgets a lane that has ended.
    pub async fn gate_drop_lane(&self, repo: &str, lane: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM gate_lanes WHERE repo = $1 AND lane = $2")
            .bind(repo)
            .bind(lane)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets the lanes of `repo` (the executor starts again from its requests).
    pub async fn gate_clear_lanes(&self, repo: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM gate_lanes WHERE repo = $1")
            .bind(repo)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// CI runs spent on candidates of `repo` (cancelled ones included).
    pub async fn gate_run_count(&self, repo: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM ci_runs WHERE candidate_id IN \
             (SELECT id FROM gate_candidates WHERE repo = $1)",
        )
        .bind(repo)
        .fetch_one(&self.pool)
        .await?;
        col(&row, "n")
    }
}
