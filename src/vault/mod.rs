//! The token vault: everything secret that keygate keeps (OAuth tokens, API keys, client
//! secrets, signing keys, pending consent tokens), sealed under a key hierarchy ([`keys`],
//! [`seal`]), bound to its owner so isolation is structural, stored in SQLite or PostgreSQL
//! ([`store`]), with decrypted values cached (moka) in front.
//!
//! The cache is invalidated on every write and delete here, and by a watcher that follows the
//! store's change log, so writes by other processes (replicas, `keygate vault revoke`) take
//! effect within a second. A record that fails to open is logged, counted and treated as
//! absent; a store that cannot be reached is an error, never "no credential".
//!
//! The façade [`Vault`] is here with its reads and writes; the rest is split by concern:
//! `owner` (who a record belongs to, [`OwnerKind`]), `cache` (the moka cache and its expiry),
//! `breaker` (failing fast while the store is down, write health), `sync` (change watcher and
//! PostgreSQL notifications), `lock` (fleet-wide locks), `rotation` (key reload and re-sealing).

mod breaker;
mod cache;
pub mod credential;
pub(crate) mod keys;
mod lock;
mod owner;
mod rotation;
pub mod seal;
pub mod store;
mod sync;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use moka::future::Cache;
use prometheus::{IntCounter, IntCounterVec};

pub use credential::{Credential, OAuthTokens};
pub use keys::{Kek, KeyError, KeyRing};
pub use owner::{Owner, OwnerKind};
pub(crate) use seal::SealError;
pub use store::{Entry, Store, StoreError};

use crate::config::VaultConfig;
use crate::metrics::Metrics;

