//! State set by operators: a closed repository takes no pushes until reopened; a paused
//! module does not run until resumed; a kicked module restarts.

use serde::Serialize;

use super::db::{Store, StoreError, col, now_ms};

/// A repository an operator closed.
#[derive(Debug, Clone, Serialize)]
pub struct ClosedRepository {
    /// Repository name.
    pub repo: String,
    /// Why.
    pub reason: String,
    /// Who closed it.
    pub changed_by: String,
    /// When (ms).
    pub changed_at: i64,
}

impl Store {
    /// Closes (`closed`) or reopens a repository, with its `close`/`reopen` entry in the
    /// audit log (one transaction).
    pub async fn set_repository_closed(
        &self,
        repo: &str,
        closed: bool,
        reason: &str,
        by: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO repository_state (repo, closed, reason, changed_by, changed_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repo) DO UPDATE SET closed = $2, \
             reason = $3, changed_by = $4, changed_at = $5",
        )
        .bind(repo)
        .bind(i64::from(closed))
        .bind(reason)
        .bind(by)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        // The audit entry goes with the change: never a closed tree nobody is named for.
        insert_action(by, if closed { "close" } else { "reopen" }, repo, reason)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every closed repository.
    pub async fn closed_repositories(&self) -> Result<Vec<ClosedRepository>, StoreError> {
        let rows = sqlx::query(
            "SELECT repo, reason, changed_by, changed_at FROM repository_state \
             WHERE closed = 1 ORDER BY repo",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ClosedRepository {
                    repo: col(r, "repo")?,
                    reason: col(r, "reason")?,
                    changed_by: col(r, "changed_by")?,
                    changed_at: col(r, "changed_at")?,
                })
            })
            .collect()
    }

    /// Whether a repository is closed, and why.
    pub async fn repository_closed(
        &self,
        repo: &str,
    ) -> Result<Option<ClosedRepository>, StoreError> {
        Ok(self
            .closed_repositories()
            .await?
            .into_iter()
            .find(|c| c.repo == repo))
    }

    /// Puts a claimed request back without counting an attempt (it waits for something,
    /// such as a repository to reopen).
    pub async fn postpone(
        &self,
        id: crate::request::RequestId,
        owner: &str,
        delay_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "UPDATE requests SET lease_owner = NULL, lease_until = NULL, \
             next_attempt_at = {} + $1 WHERE id = $2 AND lease_owner = $3",
            self.now_sql()
        ))
        .bind(delay_ms)
        .bind(id.0)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The stage a failed request failed in (from its history).
    pub async fn failed_from(
        &self,
        id: crate::request::RequestId,
    ) -> Result<Option<crate::request::Stage>, StoreError> {
        Ok(self
            .events(id)
            .await?
            .into_iter()
            .rev()
            .find(|e| e.to_stage == Some(crate::request::Stage::Failed))
            .and_then(|e| e.from_stage))
    }
}

/// An operator's control over a module (or a group: `pusher` covers `pusher-1`...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleControl {
    /// Module name or group.
    pub module: String,
    /// Paused.
    pub paused: bool,
    /// Raised by each kick.
    pub kick_seq: i64,
    /// Who changed it last.
    pub changed_by: String,
}

impl ModuleControl {
    /// Whether this control applies to module `name`.
    pub fn covers(&self, name: &str) -> bool {
        name == self.module
            || name
                .strip_prefix(self.module.as_str())
                .is_some_and(|rest| rest.starts_with('-'))
    }
}

impl Store {
    /// Pauses or resumes a module (or group).
    pub async fn set_module_paused(
        &self,
        module: &str,
        paused: bool,
        by: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO module_controls (module, paused, kick_seq, changed_by, changed_at) \
             VALUES ($1, $2, 0, $3, $4) ON CONFLICT (module) DO UPDATE SET paused = $2, \
             changed_by = $3, changed_at = $4",
        )
        .bind(module)
        .bind(i64::from(paused))
        .bind(by)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Asks a module (or group) to restart.
    pub async fn kick_module(&self, module: &str, by: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO module_controls (module, paused, kick_seq, changed_by, changed_at) \
             VALUES ($1, 0, 1, $2, $3) ON CONFLICT (module) DO UPDATE SET \
             kick_seq = module_controls.kick_seq + 1, changed_by = $2, changed_at = $3",
        )
        .bind(module)
        .bind(by)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every module control.
    pub async fn module_controls(&self) -> Result<Vec<ModuleControl>, StoreError> {
        let rows = sqlx::query(
            "SELECT module, paused, kick_seq, changed_by FROM module_controls ORDER BY module",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ModuleControl {
                    module: col(r, "module")?,
                    paused: col::<i64>(r, "paused")? != 0,
                    kick_seq: col(r, "kick_seq")?,
                    changed_by: col(r, "changed_by")?,
                })
            })
            .collect()
    }
}

/// One operator action, for the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct OperatorAction {
    /// When (ms).
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What (`retry`, `cancel`, `close`, `reopen`, `pause`, `resume`, `kick`).
    pub action: String,
    /// On what (`request 12`, `central`, `pusher`).
    pub target: String,
    /// More.
    pub detail: String,
}

/// The statement that adds an entry to the audit log, for the pool or a transaction.
pub(super) fn insert_action<'q>(
    actor: &'q str,
    action: &'q str,
    target: &'q str,
    detail: &'q str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(
        "INSERT INTO operator_actions (at, actor, action, target, detail) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(now_ms())
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(detail)
}

impl Store {
    /// Records an operator action.
    pub async fn record_action(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        insert_action(actor, action, target, detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The latest operator actions, newest first.
    pub async fn recent_actions(&self, limit: i64) -> Result<Vec<OperatorAction>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, target, detail FROM operator_actions \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OperatorAction {
                    at: col(r, "at")?,
                    actor: col(r, "actor")?,
                    action: col(r, "action")?,
                    target: col(r, "target")?,
                    detail: col(r, "detail")?,
                })
            })
            .collect()
    }
}
