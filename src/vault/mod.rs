//! The token vault: everything secret that keygate keeps (OAuth tokens, API keys, client
//! secrets, signing keys, pending consent tokens), sealed under a key hierarchy ([`keys`],
//! [`seal`]), bound to its owner so isolation is structural, stored in SQLite or PostgreSQL
//! ([`store`]), with decrypted values cached (moka) in front.
//!
//! The cache is invalidated on every write and delete here, and by a watcher that follows the
//! store's change log, so writes by other processes (replicas, `keygate vault revoke`) take
//! effect within a second. A record that fails to open is logged, counted and treated as
//! absent; a store that cannot be reached is an error, never "no credential".

pub mod credential;
pub mod keys;
pub mod seal;
pub mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use moka::Expiry;
use moka::future::Cache;
use prometheus::{IntCounter, IntCounterVec};

pub use credential::{Credential, OAuthTokens};
pub use keys::{Kek, KeyError, KeyRing};
pub use seal::{Owner, SealError};
pub use store::{Entry, Store, StoreError};

use crate::config::VaultConfig;
use crate::metrics::Metrics;

/// Longest a decrypted value stays cached, whatever its expiry.
const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(3600);
/// Changes this recent are read again at every sync, in case a transaction that took its
/// sequence number earlier committed later (PostgreSQL).
const LATE_COMMIT_WINDOW_SECS: i64 = 10;
/// Longest a request waits for another replica's refresh of the same token.
const LOCK_WAIT: Duration = Duration::from_secs(15);
/// Change-log rows older than this are pruned.
const CHANGE_LOG_RETENTION_SECS: i64 = 3600;

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

/// Why a load produced no value (kept out of the cache).
#[derive(Debug)]
enum Miss {
    Absent,
    Integrity,
    Store(StoreError),
}

struct UntilExpiry;

impl Expiry<Owner, Arc<Credential>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &Owner,
        value: &Arc<Credential>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        let lifetime = match value.expires_at() {
            Some(at) => Duration::from_secs(u64::try_from(at - store::now()).unwrap_or(0)),
            None => MAX_CACHE_LIFETIME,
        };
        Some(lifetime.min(MAX_CACHE_LIFETIME))
    }
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

/// What a key rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    pub resealed: usize,
    pub already_current: usize,
    /// Records that failed to open (left as they are, counted as integrity errors).
    pub unreadable: usize,
    /// Records changed by someone else while rotating (they were written under the current key).
    pub raced: usize,
}

