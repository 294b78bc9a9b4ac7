//! Keeping the cache in step with writes made by other processes (replicas, `keygate vault
//! revoke`): a watcher follows the store's change log every second, and on PostgreSQL a
//! `LISTEN` connection reads it at once on each notification. After notifications may have
//! been missed the whole cache is dropped, once the change log can be read again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::owner::{Owner, OwnerKind};
use super::store::{self, Store};
use super::{Vault, VaultError};

/// Changes this recent are read again at every sync, in case a transaction that took its
/// sequence number earlier committed later (PostgreSQL).
const LATE_COMMIT_WINDOW_SECS: i64 = 10;

/// Change-log rows older than this are pruned.
const CHANGE_LOG_RETENTION_SECS: i64 = 3600;

/// The watcher prunes old change-log rows, expired consent records and used signatures once
/// in this many ticks.
const PRUNE_EVERY_TICKS: u64 = 600;

/// How far one process has followed the store's change log.
pub(super) struct ChangeLogPosition {
    /// The newest sequence number acted on.
    last_change: AtomicI64,
    /// A resync could not read the change log: the cache is dropped at the next good read.
    resync_pending: AtomicBool,
    /// Change-log sequence numbers acted on within the late-commit window, with when.
    seen: Mutex<HashMap<i64, i64>>,
}

impl ChangeLogPosition {
    /// Following the log from sequence number `last_change` on.
    pub(super) fn new(last_change: i64) -> Self {
        ChangeLogPosition {
            last_change: AtomicI64::new(last_change),
            resync_pending: AtomicBool::new(false),
            seen: Mutex::default(),
        }
    }

    /// The `changes` not acted on yet (read `now`), remembered as acted on; forgets those
    /// older than the late-commit window starting at `recheck_from`.
    fn unseen(&self, changes: Vec<(i64, Owner)>, now: i64, recheck_from: i64) -> Vec<(i64, Owner)> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.retain(|_, at| *at >= recheck_from - 1);
        changes
            .into_iter()
            .filter(|(seq, _)| seen.insert(*seq, now).is_none())
            .collect()
    }
}

impl Vault {
    /// Invalidates cached values that other processes changed since the last call.
    /// Changes already acted on are not acted on again: the late-commit window re-reads recent
    /// rows at every sync, and dropping their owners' cached values each time would leave
    /// recently changed entries uncached (and unavailable through a store outage).
    pub async fn sync_changes(&self) -> Result<usize, VaultError> {
        let since = self.changes.last_change.load(Ordering::Acquire);
        let now = store::now();
        let recheck_from = now - LATE_COMMIT_WINDOW_SECS;
        let changes = self
            .guarded(self.store.changes_since(since, recheck_from))
            .await?;
        let fresh = self.changes.unseen(changes, now, recheck_from);
        let newest = fresh.iter().map(|(seq, _)| *seq).max().unwrap_or(since);
        for (_, owner) in &fresh {
            self.cache.invalidate(owner).await;
        }
        self.changes.last_change.fetch_max(newest, Ordering::AcqRel);
        Ok(fresh.len())
    }

    /// Follows the store's change log every `every` until the vault is dropped, and on
    /// PostgreSQL also listens for change notifications, which invalidate at once.
    pub fn spawn_change_watcher(self: &Arc<Self>, every: Duration) {
        self.spawn_change_listener();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks: u64 = 0;
            loop {
                tokio::time::sleep(every).await;
                let Some(vault) = weak.upgrade() else { return };
                vault.probe_writes().await;
                vault.follow_changes().await;
                ticks += 1;
                if ticks.is_multiple_of(PRUNE_EVERY_TICKS) {
                    vault.prune().await;
                }
            }
        });
    }

    /// One poll of the change log; after a resync that could not read it, the first good read
    /// drops the whole cache.
    async fn follow_changes(&self) {
        match self.sync_changes().await {
            Ok(_) if self.changes.resync_pending.swap(false, Ordering::AcqRel) => {
                self.invalidate_all();
                tracing::info!("vault store readable again; cache resynchronised");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "vault change log not read; cached values may be stale until it is");
            }
        }
    }

    /// Deletes what nothing reads any more: old change-log rows, expired consent records and
    /// used signatures past their window. Best effort; the next prune retries.
    async fn prune(&self) {
        let _ = self.store.prune_changes(CHANGE_LOG_RETENTION_SECS).await;
        let _ = self.store.prune_expired(OwnerKind::ConsentSession).await;
        let _ = self.store.prune_expired(OwnerKind::ConsentPending).await;
        let _ = self.store.prune_used_signatures().await;
    }

    /// PostgreSQL `LISTEN`: each notification reads the change log at once. A lost connection
    /// is re-established (by sqlx, with back-off); as notifications may have been missed
    /// meanwhile, the whole cache is dropped and the log read again.
    fn spawn_change_listener(self: &Arc<Self>) {
        if !matches!(self.store, Store::Postgres(_)) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut listener = None;
            loop {
                let Some(vault) = weak.upgrade() else { return };
                if listener.is_none() {
                    match vault.store.change_listener().await {
                        Ok(l) => {
                            listener = l;
                            vault.resync("listening for vault changes").await;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot listen for vault changes; polling only until it can");
                            drop(vault);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                }
                let Some(active) = listener.as_mut() else {
                    return;
                };
                drop(vault);
                // Wakes at least every few seconds to notice the vault being dropped.
                let received =
                    tokio::time::timeout(Duration::from_secs(5), active.try_recv()).await;
                let Some(vault) = weak.upgrade() else { return };
                match received {
                    Err(_elapsed) => {}
                    Ok(Ok(Some(_notification))) => {
                        if let Err(error) = vault.sync_changes().await {
                            tracing::warn!(%error, "vault change log not read after a notification");
                        }
                    }
                    // The connection dropped; the next receive reconnects.
                    Ok(Ok(None)) => vault.resync("vault change notifications resumed").await,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "vault change listener failed; reconnecting");
                        listener = None;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }

    /// After notifications may have been missed: reads the change log, then drops the whole
    /// cache as a safety net. While the store cannot be read the cache is kept (cached lookups
    /// keep working through an outage) and the drop waits for the first successful read.
    async fn resync(&self, why: &str) {
        match self.sync_changes().await {
            Ok(_) => {
                self.invalidate_all();
                self.changes.resync_pending.store(false, Ordering::Release);
                tracing::info!("{why}; cache resynchronised");
            }
            Err(error) => {
                self.changes.resync_pending.store(true, Ordering::Release);
                tracing::warn!(%error, "{why}; change log not read yet");
            }
        }
    }
}
