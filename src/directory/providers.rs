//! Credential providers (OAuth2 and API key, one namespace of names, as the data plane looks
//! them up by name alone): config-defined ones are readable but read-only; API-created ones
//! live in the vault with their secrets sealed, at most `[api].max_credential_providers` of
//! them. Deleting one deletes the tokens vaulted from it first.

use std::collections::BTreeMap;

use super::records::{self, PROVIDER_KIND, ProviderRecord, ProviderSpec, now, provider_owner};
use super::{Configured, Directory, DirectoryError, Entry, EntryKind, UPDATE_ATTEMPTS};
use crate::config::{ProviderConfig, ProviderKind};
use crate::vault::VaultError;

/// The two kinds of credential provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProviderType {
    OAuth2,
    ApiKey,
}

impl ProviderType {
    /// The entry this provider type and name make (for messages).
    pub(crate) fn entry(self, name: &str) -> Entry {
        let kind = match self {
            ProviderType::OAuth2 => EntryKind::OAuth2Provider,
            ProviderType::ApiKey => EntryKind::ApiKeyProvider,
        };
        Entry::new(kind, name)
    }

    fn of_config(kind: &ProviderKind) -> Self {
        match kind {
            ProviderKind::OAuth2(_) => ProviderType::OAuth2,
            ProviderKind::ApiKey { .. } => ProviderType::ApiKey,
        }
    }

    fn of_spec(spec: &ProviderSpec) -> Self {
        match spec {
            ProviderSpec::OAuth2(_) => ProviderType::OAuth2,
            ProviderSpec::ApiKey { .. } => ProviderType::ApiKey,
        }
    }
}

/// A provider as defined, from either origin.
pub(crate) enum StoredProvider<'c> {
    Config {
        config: &'c ProviderConfig,
        /// When keygate started (reported as created and updated time).
        started_at: f64,
    },
    Api(Box<ProviderRecord>),
}

impl StoredProvider<'_> {
    /// (created, last updated).
    pub(crate) fn times(&self) -> (f64, f64) {
        match self {
            StoredProvider::Config { started_at, .. } => (*started_at, *started_at),
            StoredProvider::Api(record) => (record.created_at, record.updated_at),
        }
    }
}

/// One provider in a listing.
pub(crate) struct ListedProvider {
    pub(crate) name: String,
    /// AgentCore's vendor name, when keygate's vendor has one.
    pub(crate) vendor: Option<&'static str>,
    pub(crate) created_at: f64,
    pub(crate) updated_at: f64,
}

fn any_kind(name: &str) -> Entry {
    Entry::new(EntryKind::Provider, name)
}

