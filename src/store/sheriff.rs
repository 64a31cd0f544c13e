//! The sheriff's records: every push seen on a destination that is tested after landing
//! (its commits, whose it was, what its tip's CI runs said), and the backouts of
//! Autoland's landings.
//!
//! A push is recorded when the sheriff first sees it, before any CI run of its tip; a
//! backout is recorded (`pending`, with the tip its attempt starts from) before its commit
//! is pushed: after a crash, the sheriff looks for that commit by its trailer first.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::any::AnyRow;

use super::ci::{CiRun, CiState, RUN_COLUMNS, run_from_row};
use super::db::{Store, StoreError, col, now_ms, parse_col};
use super::repositories::insert_action;
use crate::fault;
use crate::request::RequestId;

/// Whose push it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    /// The tip when the sheriff began watching (what came before is not its business).
    Baseline,
    /// One of Autoland's landings.
    Landing,
    /// Someone else's push (Autoland reports on these, never reverts them).
    Outside,
    /// One of Autoland's backouts.
    Backout,
}

impl PushKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PushKind::Baseline => "baseline",
            PushKind::Landing => "landing",
            PushKind::Outside => "outside",
            PushKind::Backout => "backout",
        }
    }

    fn parse(text: &str) -> Result<PushKind, StoreError> {
        [
            PushKind::Baseline,
            PushKind::Landing,
            PushKind::Outside,
            PushKind::Backout,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| corrupt("sheriff_pushes", format!("unknown push kind `{text}`")))
    }
}

/// What the CI said of a push's tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TipVerdict {
    /// Passed.
    Green,
    /// Failed, and failed again when run once more (or failed during a culprit search,
    /// below a tip already known red).
    Red,
    /// Failed, then passed on the same tip: recorded, nothing backed out.
    Intermittent,
}

impl TipVerdict {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TipVerdict::Green => "green",
            TipVerdict::Red => "red",
            TipVerdict::Intermittent => "intermittent",
        }
    }

    fn parse(text: &str) -> Result<TipVerdict, StoreError> {
        [TipVerdict::Green, TipVerdict::Red, TipVerdict::Intermittent]
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| corrupt("sheriff_pushes", format!("unknown tip verdict `{text}`")))
    }

    /// Whether the tip counts as passing.
    pub fn passes(self) -> bool {
        matches!(self, TipVerdict::Green | TipVerdict::Intermittent)
    }
}

/// A push as seen on the destination.
#[derive(Debug, Clone, Serialize)]
pub struct Push {
    /// Number (pushes of one destination are numbered in the order they happened).
    pub id: i64,
    /// The destination.
    pub repo: String,
    /// Its tip.
    pub tip: String,
    /// The tip before it (none for the baseline).
    pub base: Option<String>,
    /// Its commits, oldest first.
    pub commits: Vec<String>,
    /// Whose.
    pub kind: PushKind,
    /// The request it landed (a landing).
    pub request_id: Option<RequestId>,
    /// The backout it is (a backout).
    pub backout_id: Option<i64>,
    /// What its tip's CI said, once known.
    pub verdict: Option<TipVerdict>,
    /// The first push whose tip failed: the culprit of a red tip.
    pub culprit: bool,
    /// When the sheriff saw it (ms).
    pub created_at: i64,
    /// When its verdict was recorded (ms).
    pub judged_at: Option<i64>,
}

/// A push to record.
#[derive(Debug, Clone)]
pub struct NewPush {
    /// Its tip.
    pub tip: String,
    /// The tip before it.
    pub base: Option<String>,
    /// Its commits, oldest first.
    pub commits: Vec<String>,
    /// Whose.
    pub kind: PushKind,
    /// The request it landed.
    pub request_id: Option<RequestId>,
    /// The backout it is.
    pub backout_id: Option<i64>,
}

/// Where a backout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackoutState {
    /// Recorded; its commit is being made and pushed.
    Pending,
    /// On the destination.
    Landed,
    /// Did not apply on the tip: the destination was closed and an operator told.
    Conflict,
}

