//! Bounds on consent sessions. Each session a user starts leaves a small index record beside
//! it (`consent_pending`, expiring with the session): for a request that is not forced it is
//! keyed by what the session asks (workload, provider, scopes, return URL, custom state and
//! parameters), so the same request again gets the same session back instead of a new row;
//! and the records of one user are counted, so no user can hold more than
//! [`MAX_PENDING_PER_USER`] sessions at once however they vary their requests.

use secrecy::{ExposeSecret, SecretString};

use super::{ConsentError, Request, Session, Status, load};
use crate::vault::{Credential, Owner, OwnerKind, Vault, store};

/// Sessions (pending, or completed less than their 10 minutes ago) one user may hold.
pub const MAX_PENDING_PER_USER: usize = 20;

/// A pending session is handed out again only while the user has at least this long to finish
/// it; closer to its expiry a new one is started.
const MIN_REMAINING_SECS: i64 = 120;

const KIND: OwnerKind = OwnerKind::ConsentPending;

/// The index record of a session: keyed by the request (reusable) or by the session id
/// (forced: never reused, only counted).
pub(crate) fn index_owner(request: &Request<'_>, forced_id: Option<&str>) -> Owner {
    let qualifier = match forced_id {
        Some(id) => format!("forced:{id}"),
        None => request_digest(request),
    };
    Owner::consent_pending(
        request.workload,
        request.user.issuer.as_deref().unwrap_or_default(),
        &request.user.id,
        request.provider,
        qualifier,
    )
}

/// A digest of everything a session asks for, so only an identical request shares it.
fn request_digest(request: &Request<'_>) -> String {
    let mut scopes = request.scopes.to_vec();
    scopes.sort_unstable();
    scopes.dedup();
    let canonical = serde_json::json!([
        scopes,
        request.return_url,
        request.custom_state,
        request.custom_parameters,
    ])
    .to_string();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The id and session of a pending session started for the same request, while the user still
/// has time to finish it.
pub(crate) async fn reusable(
    vault: &Vault,
    index: &Owner,
) -> Result<Option<(String, Session)>, ConsentError> {
    let Some(credential) = vault.get_fresh(index).await? else {
        return Ok(None);
    };
    let Credential::Secret(id) = &*credential else {
        return Ok(None);
    };
    let id = id.expose_secret().to_string();
    match load(vault, &id).await {
        Ok(session)
            if matches!(session.status, Status::Pending)
                && session.expires_at - store::now() >= MIN_REMAINING_SECS =>
        {
            Ok(Some((id, session)))
        }
        Ok(_) | Err(ConsentError::UnknownSession) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Refuses a new session when the user already holds the maximum.
pub(crate) async fn check_capacity(vault: &Vault, index: &Owner) -> Result<(), ConsentError> {
    let held = vault
        .count_live_for_user(KIND, &index.user_issuer, &index.user_id)
        .await?;
    if held >= MAX_PENDING_PER_USER {
        return Err(ConsentError::TooManySessions);
    }
    Ok(())
}

/// Records the session's index entry, living as long as the session.
pub(crate) async fn record(
    vault: &Vault,
    index: &Owner,
    id: &str,
    expires_at: i64,
) -> Result<(), ConsentError> {
    vault
        .put_until(
            index,
            &Credential::Secret(SecretString::from(id.to_string())),
            Some(expires_at),
        )
        .await?;
    Ok(())
}

/// Forgets the index entry of a session that is over (completed or failed), so it no longer
/// counts against its user; the session record itself stays for pollers until it expires.
pub(crate) async fn forget(vault: &Vault, index: Option<&Owner>) {
    if let Some(index) = index
        && let Err(error) = vault.delete(index).await
    {
        tracing::debug!(%error, "could not remove a consent session's index entry");
    }
}

/// The index entry of `session`, when it has one (sessions from before it was kept do not).
pub(crate) fn index_of(session: &Session) -> Option<Owner> {
    session.index.as_ref().map(|qualifier| {
        Owner::consent_pending(
            &session.workload,
            session.user.issuer.as_deref().unwrap_or_default(),
            &session.user.id,
            &session.provider,
            qualifier.clone(),
        )
    })
}
