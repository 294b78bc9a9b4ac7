//! Machine-to-machine tokens (client credentials): one per (workload, provider, grant), shared by
//! all users of the workload. The vault is their only store and cache: a token is vaulted with
//! the time it may be used until (a minute, or a quarter of a short life, before it expires), so
//! the vault's cache serves it and drops it on time, and a revocation anywhere reaches it like
//! any other vault entry. Concurrent requests for a missing or spent token make exactly one call
//! to the token endpoint (merged here, and across replicas by the vault's lock).

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use prometheus::IntCounterVec;
use secrecy::SecretString;

use super::ProviderError;
use super::oauth::OAuthClient;
use super::scopes;
use crate::vault::{Credential, OAuthTokens, Owner, Vault, VaultError, store};

/// Longest an M2M token is cached without an `expires_in`.
const DEFAULT_LIFETIME: i64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// What an M2M token is asked for: scopes, and optionally resource indicators (RFC 8707) and
/// audiences (as Auth0 and others name the API a token is for).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Grant<'a> {
    pub(crate) scopes: &'a [String],
    pub(crate) resources: &'a [String],
    pub(crate) audiences: &'a [String],
}

impl<'a> Grant<'a> {
    fn scopes(scopes: &'a [String]) -> Self {
        Grant {
            scopes,
            ..Grant::default()
        }
    }
}

use crate::vault::credential::refresh_margin;

/// The vaulted token, while it may still be used (its vaulted expiry is its use-until time).
fn usable(stored: Option<&Credential>) -> Option<SecretString> {
    match stored {
        Some(Credential::OAuth(t)) if t.expires_at.is_none_or(|at| at > store::now()) => {
            Some(t.access_token.clone())
        }
        _ => None,
    }
}

pub struct M2mTokens {
    /// Fetches in progress, merged per owner; emptied as soon as each is done (the vault
    /// keeps the result).
    fetches: Cache<Owner, SecretString>,
    token_requests: IntCounterVec,
}

impl M2mTokens {
    pub(crate) fn new(token_requests: IntCounterVec) -> Self {
        M2mTokens {
            fetches: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            token_requests,
        }
    }

    /// The vault owner of an M2M token: the workload's, for this provider and these scopes.
    pub fn owner(workload: &str, provider: &str, scopes: &[String]) -> Owner {
        Self::owner_for(workload, provider, &Grant::scopes(scopes))
    }

    /// The vault owner of an M2M token for a whole grant (scopes, resources, audiences): each
    /// different grant is a different token.
    fn owner_for(workload: &str, provider: &str, grant: &Grant<'_>) -> Owner {
        let sorted = |values: &[String]| {
            let mut values = values.to_vec();
            values.sort();
            values.dedup();
            values
        };
        let mut qualifier = sorted(grant.scopes).join(" ");
        for resource in sorted(grant.resources) {
            qualifier.push_str(&format!(" resource={resource}"));
        }
        for audience in sorted(grant.audiences) {
            qualifier.push_str(&format!(" audience={audience}"));
        }
        Owner::m2m_token(workload, provider, qualifier)
    }

    /// A token for `workload` from `client` with `scopes`.
    pub(crate) async fn token(
        &self,
        vault: &Vault,
        client: &OAuthClient,
        workload: &str,
        scopes: &[String],
    ) -> Result<SecretString, Arc<CredentialError>> {
        self.token_for(vault, client, workload, Grant::scopes(scopes))
            .await
    }

    /// A token for `workload` from `client` for `grant`: the vaulted one while it may be used,
    /// else a new one (one fetch for all who ask at once).
    pub(crate) async fn token_for(
        &self,
        vault: &Vault,
        client: &OAuthClient,
        workload: &str,
        grant: Grant<'_>,
    ) -> Result<SecretString, Arc<CredentialError>> {
        let owner = Self::owner_for(workload, &client.provider, &grant);
        let stored = vault
            .get(&owner)
            .await
            .map_err(|e| Arc::new(CredentialError::Vault(e)))?;
        if let Some(token) = usable(stored.as_deref()) {
            return Ok(token);
        }
        let fetched = self
            .fetches
            .try_get_with(owner.clone(), self.fetch(vault, client, &owner, grant))
            .await;
        self.fetches.invalidate(&owner).await;
        fetched
    }