impl BackoutState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            BackoutState::Pending => "pending",
            BackoutState::Landed => "landed",
            BackoutState::Conflict => "conflict",
        }
    }

    fn parse(text: &str) -> Result<BackoutState, StoreError> {
        [
            BackoutState::Pending,
            BackoutState::Landed,
            BackoutState::Conflict,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| {
            corrupt(
                "sheriff_backouts",
                format!("unknown backout state `{text}`"),
            )
        })
    }
}

/// A backout of one of Autoland's landings.
#[derive(Debug, Clone, Serialize)]
pub struct Backout {
    /// Number (also in the backout commit's trailer).
    pub id: i64,
    /// The destination.
    pub repo: String,
    /// The culprit push.
    pub push_id: i64,
    /// The request that landed it.
    pub request_id: RequestId,
    /// Where it is.
    pub state: BackoutState,
    /// The failing jobs (for the commit message and the bug).
    pub jobs: String,
    /// The tip the last attempt started from.
    pub attempt_base: Option<String>,
    /// The backout commit, once pushed.
    pub revision: Option<String>,
    /// What went wrong (a conflict).
    pub detail: Option<String>,
    /// Recorded (ms).
    pub created_at: i64,
    /// Landed or stopped (ms).
    pub finished_at: Option<i64>,
}

fn corrupt(table: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt { table, detail }
}

const PUSH_COLUMNS: &str = "id, repo, tip, base, commits, kind, request_id, backout_id, verdict, \
     culprit, created_at, judged_at";

const BACKOUT_COLUMNS: &str = "id, repo, push_id, request_id, state, jobs, attempt_base, \
     revision, detail, created_at, finished_at";

fn push_from_row(row: &AnyRow) -> Result<Push, StoreError> {
    let commits: String = col(row, "commits")?;
    let kind: String = col(row, "kind")?;
    let verdict: Option<String> = col(row, "verdict")?;
    let culprit: i64 = col(row, "culprit")?;
    Ok(Push {
        id: col(row, "id")?,
        repo: col(row, "repo")?,
        tip: col(row, "tip")?,
        base: col(row, "base")?,
        commits: commits.split_whitespace().map(str::to_owned).collect(),
        kind: PushKind::parse(&kind)?,
        request_id: col::<Option<i64>>(row, "request_id")?.map(RequestId),
        backout_id: col(row, "backout_id")?,
        verdict: verdict.as_deref().map(TipVerdict::parse).transpose()?,
        culprit: culprit != 0,
        created_at: col(row, "created_at")?,
        judged_at: col(row, "judged_at")?,
    })
}

fn backout_from_row(row: &AnyRow) -> Result<Backout, StoreError> {
    let state: String = col(row, "state")?;
    Ok(Backout {
        id: col(row, "id")?,
        repo: col(row, "repo")?,
        push_id: col(row, "push_id")?,
        request_id: RequestId(col(row, "request_id")?),
        state: BackoutState::parse(&state)?,
        jobs: col(row, "jobs")?,
        attempt_base: col(row, "attempt_base")?,
        revision: col(row, "revision")?,
        detail: col(row, "detail")?,
        created_at: col(row, "created_at")?,
        finished_at: col(row, "finished_at")?,
    })
}

/// What convicting a push records (see `Store::sheriff_convict`).
#[derive(Debug)]
pub struct Conviction<'a> {
    /// The culprit push.
    pub push: i64,
    /// Who convicts (the sheriff's actor name).
    pub actor: &'a str,
    /// The audit log's action (`backout` or `culprit`) and its detail.
    pub action: &'static str,
    pub detail: &'a str,
    /// Autoland's landing to back out, and the failing jobs the backout names.
    pub backout: Option<(RequestId, &'a str)>,
    /// Close the tree with this reason (unless it is closed already).
    pub close: Option<&'a str>,
}

