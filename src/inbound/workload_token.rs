//! Workload access tokens: keygate's own ES256 JWTs proving "agent X, acting for user Y (or for
//! no user)". The signing key is made on first start and kept (PKCS#8, mode 0600) in the data
//! folder until the vault holds it; its public half is served at `/.well-known/jwks.json`.
//! Tokens carry `iss` = public URL, `aud` = [`AUDIENCE`], a `jti`, and live one hour.

use std::path::{Path, PathBuf};
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
use super::token;
use super::verified_cache::{self, Digest, Expiring, VerifiedCache, now_secs};
use crate::inbound::UserId;

pub const AUDIENCE: &str = "keygate";
pub const LIFETIME: Duration = Duration::from_secs(3600);
/// Every keygate signing key id starts with this, so a token can be told apart cheaply.
pub const KID_PREFIX: &str = "keygate-";

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read or write the signing key at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the signing key at {path} is not a P-256 PKCS#8 key")]
    Invalid { path: String },
    #[error("key generation failed")]
    Generate,
    #[error("token signing failed")]
    Sign,
}

/// What a workload access token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkloadClaims {
    pub iss: String,
    pub aud: String,
    /// The workload's name.
    pub sub: String,
    /// The user's id (a user id given to the API, or the JWT user's `user_claim` value).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uid: Option<String>,
    /// The JWT user's issuer; absent for users named by id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uiss: Option<String>,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

impl WorkloadClaims {
    pub fn user(&self) -> Option<UserId> {
        self.uid.as_ref().map(|id| UserId {
            issuer: self.uiss.clone(),
            id: id.clone(),
        })
    }
}

impl Expiring for WorkloadClaims {
    fn exp(&self) -> u64 {
        self.exp
    }
}

struct SigningKey {
    kid: String,
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

/// Keys kept in the key file: the newest signs, all verify (so tokens signed before a rotation
/// stay valid for their hour). Older keys beyond this count are dropped at rotation.
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
}

/// Issues and verifies workload access tokens.
pub struct WorkloadTokens {
    issuer: String,
    path: PathBuf,
    ring: ArcSwap<KeyRing>,
    cache: VerifiedCache<WorkloadClaims>,
}

fn generate_pkcs8() -> Result<Vec<u8>, SigningKeyError> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map(|doc| doc.as_ref().to_vec())
        .map_err(|_| SigningKeyError::Generate)
}

/// The key file: one base64 PKCS#8 key per line, newest first.
fn read_key_file(path: &Path) -> Result<Option<Vec<Vec<u8>>>, SigningKeyError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                STANDARD
                    .decode(l.trim())
                    .map_err(|_| SigningKeyError::Invalid {
                        path: shown.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SigningKeyError::Io {
            path: shown,
            source,
        }),
    }
}

