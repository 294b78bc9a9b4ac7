//! The directory of workload identities and credential providers: those written in the config
//! (read-only) and those created through the identity API, which live in the vault (sealed like
//! every other secret, so every replica sharing the store sees them). Config entries win: the
//! API cannot create a name the config already uses.
//!
//! [`Directory`] is the service the identity API calls: it owns its vault handle and HTTP
//! client and offers typed operations (create / get / update / list / delete) with one error
//! type, [`DirectoryError`]. It knows nothing of HTTP or of AWS's shapes. The config's entries
//! come in as a [`Configured`] view of the runtime in use, so this module does not depend on
//! `state`.
//!
//! OAuth clients for API-created providers are built on first use and kept while the stored
//! record is unchanged (a fingerprint of the record decides), so an update on any replica takes
//! effect at the next use.
//!
//! - `records`: the stored records, their owners, raw reads and writes.
//! - `workloads`, `providers`: the operations on each kind of entry.

mod error;
mod providers;
mod records;
mod workloads;

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, ProviderConfig, ProviderKind, WorkloadConfig};
use crate::inbound::verified_cache;
use crate::providers::Provider;
use crate::providers::oauth::OAuthClient;
use crate::upstream::UpstreamClient;
use crate::vault::{Credential, Vault, VaultError};

pub(crate) use error::{DirectoryError, Entry, EntryKind};
pub(crate) use providers::{ProviderType, StoredProvider};
pub use records::{
    OAuth2Spec, PROVIDER_KIND, ProviderRecord, ProviderSpec, Versioned, WORKLOAD_KIND,
    WorkloadRecord, now, provider_owner, put_new, workload_owner,
};
pub(crate) use workloads::NewWorkload;

/// Retries of a read-modify-write that lost a race.
const UPDATE_ATTEMPTS: usize = 3;

/// Where an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Config,
    Api,
}

/// A workload identity, from either origin.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub(crate) name: String,
    /// Validates this workload's user JWTs (`[api].default_authorizer` for API-created ones).
    pub(crate) authorizer: Option<String>,
    pub(crate) allowed_return_urls: Vec<String>,
    origin: Origin,
    pub(crate) created_at: f64,
    pub(crate) updated_at: f64,
}

/// The config's entries, as the runtime in use compiled them: the directory serves them
/// read-only next to the API-created ones.
#[derive(Clone, Copy)]
pub(crate) struct Configured<'a> {
    pub(crate) config: &'a Config,
    /// The providers built from the config, by name.
    pub(crate) providers: &'a HashMap<String, Provider>,
}

impl<'a> Configured<'a> {
    fn workload(&self, name: &str) -> Option<&'a WorkloadConfig> {
        self.config.workloads.iter().find(|w| w.name == name)
    }

    fn provider(&self, name: &str) -> Option<&'a ProviderConfig> {
        self.config.providers.iter().find(|p| p.name == name)
    }

    /// The authorizer of API-created workloads (`[api].default_authorizer`).
    fn default_authorizer(&self) -> Option<String> {
        self.config
            .api
            .as_ref()
            .and_then(|a| a.default_authorizer.clone())
    }
}

struct CachedClient {
    fingerprint: [u8; 32],
    client: Arc<OAuthClient>,
}

pub(crate) struct Directory {
    vault: Arc<Vault>,
    http: UpstreamClient,
    clients: moka::sync::Cache<String, Arc<CachedClient>>,
    /// Reported as created/updated time of config entries.
    started_at: f64,
}

impl Directory {
    pub(crate) fn new(vault: Arc<Vault>, http: UpstreamClient) -> Self {
        Directory {
            vault,
            http,
            clients: moka::sync::Cache::builder().max_capacity(10_000).build(),
            started_at: now(),
        }
    }

    pub(crate) fn started_at(&self) -> f64 {
        self.started_at
    }

    /// A provider ready for use, from the config or the API.
    pub(crate) async fn provider(
        &self,
        configured: &Configured<'_>,
        name: &str,
    ) -> Result<Option<Provider>, VaultError> {
        if let Some(provider) = configured.providers.get(name) {
            return Ok(Some(provider.clone()));
        }
        let Some(credential) = self.vault.get(&provider_owner(name)).await? else {
            return Ok(None);
        };
        let Some(record) = records::from_credential::<ProviderRecord>(&credential) else {
            return Ok(None);
        };
        Ok(match record.spec {
            ProviderSpec::ApiKey { api_key } => Some(Provider::ApiKey(SecretString::from(api_key))),
            ProviderSpec::OAuth2(spec) => {
                let Credential::Secret(json) = &*credential else {
                    return Ok(None);
                };
                let fingerprint = verified_cache::digest(json.expose_secret());
                self.oauth_client_for(name, &spec, fingerprint)
                    .map(Provider::OAuth2)
            }
        })
    }

    /// The cached client while the record's fingerprint is unchanged, else a new one.
    fn oauth_client_for(
        &self,
        name: &str,
        spec: &OAuth2Spec,
        fingerprint: [u8; 32],
    ) -> Option<Arc<OAuthClient>> {
        if let Some(cached) = self.clients.get(name)
            && cached.fingerprint == fingerprint
        {
            return Some(cached.client.clone());
        }
        let config = spec.to_config().ok()?;
        let client = Arc::new(OAuthClient::new(name, config, self.http.clone()));
        self.clients.insert(
            name.to_string(),
            Arc::new(CachedClient {
                fingerprint,
                client: client.clone(),
            }),
        );
        Some(client)
    }

    /// The OAuth client of a provider, from either origin (for the consent endpoints).
    pub(crate) async fn oauth_client(
        &self,
        configured: &Configured<'_>,
        name: &str,
    ) -> Option<Arc<OAuthClient>> {
        match self.provider(configured, name).await {
            Ok(Some(Provider::OAuth2(client))) => Some(client),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, provider = name, "provider lookup failed");
                None
            }
        }
    }
}

/// The AgentCore vendor name for a config provider.
fn config_vendor(kind: &ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::OAuth2(c) => crate::providers::vendors::agentcore_name(&c.vendor),
        ProviderKind::ApiKey { .. } => None,
    }
}
