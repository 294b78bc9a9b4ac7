//! An IdP's signing keys, as a careful client keeps them: fetched from the discovery document's
//! `jwks_uri`, swapped in whole, refreshed in the background before they go stale (honouring
//! `Cache-Control: max-age` within bounds), and refreshed early for an unknown `kid` at most
//! once per [`UNKNOWN_KID_INTERVAL`] and one at a time. When the IdP is down or answers garbage
//! the keys already held keep working. A document is refused (and no keys are taken from it)
//! when its `issuer` is not the one its URL names, when another key source already speaks for
//! that issuer, or when its `jwks_uri` breaks the [`crate::egress`] rules.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::{Algorithm, DecodingKey};
use prometheus::IntCounter;
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use super::discovery::{self, IssuerRegistry};
use crate::egress::{self, EgressError};
use crate::fetch::{self, FetchError};
use crate::upstream::UpstreamClient;

/// Forced refreshes for unknown `kid`s: at most one per this interval (six a minute).
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);
const MIN_REFRESH: Duration = Duration::from_secs(60);
const MAX_REFRESH: Duration = Duration::from_secs(3600);
const DEFAULT_REFRESH: Duration = Duration::from_secs(600);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// The kind of key, which decides the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyFamily {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (
                KeyFamily::Rsa,
                RS256 | RS384 | RS512 | PS256 | PS384 | PS512
            ) | (KeyFamily::P256, ES256)
                | (KeyFamily::P384, ES384)
                | (KeyFamily::Ed25519, EdDSA)
        )
    }
}

/// Names one key across fetches (a digest of its `kid` and public material): a token verified
/// under a key is trusted from the cache only while the key set still holds that key.
pub(crate) type KeyTag = u64;

