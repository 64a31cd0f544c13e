//! The outbox: reports to a tracker (bug comments, whiteboard edits), written in the same
//! transaction as the state change they report, sent by the outbox module in order per
//! bug, retried until delivered. Also the small key/value state trackers keep (cursor).

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::db::{Store, StoreError, col, now_ms};
use crate::request::RequestId;

/// What a report does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Post `body` as a comment.
    Comment,
    /// Replace the request's autoland tag with `[autoland-in-queue]`.
    MarkInQueue,
    /// Remove the autoland tag (or the in-queue marker) from the whiteboard.
    RemoveTag,
}

impl ReportKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Comment => "comment",
            ReportKind::MarkInQueue => "mark_in_queue",
            ReportKind::RemoveTag => "remove_tag",
        }
    }
}

impl std::str::FromStr for ReportKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            ReportKind::Comment,
            ReportKind::MarkInQueue,
            ReportKind::RemoveTag,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or(())
    }
}

/// A report to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReport {
    /// The bug it goes to.
    pub bug: i64,
    /// What to do.
    pub kind: ReportKind,
    /// The comment text (empty for whiteboard edits).
    pub body: String,
}

/// A queued report.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxItem {
    /// Outbox id (the order of sending within a bug).
    pub id: i64,
    /// The request it reports on.
    pub request_id: RequestId,
    /// Bug.
    pub bug: i64,
    /// What to do.
    pub kind: ReportKind,
    /// Comment text.
    pub body: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When the last attempt started, if one may have reached the tracker.
    pub attempted_at: Option<i64>,
    /// Last error.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub sent_at: Option<i64>,
    /// When it was given up (undeliverable).
    pub abandoned_at: Option<i64>,
}

fn item_from_row(row: &AnyRow) -> Result<OutboxItem, StoreError> {
    Ok(OutboxItem {
        id: col(row, "id")?,
        request_id: RequestId(col(row, "request_id")?),
        bug: col(row, "bug")?,
        kind: super::db::parse_col(row, "kind", "outbox")?,
        body: col(row, "body")?,
        attempts: col(row, "attempts")?,
        attempted_at: col(row, "attempted_at")?,
        last_error: col(row, "last_error")?,
        sent_at: col(row, "sent_at")?,
        abandoned_at: col(row, "abandoned_at")?,
    })
}

const ITEM_COLUMNS: &str =
    "id, request_id, bug, kind, body, attempts, attempted_at, last_error, sent_at, abandoned_at";

pub(super) async fn insert_reports(
    tx: &mut Transaction<'_, Any>,
    id: RequestId,
    reports: &[NewReport],
) -> Result<(), StoreError> {
    let now = now_ms();
    for report in reports {
        sqlx::query(
            "INSERT INTO outbox (request_id, bug, kind, body, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(id.0)
        .bind(report.bug)
        .bind(report.kind.as_str())
        .bind(&report.body)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Reports due now, at most one per bug: the oldest unsent one, so a bug's reports
    /// go out in order and a bug that keeps failing holds up only itself.
    pub async fn due_reports(&self, limit: i64) -> Result<Vec<OutboxItem>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM outbox o \
             WHERE o.sent_at IS NULL AND o.abandoned_at IS NULL AND o.next_attempt_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.bug = o.bug AND p.id < o.id \
                             AND p.sent_at IS NULL AND p.abandoned_at IS NULL) \
             ORDER BY o.id LIMIT $2"
        ))
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(item_from_row).collect()
    }

    /// Records that an attempt starts (durably, before the call): if the process dies
    /// during the call, the next attempt first checks whether it arrived.
    pub async fn report_attempt(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET attempted_at = $1, attempts = attempts + 1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The report arrived.
    pub async fn report_sent(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET sent_at = $1, last_error = NULL WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The attempt failed before reaching the tracker (or was refused): try again later.
    /// `arrived_unknown` keeps `attempted_at` when the call may have arrived.
    pub async fn report_failed(
        &self,
        id: i64,
        error: &str,
        retry_after_ms: i64,
        arrived_unknown: bool,
    ) -> Result<(), StoreError> {
        let sql = if arrived_unknown {
            "UPDATE outbox SET last_error = $1, next_attempt_at = $2 WHERE id = $3"
        } else {
            "UPDATE outbox SET last_error = $1, next_attempt_at = $2, attempted_at = NULL WHERE id = $3"
        };
        sqlx::query(sql)
            .bind(error)
            .bind(now_ms() + retry_after_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The report can never be delivered (the bug is gone or hidden from us).
    pub async fn report_abandoned(&self, id: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET abandoned_at = $1, last_error = $2 WHERE id = $3")
            .bind(now_ms())
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Reports of a request, in order (for the API and tests).
    pub async fn reports_of(&self, id: RequestId) -> Result<Vec<OutboxItem>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM outbox WHERE request_id = $1 ORDER BY id"
        ))
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(item_from_row).collect()
    }

    /// Number of reports not delivered yet (sent or abandoned).
    pub async fn pending_report_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL AND abandoned_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        col(&row, "n")
    }

    /// True while Autoland is busy with a bug: a request for it is open, or reports about
    /// it (such as removing the tag) have not been delivered yet.
    pub async fn bug_is_busy(&self, source: &str, bug: i64) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM requests WHERE source = $1 AND bug = $2 \
                     AND stage NOT IN ('landed', 'failed', 'cancelled')) \
                  + (SELECT COUNT(*) FROM outbox WHERE bug = $2 AND sent_at IS NULL \
                     AND abandoned_at IS NULL) AS n",
        )
        .bind(source)
        .bind(bug)
        .fetch_one(&self.pool)
        .await?;
        Ok(col::<i64>(&row, "n")? > 0)
    }

    /// A tracker's stored value.
    pub async fn tracker_value(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM tracker_state WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| col(r, "value")).transpose()
    }

    /// Stores a tracker value.
    pub async fn set_tracker_value(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tracker_state (name, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET value = $2, updated_at = $3",
        )
        .bind(name)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
