//! Where sealed records live: SQLite (`sqlite://PATH`, the embedded default: WAL, synchronous
//! FULL) or PostgreSQL (`postgres://...`, shared by replicas), behind one type. Versioned schema
//! migrations are applied when the store opens. A write returns only after the database has
//! committed it. The store sees only ciphertext and metadata, never a secret.
//!
//! [`Store`] and its types are here; the SQL both backends share is in `entries` (the records)
//! and `changes` (change log, used signatures), what differs in `sqlite` and `postgres`,
//! and the schema in `migrations`.

#[macro_use]
mod macros;
mod changes;
mod entries;
mod migrations;
mod postgres;
mod sqlite;

use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

pub(crate) use postgres::StoreLock;
pub use postgres::lock_key;

use super::owner::Owner;

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the vault store is unavailable: {0}")]
    Unavailable(String),
    /// The database cannot be reached at all (connection refused or lost, pool exhausted).
    #[error("the vault store cannot be reached: {0}")]
    Unreachable(String),
    #[error("vault store URL: {0}")]
    Config(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unreachable(error.to_string()),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// A sealed record and what may be known about it without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub owner: Owner,
    pub sealed: Vec<u8>,
    pub kek_id: String,
    /// Changes on every write and is bound into the seal: an older ciphertext replayed into
    /// the row does not open.
    pub version: i64,
    /// Unix seconds; `None` for records that do not expire (API keys).
    pub expires_at: Option<i64>,
    /// Space-separated scopes the record covers (OAuth tokens).
    pub scopes: String,
    pub updated_at: i64,
}

/// Starts a write transaction. SQLite: `BEGIN IMMEDIATE`, which takes the write lock at once and
/// fails if the connection is still inside a transaction, so a write is never nested in one left
/// open (whose `COMMIT` would then commit nothing).
trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

/// What a pool's `after_release` check returns: keep the connection or close it.
type ReleaseCheck<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send + 'c>>;

#[derive(Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Opens (creating an SQLite file if needed) and migrates the store at `url`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let store = if let Some(path) = url.strip_prefix("sqlite://") {
            Store::Sqlite(sqlite::open(url, path).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::Postgres(postgres::open(url).await?)
        } else {
            return Err(StoreError::Config(
                "expected sqlite:// or postgres://".into(),
            ));
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Every connection is open and in use: a pool timeout now means load, not an outage.
    pub(crate) fn saturated(&self) -> bool {
        on_pool!(self, |pool| {
            pool.size() >= pool.options().get_max_connections() && pool.num_idle() == 0
        })
    }

    /// Whether the database answers (for readiness), within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let ping = async {
            on_pool!(self, |pool| sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .is_ok())
        };
        tokio::time::timeout(timeout, ping).await.unwrap_or(false)
    }

    /// A write that changes nothing (readiness: can the store write at all, e.g. with a full
    /// disk?). Returns once committed.
    pub(crate) async fn probe_write(&self) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE keygate_schema SET applied_at = applied_at WHERE version = 1";
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(SQL).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

/// Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
