//! Module heartbeats: each running module says, every few seconds, that it is alive and
//! what it is doing.

use serde::Serialize;

use super::db::{Store, StoreError, col};

/// One module instance's last heartbeat.
#[derive(Debug, Clone, Serialize)]
pub struct Heartbeat {
    /// Module name (`pusher-1`, `ci-runner`, ...).
    pub module: String,
    /// Process instance (`host:pid`).
    pub instance: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
    /// `running`, `degraded`, `stopped`...
    pub state: String,
    /// What it is doing, or its last error.
    pub detail: String,
    /// How many times the supervisor restarted it after a crash.
    pub restarts: i64,
    /// When the module started (ms).
    pub started_at: i64,
    /// Last beat (ms).
    pub beat_at: i64,
}

impl Store {
    /// Writes (or refreshes) a heartbeat, beating now by the database's clock (which
    /// every process judges ages by).
    pub async fn heartbeat(&self, beat: &Heartbeat) -> Result<(), StoreError> {
        self.upsert_heartbeat(beat, None).await
    }

    /// Writes (or refreshes) a heartbeat that beat at `at_ms`.
    pub async fn heartbeat_at(&self, beat: &Heartbeat, at_ms: i64) -> Result<(), StoreError> {
        self.upsert_heartbeat(beat, Some(at_ms)).await
    }

    async fn upsert_heartbeat(
        &self,
        beat: &Heartbeat,
        at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        // The beat's time: the one given (as $9), or the database's clock.
        let at = if at_ms.is_some() {
            "$9"
        } else {
            self.now_sql()
        };
        let sql = format!(
            "INSERT INTO heartbeats (module, instance, host, pid, state, detail, restarts, \
             started_at, beat_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {at}) \
             ON CONFLICT (module, instance) DO UPDATE SET host = $3, pid = $4, state = $5, \
             detail = $6, restarts = $7, started_at = $8, beat_at = {at}"
        );
        let query = sqlx::query(&sql)
            .bind(&beat.module)
            .bind(&beat.instance)
            .bind(&beat.host)
            .bind(beat.pid)
            .bind(&beat.state)
            .bind(&beat.detail)
            .bind(beat.restarts)
            .bind(beat.started_at);
        match at_ms {
            Some(at) => query.bind(at).execute(&self.pool).await?,
            None => query.execute(&self.pool).await?,
        };
        Ok(())
    }

    /// Every module's last heartbeat.
    pub async fn heartbeats(&self) -> Result<Vec<Heartbeat>, StoreError> {
        let rows = sqlx::query(
            "SELECT module, instance, host, pid, state, detail, restarts, started_at, beat_at \
             FROM heartbeats ORDER BY module, instance",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Heartbeat {
                    module: col(r, "module")?,
                    instance: col(r, "instance")?,
                    host: col(r, "host")?,
                    pid: col(r, "pid")?,
                    state: col(r, "state")?,
                    detail: col(r, "detail")?,
                    restarts: col(r, "restarts")?,
                    started_at: col(r, "started_at")?,
                    beat_at: col(r, "beat_at")?,
                })
            })
            .collect()
    }
}
