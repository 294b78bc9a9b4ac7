//! The one answer to "the user's token, or a consent challenge", for the proxy and for
//! `GetResourceOauth2Token` alike: the vaulted token when it covers the scopes (refreshed when
//! near expiry, see [`super::lookup`]); else, for a forced route's retry, the token of the
//! consent the caller completed; else a consent session, started or (unless forced) reused.
//! The callers differ only in what they pass: where the browser returns and the caller's
//! custom state and parameters (the API's), and the completed session (the proxy's).
//!
//! [`poll`] answers the API's poll of a session by `sessionUri`.

use std::future::Future;
use std::sync::Arc;

use secrecy::SecretString;

use super::lookup::{self, Lookup};
use super::refresh::RefreshError;
use super::{ConsentError, Context, Redemption, Started, Status};
use crate::inbound::UserId;
use crate::providers::oauth::OAuthClient;

/// Whose token is wanted, for what.
pub(crate) struct Wanted<'a> {
    pub(crate) workload: &'a str,
    pub(crate) user: &'a UserId,
    pub(crate) provider: &'a str,
    /// The provider's OAuth client, to refresh a token near expiry (none: no refresh).
    pub(crate) client: Option<&'a Arc<OAuthClient>>,
    pub(crate) scopes: &'a [String],
    /// A fresh consent every time, never the vaulted token.
    pub(crate) force_authentication: bool,
    /// The `sessionUri` of the forced consent the caller completed (a proxy client's retry).
    pub(crate) completed_session: Option<&'a str>,
}

/// What a new consent session carries besides [`Wanted`]: asked for only when one is started.
pub(crate) struct SessionDetails {
    pub(crate) return_url: String,
    pub(crate) custom_state: Option<String>,
    pub(crate) custom_parameters: Vec<(String, String)>,
}

/// The answer.
#[derive(Debug)]
pub(crate) enum Obtained {
    /// A token to use now.
    Token(SecretString),
    /// The user must consent first: the session to send them to.
    Challenge(Started),
}

/// Why neither a token nor a challenge could be given.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ObtainError {
    /// Reading or refreshing the vaulted token failed (the vault, or the provider).
    #[error(transparent)]
    Refresh(Arc<RefreshError>),
    /// Starting, reading or redeeming a consent session failed.
    #[error(transparent)]
    Consent(#[from] ConsentError),
}

/// The user's token, or the consent challenge to answer with. `details` is called only when a
/// session is started (so its checks never stand between a caller and a vaulted token).
pub(crate) async fn token_or_challenge<E, F, Fut>(
    cx: &Context<'_>,
    wanted: &Wanted<'_>,
    request_id: &str,
    details: F,
) -> Result<Obtained, E>
where
    E: From<ObtainError>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<SessionDetails, E>>,
{
    let owner = super::user_owner(wanted.workload, wanted.user, wanted.provider);
    let mut consent_scopes = wanted.scopes.to_vec();
    if !wanted.force_authentication {
        match vaulted(cx, wanted, &owner, request_id).await? {
            Lookup::Token(token) => return Ok(Obtained::Token(token)),
            Lookup::Consent(scopes) => consent_scopes = scopes,
        }
    }
    if wanted.force_authentication
        && let Some(session_uri) = wanted.completed_session
    {
        let redeemed = super::redeem(cx.vault, cx.public_url, session_uri, &owner, wanted.scopes)
            .await
            .map_err(ObtainError::from)?;
        match redeemed {
            Redemption::Token(token) => return Ok(Obtained::Token(token)),
            Redemption::Pending(started) => return Ok(Obtained::Challenge(started)),
            Redemption::Unusable => {}
        }
    }
    let details = details().await?;
    let started = super::start(
        cx.vault,
        cx.public_url,
        super::Request {
            workload: wanted.workload,
            user: wanted.user,
            provider: wanted.provider,
            scopes: &consent_scopes,
            return_url: &details.return_url,
            custom_state: details.custom_state,
            custom_parameters: details.custom_parameters,
        },
        wanted.force_authentication,
    )
    .await
    .map_err(ObtainError::from)?;
    if !started.reused {
        cx.metrics.consent("started");
    }
    Ok(Obtained::Challenge(started))
}

/// The vaulted token, or the scopes to ask consent for (a refresh token the provider refused
/// asks consent for the scopes wanted now).
async fn vaulted(
    cx: &Context<'_>,
    wanted: &Wanted<'_>,
    owner: &crate::vault::Owner,
    request_id: &str,
) -> Result<Lookup, ObtainError> {
    match lookup::user_token(cx, wanted.client, owner, wanted.scopes, request_id).await {
        Ok(found) => Ok(found),
        Err(e) if matches!(*e, RefreshError::ConsentNeeded) => {
            Ok(Lookup::Consent(wanted.scopes.to_vec()))
        }
        Err(e) => Err(ObtainError::Refresh(e)),
    }
}

/// Where a polled session stands, for its own workload, user and provider.
#[derive(Debug)]
pub(crate) enum Polled {
    /// Completed: the user's token.
    Token(SecretString),
    /// Waiting for the user or for `CompleteResourceTokenAuth`.
    InProgress,
    /// Failed, expired, unknown, or someone else's (indistinguishable on purpose).
    Failed,
}

/// A poll of `session_uri`. Only the session's own workload, user and provider may poll it:
/// anyone else gets [`Polled::Failed`], the answer for a session that does not exist, so
/// polling cannot tell whether someone else's session exists.
pub(crate) async fn poll(
    cx: &Context<'_>,
    wanted: &Wanted<'_>,
    session_uri: &str,
    request_id: &str,
) -> Result<Polled, ObtainError> {
    let session = match super::peek(cx.vault, session_uri).await {
        Ok(session) => session,
        Err(ConsentError::UnknownSession) => return Ok(Polled::Failed),
        Err(e) => return Err(e.into()),
    };
    let provider = wanted
        .client
        .map_or(wanted.provider, |c| c.provider.as_str());
    if session.workload != wanted.workload
        || session.user != super::SessionUser::from(wanted.user)
        || session.provider != provider
    {
        tracing::info!(
            request_id,
            "a consent session was polled by another workload, user or provider; answered FAILED"
        );
        return Ok(Polled::Failed);
    }
    Ok(match session.status {
        Status::Failed { .. } => Polled::Failed,
        Status::Pending | Status::Authorized { .. } => Polled::InProgress,
        Status::Completed | Status::Redeemed => {
            let owner = super::user_owner(wanted.workload, wanted.user, wanted.provider);
            match vaulted(cx, wanted, &owner, request_id).await? {
                Lookup::Token(token) => Polled::Token(token),
                Lookup::Consent(_) => Polled::Failed,
            }
        }
    })
}