impl Directory {
    /// The provider of this type by name, from either origin.
    pub(crate) async fn get_provider<'c>(
        &self,
        configured: &Configured<'c>,
        name: &str,
        wanted: ProviderType,
    ) -> Result<StoredProvider<'c>, DirectoryError> {
        if let Some(config) = configured.provider(name) {
            if ProviderType::of_config(&config.kind) != wanted {
                return Err(DirectoryError::NotFound(wanted.entry(name)));
            }
            return Ok(StoredProvider::Config {
                config,
                started_at: self.started_at,
            });
        }
        match self.provider_record(name).await? {
            Some(record) if ProviderType::of_spec(&record.spec) == wanted => {
                Ok(StoredProvider::Api(Box::new(record)))
            }
            _ => Err(DirectoryError::NotFound(wanted.entry(name))),
        }
    }

    /// An API-created provider's stored record.
    async fn provider_record(&self, name: &str) -> Result<Option<ProviderRecord>, VaultError> {
        records::read(&self.vault, &provider_owner(name)).await
    }

    /// Refuses a name the config file already uses (before a create's input is examined).
    pub(crate) fn check_new_provider(
        &self,
        configured: &Configured<'_>,
        name: &str,
    ) -> Result<(), DirectoryError> {
        match configured.provider(name) {
            Some(_) => Err(DirectoryError::InConfig(any_kind(name))),
            None => Ok(()),
        }
    }

    /// Stores a new API-created provider, within `limit`.
    pub(crate) async fn create_provider(
        &self,
        configured: &Configured<'_>,
        name: &str,
        tags: BTreeMap<String, String>,
        spec: ProviderSpec,
        limit: usize,
    ) -> Result<ProviderRecord, DirectoryError> {
        self.check_new_provider(configured, name)?;
        let now = now();
        let record = ProviderRecord {
            name: name.to_string(),
            created_at: now,
            updated_at: now,
            tags,
            spec,
        };
        if records::names(&self.vault, PROVIDER_KIND).await?.len() >= limit {
            return Err(DirectoryError::QuotaExceeded {
                kind: EntryKind::Provider,
                max: limit,
            });
        }
        if !records::put_new(&self.vault, &provider_owner(name), &record).await? {
            return Err(DirectoryError::Exists(any_kind(name)));
        }
        Ok(record)
    }

    /// Read-modify-write of an API-created provider by compare-and-swap; `change` may refuse
    /// (a wrong kind, say).
    pub(crate) async fn update_provider<E: From<DirectoryError>>(
        &self,
        configured: &Configured<'_>,
        name: &str,
        mut change: impl FnMut(&mut ProviderRecord) -> Result<(), E>,
    ) -> Result<ProviderRecord, E> {
        if configured.provider(name).is_some() {
            return Err(DirectoryError::ReadOnly(any_kind(name)).into());
        }
        let owner = provider_owner(name);
        for _ in 0..UPDATE_ATTEMPTS {
            let versioned = records::versioned::<ProviderRecord>(&self.vault, &owner)
                .await
                .map_err(DirectoryError::from)?;
            let Some(mut current) = versioned else {
                return Err(DirectoryError::NotFound(any_kind(name)).into());
            };
            change(&mut current.record)?;
            current.record.updated_at = now().max(current.record.created_at);
            if records::replace(&self.vault, &owner, current.version, &current.record)
                .await
                .map_err(DirectoryError::from)?
            {
                return Ok(current.record);
            }
        }
        Err(DirectoryError::Contended(any_kind(name)).into())
    }

    /// Deletes every token vaulted from provider `name` (users' and M2M), so a provider
    /// pointed elsewhere, or created again under this name, starts with nothing.
    pub(crate) async fn purge_provider_tokens(&self, name: &str) -> Result<usize, VaultError> {
        records::purge_tokens(&self.vault, |owner| owner.provider == name).await
    }

    /// Every provider of one type, from both origins, sorted by name.
    pub(crate) async fn list_providers(
        &self,
        configured: &Configured<'_>,
        wanted: ProviderType,
    ) -> Result<Vec<ListedProvider>, VaultError> {
        let mut listed = Vec::new();
        for p in &configured.config.providers {
            if ProviderType::of_config(&p.kind) == wanted {
                listed.push(ListedProvider {
                    name: p.name.clone(),
                    vendor: super::config_vendor(&p.kind),
                    created_at: self.started_at,
                    updated_at: self.started_at,
                });
            }
        }
        for name in records::names(&self.vault, PROVIDER_KIND).await? {
            let Some(record) = self.provider_record(&name).await? else {
                continue;
            };
            let vendor = match &record.spec {
                ProviderSpec::OAuth2(spec) => {
                    crate::providers::vendors::agentcore_name(&spec.vendor)
                }
                ProviderSpec::ApiKey { .. } => None,
            };
            if ProviderType::of_spec(&record.spec) == wanted {
                listed.push(ListedProvider {
                    name,
                    vendor,
                    created_at: record.created_at,
                    updated_at: record.updated_at,
                });
            }
        }
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listed)
    }

    /// Deletes an API-created provider of this type and, first, every token vaulted from it
    /// (a failure leaves the provider to delete again). Returns how many tokens were deleted.
    pub(crate) async fn delete_provider(
        &self,
        configured: &Configured<'_>,
        name: &str,
        wanted: ProviderType,
    ) -> Result<usize, DirectoryError> {
        if configured.provider(name).is_some() {
            return Err(DirectoryError::ReadOnly(any_kind(name)));
        }
        let matches = self
            .provider_record(name)
            .await?
            .is_some_and(|r| ProviderType::of_spec(&r.spec) == wanted);
        if !matches {
            return Err(DirectoryError::NotFound(wanted.entry(name)));
        }
        let purged = self.purge_provider_tokens(name).await?;
        if !self.vault.delete(&provider_owner(name)).await? {
            return Err(DirectoryError::NotFound(wanted.entry(name)));
        }
        Ok(purged)
    }
}
