//! Coordination between processes that share one database, with nothing but the database:
//!
//! - wake-ups: PostgreSQL `NOTIFY` on one channel, `LISTEN`ed to by every process, so an
//!   idle worker starts on new work at once instead of at its next poll;
//! - leadership: a session-level advisory lock held on a connection of its own; whoever
//!   holds it runs the singleton modules, and the lock goes free when that process (or
//!   its connection) dies;
//! - destination locks: an advisory lock per destination repository held while a worker
//!   applies on its tip and pushes, so workers on different hosts land on one repository
//!   one after the other instead of refusing each other's pushes.
//!
//! SQLite serves one process per database: wake-ups stay inside the process, leadership is
//! immediate and the per-process working-copy mutex already orders pushes.

use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgListener};

use super::db::{Backend, Store, StoreError};

/// The channel every process listens on. A payload is `"<module> <sender instance>"`.
const CHANNEL: &str = "autoland_wake";
/// Advisory lock keys (two-int form): the class says what is locked.
const LEADER_CLASS: i32 = 0x416c_0001;
const DESTINATION_CLASS: i32 = 0x416c_0002;

impl Store {
    /// Tells the processes sharing this database that `payload` (`"<module> <sender>"`)
    /// has work. Nothing on SQLite (one process).
    pub async fn notify(&self, payload: &str) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Starts listening for other processes' wake-ups (PostgreSQL only).
    pub async fn listen(&self) -> Result<Option<WakeListener>, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(None),
            Backend::Postgres => {
                let mut listener = PgListener::connect(&self.url.0).await?;
                listener.listen(CHANNEL).await?;
                Ok(Some(WakeListener { inner: listener }))
            }
        }
    }

    /// A connection for holding leadership (not from the pool: the lock lives as long as
    /// this connection).
    pub async fn leadership(&self) -> Result<Leadership, StoreError> {
        let conn = match self.backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url.0).await?;
                // Notice a vanished peer in ~25 s rather than the kernel's two hours, so
                // the lock of a leader whose host disappeared goes free (TCP only;
                // harmless on a Unix socket).
                for setting in [
                    "SET tcp_keepalives_idle = 10",
                    "SET tcp_keepalives_interval = 5",
                    "SET tcp_keepalives_count = 3",
                    "SET tcp_user_timeout = 20000",
                ] {
                    let _ = sqlx::query(setting).execute(&mut conn).await;
                }
                Some(conn)
            }
        };
        Ok(Leadership { conn, held: false })
    }

    /// Takes the lock of destination `repo`, waiting up to `wait` for another process to
    /// finish its push. `None` if it is still busy after that.
    ///
    /// The lock lives on a connection of its own, not one of the pool's: a waiter must not
    /// hold a pooled connection that heartbeats and lease renewals need, and closing the
    /// connection is a sure way to free the lock whatever happened to the step.
    pub async fn lock_destination(
        &self,
        repo: &str,
        wait: Duration,
    ) -> Result<Option<DestinationLock>, StoreError> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(DestinationLock { held: None }));
        }
        let key = destination_key(repo);
        let mut conn = PgConnection::connect(&self.url.0).await?;
        // lock_timeout is an int of milliseconds.
        let wait_ms = u64::try_from(wait.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, i32::MAX as u64);
        let locked = async {
            sqlx::query(&format!("SET lock_timeout = {wait_ms}"))
                .execute(&mut conn)
                .await?;
            sqlx::query("SELECT pg_advisory_lock($1, $2)")
                .bind(DESTINATION_CLASS)
                .bind(key)
                .execute(&mut conn)
                .await
        }
        .await;
        match locked {
            Ok(_) => Ok(Some(DestinationLock {
                held: Some((conn, key)),
            })),
            // lock_not_available, or a statement_timeout set on the server.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("55P03" | "57014")) =>
            {
                let _ = conn.close().await;
                Ok(None)
            }
            Err(e) => {
                let _ = conn.close().await;
                Err(e.into())
            }
        }
    }

    /// The database's clock, in milliseconds since the epoch: the one clock every process
    /// agrees on (heartbeat ages, lease expiry).
    pub async fn clock_ms(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, i64>(&format!("SELECT {}", self.now_sql()))
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// A stable 32-bit key for a repository name (FNV-1a), the same in every process.
fn destination_key(repo: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in repo.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// Other processes' wake-ups.
pub struct WakeListener {
    inner: PgListener,
}

impl WakeListener {
    /// The next payload; `Ok(None)` when the connection dropped (it reconnects on the next
    /// call, and wake-ups sent meanwhile are lost: treat it as "everything may have work").
    pub async fn next(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self.inner.try_recv().await?.map(|n| n.payload().to_owned()))
    }
}

/// A connection that holds, or tries to take, the leadership lock.
pub struct Leadership {
    conn: Option<PgConnection>,
    held: bool,
}

impl Leadership {
    /// Takes the lock if it is free. True if this process now leads.
    pub async fn try_acquire(&mut self) -> Result<bool, StoreError> {
        let Some(conn) = &mut self.conn else {
            self.held = true;
            return Ok(true);
        };
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LEADER_CLASS)
            .bind(0_i32)
            .fetch_one(conn)
            .await?;
        self.held = got;
        Ok(got)
    }

    /// Whether this connection still holds the lock (false once the database restarted or
    /// the connection broke: another process may lead now).
    pub async fn still_held(&mut self) -> Result<bool, StoreError> {
        let Some(conn) = &mut self.conn else {
            return Ok(self.held);
        };
        let held: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
             AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 2 \
             AND pid = pg_backend_pid() AND granted)",
        )
        .bind(i64::from(LEADER_CLASS))
        .bind(0_i64)
        .fetch_one(conn)
        .await?;
        self.held = held;
        Ok(held)
    }

    /// Gives the lock up (closing the connection frees it even if the unlock fails).
    pub async fn release(self) {
        if let Some(conn) = self.conn {
            let _ = conn.close().await;
        }
    }
}

/// Held while pushing to a destination; released on drop (unlocked and its connection
/// closed; if that cannot run, dropping the connection frees the lock as well).
pub struct DestinationLock {
    held: Option<(PgConnection, i32)>,
}

impl Drop for DestinationLock {
    fn drop(&mut self) {
        let Some((mut conn, key)) = self.held.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                    .bind(DESTINATION_CLASS)
                    .bind(key)
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::destination_key;

    #[test]
    fn destination_keys_are_stable_and_distinct() {
        assert_eq!(destination_key("central"), destination_key("central"));
        assert_ne!(destination_key("central"), destination_key("beta"));
        // FNV-1a of the empty string is its offset basis.
        assert_eq!(destination_key(""), 0x811c_9dc5_u32 as i32);
    }
}