/// The tag of a key given by its `kid` and public material.
pub(crate) fn key_tag(parts: &[&str]) -> KeyTag {
    let digest = super::verified_cache::digest(&parts.join("\u{0}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// One verification key.
pub struct VerifyKey {
    pub tag: KeyTag,
    pub kid: Option<String>,
    /// The JWK's own `alg`, when it names one: then only that algorithm may use it.
    pub alg: Option<Algorithm>,
    pub family: KeyFamily,
    pub key: DecodingKey,
}

impl VerifyKey {
    fn accepts(&self, alg: Algorithm) -> bool {
        self.family.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// The keys and issuer from one successful fetch.
pub struct KeySet {
    pub issuer: String,
    pub keys: Vec<VerifyKey>,
    pub refresh_after: Duration,
}

impl KeySet {
    /// The key for a token's `kid` and `alg`. Without a `kid`, the one key that fits, if only one does.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&VerifyKey> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .filter(|k| k.accepts(alg)),
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.accepts(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }

    fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Whether the key with this tag is still in the set.
    fn holds(&self, tag: KeyTag) -> bool {
        self.keys.iter().any(|k| k.tag == tag)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("discovery document: {0}")]
    Discovery(&'static str),
    #[error(
        "discovery document names issuer `{claimed}`, but its URL speaks only for `{expected}`"
    )]
    IssuerMismatch { claimed: String, expected: String },
    #[error(
        "issuer `{issuer}` is already served by the key source at {other}; refusing a second key source for it"
    )]
    IssuerTaken { issuer: String, other: String },
    #[error("fetch refused: {0}")]
    Egress(#[from] EgressError),
    #[error("JWKS holds no usable signing key")]
    NoUsableKey,
}

impl KeysError {
    /// A document keygate refuses to trust (not an outage): logged as an error.
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            KeysError::IssuerMismatch { .. } | KeysError::IssuerTaken { .. } | KeysError::Egress(_)
        )
    }
}

/// Keys of one IdP, shared by every authorizer that names the same discovery URL.
pub struct KeySource {
    discovery_url: Url,
    client: UpstreamClient,
    current: ArcSwapOption<KeySet>,
    /// Held while fetching; remembers when the last forced refresh started.
    forced: Mutex<Option<Instant>>,
    counters: Option<FetchCounters>,
    registry: Arc<IssuerRegistry>,
    /// Alive as long as this source: its claim on an issuer lapses with it.
    alive: Arc<()>,
    /// The config's opt-in to clear-text fetches from non-loopback hosts.
    allow_insecure_http: bool,
    /// Why the last fetch failed (cleared by a success), for `/readyz`.
    last_error: ArcSwapOption<String>,
}

/// How a key source fetches, beyond its URL and client.
#[derive(Default)]
pub struct SourceOptions {
    pub counters: Option<FetchCounters>,
    /// Shared by every key source of a gateway (one source per issuer).
    pub registry: Option<Arc<IssuerRegistry>>,
    pub allow_insecure_http: bool,
}

/// Prometheus counters for one key source's fetches.
pub struct FetchCounters {
    pub(crate) success: IntCounter,
    pub(crate) failure: IntCounter,
}

impl KeySource {
    pub fn new(discovery_url: Url, client: UpstreamClient) -> Arc<Self> {
        Self::with_options(discovery_url, client, SourceOptions::default())
    }

    pub fn with_options(
        discovery_url: Url,
        client: UpstreamClient,
        options: SourceOptions,
    ) -> Arc<Self> {
        Arc::new(KeySource {
            discovery_url,
            client,
            current: ArcSwapOption::empty(),
            forced: Mutex::new(None),
            counters: options.counters,
            registry: options.registry.unwrap_or_default(),
            alive: Arc::new(()),
            allow_insecure_http: options.allow_insecure_http,
            last_error: ArcSwapOption::empty(),
        })
    }

    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }

    /// Why the last fetch failed, unless a later one succeeded (no secrets: hosts and issuers).
    pub(crate) fn last_error(&self) -> Option<Arc<String>> {
        self.last_error.load_full()
    }

    /// Whether the keys held include the key with this tag (cheap: no reference count taken).
    pub(crate) fn holds(&self, tag: KeyTag) -> bool {
        self.current
            .load()
            .as_ref()
            .is_some_and(|set| set.holds(tag))
    }

    /// Replaces the keys held (what a successful fetch does; also lets benches preload keys).
    pub fn install(&self, keys: KeySet) {
        self.current.store(Some(Arc::new(keys)));
    }

    /// Fetches discovery and JWKS now and swaps the keys in; on failure the old keys stay.
    pub async fn refresh(&self) -> Result<Arc<KeySet>, KeysError> {
        match self.fetch().await {
            Ok(set) => {
                let set = Arc::new(set);
                self.current.store(Some(set.clone()));
                self.last_error.store(None);
                if let Some(c) = &self.counters {
                    c.success.inc();
                }
                Ok(set)
            }
            Err(error) => {
                self.last_error.store(Some(Arc::new(error.to_string())));
                if let Some(c) = &self.counters {
                    c.failure.inc();
                }
                if error.is_refusal() {
                    tracing::error!(discovery_url = %self.discovery_url, %error, "discovery refused: keygate will not take keys from this document");
                } else if self.current.load().is_some() {
                    tracing::warn!(discovery_url = %self.discovery_url, %error, "signing keys not refreshed; keeping the ones held");
                } else {
                    tracing::warn!(discovery_url = %self.discovery_url, %error, "signing keys not fetched yet; tokens for this authorizer are refused until they are");
                }
                Err(error)
            }
        }
    }

    /// Called for a `kid` the keys do not hold: refreshes unless another refresh is under way
    /// (then waits for it) or one ran within [`UNKNOWN_KID_INTERVAL`]. Returns the keys to use.
    pub(crate) async fn refresh_for_unknown_kid(&self, kid: Option<&str>) -> Option<Arc<KeySet>> {
        let mut last = self.forced.lock().await;
        // Someone else may have fetched while we waited for the lock.
        if let (Some(current), Some(kid)) = (self.current(), kid)
            && current.has_kid(kid)
        {
            return Some(current);
        }
        if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_INTERVAL) {
            return self.current();
        }
        *last = Some(Instant::now());
        self.refresh().await.ok().or_else(|| self.current())
    }

    /// Keeps the keys fresh until the source is dropped.
    pub(crate) fn spawn_refresher(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut retry = Duration::from_secs(1);
            loop {
                let Some(source) = weak.upgrade() else { return };
                let wait = match source.refresh().await {
                    Ok(set) => {
                        retry = Duration::from_secs(1);
                        set.refresh_after
                    }
                    Err(_) => {
                        let wait = retry;
                        retry = (retry * 2).min(MAX_RETRY);
                        wait
                    }
                };
                drop(source);
                tokio::time::sleep(wait).await;
            }
        });
    }

    async fn fetch(&self) -> Result<KeySet, KeysError> {
        egress::check(&self.discovery_url, None, self.allow_insecure_http)?;
        let discovery = fetch::get_json(&self.client, &self.discovery_url).await?;
        let issuer = self.verified_issuer(&discovery.json)?;
        let jwks_uri = discovery
            .json
            .get("jwks_uri")
            .and_then(Value::as_str)
            .and_then(|u| Url::parse(u).ok())
            .ok_or(KeysError::Discovery("no usable jwks_uri"))?;
        egress::check(
            &jwks_uri,
            Some(&self.discovery_url),
            self.allow_insecure_http,
        )?;
        let jwks = fetch::get_json(&self.client, &jwks_uri).await?;
        let keys: Vec<VerifyKey> = jwks
            .json
            .get("keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(parse_jwk).collect())
            .unwrap_or_default();
        if keys.is_empty() {
            return Err(KeysError::NoUsableKey);
        }
        let refresh_after = fetch::max_age(&jwks.headers)
            .unwrap_or(DEFAULT_REFRESH)
            .clamp(MIN_REFRESH, MAX_REFRESH);
        self.registry
            .claim(&issuer, self.discovery_url.as_str(), &self.alive)
            .map_err(|other| KeysError::IssuerTaken {
                issuer: issuer.clone(),
                other,
            })?;
        Ok(KeySet {
            issuer,
            keys,
            refresh_after,
        })
    }

    /// The document's `issuer`, if it is the one the discovery URL names.
    fn verified_issuer(&self, document: &Value) -> Result<String, KeysError> {
        let claimed = document
            .get("issuer")
            .and_then(Value::as_str)
            .filter(|i| !i.is_empty())
            .ok_or(KeysError::Discovery("no issuer"))?;
        if !discovery::issuer_matches(&self.discovery_url, claimed) {
            return Err(KeysError::IssuerMismatch {
                claimed: claimed.to_string(),
                expected: discovery::expected_issuer(&self.discovery_url).unwrap_or_default(),
            });
        }
        Ok(claimed.to_string())
    }
}