/// Why a vault call failed. A record that fails to open is not an error (it reads as absent).
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Unavailable(#[from] StoreError),
    #[error("a token is larger than 4 KB; nothing was stored")]
    TooLarge,
    #[error("sealing failed: {0}")]
    Seal(#[from] SealError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Counters the vault updates.
#[derive(Clone)]
pub struct VaultMetrics {
    lookups: IntCounterVec,
    integrity_errors: IntCounter,
}

impl VaultMetrics {
    pub fn from(metrics: &Metrics) -> Self {
        VaultMetrics {
            lookups: metrics.vault_lookups_total.clone(),
            integrity_errors: metrics.vault_integrity_errors_total.clone(),
        }
    }

    fn lookup(&self, result: &str) {
        self.lookups.with_label_values(&[result]).inc();
    }
}

/// The vault: sealed records in a store, opened credentials cached in front. Cheap to share
/// (`Arc<Vault>`); every call is safe from any task.
pub struct Vault {
    store: Store,
    /// Fails store calls fast while the database cannot be reached.
    breaker: breaker::Breaker,
    /// The last write failed (a full disk, a read-only database): readiness fails until a write
    /// or the change watcher's probe succeeds again.
    writes_failing: AtomicBool,
    ring: ArcSwap<KeyRing>,
    cache: Cache<Owner, Arc<Credential>>,
    metrics: Option<VaultMetrics>,
    /// How far this process has followed the store's change log.
    changes: sync::ChangeLogPosition,
    lock_slots: Arc<tokio::sync::Semaphore>,
}

impl Vault {
    /// Loads the keys, opens and migrates the store.
    pub async fn open(
        config: &VaultConfig,
        metrics: Option<VaultMetrics>,
    ) -> Result<Arc<Vault>, VaultError> {
        let ring = KeyRing::load(&config.key, &config.previous_keys)?;
        let store = Store::open(&config.store).await?;
        let last_change = store.latest_change().await?;
        Ok(Arc::new(Vault {
            store,
            breaker: breaker::Breaker::default(),
            writes_failing: AtomicBool::new(false),
            ring: ArcSwap::from_pointee(ring),
            cache: cache::new_cache(config.cache_capacity),
            metrics,
            changes: sync::ChangeLogPosition::new(last_change),
            lock_slots: lock::lock_slots(),
        }))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Seals and stores `credential` for `owner`; returns once the store has committed it.
    pub async fn put(&self, owner: &Owner, credential: &Credential) -> Result<(), VaultError> {
        self.put_until(owner, credential, credential.expires_at())
            .await
    }

    /// As [`Vault::put`], with an explicit expiry (unix seconds) for the record.
    pub async fn put_until(
        &self,
        owner: &Owner,
        credential: &Credential,
        expires_at: Option<i64>,
    ) -> Result<(), VaultError> {
        let entry = self.seal_entry(owner, credential, expires_at)?;
        self.written(self.store.put(&entry)).await?;
        self.cache.invalidate(owner).await;
        Ok(())
    }

    /// A new record for `owner` holding `credential`, sealed under the current key.
    fn seal_entry(
        &self,
        owner: &Owner,
        credential: &Credential,
        expires_at: Option<i64>,
    ) -> Result<Entry, VaultError> {
        if !credential.within_limits() {
            return Err(VaultError::TooLarge);
        }
        let plaintext = credential
            .to_wire()
            .map_err(|_| VaultError::Seal(SealError::Malformed))?;
        let ring = self.ring.load();
        let version = seal::new_version()?;
        Ok(Entry {
            owner: owner.clone(),
            sealed: seal::seal(&ring, owner, version, &plaintext)?,
            kek_id: ring.current.id.clone(),
            version,
            expires_at,
            scopes: credential.scopes(),
            updated_at: store::now(),
        })
    }

    /// Stores `credential` only if `owner` has no record yet; true when stored.
    pub(crate) async fn put_new(
        &self,
        owner: &Owner,
        credential: &Credential,
    ) -> Result<bool, VaultError> {
        let entry = self.seal_entry(owner, credential, credential.expires_at())?;
        let inserted = self.written(self.store.insert_new(&entry)).await?;
        self.cache.invalidate(owner).await;
        Ok(inserted)
    }

    /// The record as the store has it now, with its version for [`Vault::replace_version`].
    pub(crate) async fn get_versioned(
        &self,
        owner: &Owner,
    ) -> Result<Option<(i64, Credential)>, VaultError> {
        let entry = self.guarded(self.store.get(owner)).await?;
        Ok(entry.and_then(|e| self.open_live(owner, &e).map(|c| (e.version, c))))
    }

    /// The record as the store has it now with its version, expired or not (a token past its
    /// expiry may still be refreshed).
    pub(crate) async fn stored(
        &self,
        owner: &Owner,
    ) -> Result<Option<(i64, Credential)>, VaultError> {
        self.cache.invalidate(owner).await;
        let entry = self.guarded(self.store.get(owner)).await?;
        Ok(entry.and_then(|e| self.open_entry(owner, &e).map(|c| (e.version, c))))
    }

    /// The credential in a record read straight from the store: `None` once it expired, and
    /// for a record that fails to open (logged and counted).
    fn open_live(&self, owner: &Owner, entry: &Entry) -> Option<Credential> {
        if entry.expires_at.is_some_and(|at| at <= store::now()) {
            return None;
        }
        self.open_entry(owner, entry)
    }

    /// The credential in a record read straight from the store, `None` for a record that
    /// fails to open (logged and counted).
    fn open_entry(&self, owner: &Owner, entry: &Entry) -> Option<Credential> {
        self.open_sealed(owner, entry)
            .inspect_err(|error| self.integrity_error(owner, *error))
            .ok()
    }

    /// Opens the credential sealed in `entry` for `owner`.
    fn open_sealed(&self, owner: &Owner, entry: &Entry) -> Result<Credential, SealError> {
        let plaintext = seal::open(&self.ring.load(), owner, entry.version, &entry.sealed)?;
        Credential::from_wire(&plaintext).map_err(|_| SealError::Malformed)
    }

    /// Logs and counts a record that failed to open (it is treated as absent).
    fn integrity_error(&self, owner: &Owner, error: SealError) {
        tracing::error!(
            kind = owner.kind.as_str(),
            workload = %owner.workload,
            provider = %owner.provider,
            %error,
            "vault record failed to open; treating it as absent"
        );
        if let Some(m) = &self.metrics {
            m.integrity_errors.inc();
        }
    }

    /// Replaces the record only if it is still at `version` (read-modify-write without lost
    /// updates); true when replaced.
    pub(crate) async fn replace_version(
        &self,
        owner: &Owner,
        version: i64,
        credential: &Credential,
        expires_at: Option<i64>,
    ) -> Result<bool, VaultError> {
        let entry = self.seal_entry(owner, credential, expires_at)?;
        let replaced = self
            .written(self.store.replace_version(&entry, version))
            .await?;
        self.cache.invalidate(owner).await;
        Ok(replaced)
    }

    /// Records a request signature as used for `memory_secs`: `None` on its first use, else
    /// when it was first used (unix milliseconds).
    pub(crate) async fn first_use(
        &self,
        signature: &str,
        memory_secs: i64,
    ) -> Result<Option<i64>, VaultError> {
        Ok(self
            .guarded(self.store.first_use(signature, store::now() + memory_secs))
            .await?)
    }

    /// How many unexpired records of `kind` one user has (metadata only; nothing is opened).
    pub(crate) async fn count_live_for_user(
        &self,
        kind: impl Into<OwnerKind>,
        user_issuer: &str,
        user_id: &str,
    ) -> Result<usize, VaultError> {
        let kind = kind.into();
        let count = self
            .guarded(self.store.count_live_for_user(kind, user_issuer, user_id))
            .await?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    /// The owners of every record of `kind` (metadata only; nothing is opened).
    pub async fn owners(&self, kind: impl Into<OwnerKind>) -> Result<Vec<Owner>, VaultError> {
        Ok(self.guarded(self.store.owners_of_kind(kind.into())).await?)
    }

    /// Takes a one-time record out of the vault (consent sessions): the first caller gets it,
    /// later ones get `None`, and so does everyone once it has expired.
    pub async fn take(&self, owner: &Owner) -> Result<Option<Credential>, VaultError> {
        self.cache.invalidate(owner).await;
        let entry = self.written(self.store.take(owner)).await?;
        Ok(entry.and_then(|e| self.open_live(owner, &e)))
    }

    /// Deletes the record for `owner`; true when there was one.
    pub async fn delete(&self, owner: &Owner) -> Result<bool, VaultError> {
        let deleted = self.written(self.store.delete(owner)).await?;
        self.cache.invalidate(owner).await;
        Ok(deleted)
    }
}
