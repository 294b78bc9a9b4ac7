//! The cache of opened credentials in front of the store (moka): each value lives until its
//! credential expires (an hour at most), concurrent misses for one owner make one store read,
//! and a record that fails to open is logged, counted and treated as absent.

use std::sync::Arc;
use std::time::Duration;

use moka::Expiry;
use moka::future::Cache;

use super::credential::Credential;
use super::owner::Owner;
use super::store::{self, StoreError};
use super::{Vault, VaultError};

/// Longest a decrypted value stays cached, whatever its expiry.
const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(3600);

/// An empty cache holding at most `capacity` credentials.
pub(super) fn new_cache(capacity: u64) -> Cache<Owner, Arc<Credential>> {
    Cache::builder()
        .max_capacity(capacity)
        .expire_after(UntilExpiry)
        .build()
}

/// Why a load produced no value (kept out of the cache).
#[derive(Debug)]
enum Miss {
    Absent,
    Integrity,
    Store(StoreError),
}

/// Keeps a value until its credential expires, and never longer than [`MAX_CACHE_LIFETIME`].
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

impl Vault {
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

    /// Reads and opens the record for `owner` (a cache miss).
    async fn load(&self, owner: &Owner) -> Result<Arc<Credential>, Miss> {
        let entry = self
            .guarded(self.store.get(owner))
            .await
            .map_err(Miss::Store)?
            .ok_or(Miss::Absent)?;
        let credential = self.open_sealed(owner, &entry).map_err(|error| {
            self.integrity_error(owner, error);
            Miss::Integrity
        })?;
        Ok(Arc::new(credential))
    }

    /// Forgets every cached value (after notifications may have been missed).
    pub(super) fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// Counts a lookup by its result (the `vault_lookups_total` label).
    fn count(&self, result: &str) {
        if let Some(m) = &self.metrics {
            m.lookup(result);
        }
    }
}
