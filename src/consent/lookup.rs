//! The one rule for a user's token, shared by the proxy and `GetResourceOauth2Token`: the
//! vaulted token when the consent that produced it asked for every scope wanted now (refreshed
//! when near expiry), else the scopes a new consent must ask for. A new consent asks for what
//! the earlier one did as well, so two routes with different scopes of one provider never take
//! each other's token away.

use std::sync::Arc;

use secrecy::SecretString;

use super::Context;
use super::refresh::{self, RefreshError};
use crate::providers::oauth::OAuthClient;
use crate::vault::{Credential, Owner, store};

/// What the vault holds for a request.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A token to use now.
    Token(SecretString),
    /// No usable token: start a consent for these scopes.
    Consent(Vec<String>),
}

/// The user's token for `owner` and `scopes`, or the scopes to ask consent for. Concurrent
/// refreshes of one entry are merged through `refreshes`.
pub(crate) async fn user_token(
    cx: &Context<'_>,
    client: Option<&Arc<OAuthClient>>,
    owner: &Owner,
    scopes: &[String],
    request_id: &str,
) -> Result<Lookup, Arc<RefreshError>> {
    let stored = cx
        .vault
        .get(owner)
        .await
        .map_err(|e| Arc::new(RefreshError::Vault(e)))?;
    let Some(Credential::OAuth(tokens)) = stored.as_deref() else {
        return Ok(Lookup::Consent(scopes.to_vec()));
    };
    if !tokens.covers(scopes) {
        return Ok(Lookup::Consent(union(&tokens.requested, scopes)));
    }
    if !tokens.due_for_refresh(store::now()) {
        return Ok(Lookup::Token(tokens.access_token.clone()));
    }
    let (Some(_), Some(client)) = (&tokens.refresh_token, client) else {
        return Ok(Lookup::Consent(scopes.to_vec()));
    };
    let refreshed = cx
        .refreshes
        .try_get_with(
            owner.clone(),
            refresh::refresh(cx, client, owner, request_id, None),
        )
        .await;
    // The cache only merges concurrent refreshes; the vault keeps the result.
    cx.refreshes.invalidate(owner).await;
    match refreshed {
        Ok(token) => Ok(Lookup::Token((*token).clone())),
        Err(e) if matches!(*e, RefreshError::ConsentNeeded) => Ok(Lookup::Consent(scopes.to_vec())),
        Err(e) => Err(e),
    }
}

/// `earlier` then the scopes of `now` it lacks, in order.
fn union(earlier: &[String], now: &[String]) -> Vec<String> {
    let mut all = earlier.to_vec();
    all.extend(now.iter().filter(|s| !earlier.contains(s)).cloned());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_consent_keeps_what_the_earlier_one_asked_for() {
        let s = |items: &[&str]| items.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(
            union(&s(&["openid", "a"]), &s(&["b", "a"])),
            s(&["openid", "a", "b"])
        );
        assert_eq!(union(&[], &s(&["b"])), s(&["b"]));
    }
}
