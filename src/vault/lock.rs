//! Fleet-wide locks on one owner, for work that must happen once across replicas (refreshing
//! a token). On PostgreSQL each lock holds a database connection, so one replica holds a
//! bounded number at once.

use std::sync::Arc;
use std::time::Duration;

use super::owner::Owner;
use super::store::{Store, StoreError, StoreLock};
use super::{Vault, VaultError};

/// Longest a request waits for another replica's refresh of the same token.
const LOCK_WAIT: Duration = Duration::from_secs(15);

/// Fleet-wide locks one replica holds at once (each holds a database connection).
const LOCK_SLOTS: usize = 4;

/// A fleet-wide lock from [`Vault::lock`]; release it when the work is done.
pub struct VaultLock {
    lock: StoreLock,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl VaultLock {
    pub async fn release(self) {
        self.lock.release().await;
    }
}

/// The semaphore bounding the locks one replica holds.
pub(super) fn lock_slots() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(LOCK_SLOTS))
}

impl Vault {
    /// Holds the fleet-wide lock on `owner` for work that must happen once across replicas,
    /// such as refreshing a token: a PostgreSQL advisory lock, bounded so a vanished holder
    /// blocks others for seconds (see `store::postgres`); SQLite serves one process and needs
    /// none.
    pub async fn lock(&self, owner: &Owner) -> Result<VaultLock, VaultError> {
        // On PostgreSQL each lock holds a database connection while its holder needs another
        // for the work: a bounded number of holders keeps the pool from running dry. (SQLite
        // locks hold nothing.)
        let permit = match self.store {
            Store::Sqlite(_) => None,
            Store::Postgres(_) => Some(
                tokio::time::timeout(LOCK_WAIT, self.lock_slots.clone().acquire_owned())
                    .await
                    .map_err(|_| {
                        StoreError::Unavailable("timed out waiting for a vault lock".into())
                    })?
                    .map_err(|_| StoreError::Unavailable("vault closed".into()))?,
            ),
        };
        Ok(VaultLock {
            lock: self.guarded(self.store.lock(owner, LOCK_WAIT)).await?,
            _permit: permit,
        })
    }
}