    fn count(&self, client: &OAuthClient, error: &ProviderError) {
        self.token_requests
            .with_label_values(&[
                client.provider.as_str(),
                "client_credentials",
                error.result(),
            ])
            .inc();
    }

    /// One fetch per token across the fleet: under the vault's lock, whoever comes second finds
    /// the first one's token in the vault.
    async fn fetch(
        &self,
        vault: &Vault,
        client: &OAuthClient,
        owner: &Owner,
        grant: Grant<'_>,
    ) -> Result<SecretString, CredentialError> {
        if let Err(cooling) = client.cooldown.check(&client.provider, owner) {
            self.count(client, &cooling);
            return Err(cooling.into());
        }
        let lock = vault.lock(owner).await?;
        let result = self.fetch_locked(vault, client, owner, grant).await;
        lock.release().await;
        result
    }

    async fn fetch_locked(
        &self,
        vault: &Vault,
        client: &OAuthClient,
        owner: &Owner,
        grant: Grant<'_>,
    ) -> Result<SecretString, CredentialError> {
        // Another replica (or an earlier run) may have a good one in the vault.
        if let Some(token) = usable(vault.get_fresh(owner).await?.as_deref()) {
            return Ok(token);
        }
        let response = client
            .client_credentials_for(grant.scopes, grant.resources, grant.audiences)
            .await;
        client.cooldown.record(owner, &response);
        let result = match &response {
            Ok(_) => "success",
            Err(e) => e.result(),
        };
        self.token_requests
            .with_label_values(&[client.provider.as_str(), "client_credentials", result])
            .inc();
        let response = response?;
        let lifetime = response.expires_in.map_or(DEFAULT_LIFETIME, |s| {
            crate::vault::credential::lifetime_secs(s)
        });
        let granted = response
            .scope
            .as_deref()
            .map_or_else(|| grant.scopes.to_vec(), scopes::parse_granted);
        let credential = Credential::OAuth(OAuthTokens {
            access_token: response.access_token.clone(),
            refresh_token: None,
            // Vaulted with its use-until time: readers need no margin of their own.
            expires_at: Some(store::now() + lifetime - refresh_margin(lifetime)),
            scopes: granted,
            requested: grant.scopes.to_vec(),
            lifetime_secs: None,
        });
        vault.put(owner, &credential).await?;
        tracing::debug!(provider = %client.provider, workload = %owner.workload, "fetched an M2M token");
        Ok(response.access_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_are_a_minute_or_a_quarter_of_short_lives() {
        assert_eq!(refresh_margin(3600), 60);
        assert_eq!(refresh_margin(120), 30);
        assert_eq!(refresh_margin(0), 0);
    }

    #[test]
    fn owner_scopes_are_order_insensitive() {
        let a = M2mTokens::owner("w", "p", &["b".into(), "a".into()]);
        let b = M2mTokens::owner("w", "p", &["a".into(), "b".into(), "a".into()]);
        assert_eq!(a, b);
    }

    #[test]
    fn resources_and_audiences_make_a_different_token() {
        let scopes = ["a".to_string()];
        let plain = M2mTokens::owner("w", "p", &scopes);
        let resources = ["urn:x".to_string()];
        let with_resource = M2mTokens::owner_for(
            "w",
            "p",
            &Grant {
                scopes: &scopes,
                resources: &resources,
                audiences: &[],
            },
        );
        let with_audience = M2mTokens::owner_for(
            "w",
            "p",
            &Grant {
                scopes: &scopes,
                resources: &[],
                audiences: &resources,
            },
        );
        assert_eq!(plain.qualifier, "a");
        assert_eq!(with_resource.qualifier, "a resource=urn:x");
        assert_ne!(with_resource, with_audience);
    }
}
