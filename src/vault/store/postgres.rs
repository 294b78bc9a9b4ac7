//! The PostgreSQL backend (`postgres://...`), shared by replicas: the pool, the fleet-wide
//! locks (transaction-scoped advisory locks, bounded so a vanished holder cannot block others
//! for long) and the listener for change notifications.

use std::time::Duration;

use sqlx::Connection;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::postgres::{PgConnection, PgListener, PgPool, PgPoolOptions};

use super::{ACQUIRE_TIMEOUT, BeginWrite, ReleaseCheck, Store, StoreError};
use crate::vault::owner::Owner;

/// The channel PostgreSQL notifies on every vault change.
const CHANGE_CHANNEL: &str = "keygate_vault";

/// Opens a pool on the database at `url`.
pub(super) async fn open(url: &str) -> Result<PgPool, StoreError> {
    Ok(PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_release(postgres_reusable)
        .connect(url)
        .await?)
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// As `sqlite::sqlite_reusable`, for PostgreSQL (whose rollbacks sqlx tracks itself).
fn postgres_reusable(conn: &mut PgConnection, _: PoolConnectionMetadata) -> ReleaseCheck<'_> {
    let reusable = !conn.is_in_transaction();
    if !reusable {
        tracing::warn!("a vault connection was left inside a transaction; closing it");
    }
    Box::pin(std::future::ready(Ok(reusable)))
}

/// A fleet-wide lock held until [`StoreLock::release`] (or drop, which releases it when the
/// connection is next used).
pub(crate) struct StoreLock {
    tx: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
}

impl StoreLock {
    pub(crate) async fn release(mut self) {
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
const LOCK_HOLD_LIMIT: Duration = Duration::from_secs(10);

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
        owner.kind.as_str(),
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

impl Store {
    /// Holds a fleet-wide lock on `owner` until released (PostgreSQL: a transaction-scoped
    /// advisory lock, so replicas refreshing the same token take turns; waits at most `wait`).
    /// SQLite serves one process, whose callers already merge concurrent work: no lock.
    ///
    /// The lock is bounded: its session is ended by PostgreSQL once idle in its transaction for
    /// [`LOCK_HOLD_LIMIT`] (a replica that vanished while its connection stays open), and a
    /// waiter ends holders idle that long which lack that limit (older versions, other tools).
    pub(crate) async fn lock(
        &self,
        owner: &Owner,
        wait: Duration,
    ) -> Result<StoreLock, StoreError> {
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

    /// A listener for change notifications (PostgreSQL only).
    pub(crate) async fn change_listener(&self) -> Result<Option<PgListener>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(CHANGE_CHANNEL).await?;
                Ok(Some(listener))
            }
        }
    }
}