/// A JWK usable for signature verification, or `None` (skipped, not fatal: IdPs publish
/// encryption keys and algorithms keygate does not accept).
fn parse_jwk(jwk: &Value) -> Option<VerifyKey> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    if field("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let alg = match field("alg") {
        Some(name) => {
            let alg: Algorithm = name.parse().ok()?;
            if !super::token::ALLOWED_ALGORITHMS.contains(&alg) {
                return None;
            }
            Some(alg)
        }
        None => None,
    };
    let (family, key) = match (field("kty")?, field("crv")) {
        ("RSA", _) => (
            KeyFamily::Rsa,
            DecodingKey::from_rsa_components(field("n")?, field("e")?).ok()?,
        ),
        ("EC", Some("P-256")) => (
            KeyFamily::P256,
            DecodingKey::from_ec_components(field("x")?, field("y")?).ok()?,
        ),
        ("EC", Some("P-384")) => (
            KeyFamily::P384,
            DecodingKey::from_ec_components(field("x")?, field("y")?).ok()?,
        ),
        ("OKP", Some("Ed25519")) => (
            KeyFamily::Ed25519,
            DecodingKey::from_ed_components(field("x")?).ok()?,
        ),
        _ => return None,
    };
    if alg.is_some_and(|a| !family.fits(a)) {
        return None;
    }
    let material =
        ["kid", "kty", "crv", "n", "e", "x", "y"].map(|name| field(name).unwrap_or_default());
    Some(VerifyKey {
        tag: key_tag(&material),
        kid: field("kid").map(str::to_string),
        alg,
        family,
        key,
    })
}
