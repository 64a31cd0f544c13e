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

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgListener};
use sqlx::{Any, Connection};

use super::{Backend, Store, StoreError};

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
    pub async fn lock_destination(
        &self,
        repo: &str,
        wait: Duration,
    ) -> Result<Option<DestinationLock>, StoreError> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(DestinationLock { held: None }));
        }
        let key = destination_key(repo);
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        // Only for this transaction: the connection goes back to the pool later.
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(format!("{}ms", wait.as_millis().max(1)))
            .execute(&mut *tx)
            .await?;
        let locked = sqlx::query("SELECT pg_advisory_lock($1, $2)")
            .bind(DESTINATION_CLASS)
            .bind(key)
            .execute(&mut *tx)
            .await;
        match locked {
            Ok(_) => {
                // The lock is the session's: it outlives this transaction.
                tx.commit().await?;
                Ok(Some(DestinationLock {
                    held: Some((conn, key)),
                }))
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                tx.rollback().await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
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

/// Held while pushing to a destination; released on drop.
pub struct DestinationLock {
    held: Option<(PoolConnection<Any>, i32)>,
}

impl Drop for DestinationLock {
    fn drop(&mut self) {
        let Some((mut conn, key)) = self.held.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                        .bind(DESTINATION_CLASS)
                        .bind(key)
                        .execute(&mut *conn)
                        .await;
                    if unlocked.is_err() {
                        // Closing the connection frees the lock too.
                        conn.close_on_drop();
                    }
                });
            }
            Err(_) => conn.close_on_drop(),
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
