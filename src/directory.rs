//! The directory of workload identities and credential providers: those written in the config
//! (read-only) and those created through the identity API, which live in the vault (sealed like
//! every other secret, so a provider's client secret or API key is never stored in clear, and
//! every replica sharing the store sees them). Config entries win: the API cannot create a name
//! the config already uses.
//!
//! OAuth clients for API-created providers are built on first use and kept while the stored
//! record is unchanged (a fingerprint of the record decides), so an update on any replica takes
//! effect at the next use.

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::{ClientAuth, OAuth2Provider, ProviderKind};
use crate::inbound::verified_cache;
use crate::providers::Provider;
use crate::providers::oauth::OAuthClient;
use crate::proxy::upstream::UpstreamClient;
use crate::state::Runtime;
use crate::vault::{Credential, Owner, OwnerKind, Vault, VaultError};

pub const WORKLOAD_KIND: OwnerKind = OwnerKind::WorkloadIdentity;
pub const PROVIDER_KIND: OwnerKind = OwnerKind::CredentialProvider;

/// Where an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Config,
    Api,
}

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

/// A workload identity, from either origin.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    /// Validates this workload's user JWTs (`[api].default_authorizer` for API-created ones).
    pub authorizer: Option<String>,
    pub allowed_return_urls: Vec<String>,
    pub origin: Origin,
    pub created_at: f64,
    pub updated_at: f64,
}