impl Store {
    /// Records pushes seen on `repo` (oldest first); a tip already recorded is skipped.
    pub async fn sheriff_record_pushes(
        &self,
        repo: &str,
        pushes: &[NewPush],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for push in pushes {
            sqlx::query(
                "INSERT INTO sheriff_pushes (repo, tip, base, commits, kind, request_id, \
                 backout_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (repo, tip) DO NOTHING",
            )
            .bind(repo)
            .bind(&push.tip)
            .bind(&push.base)
            .bind(push.commits.join(" "))
            .bind(push.kind.as_str())
            .bind(push.request_id.map(|r| r.0))
            .bind(push.backout_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The pushes of `repo` after push `after` (0: all), oldest first.
    pub async fn sheriff_pushes_after(
        &self,
        repo: &str,
        after: i64,
    ) -> Result<Vec<Push>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PUSH_COLUMNS} FROM sheriff_pushes WHERE repo = $1 AND id > $2 ORDER BY id"
        ))
        .bind(repo)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(push_from_row).collect()
    }

    /// The newest pushes of `repo`, newest first.
    pub async fn sheriff_recent_pushes(
        &self,
        repo: &str,
        limit: i64,
    ) -> Result<Vec<Push>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PUSH_COLUMNS} FROM sheriff_pushes WHERE repo = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(repo)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(push_from_row).collect()
    }

    /// The newest push of `repo` with a verdict that passes, or a culprit (the pushes
    /// before either need no more looking at): where the next look starts.
    pub async fn sheriff_settled(&self, repo: &str) -> Result<Option<Push>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PUSH_COLUMNS} FROM sheriff_pushes WHERE repo = $1 AND \
             (verdict IN ('green', 'intermittent') OR culprit = 1) ORDER BY id DESC LIMIT 1"
        ))
        .bind(repo)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(push_from_row).transpose()
    }

    /// Records what a push's tip's CI said (a culprit is convicted with
    /// [`Store::sheriff_convict`] instead).
    pub async fn sheriff_judge(&self, push: i64, verdict: TipVerdict) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sheriff_pushes SET verdict = $1, culprit = 0, judged_at = $2 WHERE id = $3",
        )
        .bind(verdict.as_str())
        .bind(now_ms())
        .bind(push)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Queues a CI run of a push's tip, filed under `request` (its landing, or the latest
    /// landing on the destination). Returns the run's number.
    pub async fn sheriff_queue_run(
        &self,
        push: &Push,
        request: RequestId,
        ref_name: &str,
        ci: &str,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO ci_runs (request_id, push_id, repo, revision, ref_name, ci, state, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7) RETURNING id",
        )
        .bind(request.0)
        .bind(push.id)
        .bind(&push.repo)
        .bind(&push.tip)
        .bind(ref_name)
        .bind(ci)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        col(&row, "id")
    }

    /// One push by number.
    pub async fn sheriff_push(&self, id: i64) -> Result<Option<Push>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PUSH_COLUMNS} FROM sheriff_pushes WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(push_from_row).transpose()
    }

    /// The states of the CI runs of every push of `repo` after push `after`, by push,
    /// oldest run first (one query for what [`Store::sheriff_runs`] would read per push).
    pub async fn sheriff_run_states(
        &self,
        repo: &str,
        after: i64,
    ) -> Result<HashMap<i64, Vec<CiState>>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.push_id, r.state FROM ci_runs r JOIN sheriff_pushes p ON p.id = r.push_id \
             WHERE p.repo = $1 AND p.id > $2 ORDER BY r.id",
        )
        .bind(repo)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        let mut states: HashMap<i64, Vec<CiState>> = HashMap::new();
        for row in &rows {
            states
                .entry(col(row, "push_id")?)
                .or_default()
                .push(parse_col(row, "state", "ci_runs")?);
        }
        Ok(states)
    }

    /// Every CI run of a push's tip, oldest first.
    pub async fn sheriff_runs(&self, push: i64) -> Result<Vec<CiRun>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} FROM ci_runs WHERE push_id = $1 ORDER BY id"
        ))
        .bind(push)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// How many post-landing CI runs `repo` has had since `since_ms`.
    pub async fn sheriff_run_count(&self, repo: &str, since_ms: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM ci_runs WHERE repo = $1 AND push_id IS NOT NULL \
             AND created_at >= $2",
        )
        .bind(repo)
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        col(&row, "n")
    }

    /// The request of the latest landing on `repo`, if any.
    pub async fn latest_landing_on(&self, repo: &str) -> Result<Option<RequestId>, StoreError> {
        let row = sqlx::query(
            "SELECT request_id FROM request_destinations WHERE repo = $1 AND \
             landed_revision IS NOT NULL ORDER BY request_id DESC LIMIT 1",
        )
        .bind(repo)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|r| col::<i64>(r, "request_id").map(RequestId))
            .transpose()
    }

    /// The request whose commits carry `uid` in their trailer.
    pub async fn request_of_uid(&self, uid: &str) -> Result<Option<RequestId>, StoreError> {
        let row = sqlx::query("SELECT id FROM requests WHERE uid = $1")
            .bind(uid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|r| col::<i64>(r, "id").map(RequestId))
            .transpose()
    }

    /// Convicts a push in one transaction: its tip is red and it is the culprit, the
    /// audit log says why, and either its backout is queued (`pending`, for Autoland's
    /// own landing) or, for anyone else's push, the tree is closed when `conviction.close`
    /// says so (unless someone closed it already). A crash can never leave a culprit
    /// without its backout or its report. Returns the backout.
    pub async fn sheriff_convict(
        &self,
        repo: &str,
        conviction: &Conviction<'_>,
    ) -> Result<Option<Backout>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE sheriff_pushes SET verdict = 'red', culprit = 1, judged_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(conviction.push)
        .execute(&mut *tx)
        .await?;
        insert_action(conviction.actor, conviction.action, repo, conviction.detail)
            .execute(&mut *tx)
            .await?;
        if let Some((request, jobs)) = conviction.backout {
            sqlx::query(
                "INSERT INTO sheriff_backouts (repo, push_id, request_id, state, jobs, created_at) \
                 VALUES ($1, $2, $3, 'pending', $4, $5) ON CONFLICT (push_id) DO NOTHING",
            )
            .bind(repo)
            .bind(conviction.push)
            .bind(request.0)
            .bind(jobs)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(reason) = conviction.close {
            let closed = sqlx::query(
                "INSERT INTO repository_state (repo, closed, reason, changed_by, changed_at) \
                 VALUES ($1, 1, $2, $3, $4) ON CONFLICT (repo) DO UPDATE SET closed = 1, \
                 reason = $2, changed_by = $3, changed_at = $4 WHERE repository_state.closed = 0",
            )
            .bind(repo)
            .bind(reason)
            .bind(conviction.actor)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if closed.rows_affected() > 0 {
                insert_action(conviction.actor, "close", repo, reason)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let backout = match conviction.backout {
            Some(_) => {
                let row = sqlx::query(&format!(
                    "SELECT {BACKOUT_COLUMNS} FROM sheriff_backouts WHERE push_id = $1"
                ))
                .bind(conviction.push)
                .fetch_one(&mut *tx)
                .await?;
                Some(backout_from_row(&row)?)
            }
            None => None,
        };
        fault::point("sheriff.convict.before_commit");
        tx.commit().await?;
        fault::point("sheriff.convict.after_commit");
        Ok(backout)
    }

    /// The tip a backout's attempt starts from, recorded before its push.
    pub async fn sheriff_backout_attempt(&self, id: i64, base: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sheriff_backouts SET attempt_base = $1 WHERE id = $2")
            .bind(base)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A backout landed (`revision`) or stopped (`detail`).
    pub async fn sheriff_backout_finished(
        &self,
        id: i64,
        state: BackoutState,
        revision: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sheriff_backouts SET state = $1, revision = $2, detail = $3, \
             finished_at = $4 WHERE id = $5",
        )
        .bind(state.as_str())
        .bind(revision)
        .bind(detail)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The backouts of `repo` recorded since `since_ms`, newest first.
    pub async fn sheriff_backouts(
        &self,
        repo: &str,
        since_ms: i64,
    ) -> Result<Vec<Backout>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BACKOUT_COLUMNS} FROM sheriff_backouts WHERE repo = $1 AND \
             created_at >= $2 ORDER BY id DESC"
        ))
        .bind(repo)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(backout_from_row).collect()
    }

    /// The backouts of `repo` still under way.
    pub async fn sheriff_pending_backouts(&self, repo: &str) -> Result<Vec<Backout>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BACKOUT_COLUMNS} FROM sheriff_backouts WHERE repo = $1 AND \
             state = 'pending' ORDER BY id"
        ))
        .bind(repo)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(backout_from_row).collect()
    }
}
