//! What health checks read (`autoland check`): opening an existing database without
//! changing it, and the oldest open request.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, Connection as _};

use super::db::{Backend, Store, StoreError, col};
use crate::request::Stage;

impl Store {
    /// Opens an existing database to read its state: unlike [`Store::connect`] it applies
    /// no migrations (a monitoring check must not change the schema under a running
    /// server, nor fail because the server is newer), never creates a missing SQLite file
    /// (`mode=rwc` is read as `mode=rw`), holds a single connection, and reports a refused
    /// connection at once instead of retrying.
    pub async fn open_existing(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let url = match backend {
            Backend::Sqlite => without_create(url),
            Backend::Postgres => url.to_owned(),
        };
        // One attempt first: the pool retries refused connections until its acquire
        // timeout, which would turn "connection refused" into a silent wait.
        AnyConnection::connect(&url).await?.close().await?;
        let options = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30));
        let pool = match backend {
            Backend::Sqlite => {
                options
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::query("PRAGMA busy_timeout = 30000")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => options.connect(&url).await?,
        };
        Ok(Store {
            pool,
            backend,
            url: super::db::SecretUrl(url.as_str().into()),
        })
    }

    /// When the oldest request not yet finished (not landed, failed or cancelled) was
    /// created (ms), or `None` when every request is finished.
    pub async fn oldest_open_request_ms(&self) -> Result<Option<i64>, StoreError> {
        let open: Vec<&str> = Stage::ALL
            .into_iter()
            .filter(|stage| !stage.is_terminal())
            .map(Stage::as_str)
            .collect();
        let placeholders: Vec<String> = (1..=open.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT MIN(created_at) AS oldest FROM requests WHERE stage IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for stage in open {
            query = query.bind(stage);
        }
        let row = query.fetch_one(&self.pool).await?;
        col(&row, "oldest")
    }
}

/// A SQLite URL that opens the file only if it exists.
fn without_create(url: &str) -> String {
    match url.split_once('?') {
        Some((base, query)) => {
            let params: Vec<&str> = query
                .split('&')
                .map(|p| if p == "mode=rwc" { "mode=rw" } else { p })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_read_never_creates_the_file() {
        assert_eq!(
            without_create("sqlite:///d/autoland.db?mode=rwc"),
            "sqlite:///d/autoland.db?mode=rw"
        );
        assert_eq!(
            without_create("sqlite://a.db?cache=shared&mode=rwc"),
            "sqlite://a.db?cache=shared&mode=rw"
        );
        assert_eq!(without_create("sqlite://a.db"), "sqlite://a.db");
    }
}
