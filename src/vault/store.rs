//! Where sealed records live: SQLite (`sqlite://PATH`, the embedded default: WAL, synchronous
//! FULL) or PostgreSQL (`postgres://...`, shared by replicas), behind one type. Versioned schema
//! migrations are applied when the store opens. A write returns only after the database has
//! committed it. The store sees only ciphertext and metadata, never a secret.

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row};

use super::seal::Owner;

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

/// One schema change, in each dialect.
struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
    version: 1,
    sqlite: "CREATE TABLE vault_entries (
        kind TEXT NOT NULL, workload TEXT NOT NULL, user_issuer TEXT NOT NULL, user_id TEXT NOT NULL,
        provider TEXT NOT NULL, qualifier TEXT NOT NULL,
        sealed BLOB NOT NULL, kek_id TEXT NOT NULL, record_version BIGINT NOT NULL,
        expires_at BIGINT, scopes TEXT NOT NULL, updated_at BIGINT NOT NULL,
        PRIMARY KEY (kind, workload, user_issuer, user_id, provider, qualifier))",
    postgres: "CREATE TABLE vault_entries (
        kind TEXT NOT NULL, workload TEXT NOT NULL, user_issuer TEXT NOT NULL, user_id TEXT NOT NULL,
        provider TEXT NOT NULL, qualifier TEXT NOT NULL,
        sealed BYTEA NOT NULL, kek_id TEXT NOT NULL, record_version BIGINT NOT NULL,
        expires_at BIGINT, scopes TEXT NOT NULL, updated_at BIGINT NOT NULL,
        PRIMARY KEY (kind, workload, user_issuer, user_id, provider, qualifier))",
    },
    // Every write and delete is recorded here, so other processes (replicas, the CLI) can
    // invalidate their caches: readers poll for sequence numbers above the last they saw.
    Migration {
        version: 2,
        sqlite: "CREATE TABLE vault_changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, workload TEXT NOT NULL,
            user_issuer TEXT NOT NULL, user_id TEXT NOT NULL, provider TEXT NOT NULL, qualifier TEXT NOT NULL,
            changed_at BIGINT NOT NULL)",
        postgres: "CREATE TABLE vault_changes (
            seq BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, workload TEXT NOT NULL,
            user_issuer TEXT NOT NULL, user_id TEXT NOT NULL, provider TEXT NOT NULL, qualifier TEXT NOT NULL,
            changed_at BIGINT NOT NULL)",
    },
    // PostgreSQL tells every listening replica about each change as it commits (LISTEN
    // keygate_vault), so caches are invalidated in milliseconds; the change log stays the
    // durable record that polling and resyncs read.
    Migration {
        version: 3,
        sqlite: "SELECT 1",
        postgres: "CREATE OR REPLACE FUNCTION keygate_vault_notify() RETURNS trigger AS $$
            BEGIN PERFORM pg_notify('keygate_vault', NEW.seq::text); RETURN NEW; END;
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER keygate_vault_changed AFTER INSERT ON vault_changes
            FOR EACH ROW EXECUTE FUNCTION keygate_vault_notify();",
    },
    // Readers re-read recent changes by time (see `changes_since`).
    Migration {
        version: 4,
        sqlite: "CREATE INDEX vault_changes_changed_at ON vault_changes (changed_at)",
        postgres: "CREATE INDEX vault_changes_changed_at ON vault_changes (changed_at)",
    },
    // Signatures of identity API requests already served, so a captured request cannot be
    // replayed within its validity window (on any replica sharing the store).
    Migration {
        version: 5,
        sqlite: "CREATE TABLE used_signatures (signature TEXT PRIMARY KEY, first_used_ms BIGINT NOT NULL, expires_at BIGINT NOT NULL)",
        postgres: "CREATE TABLE used_signatures (signature TEXT PRIMARY KEY, first_used_ms BIGINT NOT NULL, expires_at BIGINT NOT NULL)",
    },
];

