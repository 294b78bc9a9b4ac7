//! Workload access tokens: keygate's own ES256 JWTs proving "agent X, acting for user Y (or for
//! no user)". The signing key is made on first start and kept sealed in the vault (so replicas
//! sharing a store share it); the public halves are served at `/.well-known/jwks.json`.
//! Tokens carry `iss` = public URL, `aud` = [`AUDIENCE`], a `jti`, and live one hour.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::AuthError;
use super::jwks::{KeyTag, key_tag};
use super::token;
use super::verified_cache::{self, Digest, Expiring, VerifiedCache, now_secs};
use crate::inbound::UserId;
use crate::vault::{Credential, Owner, Vault, VaultError};
use secrecy::{ExposeSecret, SecretString};

const AUDIENCE: &str = "keygate";
const LIFETIME: Duration = Duration::from_secs(3600);
/// Every keygate signing key id starts with this, so a token can be told apart cheaply.
const KID_PREFIX: &str = "keygate-";

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("signing keys: {0}")]
    Vault(#[from] VaultError),
    #[error("the stored signing keys are not P-256 PKCS#8 keys")]
    Invalid,
    #[error("key generation failed")]
    Generate,
    #[error("token signing failed")]
    Sign,
    #[error("the signing keys kept changing while a rotation tried to replace them; retry")]
    Contended,
}

/// What a workload access token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkloadClaims {
    iss: String,
    aud: String,
    /// The workload's name.
    pub(crate) sub: String,
    /// The user's id (a user id given to the API, or the JWT user's `user_claim` value).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    uid: Option<String>,
    /// The JWT user's issuer; absent for users named by id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    uiss: Option<String>,
    iat: u64,
    exp: u64,
    jti: String,
}

impl WorkloadClaims {
    pub(crate) fn user(&self) -> Option<UserId> {
        self.uid.as_ref().map(|id| UserId {
            issuer: self.uiss.clone(),
            id: id.clone(),
        })
    }
}

/// Verified claims and the key that verified them.
struct VerifiedWat {
    claims: Arc<WorkloadClaims>,
    key: KeyTag,
}

impl Expiring for VerifiedWat {
    fn exp(&self) -> u64 {
        self.claims.exp
    }

    fn key(&self) -> KeyTag {
        self.key
    }
}

struct SigningKey {
    kid: String,
    tag: KeyTag,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: serde_json::Value,
}

impl SigningKey {
    fn from_pkcs8(der: &[u8]) -> Option<SigningKey> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).ok()?;
        let point = pair.public_key().as_ref();
        // Uncompressed SEC1 point: 0x04 || X (32 bytes) || Y (32 bytes).
        if point.len() != 65 || point[0] != 4 {
            return None;
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        let thumb = verified_cache::digest(&format!("{x}.{y}"));
        let kid = format!("{KID_PREFIX}{}", hex(&thumb[..8]));
        let decoding = DecodingKey::from_ec_components(&x, &y).ok()?;
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
        Some(SigningKey {
            tag: key_tag(&[&kid, &x, &y]),
            kid,
            encoding: EncodingKey::from_ec_der(der),
            decoding,
            jwk,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signing keys kept: the newest signs, all verify (so tokens signed before a rotation stay
/// valid for their hour). Older keys beyond this count are dropped at rotation.
pub const MAX_KEYS: usize = 3;

struct KeyRing {
    /// Newest first; the first one signs.
    keys: Vec<SigningKey>,
}

impl KeyRing {
    fn signing(&self) -> Option<&SigningKey> {
        self.keys.first()
    }

    fn find(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    fn holds(&self, tag: KeyTag) -> bool {
        self.keys.iter().any(|k| k.tag == tag)
    }
}

/// Issues and verifies workload access tokens.
pub struct WorkloadTokens {
    issuer: String,
    ring: ArcSwap<KeyRing>,
    cache: VerifiedCache<VerifiedWat>,
}

fn generate_pkcs8() -> Result<Vec<u8>, SigningKeyError> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map(|doc| doc.as_ref().to_vec())
        .map_err(|_| SigningKeyError::Generate)
}

/// Where the signing keys live in the vault (sealed like every other secret).
fn vault_owner() -> Owner {
    Owner::signing_key("workload-tokens")
}

/// One base64 PKCS#8 key per line, newest first.
fn encode_keys(ders: &[Vec<u8>]) -> String {
    ders.iter()
        .map(|k| format!("{}\n", STANDARD.encode(k)))
        .collect()
}

fn decode_keys(text: &str) -> Result<Vec<Vec<u8>>, SigningKeyError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            STANDARD
                .decode(l.trim())
                .map_err(|_| SigningKeyError::Invalid)
        })
        .collect()
}

fn ring_from(ders: &[Vec<u8>]) -> Result<KeyRing, SigningKeyError> {
    let keys = ders
        .iter()
        .map(|der| SigningKey::from_pkcs8(der).ok_or(SigningKeyError::Invalid))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(SigningKeyError::Invalid);
    }
    Ok(KeyRing { keys })
}

