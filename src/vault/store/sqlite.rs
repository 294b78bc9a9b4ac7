//! The embedded SQLite backend (`sqlite://PATH`): a private file in WAL mode with synchronous
//! FULL, so a write returns only once it is on disk, and connections that go back to the pool
//! only outside any transaction.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use super::{ACQUIRE_TIMEOUT, BeginWrite, ReleaseCheck, StoreError};

/// Opens the database file at `path` (URL `url`), creating it and its directory if needed.
pub(super) async fn open(url: &str, path: &str) -> Result<SqlitePool, StoreError> {
    if let Some(parent) = std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Config(format!("{}: {e}", parent.display())))?;
    }
    // Created private before SQLite opens it (its -wal and -shm files take the same mode).
    if !std::path::Path::new(path).exists() {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Config(format!("{path}: {e}")))?;
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Config(e.to_string()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5));
    Ok(SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_release(sqlite_reusable)
        .connect_with(options)
        .await?)
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

/// Whether an SQLite connection going back to the pool may be reused: only outside any
/// transaction. After a failed statement (a full disk) SQLite may have ended the transaction
/// itself or kept it open, so sqlx's idea of it can be wrong either way: a connection kept inside
/// a transaction would hold the write lock and turn later writes into savepoints that never
/// commit. `BEGIN` fails inside a transaction; it runs after any rollback sqlx queued.
fn sqlite_reusable(conn: &mut SqliteConnection, _: PoolConnectionMetadata) -> ReleaseCheck<'_> {
    Box::pin(async move {
        let reusable = sqlx::Executor::execute(&mut *conn, "BEGIN").await.is_ok()
            && sqlx::Executor::execute(&mut *conn, "ROLLBACK")
                .await
                .is_ok()
            && !conn.is_in_transaction();
        if !reusable {
            tracing::warn!("a vault connection was left inside a transaction; closing it");
        }
        Ok(reusable)
    })
}