/// The advisory-lock key every replica takes before touching the schema.
const MIGRATION_LOCK: i64 = 7_316_520_001;

/// The channel PostgreSQL notifies on every vault change.
pub const CHANGE_CHANNEL: &str = "keygate_vault";

const RECORD_CHANGE: &str = "INSERT INTO vault_changes (kind, workload, user_issuer, user_id, provider, qualifier, changed_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

const OWNER_MATCH: &str = "kind = $1 AND workload = $2 AND user_issuer = $3 AND user_id = $4 AND provider = $5 AND qualifier = $6";

/// Runs the same statement on whichever pool the store has.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            Store::Sqlite($pool) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

/// Binds the six owner columns, in `OWNER_MATCH` order ($1..$6).
macro_rules! bind_owner {
    ($query:expr, $owner:expr) => {
        $query
            .bind($owner.kind)
            .bind(&$owner.workload)
            .bind(&$owner.user_issuer)
            .bind(&$owner.user_id)
            .bind(&$owner.provider)
            .bind(&$owner.qualifier)
    };
}

/// Binds an entry's record columns after the owner's ($7..$12, in the order of `put`).
macro_rules! bind_record {
    ($query:expr, $entry:expr) => {
        $query
            .bind(&$entry.sealed)
            .bind(&$entry.kek_id)
            .bind($entry.expires_at)
            .bind(&$entry.scopes)
            .bind($entry.updated_at)
            .bind($entry.version)
    };
}

/// An [`Owner`] from a row holding the six owner columns.
macro_rules! owner_from_row {
    ($row:expr) => {
        Owner {
            kind: super::seal::kind_name(&$row.try_get::<String, _>("kind")?),
            workload: $row.try_get("workload")?,
            user_issuer: $row.try_get("user_issuer")?,
            user_id: $row.try_get("user_id")?,
            provider: $row.try_get("provider")?,
            qualifier: $row.try_get("qualifier")?,
        }
    };
}

/// An [`Entry`] from a row holding the record columns, for `owner`.
macro_rules! entry_from_row {
    ($row:expr, $owner:expr) => {
        Entry {
            owner: $owner,
            sealed: $row.try_get("sealed")?,
            kek_id: $row.try_get("kek_id")?,
            version: $row.try_get("record_version")?,
            expires_at: $row.try_get("expires_at")?,
            scopes: $row.try_get("scopes")?,
            updated_at: $row.try_get("updated_at")?,
        }
    };
}

/// Appends a change row for `owner` inside transaction `tx`.
macro_rules! record_change {
    ($tx:ident, $owner:expr) => {
        bind_owner!(sqlx::query(RECORD_CHANGE), $owner)
            .bind(now())
            .execute(&mut *$tx)
            .await?
    };
}

/// Starts a write transaction. SQLite: `BEGIN IMMEDIATE`, which takes the write lock at once and
/// fails if the connection is still inside a transaction, so a write is never nested in one left
/// open (whose `COMMIT` would then commit nothing).
trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
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

/// What a pool's `after_release` check returns: keep the connection or close it.
type ReleaseCheck<'c> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send + 'c>>;

/// As [`sqlite_reusable`], for PostgreSQL (whose rollbacks sqlx tracks itself).
fn postgres_reusable(conn: &mut PgConnection, _: PoolConnectionMetadata) -> ReleaseCheck<'_> {
    let reusable = !conn.is_in_transaction();
    if !reusable {
        tracing::warn!("a vault connection was left inside a transaction; closing it");
    }
    Box::pin(std::future::ready(Ok(reusable)))
}

/// A fleet-wide lock held until [`StoreLock::release`] (or drop, which releases it when the
/// connection is next used).
pub struct StoreLock {
    tx: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
}

impl StoreLock {
    pub async fn release(mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.rollback().await;
        }
    }
}