fn write_key_file(path: &Path, keys: &[Vec<u8>]) -> Result<(), SigningKeyError> {
    let text: String = keys
        .iter()
        .map(|k| format!("{}\n", STANDARD.encode(k)))
        .collect();
    crate::fsutil::write_file(path, text.as_bytes(), true).map_err(|source| SigningKeyError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn ring_from(path: &Path, ders: &[Vec<u8>]) -> Result<KeyRing, SigningKeyError> {
    let keys = ders
        .iter()
        .map(|der| {
            SigningKey::from_pkcs8(der).ok_or(SigningKeyError::Invalid {
                path: path.display().to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(SigningKeyError::Invalid {
            path: path.display().to_string(),
        });
    }
    Ok(KeyRing { keys })
}

impl WorkloadTokens {
    /// Loads the signing keys from `path`, creating the file (mode 0600) with one key when missing.
    pub fn load_or_create(path: &Path, issuer: &str) -> Result<Self, SigningKeyError> {
        let ders = match read_key_file(path)? {
            Some(ders) => ders,
            None => {
                let ders = vec![generate_pkcs8()?];
                write_key_file(path, &ders)?;
                tracing::info!(path = %path.display(), "created the workload token signing key");
                ders
            }
        };
        Ok(WorkloadTokens {
            issuer: issuer.trim_end_matches('/').to_string(),
            path: path.to_path_buf(),
            ring: ArcSwap::from_pointee(ring_from(path, &ders)?),
            cache: VerifiedCache::new(100_000),
        })
    }

    /// Puts a new signing key first in the key file, keeping the newest [`MAX_KEYS`]; returns
    /// its `kid`. A running keygate starts signing with it on its next reload (SIGHUP).
    pub fn rotate_key_file(path: &Path) -> Result<String, SigningKeyError> {
        let mut ders = read_key_file(path)?.unwrap_or_default();
        ders.insert(0, generate_pkcs8()?);
        ders.truncate(MAX_KEYS);
        let ring = ring_from(path, &ders)?;
        write_key_file(path, &ders)?;
        Ok(ring.signing().map(|k| k.kid.clone()).unwrap_or_default())
    }

    /// Re-reads the key file (after a rotation); on error the keys in use stay.
    pub fn reload(&self) -> Result<(), SigningKeyError> {
        let ders = read_key_file(&self.path)?.ok_or(SigningKeyError::Invalid {
            path: self.path.display().to_string(),
        })?;
        self.ring.store(Arc::new(ring_from(&self.path, &ders)?));
        Ok(())
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether a `kid` names a key of this gateway.
    pub fn is_own_kid(kid: Option<&str>) -> bool {
        kid.is_some_and(|k| k.starts_with(KID_PREFIX))
    }

    /// A token for `workload`, acting for `user` (or for no user), valid for `lifetime`.
    pub fn issue_for(
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

    /// The verified token with this digest, if it is cached and unexpired.
    pub fn cached(&self, digest: &Digest) -> Option<Arc<WorkloadClaims>> {
        self.cache.get(digest)
    }

    /// Full verification of a token whose digest missed the cache; caches the result.
    pub fn verify_uncached(
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
        self.cache.insert(digest, claims.clone());
        Ok(claims)
    }

    /// The public keys, as a JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        let ring = self.ring.load();
        serde_json::json!({ "keys": ring.keys.iter().map(|k| &k.jwk).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(dir: &Path) -> WorkloadTokens {
        WorkloadTokens::load_or_create(&dir.join("wat.key"), "http://127.0.0.1:8080").unwrap()
    }

    #[test]
    fn issues_and_verifies_with_user() {
        let dir = tempfile::tempdir().unwrap();
        let wat = tokens(dir.path());
        let user = UserId {
            issuer: Some("https://idp".into()),
            id: "alice".into(),
        };
        let token = wat.issue("agent-one", Some(&user)).unwrap();
        let claims = wat.verify(&token).unwrap();
        assert_eq!(claims.sub, "agent-one");
        assert_eq!(claims.user(), Some(user));
        assert_eq!(claims.aud, AUDIENCE);
        assert!(claims.exp - claims.iat == 3600);
    }

    #[test]
    fn key_survives_restart_and_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let token = tokens(dir.path()).issue("agent-one", None).unwrap();
        assert!(tokens(dir.path()).verify(&token).is_ok());
        let mode = std::fs::metadata(dir.path().join("wat.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn rotation_signs_with_the_new_key_and_still_accepts_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wat.key");
        let wat = tokens(dir.path());
        let before = wat.issue("agent-one", None).unwrap();
        let new_kid = WorkloadTokens::rotate_key_file(&path).unwrap();
        wat.reload().unwrap();
        let after = wat.issue("agent-one", None).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&after).unwrap().kid.as_deref(),
            Some(new_kid.as_str())
        );
        assert!(wat.verify(&before).is_ok());
        assert!(wat.verify(&after).is_ok());
        assert_eq!(wat.jwks()["keys"].as_array().unwrap().len(), 2);
        for _ in 0..5 {
            WorkloadTokens::rotate_key_file(&path).unwrap();
        }
        wat.reload().unwrap();
        assert_eq!(wat.jwks()["keys"].as_array().unwrap().len(), MAX_KEYS);
    }

    #[test]
    fn refuses_expired_foreign_and_tampered_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let wat = tokens(dir.path());
        let expired = {
            let mut t = wat
                .issue_for("agent-one", None, Duration::from_secs(0))
                .unwrap();
            std::thread::sleep(Duration::from_millis(1100));
            std::mem::take(&mut t)
        };
        assert_eq!(wat.verify(&expired).unwrap_err(), AuthError::Expired);
        let foreign = tokens(other.path()).issue("agent-one", None).unwrap();
        assert_eq!(wat.verify(&foreign).unwrap_err(), AuthError::UnknownKey);
        let good = wat.issue("agent-one", None).unwrap();
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(r#"{"iss":"http://127.0.0.1:8080","aud":"keygate","sub":"admin","iat":1,"exp":9999999999,"jti":"x"}"#);
        assert_eq!(
            wat.verify(&parts.join(".")).unwrap_err(),
            AuthError::BadSignature
        );
    }
}
