//! Refreshing a user's vaulted token: the rotated refresh token is stored before the new access
//! token is used; `invalid_grant` re-reads the vault first (another request or replica may have
//! rotated it meanwhile) and only when the stored refresh token is the one that was refused is
//! the entry deleted, which turns the request into a consent challenge. Callers merge concurrent
//! refreshes of one entry (the runtime's `refreshes` cache), so the provider sees one.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::Context;
use crate::audit::{AuditEvent, Outcome};
use crate::providers::ProviderError;
use crate::providers::oauth::OAuthClient;
use crate::providers::oauth::TokenResponse;
use crate::vault::{Credential, OAuthTokens, Owner, VaultError, store};

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the refresh token was refused; the user must consent again")]
    ConsentNeeded,
    #[error(transparent)]
    Provider(ProviderError),
    #[error(transparent)]
    Vault(VaultError),
}

/// Refreshes the entry: because it is near expiry, or (`rejected`) because the resource server
/// refused that access token before its time.
pub(crate) async fn refresh(
    cx: &Context<'_>,
    client: &OAuthClient,
    owner: &Owner,
    request_id: &str,
    rejected: Option<&str>,
) -> Result<Arc<SecretString>, RefreshError> {
    // A refresh that failed moments ago is not tried again yet (a provider refusing or down is
    // not called once per request).
    if let Err(cooling) = client.cooldown.check(&client.provider, owner) {
        cx.metrics
            .token_requests_total
            .with_label_values(&[client.provider.as_str(), "refresh_token", cooling.result()])
            .inc();
        return Err(RefreshError::Provider(cooling));
    }
    // One refresh per token across the fleet: replicas take turns, and whoever comes second
    // finds the refreshed token below and uses it.
    let lock = cx.vault.lock(owner).await.map_err(RefreshError::Vault)?;
    let result = refresh_locked(cx, client, owner, request_id, rejected).await;
    lock.release().await;
    result
}

/// The refresh proper, under the entry's lock: re-read, refresh at the provider, settle.
async fn refresh_locked(
    cx: &Context<'_>,
    client: &OAuthClient,
    owner: &Owner,
    request_id: &str,
    rejected: Option<&str>,
) -> Result<Arc<SecretString>, RefreshError> {
    // Read with its version: the refreshed tokens replace exactly this record, never one
    // revoked or replaced (a new consent) while the provider was answering.
    let current = cx.vault.stored(owner).await.map_err(RefreshError::Vault)?;
    let Some((version, Credential::OAuth(tokens))) = &current else {
        return Err(RefreshError::ConsentNeeded);
    };
    // Someone refreshed it while we waited.
    let still_current = match rejected {
        Some(rejected) => tokens.access_token.expose_secret() == rejected,
        None => tokens.due_for_refresh(store::now()),
    };
    if !still_current {
        return Ok(Arc::new(tokens.access_token.clone()));
    }
    let Some(refresh_token) = tokens.refresh_token.clone() else {
        return Err(RefreshError::ConsentNeeded);
    };
    let result = client.refresh(refresh_token.expose_secret()).await;
    // `invalid_grant` is settled below (the entry goes, consent is asked); other failures cool.
    if !matches!(&result, Err(ProviderError::Refused { error, .. }) if error == "invalid_grant") {
        client.cooldown.record(owner, &result);
    }
    let label = match &result {
        Ok(_) => "success",
        Err(e) => e.result(),
    };
    cx.metrics
        .token_requests_total
        .with_label_values(&[client.provider.as_str(), "refresh_token", label])
        .inc();
    let refreshed = Refreshed {
        cx,
        owner,
        request_id,
    };
    match result {
        Ok(response) => {
            refreshed
                .store(*version, tokens, refresh_token, response)
                .await
        }
        Err(ProviderError::Refused { error, .. }) if error == "invalid_grant" => {
            refreshed.settle_invalid_grant(&refresh_token).await
        }
        Err(e) => {
            refreshed.audit(Outcome::Error, Some(e.result()));
            Err(RefreshError::Provider(e))
        }
    }
}

/// What settling a provider's answer to a refresh needs.
struct Refreshed<'a> {
    cx: &'a Context<'a>,
    owner: &'a Owner,
    request_id: &'a str,
}