/// Longest a fleet-wide lock's session may sit idle in its transaction before PostgreSQL ends
/// it (releasing the lock). As long as a refresh may take (a discovery fetch and a token
/// request, 5 s each at most; a holder ended sooner only loses the lock, its write is still a
/// compare-and-swap), and shorter than a waiter waits, so a vanished holder blocks a user for
/// seconds, not hours.
pub const LOCK_HOLD_LIMIT: Duration = Duration::from_secs(10);
/// A waiter for a lock looks for stale holders this often.
const LOCK_ATTEMPT: Duration = Duration::from_secs(3);

/// One attempt at the advisory lock for `key`, waiting at most `wait`.
async fn try_lock(
    pool: &PgPool,
    key: i64,
    wait: Duration,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "SET LOCAL idle_in_transaction_session_timeout = '{}ms'",
        LOCK_HOLD_LIMIT.as_millis()
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "SET LOCAL lock_timeout = '{}ms'",
        wait.as_millis().max(1)
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// PostgreSQL's `lock_not_available`: the lock was not granted within `lock_timeout`.
fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "55P03")
}

/// Ends the sessions holding the advisory lock `key` that have sat idle in their transaction
/// for longer than [`LOCK_HOLD_LIMIT`] (their holder is gone; PostgreSQL rolls them back).
async fn end_stale_holders(pool: &PgPool, key: i64) -> Result<(), sqlx::Error> {
    // A bigint advisory key is stored as two 32-bit halves (classid high, objid low).
    let bits = u64::from_ne_bytes(key.to_ne_bytes());
    let (high, low) = (
        i64::try_from(bits >> 32).unwrap_or(0),
        i64::try_from(bits & 0xffff_ffff).unwrap_or(0),
    );
    let ended = sqlx::query(
        "SELECT pg_terminate_backend(a.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.classid::bigint = $1 AND l.objid::bigint = $2
           AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
           AND a.state_change < now() - make_interval(secs => $3)",
    )
    .bind(high)
    .bind(low)
    .bind(LOCK_HOLD_LIMIT.as_secs_f64())
    .fetch_all(pool)
    .await?;
    if !ended.is_empty() {
        tracing::warn!(
            sessions = ended.len(),
            "ended database sessions that held a vault lock while idle (their holder is gone)"
        );
    }
    Ok(())
}

/// The advisory-lock key of an owner: 64 bits of a SHA-256 over its fields.
pub fn lock_key(owner: &Owner) -> i64 {
    let text = format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
        owner.kind,
        owner.workload,
        owner.user_issuer,
        owner.user_id,
        owner.provider,
        owner.qualifier
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest.as_ref()[..8]);
    i64::from_be_bytes(bytes)
}

