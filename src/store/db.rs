//! The connection to the database (SQLite or PostgreSQL, chosen by the URL), its errors,
//! the clock helpers and the row decoders every table's file uses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no (connection, SQL, constraint).
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value is not one the code knows: refuse rather than guess.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The request was not in the stage the caller expected (someone else moved it).
    #[error("request {id} is no longer in stage `{expected}`")]
    StageChanged {
        /// Request.
        id: i64,
        /// The stage the caller expected.
        expected: crate::request::Stage,
    },
    /// The state machine refused the transition.
    #[error(transparent)]
    Illegal(#[from] crate::request::IllegalTransition),
    /// The URL names a database this build does not support.
    #[error(
        "unsupported database URL `{0}`: use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE"
    )]
    UnsupportedUrl(String),
}

impl StoreError {
    /// Whether the database could not be reached (connection refused or cut, the server
    /// shutting down or starting up, the pool out of connections): nothing about the data.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Db(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            StoreError::Db(sqlx::Error::Database(e)) => e.code().is_some_and(|code| {
                // PostgreSQL: admin/crash shutdown, cannot connect now, connection exceptions.
                matches!(code.as_ref(), "57P01" | "57P02" | "57P03") || code.starts_with("08")
            }),
            _ => false,
        }
    }
}

/// Which database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub(super) fn of_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(crate::secrets::scrub(url)))
        }
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The database, shared by every module.
#[derive(Debug, Clone)]
pub struct Store {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
    /// Kept for the connections that must not come from the pool (LISTEN, leadership).
    pub(super) url: SecretUrl,
}

/// A database URL that may hold a password: never printed as is.
#[derive(Clone)]
pub(super) struct SecretUrl(pub(super) std::sync::Arc<str>);

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::secrets::scrub(&self.0))
    }
}

/// Milliseconds since the epoch, the only time format the store uses.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A duration in milliseconds, saturating.
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Connects and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        let pool = match backend {
            Backend::Sqlite => {
                options
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::query("PRAGMA busy_timeout = 30000")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA foreign_keys = ON")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA synchronous = FULL")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => options.max_connections(10).connect(url).await?,
        };
        if backend == Backend::Sqlite {
            // WAL lets readers (the API) run while a writer commits; the setting is
            // stored in the database file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let store = Store {
            pool,
            backend,
            url: SecretUrl(url.into()),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies every migration not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// In a claim's sub-select: on PostgreSQL, concurrent claimers skip rows another
    /// transaction is claiming instead of all picking the same one (SQLite serialises
    /// writers, so it needs nothing).
    pub(super) fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// The database's clock in milliseconds since the epoch, as SQL. Leases and retry
    /// times are written and compared with it, so processes on hosts whose clocks
    /// disagree still agree on when a lease has expired.
    pub(super) fn now_sql(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Reads a column, turning a decoding problem into a [`StoreError`].
pub(super) fn col<T>(row: &AnyRow, name: &str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    Ok(row.try_get::<T, _>(name)?)
}

/// Parses a stored enum strictly.
pub(super) fn parse_col<T: std::str::FromStr>(
    row: &AnyRow,
    name: &str,
    table: &'static str,
) -> Result<T, StoreError> {
    let text: String = col(row, name)?;
    text.parse().map_err(|_| StoreError::Corrupt {
        table,
        detail: format!("column {name} has unknown value `{text}`"),
    })
}

/// Parses an optional stored enum strictly.
pub(super) fn parse_opt_col<T: std::str::FromStr>(
    row: &AnyRow,
    name: &str,
    table: &'static str,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> = col(row, name)?;
    text.map(|t| {
        t.parse().map_err(|_| StoreError::Corrupt {
            table,
            detail: format!("column {name} has unknown value `{t}`"),
        })
    })
    .transpose()
}
