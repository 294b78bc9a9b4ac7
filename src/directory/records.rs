//! The directory's records as the vault keeps them (sealed like every other secret, so a
//! provider's client secret or API key is never stored in clear), their vault owners, and the
//! raw reads and writes of them. [`super::Directory`] builds its operations on these.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::{ClientAuth, OAuth2Provider};
use crate::vault::{Credential, Owner, OwnerKind, Vault, VaultError};

pub const WORKLOAD_KIND: OwnerKind = OwnerKind::WorkloadIdentity;
pub const PROVIDER_KIND: OwnerKind = OwnerKind::CredentialProvider;

/// A workload identity created through the API, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadRecord {
    pub name: String,
    pub allowed_return_urls: Vec<String>,
    pub created_at: f64,
    pub updated_at: f64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A credential provider created through the API, as stored (secrets included, sealed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderRecord {
    pub(crate) name: String,
    pub(crate) created_at: f64,
    pub(crate) updated_at: f64,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) spec: ProviderSpec,
}

/// (`Debug` never shows the API key or the client secret.)
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderSpec {
    OAuth2(OAuth2Spec),
    ApiKey { api_key: String },
}

#[derive(Clone, Serialize, Deserialize)]
pub struct OAuth2Spec {
    /// keygate's vendor name (`google`, `custom`, ...).
    pub(crate) vendor: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<String>,
    pub(crate) discovery_url: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) authorization_endpoint: Option<String>,
    pub(crate) token_endpoint: Option<String>,
    /// `true` for `client_secret_post`, else `client_secret_basic`.
    pub(crate) client_secret_post: bool,
    pub(crate) tenant: Option<String>,
}

impl std::fmt::Debug for ProviderSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderSpec::OAuth2(spec) => f.debug_tuple("OAuth2").field(spec).finish(),
            ProviderSpec::ApiKey { .. } => f.write_str("ApiKey { .. }"),
        }
    }
}

impl std::fmt::Debug for OAuth2Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2Spec")
            .field("vendor", &self.vendor)
            .field("client_id", &self.client_id)
            .field("discovery_url", &self.discovery_url)
            .field("token_endpoint", &self.token_endpoint)
            .finish_non_exhaustive()
    }
}

impl OAuth2Spec {
    /// The provider config an OAuth client is built from.
    pub(crate) fn to_config(&self) -> Result<OAuth2Provider, url::ParseError> {
        let url = |u: &Option<String>| u.as_deref().map(Url::parse).transpose();
        Ok(OAuth2Provider {
            vendor: self.vendor.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone().map(SecretString::from),
            discovery_url: url(&self.discovery_url)?,
            issuer: self.issuer.clone(),
            authorization_endpoint: url(&self.authorization_endpoint)?,
            token_endpoint: url(&self.token_endpoint)?,
            client_auth: Some(if self.client_secret_post {
                ClientAuth::ClientSecretPost
            } else {
                ClientAuth::ClientSecretBasic
            }),
            tenant: self.tenant.clone(),
            domain: None,
            allow_insecure_http: false,
        })
    }
}

pub fn workload_owner(name: &str) -> Owner {
    Owner::workload_identity(name)
}

pub fn provider_owner(name: &str) -> Owner {
    Owner::credential_provider(name)
}

pub(super) fn to_credential<T: Serialize>(record: &T) -> Result<Credential, VaultError> {
    serde_json::to_string(record)
        .map(|json| Credential::Secret(SecretString::from(json)))
        .map_err(|_| VaultError::Seal(crate::vault::SealError::Malformed))
}

pub(crate) fn from_credential<T: for<'de> Deserialize<'de>>(credential: &Credential) -> Option<T> {
    match credential {
        Credential::Secret(json) => serde_json::from_str(json.expose_secret()).ok(),
        Credential::OAuth(_) => None,
    }
}

/// Seconds since the epoch, with fractions (the API's timestamp format).
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// A record read for update: its version for the compare-and-swap write.
pub struct Versioned<T> {
    pub(crate) version: i64,
    pub(crate) record: T,
}

/// The record with its version, straight from the store (for a compare-and-swap update).
pub(super) async fn versioned<T: for<'de> Deserialize<'de>>(
    vault: &Vault,
    owner: &Owner,
) -> Result<Option<Versioned<T>>, VaultError> {
    Ok(vault
        .get_versioned(owner)
        .await?
        .and_then(|(version, c)| from_credential(&c).map(|record| Versioned { version, record })))
}

/// Stores a new record; false when the name is taken.
pub async fn put_new<T: Serialize>(
    vault: &Vault,
    owner: &Owner,
    record: &T,
) -> Result<bool, VaultError> {
    vault.put_new(owner, &to_credential(record)?).await
}

/// Replaces a record read at `version`; false when it changed (or vanished) meanwhile.
pub(super) async fn replace<T: Serialize>(
    vault: &Vault,
    owner: &Owner,
    version: i64,
    record: &T,
) -> Result<bool, VaultError> {
    vault
        .replace_version(owner, version, &to_credential(record)?, None)
        .await
}

/// A stored record by owner (`None` when absent or unreadable).
pub(super) async fn read<T: for<'de> Deserialize<'de>>(
    vault: &Vault,
    owner: &Owner,
) -> Result<Option<T>, VaultError> {
    Ok(vault.get(owner).await?.and_then(|c| from_credential(&c)))
}

/// Names of the API-created records of `kind`, sorted.
pub(super) async fn names(vault: &Vault, kind: OwnerKind) -> Result<Vec<String>, VaultError> {
    let mut names: Vec<String> = vault
        .owners(kind)
        .await?
        .into_iter()
        .map(|o| {
            if kind == WORKLOAD_KIND {
                o.workload
            } else {
                o.provider
            }
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Deletes every token vaulted for a workload or from a provider (users' and M2M) that
/// `selected` picks. Returns how many were deleted.
pub(super) async fn purge_tokens(
    vault: &Vault,
    selected: impl Fn(&Owner) -> bool,
) -> Result<usize, VaultError> {
    let mut deleted = 0;
    for kind in [OwnerKind::OAuthUser, OwnerKind::OAuthM2m] {
        for owner in vault.owners(kind).await? {
            if selected(&owner) && vault.delete(&owner).await? {
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_secret() {
        let spec = OAuth2Spec {
            vendor: "custom".into(),
            client_id: "c".into(),
            client_secret: Some("s3cret-client".into()),
            discovery_url: None,
            issuer: None,
            authorization_endpoint: None,
            token_endpoint: Some("https://idp/token".into()),
            client_secret_post: false,
            tenant: None,
        };
        let shown = format!(
            "{:?} {:?}",
            ProviderSpec::OAuth2(spec),
            ProviderSpec::ApiKey {
                api_key: "s3cret-key".into()
            }
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