async fn stored_keys(vault: &Vault) -> Result<Option<Vec<Vec<u8>>>, SigningKeyError> {
    match vault.get(&vault_owner()).await? {
        Some(credential) => match &*credential {
            Credential::Secret(text) => decode_keys(text.expose_secret()).map(Some),
            Credential::OAuth(_) => Err(SigningKeyError::Invalid),
        },
        None => Ok(None),
    }
}

/// The key set as the vault record holding it.
fn encoded(ders: &[Vec<u8>]) -> Credential {
    Credential::Secret(SecretString::from(encode_keys(ders)))
}

/// Rotations tried before giving up on a key set that keeps changing underneath.
const ROTATE_ATTEMPTS: usize = 5;

impl WorkloadTokens {
    fn with_ring(issuer: &str, ring: KeyRing) -> Self {
        WorkloadTokens {
            issuer: issuer.trim_end_matches('/').to_string(),
            ring: ArcSwap::from_pointee(ring),
            cache: VerifiedCache::new(100_000),
        }
    }

    /// A fresh key kept only in memory (tests, benches).
    pub fn generate(issuer: &str) -> Result<Self, SigningKeyError> {
        Ok(Self::with_ring(issuer, ring_from(&[generate_pkcs8()?])?))
    }

    /// Loads the signing keys from the vault, creating the first one when there is none. The
    /// creation is create-if-absent: of replicas starting together on a fresh store one
    /// creates the key and every other one reads the winner's, so the fleet has one key set.
    pub async fn load(vault: &Vault, issuer: &str) -> Result<Self, SigningKeyError> {
        let ders = match stored_keys(vault).await? {
            Some(ders) => ders,
            None => {
                let ders = vec![generate_pkcs8()?];
                if vault.put_new(&vault_owner(), &encoded(&ders)).await? {
                    tracing::info!("created the workload token signing key in the vault");
                    ders
                } else {
                    vault.get_fresh(&vault_owner()).await?;
                    stored_keys(vault).await?.ok_or(SigningKeyError::Invalid)?
                }
            }
        };
        Ok(Self::with_ring(issuer, ring_from(&ders)?))
    }

    /// Puts a new signing key first in the vault, keeping the newest [`MAX_KEYS`]; returns its
    /// `kid`. A running keygate starts signing with it on its next reload (SIGHUP). The key
    /// set is replaced by compare-and-swap, so a rotation racing a starting replica (or another
    /// rotation) never loses a key: the loser re-reads and tries again.
    pub async fn rotate(vault: &Vault) -> Result<String, SigningKeyError> {
        for _ in 0..ROTATE_ATTEMPTS {
            let stored = vault.stored(&vault_owner()).await?;
            let mut ders = match &stored {
                Some((_, Credential::Secret(text))) => decode_keys(text.expose_secret())?,
                Some((_, Credential::OAuth(_))) => return Err(SigningKeyError::Invalid),
                None => Vec::new(),
            };
            ders.insert(0, generate_pkcs8()?);
            ders.truncate(MAX_KEYS);
            let ring = ring_from(&ders)?;
            let written = match &stored {
                Some((version, _)) => {
                    vault
                        .replace_version(&vault_owner(), *version, &encoded(&ders), None)
                        .await?
                }
                None => vault.put_new(&vault_owner(), &encoded(&ders)).await?,
            };
            if written {
                return Ok(ring.signing().map(|k| k.kid.clone()).unwrap_or_default());
            }
        }
        Err(SigningKeyError::Contended)
    }