/// A credential provider created through the API, as stored (secrets included, sealed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderRecord {
    pub name: String,
    pub created_at: f64,
    pub updated_at: f64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub spec: ProviderSpec,
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
    pub vendor: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub discovery_url: Option<String>,
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    /// `true` for `client_secret_post`, else `client_secret_basic`.
    pub client_secret_post: bool,
    pub tenant: Option<String>,
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
    pub fn to_config(&self) -> Result<OAuth2Provider, url::ParseError> {
        let url = |u: &Option<String>| u.as_deref().map(Url::parse).transpose();
        Ok(OAuth2Provider {
            vendor: self.vendor.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone().map(SecretString::from),
            discovery_url: url(&self.discovery_url)?,
            issuer: self.issuer.clone(),
            authorization_endpoint: url(&self.authorization_endpoint)?,
            token_endpoint: url(&self.token_endpoint)?,
            client_auth: if self.client_secret_post {
                ClientAuth::ClientSecretPost
            } else {
                ClientAuth::ClientSecretBasic
            },
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

fn to_credential<T: Serialize>(record: &T) -> Result<Credential, VaultError> {
    serde_json::to_string(record)
        .map(|json| Credential::Secret(SecretString::from(json)))
        .map_err(|_| VaultError::Seal(crate::vault::SealError::Malformed))
}

fn from_credential<T: for<'de> Deserialize<'de>>(credential: &Credential) -> Option<T> {
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
    pub version: i64,
    pub record: T,
}

struct CachedClient {
    fingerprint: [u8; 32],
    client: Arc<OAuthClient>,
}

pub struct Directory {
    http: UpstreamClient,
    clients: moka::sync::Cache<String, Arc<CachedClient>>,
    /// Reported as created/updated time of config entries.
    started_at: f64,
}

impl Directory {
    pub fn new(http: UpstreamClient) -> Self {
        Directory {
            http,
            clients: moka::sync::Cache::builder().max_capacity(10_000).build(),
            started_at: now(),
        }
    }

    pub async fn workload(
        &self,
        runtime: &Runtime,
        vault: &Vault,
        name: &str,
    ) -> Result<Option<Workload>, VaultError> {
        if let Some(w) = runtime.config.workloads.iter().find(|w| w.name == name) {
            return Ok(Some(Workload {
                name: w.name.clone(),
                authorizer: w.authorizer.clone(),
                allowed_return_urls: w.allowed_return_urls.clone(),
                origin: Origin::Config,
                created_at: self.started_at,
                updated_at: self.started_at,
            }));
        }
        let default_authorizer = runtime
            .config
            .api
            .as_ref()
            .and_then(|a| a.default_authorizer.clone());
        Ok(self.workload_record(vault, name).await?.map(|r| Workload {
            name: r.name,
            authorizer: default_authorizer,
            allowed_return_urls: r.allowed_return_urls,
            origin: Origin::Api,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }))
    }

    pub async fn workload_record(
        &self,
        vault: &Vault,
        name: &str,
    ) -> Result<Option<WorkloadRecord>, VaultError> {
        Ok(vault
            .get(&workload_owner(name))
            .await?
            .and_then(|c| from_credential(&c)))
    }

    pub async fn provider_record(
        &self,
        vault: &Vault,
        name: &str,
    ) -> Result<Option<ProviderRecord>, VaultError> {
        Ok(vault
            .get(&provider_owner(name))
            .await?
            .and_then(|c| from_credential(&c)))
    }

    /// The record with its version, straight from the store (for a compare-and-swap update).
    pub async fn versioned<T: for<'de> Deserialize<'de>>(
        vault: &Vault,
        owner: &Owner,
    ) -> Result<Option<Versioned<T>>, VaultError> {
        Ok(vault.get_versioned(owner).await?.and_then(|(version, c)| {
            from_credential(&c).map(|record| Versioned { version, record })
        }))
    }

    /// Stores a new record; false when the name is taken.
    pub async fn create<T: Serialize>(
        vault: &Vault,
        owner: &Owner,
        record: &T,
    ) -> Result<bool, VaultError> {
        vault.put_new(owner, &to_credential(record)?).await
    }

    /// Replaces a record read at `version`; false when it changed (or vanished) meanwhile.
    pub async fn replace<T: Serialize>(
        vault: &Vault,
        owner: &Owner,
        version: i64,
        record: &T,
    ) -> Result<bool, VaultError> {
        vault
            .replace_version(owner, version, &to_credential(record)?, None)
            .await
    }

    /// Names of the API-created records of `kind`, sorted.
    pub async fn names(vault: &Vault, kind: OwnerKind) -> Result<Vec<String>, VaultError> {
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

    /// Deletes every token vaulted for `workload` (its users' and its M2M tokens), so a workload
    /// created later under the same name starts with nothing. Returns how many were deleted.
    pub async fn purge_workload_tokens(vault: &Vault, workload: &str) -> Result<usize, VaultError> {
        Self::purge_tokens(vault, |owner| owner.workload == workload).await
    }

    /// Deletes every token vaulted from provider `name` (users' and M2M), so a provider
    /// pointed elsewhere, or created again under this name, starts with nothing.
    pub async fn purge_provider_tokens(vault: &Vault, name: &str) -> Result<usize, VaultError> {
        Self::purge_tokens(vault, |owner| owner.provider == name).await
    }

    async fn purge_tokens(
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

    /// A provider ready for use, from the config or the API.
    pub async fn provider(
        &self,
        runtime: &Runtime,
        vault: &Vault,
        name: &str,
    ) -> Result<Option<Provider>, VaultError> {
        if let Some(provider) = runtime.providers.get(name) {
            return Ok(Some(provider.clone()));
        }
        let Some(credential) = vault.get(&provider_owner(name)).await? else {
            return Ok(None);
        };
        let Some(record) = from_credential::<ProviderRecord>(&credential) else {
            return Ok(None);
        };
        Ok(match record.spec {
            ProviderSpec::ApiKey { api_key } => Some(Provider::ApiKey(SecretString::from(api_key))),
            ProviderSpec::OAuth2(spec) => {
                let fingerprint = match &*credential {
                    Credential::Secret(json) => verified_cache::digest(json.expose_secret()),
                    Credential::OAuth(_) => return Ok(None),
                };
                if let Some(cached) = self.clients.get(name)
                    && cached.fingerprint == fingerprint
                {
                    return Ok(Some(Provider::OAuth2(cached.client.clone())));
                }
                let Ok(config) = spec.to_config() else {
                    return Ok(None);
                };
                let client = Arc::new(OAuthClient::new(name, config, self.http.clone()));
                self.clients.insert(
                    name.to_string(),
                    Arc::new(CachedClient {
                        fingerprint,
                        client: client.clone(),
                    }),
                );
                Some(Provider::OAuth2(client))
            }
        })
    }

    /// The OAuth client of a provider, from either origin (for the consent endpoints).
    pub async fn oauth_client(
        &self,
        runtime: &Runtime,
        vault: &Vault,
        name: &str,
    ) -> Option<Arc<OAuthClient>> {
        match self.provider(runtime, vault, name).await {
            Ok(Some(Provider::OAuth2(client))) => Some(client),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, provider = name, "provider lookup failed");
                None
            }
        }
    }

    pub fn started_at(&self) -> f64 {
        self.started_at
    }
}

/// True when the config defines a provider by this name.
pub fn config_provider<'a>(
    runtime: &'a Runtime,
    name: &str,
) -> Option<&'a crate::config::ProviderConfig> {
    runtime.config.providers.iter().find(|p| p.name == name)
}

/// The AgentCore vendor name for a config provider.
pub fn config_vendor(kind: &ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::OAuth2(c) => crate::providers::vendors::agentcore_name(&c.vendor),
        ProviderKind::ApiKey { .. } => None,
    }
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
