//! The session's end: `CompleteResourceTokenAuth` binds it to the user who started it (tokens
//! into the user's vault entry), and a forced route's retry redeems it once.

use secrecy::SecretString;
use url::Url;

use super::{
    ConsentError, Session, SessionUser, Started, Status, load_versioned, pending, replace,
    session_id, session_owner, started, user_owner,
};
use crate::inbound::UserId;
use crate::vault::{Credential, OAuthTokens, Owner, Vault, store};

/// CompleteResourceTokenAuth: moves the session's tokens into `user`'s vault entry if `user`
/// started the session, and marks it completed (pollers then find the tokens in the vault). Any
/// other user fails the session and its tokens are discarded. One-time: the session is updated
/// by compare-and-swap, so of concurrent completions one decides.
pub async fn complete(
    vault: &Vault,
    session_uri: &str,
    user: &UserId,
) -> Result<Session, ConsentError> {
    let id = session_id(session_uri).ok_or(ConsentError::UnknownSession)?;
    let owner = session_owner(id);
    let (version, mut session) = load_versioned(vault, &owner).await?;
    let (access_token, refresh_token, expires_at, scopes, lifetime_secs) = match &session.status {
        Status::Pending => return Err(ConsentError::NotReady),
        Status::Failed { reason } => return Err(ConsentError::Failed(reason.clone())),
        Status::Completed | Status::Redeemed => return Err(ConsentError::AlreadyUsed),
        Status::Authorized {
            access_token,
            refresh_token,
            expires_at,
            scopes,
            lifetime_secs,
        } => (
            access_token.clone(),
            refresh_token.clone(),
            *expires_at,
            scopes.clone(),
            // Sessions authorized before the lifetime was kept: what is left is about it.
            lifetime_secs.or_else(|| expires_at.map(|at| (at - store::now()).max(0))),
        ),
    };
    if session.user != SessionUser::from(user) {
        session.status = Status::Failed {
            reason: "user_mismatch".to_string(),
        };
        replace(vault, &owner, version, &session).await?;
        pending::forget(vault, pending::index_of(&session).as_ref()).await;
        return Err(ConsentError::UserMismatch);
    }
    // The tokens first: if storing them fails, the session is still there to complete again.
    let tokens = Credential::OAuth(OAuthTokens {
        access_token: SecretString::from(access_token),
        refresh_token: refresh_token.map(SecretString::from),
        expires_at,
        scopes,
        requested: session.scopes.clone(),
        lifetime_secs,
    });
    vault
        .put(
            &user_owner(&session.workload, user, &session.provider),
            &tokens,
        )
        .await?;
    session.status = Status::Completed;
    if !replace(vault, &owner, version, &session).await? {
        return Err(ConsentError::AlreadyUsed);
    }
    pending::forget(vault, pending::index_of(&session).as_ref()).await;
    Ok(session)
}

/// A forced route's retry with the `sessionUri` of the consent it asked for: once that session
/// is completed by the same workload, user and provider for (at least) `scopes`, it is marked
/// redeemed (one request per forced consent) and the user's fresh token is returned.
pub async fn redeem(
    vault: &Vault,
    public_url: &Url,
    session_uri: &str,
    caller: &Owner,
    scopes: &[String],
) -> Result<Redemption, ConsentError> {
    let Some(id) = session_id(session_uri) else {
        return Ok(Redemption::Unusable);
    };
    let owner = session_owner(id);
    let (version, mut session) = match load_versioned(vault, &owner).await {
        Ok(found) => found,
        Err(ConsentError::UnknownSession) => return Ok(Redemption::Unusable),
        Err(e) => return Err(e),
    };
    let same_caller = session.workload == caller.workload
        && session.provider == caller.provider
        && session.user.id == caller.user_id
        && session.user.issuer.clone().unwrap_or_default() == caller.user_issuer;
    let covers = scopes.iter().all(|s| session.scopes.contains(s));
    if !same_caller || !covers {
        return Ok(Redemption::Unusable);
    }
    match session.status {
        Status::Completed => {}
        Status::Pending | Status::Authorized { .. } => {
            return Ok(Redemption::Pending(started(
                public_url,
                id,
                session.expires_at - store::now(),
            )));
        }
        Status::Failed { .. } | Status::Redeemed => return Ok(Redemption::Unusable),
    }
    session.status = Status::Redeemed;
    if !replace(vault, &owner, version, &session).await? {
        return Ok(Redemption::Unusable);
    }
    Ok(match vault.get_fresh(caller).await?.as_deref() {
        Some(Credential::OAuth(tokens)) => Redemption::Token(tokens.access_token.clone()),
        _ => Redemption::Unusable,
    })
}

/// What a forced route's retry with a `sessionUri` gets.
#[derive(Debug)]
pub enum Redemption {
    /// The session was completed for this caller: its token, for this one request.
    Token(SecretString),
    /// The caller's session is not completed yet: the same challenge again.
    Pending(Started),
    /// Not this caller's, not for these scopes, failed, expired or already redeemed.
    Unusable,
}