    /// Re-reads the keys from the vault (after a rotation); on error the keys in use stay.
    pub(crate) async fn reload(&self, vault: &Vault) -> Result<(), SigningKeyError> {
        let ders = stored_keys(vault).await?.ok_or(SigningKeyError::Invalid)?;
        self.ring.store(Arc::new(ring_from(&ders)?));
        Ok(())
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether a `kid` names a key of this gateway.
    pub(crate) fn is_own_kid(kid: Option<&str>) -> bool {
        kid.is_some_and(|k| k.starts_with(KID_PREFIX))
    }

    /// A token for `workload`, acting for `user` (or for no user), valid for `lifetime`.
    fn issue_for(
        &self,
        workload: &str,
        user: Option<&UserId>,
        lifetime: Duration,
    ) -> Result<String, SigningKeyError> {
        let now = now_secs();
        let claims = WorkloadClaims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_string(),
            sub: workload.to_string(),
            uid: user.map(|u| u.id.clone()),
            uiss: user.and_then(|u| u.issuer.clone()),
            iat: now,
            exp: now + lifetime.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let ring = self.ring.load();
        let key = ring.signing().ok_or(SigningKeyError::Sign)?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".to_string());
        jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(|_| SigningKeyError::Sign)
    }

    pub fn issue(&self, workload: &str, user: Option<&UserId>) -> Result<String, SigningKeyError> {
        self.issue_for(workload, user, LIFETIME)
    }

    pub fn verify(&self, token: &str) -> Result<Arc<WorkloadClaims>, AuthError> {
        if token.len() > token::MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let digest = verified_cache::digest(token);
        match self.cached(&digest) {
            Some(hit) => Ok(hit),
            None => self.verify_uncached(token, digest),
        }
    }

    /// The verified token with this digest, if it is cached, unexpired, and its signing key is
    /// still in the ring (a key rotated out takes its tokens with it).
    pub(crate) fn cached(&self, digest: &Digest) -> Option<Arc<WorkloadClaims>> {
        let ring = self.ring.load();
        self.cache
            .get(digest, |tag| ring.holds(tag))
            .map(|hit| hit.claims.clone())
    }

    /// Full verification of a token whose digest missed the cache; caches the result.
    pub(crate) fn verify_uncached(
        &self,
        token: &str,
        digest: Digest,
    ) -> Result<Arc<WorkloadClaims>, AuthError> {
        let header = token::parse_header(token)?;
        if header.alg != Algorithm::ES256 {
            return Err(AuthError::BadAlgorithm);
        }
        let ring = self.ring.load();
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| ring.find(kid))
            .ok_or(AuthError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = 0;
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<WorkloadClaims>(token, &key.decoding, &validation)
            .map_err(|e| AuthError::from_jwt(&e))?;
        token::payload(token)?;
        let claims = Arc::new(data.claims);
        let verified = VerifiedWat {
            claims: claims.clone(),
            key: key.tag,
        };
        self.cache.insert(digest, Arc::new(verified));
        Ok(claims)
    }

    /// The public keys, as a JWKS document.
    pub(crate) fn jwks(&self) -> serde_json::Value {
        let ring = self.ring.load();
        serde_json::json!({ "keys": ring.keys.iter().map(|k| &k.jwk).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> WorkloadTokens {
        WorkloadTokens::generate("http://127.0.0.1:8080").unwrap()
    }

    #[test]
    fn issues_and_verifies_with_user() {
        let wat = tokens();
        let user = UserId {
            issuer: Some("https://idp".into()),
            id: "alice".into(),
        };
        let token = wat.issue("agent-one", Some(&user)).unwrap();
        let claims = wat.verify(&token).unwrap();
        assert_eq!(claims.sub, "agent-one");
        assert_eq!(claims.user(), Some(user));
        assert_eq!(claims.aud, AUDIENCE);
        assert_eq!(claims.exp - claims.iat, 3600);
    }

    #[test]
    fn refuses_expired_foreign_and_tampered_tokens() {
        let wat = tokens();
        let expired = wat
            .issue_for("agent-one", None, Duration::from_secs(0))
            .unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(wat.verify(&expired).unwrap_err(), AuthError::Expired);
        let foreign = tokens().issue("agent-one", None).unwrap();
        assert_eq!(wat.verify(&foreign).unwrap_err(), AuthError::UnknownKey);
        let good = wat.issue("agent-one", None).unwrap();
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(
            r#"{"iss":"http://127.0.0.1:8080","aud":"keygate","sub":"admin","iat":1,"exp":9999999999,"jti":"x"}"#,
        );
        assert_eq!(
            wat.verify(&parts.join(".")).unwrap_err(),
            AuthError::BadSignature
        );
    }
}