#[derive(Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Opens (creating an SQLite file if needed) and migrates the store at `url`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let store = if let Some(path) = url.strip_prefix("sqlite://") {
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
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .after_release(sqlite_reusable)
                .connect_with(options)
                .await?;
            Store::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .after_release(postgres_reusable)
                .connect(url)
                .await?;
            Store::Postgres(pool)
        } else {
            return Err(StoreError::Config(
                "expected sqlite:// or postgres://".into(),
            ));
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations this database has not seen, all in one transaction. On
    /// PostgreSQL that transaction first takes an advisory lock, so every DDL statement (the
    /// schema table's own included) runs under it: replicas starting together on a fresh
    /// database migrate once, one after the other, and the later ones find the work done.
    async fn migrate(&self) -> Result<(), StoreError> {
        const CREATE: &str = "CREATE TABLE IF NOT EXISTS keygate_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";
        on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            if matches!(self, Store::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(CREATE).execute(&mut *tx).await?;
            for migration in MIGRATIONS {
                let applied: Option<i64> =
                    sqlx::query("SELECT version FROM keygate_schema WHERE version = $1")
                        .bind(migration.version)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| row.try_get(0))
                        .transpose()?;
                if applied.is_some() {
                    continue;
                }
                let sql = match self {
                    Store::Sqlite(_) => migration.sqlite,
                    Store::Postgres(_) => migration.postgres,
                };
                sqlx::raw_sql(sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO keygate_schema (version, applied_at) VALUES ($1, $2)")
                    .bind(migration.version)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                tracing::info!(version = migration.version, "vault schema migrated");
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Records `signature` as used (now) until `expires_at`. `None` for its first use, else
    /// when it was first used (unix milliseconds). Concurrent first uses on any number of
    /// replicas: one of them inserts, the others read its row.
    pub async fn first_use(
        &self,
        signature: &str,
        expires_at: i64,
    ) -> Result<Option<i64>, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM used_signatures WHERE signature = $1 AND expires_at <= $2")
                .bind(signature)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO used_signatures (signature, first_used_ms, expires_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (signature) DO NOTHING",
            )
            .bind(signature)
            .bind(now_ms())
            .bind(expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let first = if inserted == 1 {
                None
            } else {
                let row =
                    sqlx::query("SELECT first_used_ms FROM used_signatures WHERE signature = $1")
                        .bind(signature)
                        .fetch_one(&mut *tx)
                        .await?;
                Some(row.try_get::<i64, _>(0)?)
            };
            tx.commit().await?;
            Ok(first)
        })
    }

    /// Forgets used signatures whose window has passed.
    pub async fn prune_used_signatures(&self) -> Result<u64, StoreError> {
        on_pool!(self, |pool| {
            Ok(
                sqlx::query("DELETE FROM used_signatures WHERE expires_at <= $1")
                    .bind(now())
                    .execute(pool)
                    .await?
                    .rows_affected(),
            )
        })
    }

    /// How many unexpired records of `kind` belong to one user (across workloads).
    pub async fn count_live_for_user(
        &self,
        kind: &str,
        user_issuer: &str,
        user_id: &str,
    ) -> Result<i64, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT COUNT(*) FROM vault_entries WHERE kind = $1 AND user_issuer = $2 \
                 AND user_id = $3 AND (expires_at IS NULL OR expires_at > $4)",
            )
            .bind(kind)
            .bind(user_issuer)
            .bind(user_id)
            .bind(now())
            .fetch_one(pool)
            .await?;
            Ok(row.try_get::<i64, _>(0)?)
        })
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM keygate_schema")
                .fetch_one(pool)
                .await?;
            Ok(row.try_get::<i64, _>(0)?)
        })
    }

    /// Inserts or replaces the record for `entry.owner`; returns once committed.
    pub async fn put(&self, entry: &Entry) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO vault_entries
            (kind, workload, user_issuer, user_id, provider, qualifier, sealed, kek_id, expires_at, scopes, updated_at, record_version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (kind, workload, user_issuer, user_id, provider, qualifier) DO UPDATE SET
            sealed = excluded.sealed, kek_id = excluded.kek_id, expires_at = excluded.expires_at,
            record_version = excluded.record_version,
            scopes = excluded.scopes, updated_at = excluded.updated_at";
        let o = &entry.owner;
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            bind_record!(bind_owner!(sqlx::query(SQL), o), entry)
                .execute(&mut *tx)
                .await?;
            record_change!(tx, o);
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn get(&self, owner: &Owner) -> Result<Option<Entry>, StoreError> {
        let sql = format!(
            "SELECT sealed, kek_id, record_version, expires_at, scopes, updated_at FROM vault_entries WHERE {OWNER_MATCH}"
        );
        on_pool!(self, |pool| {
            let row = bind_owner!(sqlx::query(&sql), owner)
                .fetch_optional(pool)
                .await?;
            match row {
                None => Ok(None),
                Some(row) => Ok(Some(entry_from_row!(row, owner.clone()))),
            }
        })
    }

    /// Inserts the record only if `entry.owner` has none yet; true when inserted (names created
    /// through the API: of two concurrent creators exactly one wins).
    pub async fn insert_new(&self, entry: &Entry) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO vault_entries
            (kind, workload, user_issuer, user_id, provider, qualifier, sealed, kek_id, expires_at, scopes, updated_at, record_version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (kind, workload, user_issuer, user_id, provider, qualifier) DO NOTHING";
        let o = &entry.owner;
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = bind_record!(bind_owner!(sqlx::query(SQL), o), entry)
                .execute(&mut *tx)
                .await?;
            let inserted = done.rows_affected() > 0;
            if inserted {
                record_change!(tx, o);
            }
            tx.commit().await?;
            Ok(inserted)
        })
    }

    /// Replaces the record only if it still has record version `expected` (compare-and-swap
    /// for read-modify-write: one-time consent completion, API updates). True when replaced.
    pub async fn replace_version(&self, entry: &Entry, expected: i64) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE vault_entries SET sealed = $7, kek_id = $8, expires_at = $9, scopes = $10,
             updated_at = $11, record_version = $12 WHERE {OWNER_MATCH} AND record_version = $13"
        );
        let o = &entry.owner;
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = bind_record!(bind_owner!(sqlx::query(&sql), o), entry)
                .bind(expected)
                .execute(&mut *tx)
                .await?;
            let replaced = done.rows_affected() > 0;
            if replaced {
                record_change!(tx, o);
            }
            tx.commit().await?;
            Ok(replaced)
        })
    }

    /// The owners of every record of one kind, in owner order (no sealed bytes read).
    pub async fn owners_of_kind(&self, kind: &str) -> Result<Vec<Owner>, StoreError> {
        const SQL: &str = "SELECT kind, workload, user_issuer, user_id, provider, qualifier
            FROM vault_entries WHERE kind = $1 ORDER BY workload, user_issuer, user_id, provider, qualifier";
        on_pool!(self, |pool| {
            let rows = sqlx::query(SQL).bind(kind).fetch_all(pool).await?;
            rows.iter()
                .map(|row| Ok(owner_from_row!(row)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// Deletes the record; true when there was one.
    pub async fn delete(&self, owner: &Owner) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM vault_entries WHERE {OWNER_MATCH}");
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = bind_owner!(sqlx::query(&sql), owner)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() > 0 {
                record_change!(tx, owner);
            }
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Every record (sealed bytes included, for rotation), in owner order.
    pub async fn list(&self) -> Result<Vec<Entry>, StoreError> {
        const SQL: &str = "SELECT kind, workload, user_issuer, user_id, provider, qualifier, sealed, kek_id, record_version, expires_at, scopes, updated_at
            FROM vault_entries ORDER BY kind, workload, user_issuer, user_id, provider, qualifier";
        on_pool!(self, |pool| {
            let rows = sqlx::query(SQL).fetch_all(pool).await?;
            rows.iter()
                .map(|row| Ok(entry_from_row!(row, owner_from_row!(row))))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// Takes the record out: reads and deletes it in one statement, so of two concurrent takers
    /// only one gets it (one-time records such as consent sessions).
    pub async fn take(&self, owner: &Owner) -> Result<Option<Entry>, StoreError> {
        let sql = format!(
            "DELETE FROM vault_entries WHERE {OWNER_MATCH} RETURNING sealed, kek_id, record_version, expires_at, scopes, updated_at"
        );
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let row = bind_owner!(sqlx::query(&sql), owner)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            record_change!(tx, owner);
            tx.commit().await?;
            Ok(Some(entry_from_row!(row, owner.clone())))
        })
    }

    /// Holds a fleet-wide lock on `owner` until released (PostgreSQL: a transaction-scoped
    /// advisory lock, so replicas refreshing the same token take turns; waits at most `wait`).
    /// SQLite serves one process, whose callers already merge concurrent work: no lock.
    ///
    /// The lock is bounded: its session is ended by PostgreSQL once idle in its transaction for
    /// [`LOCK_HOLD_LIMIT`] (a replica that vanished while its connection stays open), and a
    /// waiter ends holders idle that long which lack that limit (older versions, other tools).
    pub async fn lock(&self, owner: &Owner, wait: Duration) -> Result<StoreLock, StoreError> {
        let Store::Postgres(pool) = self else {
            return Ok(StoreLock { tx: None });
        };
        let key = lock_key(owner);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = remaining.min(LOCK_ATTEMPT);
            match try_lock(pool, key, attempt).await {
                Ok(tx) => return Ok(StoreLock { tx: Some(tx) }),
                Err(error) if is_lock_timeout(&error) && attempt < remaining => {
                    if let Err(error) = end_stale_holders(pool, key).await {
                        tracing::warn!(%error, "could not look for stale vault lock holders");
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Every connection is open and in use: a pool timeout now means load, not an outage.
    pub fn saturated(&self) -> bool {
        on_pool!(self, |pool| {
            pool.size() >= pool.options().get_max_connections() && pool.num_idle() == 0
        })
    }

    /// A listener for change notifications (PostgreSQL only).
    pub async fn change_listener(&self) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(pool) => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener.listen(CHANGE_CHANNEL).await?;
                Ok(Some(listener))
            }
        }
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
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE keygate_schema SET applied_at = applied_at WHERE version = 1";
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(SQL).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Replaces a record only if it still holds `expected` (compare-and-swap), so a key
    /// rotation never overwrites a newer write. True when replaced.
    pub async fn replace_if_unchanged(
        &self,
        entry: &Entry,
        expected: &[u8],
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE vault_entries SET sealed = $7, kek_id = $8 WHERE {OWNER_MATCH} AND sealed = $9"
        );
        let o = &entry.owner;
        on_pool!(self, |pool| {
            let done = bind_owner!(sqlx::query(&sql), o)
                .bind(&entry.sealed)
                .bind(&entry.kek_id)
                .bind(expected)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// The newest change sequence number (0 when there is none).
    pub async fn latest_change(&self) -> Result<i64, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM vault_changes")
                .fetch_one(pool)
                .await?;
            Ok(row.try_get::<i64, _>(0)?)
        })
    }

    /// Owners changed after `seq`, with the newest sequence number seen.
    ///
    /// Rows changed at or after `recheck_from` (unix seconds) are returned again even below
    /// `seq`: on PostgreSQL sequence numbers are taken at insert, not at commit, so a slow
    /// transaction can commit a lower number after a higher one was already read.
    pub async fn changes_since(
        &self,
        seq: i64,
        recheck_from: i64,
    ) -> Result<Vec<(i64, Owner)>, StoreError> {
        const SQL: &str = "SELECT seq, kind, workload, user_issuer, user_id, provider, qualifier
            FROM vault_changes WHERE seq > $1 OR changed_at >= $2 ORDER BY seq LIMIT 10000";
        on_pool!(self, |pool| {
            let rows = sqlx::query(SQL)
                .bind(seq)
                .bind(recheck_from)
                .fetch_all(pool)
                .await?;
            let mut changes = Vec::with_capacity(rows.len());
            for row in &rows {
                changes.push((row.try_get::<i64, _>("seq")?, owner_from_row!(row)));
            }
            Ok(changes)
        })
    }

    /// Deletes records of `kind` past their expiry (consent sessions: nothing reads them once
    /// expired). Not for OAuth tokens, whose refresh tokens outlive the access token's expiry.
    pub async fn prune_expired(&self, kind: &str) -> Result<u64, StoreError> {
        on_pool!(self, |pool| {
            let done = sqlx::query(
                "DELETE FROM vault_entries WHERE kind = $1 AND expires_at IS NOT NULL AND expires_at < $2",
            )
            .bind(kind)
            .bind(now())
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    /// Forgets change rows older than `age_secs` (readers that far behind resync fully).
    pub async fn prune_changes(&self, age_secs: i64) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM vault_changes WHERE changed_at < $1")
                .bind(now() - age_secs)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

/// Unix milliseconds.
pub fn now_ms() -> i64 {
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
