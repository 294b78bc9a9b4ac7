//! Tokens that passed verification, cached so a busy agent presenting the same JWT pays for the
//! signature check once. Keyed by the SHA-256 of the whole token (never the token itself), and
//! each entry expires with the token's `exp`. An entry is trusted only while the key that
//! verified it is still held: a key rotated away or dropped from the IdP's JWKS takes the
//! tokens it verified with it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moka::Expiry;
use moka::sync::Cache;

/// Longest an entry is kept, whatever its `exp`.
const MAX_ENTRY_LIFETIME: Duration = Duration::from_secs(3600);

pub(crate) type Digest = [u8; 32];

pub fn digest(token: &str) -> Digest {
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(hash.as_ref());
    out
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A verification result: the `exp` it is valid until and the key that verified it.
pub(crate) trait Expiring {
    fn exp(&self) -> u64;
    /// The tag of the key whose signature was checked ([`super::jwks::KeyTag`]).
    fn key(&self) -> u64;
}

struct UntilExp;

impl<V: Expiring> Expiry<Digest, Arc<V>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &Digest,
        value: &Arc<V>,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        let left = value.exp().saturating_sub(now_secs());
        Some(Duration::from_secs(left).min(MAX_ENTRY_LIFETIME))
    }
}

pub(crate) struct VerifiedCache<V> {
    cache: Cache<Digest, Arc<V>>,
}

impl<V: Expiring + Send + Sync + 'static> VerifiedCache<V> {
    pub(crate) fn new(capacity: u64) -> Self {
        VerifiedCache {
            cache: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp)
                .build(),
        }
    }

    /// The cached value, if the token has not expired (no leeway: the cache never extends a
    /// token) and `key_held` says its key is still in use; an entry whose key is gone is evicted.
    pub(crate) fn get(
        &self,
        digest: &Digest,
        key_held: impl FnOnce(u64) -> bool,
    ) -> Option<Arc<V>> {
        let value = self.cache.get(digest).filter(|v| v.exp() > now_secs())?;
        if key_held(value.key()) {
            Some(value)
        } else {
            self.cache.invalidate(digest);
            None
        }
    }

    pub(crate) fn insert(&self, digest: Digest, value: Arc<V>) {
        self.cache.insert(digest, value);
    }
}