/// A fleet-wide lock from [`Vault::lock`]; release it when the work is done.
pub struct VaultLock {
    lock: store::StoreLock,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl VaultLock {
    pub async fn release(self) {
        self.lock.release().await;
    }
}

/// After the store could not be reached, calls fail at once for this long, then one call
/// probes it (the change watcher probes every second) while the others keep failing fast.
const BREAKER_OPEN_MS: i64 = 1000;
/// How long a probe may take before another caller may probe.
const BREAKER_PROBE_MS: i64 = 5000;

/// Fails store calls fast while the database is unreachable, instead of every request
/// waiting out the pool's connect timeout.
#[derive(Default)]
struct Breaker {
    tripped: std::sync::atomic::AtomicBool,
    /// Unix milliseconds before which calls fail without trying.
    closed_from: AtomicI64,
}

impl Breaker {
    /// Runs a store call behind the breaker: refused at once while the store is known to be
    /// unreachable (but one caller at a time probes it), and trips it when the store cannot
    /// be reached.
    /// `saturated` tells a busy pool (every connection in use: not an outage, so it must not
    /// trip the breaker) from a database that cannot be reached.
    async fn guard<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
        saturated: impl Fn() -> bool,
    ) -> Result<T, StoreError> {
        let b = self;
        if b.tripped.load(Ordering::Acquire) {
            let now = now_ms();
            let from = b.closed_from.load(Ordering::Acquire);
            let may_probe = now >= from
                && b.closed_from
                    .compare_exchange(
                        from,
                        now + BREAKER_PROBE_MS,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok();
            if !may_probe {
                return Err(StoreError::Unreachable(
                    "the database could not be reached moments ago; failing fast until it answers"
                        .into(),
                ));
            }
        }
        let result = match call.await {
            Err(StoreError::Unreachable(detail)) if saturated() => {
                Err(StoreError::Unavailable(detail))
            }
            other => other,
        };
        match &result {
            Err(StoreError::Unreachable(_)) => {
                if !b.tripped.swap(true, Ordering::AcqRel) {
                    tracing::error!(
                        "vault store unreachable: failing fast and probing every second"
                    );
                }
                b.closed_from
                    .store(now_ms() + BREAKER_OPEN_MS, Ordering::Release);
            }
            _ => {
                if b.tripped.swap(false, Ordering::AcqRel) {
                    tracing::info!("vault store reachable again");
                }
            }
        }
        result
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Fleet-wide locks one replica holds at once (each holds a database connection).
const LOCK_SLOTS: usize = 4;

pub struct Vault {
    breaker: Breaker,
    lock_slots: Arc<tokio::sync::Semaphore>,
    store: Store,
    ring: ArcSwap<KeyRing>,
    cache: Cache<Owner, Arc<Credential>>,
    metrics: Option<VaultMetrics>,
    last_change: AtomicI64,
    /// The last write failed (a full disk, a read-only database): readiness fails until a write
    /// or the change watcher's probe succeeds again.
    writes_failing: AtomicBool,
    /// A resync could not read the change log: the cache is dropped at the next good read.
    resync_pending: AtomicBool,
    /// Change-log sequence numbers acted on within the late-commit window, with when.
    seen_changes: std::sync::Mutex<std::collections::HashMap<i64, i64>>,
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
            breaker: Breaker::default(),
            lock_slots: Arc::new(tokio::sync::Semaphore::new(LOCK_SLOTS)),
            store,
            ring: ArcSwap::from_pointee(ring),
            cache: Cache::builder()
                .max_capacity(config.cache_capacity)
                .expire_after(UntilExpiry)
                .build(),
            metrics,
            last_change: AtomicI64::new(last_change),
            writes_failing: AtomicBool::new(false),
            resync_pending: AtomicBool::new(false),
            seen_changes: std::sync::Mutex::default(),
        }))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs a store call behind the breaker (see [`Breaker::guard`]).
    async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.breaker.guard(call, || self.store.saturated()).await
    }

    /// Runs a store write behind the breaker and notes whether the store can write.
    async fn written<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = self.guarded(call).await;
        self.note_write(result.is_ok());
        result
    }

    fn note_write(&self, ok: bool) {
        let was_failing = self.writes_failing.swap(!ok, Ordering::AcqRel);
        if was_failing && ok {
            tracing::info!("the vault store accepts writes again");
        } else if !was_failing && !ok {
            tracing::error!("a vault store write failed: not ready until writes succeed again");
        }
    }

    /// Whether the last write to the store failed (and no probe has succeeded since).
    pub fn writes_failing(&self) -> bool {
        self.writes_failing.load(Ordering::Acquire)
    }

    /// While writes fail, tries a write that changes nothing, so readiness recovers on its own
    /// once the store can write again (no traffic reaches a pod that is not ready).
    async fn probe_writes(&self) {
        if self.writes_failing() {
            let ok = self.guarded(self.store.probe_write()).await.is_ok();
            if ok {
                self.note_write(true);
            }
        }
    }

    /// Loads the keys of `config` (a SIGHUP reload): records are sealed by its current key from
    /// now on, and those sealed by any of its keys open. Refused, keeping the keys in use, when
    /// the new keys leave out the current one (records it sealed would no longer open).
    pub fn reload_keys(&self, config: &VaultConfig) -> Result<(), KeyError> {
        let ring = KeyRing::load(&config.key, &config.previous_keys)?;
        let current = self.ring.load();
        if !ring.knows(&current.current.id) {
            return Err(KeyError::CurrentKeyDropped(current.current.id.clone()));
        }
        if ring.current.id != current.current.id {
            tracing::info!(
                from = %current.current.id,
                to = %ring.current.id,
                "vault key changed: new records are sealed by the new key"
            );
        }
        self.ring.store(Arc::new(ring));
        Ok(())
    }

    pub fn current_key_id(&self) -> String {
        self.ring.load().current.id.clone()
    }

    fn count(&self, result: &str) {
        if let Some(m) = &self.metrics {
            m.lookup(result);
        }
    }

    /// The credential for `owner`: from the cache, else from the store (concurrent misses for
    /// one owner make one store read).
    pub async fn get(&self, owner: &Owner) -> Result<Option<Arc<Credential>>, VaultError> {
        if let Some(hit) = self.cache.get(owner).await {
            self.count("cache_hit");
            return Ok(Some(hit));
        }
        let loaded = self
            .cache
            .try_get_with(owner.clone(), self.load(owner))
            .await;
        match loaded {
            Ok(value) => {
                self.count("store_hit");
                Ok(Some(value))
            }
            Err(miss) => match &*miss {
                Miss::Absent => {
                    self.count("absent");
                    Ok(None)
                }
                Miss::Integrity => {
                    self.count("integrity_error");
                    Ok(None)
                }
                Miss::Store(e) => {
                    self.count("unavailable");
                    Err(VaultError::Unavailable(match e {
                        StoreError::Unreachable(detail) => StoreError::Unreachable(detail.clone()),
                        StoreError::Unavailable(detail) => StoreError::Unavailable(detail.clone()),
                        other => StoreError::Unavailable(other.to_string()),
                    }))
                }
            },
        }
    }

    /// The credential as the store has it now, bypassing (and refreshing) the cache.
    pub async fn get_fresh(&self, owner: &Owner) -> Result<Option<Arc<Credential>>, VaultError> {
        self.cache.invalidate(owner).await;
        self.get(owner).await
    }

    async fn load(&self, owner: &Owner) -> Result<Arc<Credential>, Miss> {
        let entry = self
            .guarded(self.store.get(owner))
            .await
            .map_err(Miss::Store)?
            .ok_or(Miss::Absent)?;
        let ring = self.ring.load();
        let plaintext = seal::open(&ring, owner, entry.version, &entry.sealed)
            .map_err(|error| self.integrity_error(owner, error))?;
        let credential = Credential::from_wire(&plaintext)
            .map_err(|_| self.integrity_error(owner, SealError::Malformed))?;
        Ok(Arc::new(credential))
    }

    fn integrity_error(&self, owner: &Owner, error: SealError) -> Miss {
        tracing::error!(
            kind = owner.kind,
            workload = %owner.workload,
            provider = %owner.provider,
            %error,
            "vault record failed to open; treating it as absent"
        );
        if let Some(m) = &self.metrics {
            m.integrity_errors.inc();
        }
        Miss::Integrity
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
    pub async fn put_new(
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
    pub async fn get_versioned(
        &self,
        owner: &Owner,
    ) -> Result<Option<(i64, Credential)>, VaultError> {
        let entry = self.guarded(self.store.get(owner)).await?;
        Ok(entry.and_then(|e| self.open_live(owner, &e).map(|c| (e.version, c))))
    }

    /// The record as the store has it now with its version, expired or not (a token past its
    /// expiry may still be refreshed).
    pub async fn stored(&self, owner: &Owner) -> Result<Option<(i64, Credential)>, VaultError> {
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

    fn open_entry(&self, owner: &Owner, entry: &Entry) -> Option<Credential> {
        let ring = self.ring.load();
        match seal::open(&ring, owner, entry.version, &entry.sealed)
            .map(|p| Credential::from_wire(&p))
        {
            Ok(Ok(credential)) => Some(credential),
            Ok(Err(_)) => {
                self.integrity_error(owner, SealError::Malformed);
                None
            }
            Err(error) => {
                self.integrity_error(owner, error);
                None
            }
        }
    }

    /// Replaces the record only if it is still at `version` (read-modify-write without lost
    /// updates); true when replaced.
    pub async fn replace_version(
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
    pub async fn first_use(
        &self,
        signature: &str,
        memory_secs: i64,
    ) -> Result<Option<i64>, VaultError> {
        Ok(self
            .guarded(self.store.first_use(signature, store::now() + memory_secs))
            .await?)
    }

    /// How many unexpired records of `kind` one user has (metadata only; nothing is opened).
    pub async fn count_live_for_user(
        &self,
        kind: &str,
        user_issuer: &str,
        user_id: &str,
    ) -> Result<usize, VaultError> {
        let count = self
            .guarded(self.store.count_live_for_user(kind, user_issuer, user_id))
            .await?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    /// The owners of every record of `kind` (metadata only; nothing is opened).
    pub async fn owners(&self, kind: &str) -> Result<Vec<Owner>, VaultError> {
        Ok(self.guarded(self.store.owners_of_kind(kind)).await?)
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

    /// Invalidates cached values that other processes changed since the last call.
    /// Changes already acted on are not acted on again: the late-commit window re-reads recent
    /// rows at every sync, and dropping their owners' cached values each time would leave
    /// recently changed entries uncached (and unavailable through a store outage).
    pub async fn sync_changes(&self) -> Result<usize, VaultError> {
        let since = self.last_change.load(Ordering::Acquire);
        let now = store::now();
        let recheck_from = now - LATE_COMMIT_WINDOW_SECS;
        let changes = self
            .guarded(self.store.changes_since(since, recheck_from))
            .await?;
        let fresh: Vec<(i64, Owner)> = {
            let mut seen = self
                .seen_changes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            seen.retain(|_, at| *at >= recheck_from - 1);
            changes
                .into_iter()
                .filter(|(seq, _)| seen.insert(*seq, now).is_none())
                .collect()
        };
        let newest = fresh.iter().map(|(seq, _)| *seq).max().unwrap_or(since);
        for (_, owner) in &fresh {
            self.cache.invalidate(owner).await;
        }
        self.last_change.fetch_max(newest, Ordering::AcqRel);
        Ok(fresh.len())
    }

    /// Forgets every cached value (after notifications may have been missed).
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// Holds the fleet-wide lock on `owner` (see [`Store::lock`]) for work that must happen once
    /// across replicas, such as refreshing a token.
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
                match vault.sync_changes().await {
                    Ok(_) if vault.resync_pending.swap(false, Ordering::AcqRel) => {
                        vault.invalidate_all();
                        tracing::info!("vault store readable again; cache resynchronised");
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "vault change log not read; cached values may be stale until it is");
                    }
                }
                ticks += 1;
                if ticks.is_multiple_of(600) {
                    let _ = vault.store.prune_changes(CHANGE_LOG_RETENTION_SECS).await;
                    let _ = vault.store.prune_expired("consent_session").await;
                    let _ = vault.store.prune_expired("consent_pending").await;
                    let _ = vault.store.prune_used_signatures().await;
                }
            }
        });
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
                self.resync_pending.store(false, Ordering::Release);
                tracing::info!("{why}; cache resynchronised");
            }
            Err(error) => {
                self.resync_pending.store(true, Ordering::Release);
                tracing::warn!(%error, "{why}; change log not read yet");
            }
        }
    }

    /// Re-seals every record not sealed by the current key (compare-and-swap per record, so
    /// writes made meanwhile are kept).
    pub async fn rotate(&self) -> Result<Rotation, VaultError> {
        let ring = self.ring.load();
        let mut report = Rotation::default();
        for entry in self.store.list().await? {
            if entry.kek_id == ring.current.id
                && seal::sealed_by(&entry.sealed).ok() == Some(ring.current.id.as_str())
            {
                report.already_current += 1;
                continue;
            }
            let resealed = match seal::reseal(&ring, &entry.owner, entry.version, &entry.sealed) {
                Ok(bytes) => bytes,
                Err(error) => {
                    let _ = self.integrity_error(&entry.owner, error);
                    report.unreadable += 1;
                    continue;
                }
            };
            let replacement = Entry {
                sealed: resealed,
                kek_id: ring.current.id.clone(),
                ..entry.clone()
            };
            if self
                .store
                .replace_if_unchanged(&replacement, &entry.sealed)
                .await?
            {
                report.resealed += 1;
            } else {
                report.raced += 1;
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod breaker_tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    async fn call(b: &Breaker, ran: &AtomicUsize, up: bool) -> Result<(), StoreError> {
        call_busy(b, ran, up, false).await
    }

    async fn call_busy(
        b: &Breaker,
        ran: &AtomicUsize,
        up: bool,
        saturated: bool,
    ) -> Result<(), StoreError> {
        let work = async {
            ran.fetch_add(1, Ordering::SeqCst);
            if up {
                Ok(())
            } else {
                Err(StoreError::Unreachable("pool timed out".into()))
            }
        };
        b.guard(work, || saturated).await
    }

    #[tokio::test]
    async fn trips_on_unreachable_fails_fast_then_one_probe_recovers() {
        let b = Breaker::default();
        let ran = AtomicUsize::new(0);
        assert!(call(&b, &ran, false).await.is_err());
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        // Open: calls fail without touching the store.
        for _ in 0..10 {
            assert!(matches!(
                call(&b, &ran, true).await,
                Err(StoreError::Unreachable(_))
            ));
        }
        assert_eq!(
            ran.load(Ordering::SeqCst),
            1,
            "an open breaker let a call through"
        );
        // Once the open period is over, one probe goes through; it succeeds and closes it.
        b.closed_from.store(now_ms() - 1, Ordering::SeqCst);
        assert!(call(&b, &ran, true).await.is_ok());
        assert_eq!(ran.load(Ordering::SeqCst), 2);
        assert!(call(&b, &ran, true).await.is_ok());
        assert_eq!(ran.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn other_store_errors_and_a_busy_pool_do_not_trip_it() {
        let b = Breaker::default();
        let r: Result<(), StoreError> = b
            .guard(
                async { Err(StoreError::Unavailable("lock timeout".into())) },
                || false,
            )
            .await;
        assert!(r.is_err());
        let ran = AtomicUsize::new(0);
        // Every connection busy: the timeout is load, not an outage.
        let busy = call_busy(&b, &ran, false, true).await;
        assert!(matches!(busy, Err(StoreError::Unavailable(_))), "{busy:?}");
        assert!(call(&b, &ran, true).await.is_ok());
        assert_eq!(ran.load(Ordering::SeqCst), 2);
    }
}