impl Refreshed<'_> {
    fn audit(&self, outcome: Outcome, reason: Option<&str>) {
        let owner = self.owner;
        let event = AuditEvent::new("TokenRefresh", self.request_id, outcome)
            .workload(Some(&owner.workload))
            .user(Some(&crate::inbound::UserId {
                issuer: (!owner.user_issuer.is_empty()).then(|| owner.user_issuer.clone()),
                id: owner.user_id.clone(),
            }))
            .provider(Some(&owner.provider))
            .reason(reason);
        let _ = self.cx.audit.record(event);
    }

    /// Stores the renewed tokens over the record read at `version` (before use: a rotated
    /// refresh token is never lost); when it changed meanwhile, what the vault holds decides.
    pub(crate) async fn store(
        &self,
        version: i64,
        tokens: &OAuthTokens,
        refresh_token: SecretString,
        response: TokenResponse,
    ) -> Result<Arc<SecretString>, RefreshError> {
        let vault = self.cx.vault;
        let renewed = OAuthTokens {
            access_token: response.access_token.clone(),
            // A provider that rotates sends a new one; one that does not keeps the old valid.
            refresh_token: response.refresh_token.or(Some(refresh_token)),
            expires_at: response
                .expires_in
                .map(|s| store::now() + crate::vault::credential::lifetime_secs(s)),
            scopes: response.scope.as_deref().map_or_else(
                || tokens.scopes.clone(),
                crate::providers::scopes::parse_granted,
            ),
            requested: tokens.requested.clone(),
            lifetime_secs: response
                .expires_in
                .map(crate::vault::credential::lifetime_secs),
        };
        let expires_at = renewed.expires_at;
        let stored = vault
            .replace_version(self.owner, version, &Credential::OAuth(renewed), expires_at)
            .await
            .map_err(RefreshError::Vault)?;
        if !stored {
            // Revoked or replaced meanwhile: what is in the vault now decides.
            self.audit(Outcome::Denied, Some("changed_meanwhile"));
            return match vault
                .get_fresh(self.owner)
                .await
                .map_err(RefreshError::Vault)?
                .as_deref()
            {
                Some(Credential::OAuth(latest)) => Ok(Arc::new(latest.access_token.clone())),
                _ => Err(RefreshError::ConsentNeeded),
            };
        }
        self.audit(Outcome::Success, None);
        Ok(Arc::new(response.access_token))
    }

    /// `invalid_grant`: unless another refresh rotated the token meanwhile (then its result is
    /// used), the entry is deleted and the user must consent again.
    async fn settle_invalid_grant(
        &self,
        refresh_token: &SecretString,
    ) -> Result<Arc<SecretString>, RefreshError> {
        let vault = self.cx.vault;
        let now_stored = vault
            .get_fresh(self.owner)
            .await
            .map_err(RefreshError::Vault)?;
        if let Some(Credential::OAuth(latest)) = now_stored.as_deref()
            && latest.refresh_token.as_ref().map(|r| r.expose_secret())
                != Some(refresh_token.expose_secret())
        {
            return Ok(Arc::new(latest.access_token.clone()));
        }
        vault
            .delete(self.owner)
            .await
            .map_err(RefreshError::Vault)?;
        self.cx.metrics.consent("refresh_refused");
        self.audit(Outcome::Denied, Some("invalid_grant"));
        Err(RefreshError::ConsentNeeded)
    }
}

/// After the resource server refused `rejected` (401): a refreshed token, merged with any
/// concurrent refresh of the same entry; `None` when there is nothing to refresh with.
pub(crate) async fn after_rejection(
    cx: &Context<'_>,
    client: &OAuthClient,
    owner: &Owner,
    rejected: &SecretString,
    request_id: &str,
) -> Option<SecretString> {
    let refreshed = cx
        .refreshes
        .try_get_with(
            owner.clone(),
            refresh(
                cx,
                client,
                owner,
                request_id,
                Some(rejected.expose_secret()),
            ),
        )
        .await;
    cx.refreshes.invalidate(owner).await;
    match refreshed {
        Ok(token) if token.expose_secret() != rejected.expose_secret() => Some((*token).clone()),
        Ok(_) => None,
        Err(error) => {
            tracing::info!(%error, "no refreshed token after the upstream refused the vaulted one");
            None
        }
    }
}
