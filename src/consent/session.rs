//! The consent session as the vault keeps it (sealed as a whole, pending tokens included), its
//! vault owners, and the session store: load, save, compare-and-swap replace, counts.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{ConsentError, SESSION_URI_PREFIX};
use crate::inbound::UserId;
use crate::vault::{Credential, Owner, OwnerKind, Vault, store};

/// Where a session stands. (`Debug` never shows the pending tokens.)
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    Pending,
    Authorized {
        access_token: String,
        refresh_token: Option<String>,
        expires_at: Option<i64>,
        scopes: Vec<String>,
        /// The access token's lifetime as the provider gave it (`expires_in`).
        #[serde(default)]
        lifetime_secs: Option<i64>,
    },
    Failed {
        reason: String,
    },
    /// Bound to its user by `CompleteResourceTokenAuth`; the tokens are in the user's entry.
    Completed,
    /// A completed session of a forced route whose one request has been served.
    Redeemed,
}

/// A consent session, sealed in the vault as a whole (pending tokens included). (`Debug`
/// never shows the PKCE verifier, the custom state or the pending tokens.)
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    pub(crate) workload: String,
    pub(crate) user: SessionUser,
    pub(crate) provider: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) return_url: String,
    pub(crate) custom_state: Option<String>,
    pub(crate) custom_parameters: Vec<(String, String)>,
    pub(crate) verifier: String,
    pub expires_at: i64,
    pub(crate) status: Status,
    /// The qualifier of its `consent_pending` index entry (see [`super::pending`]).
    #[serde(default)]
    pub(crate) index: Option<String>,
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Pending => f.write_str("Pending"),
            Status::Authorized {
                expires_at, scopes, ..
            } => f
                .debug_struct("Authorized")
                .field("expires_at", expires_at)
                .field("scopes", scopes)
                .finish_non_exhaustive(),
            Status::Failed { reason } => f.debug_struct("Failed").field("reason", reason).finish(),
            Status::Completed => f.write_str("Completed"),
            Status::Redeemed => f.write_str("Redeemed"),
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("workload", &self.workload)
            .field("user", &self.user)
            .field("provider", &self.provider)
            .field("scopes", &self.scopes)
            .field("return_url", &self.return_url)
            .field("expires_at", &self.expires_at)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub(crate) issuer: Option<String>,
    pub(crate) id: String,
}

impl From<&UserId> for SessionUser {
    fn from(user: &UserId) -> Self {
        SessionUser {
            issuer: user.issuer.clone(),
            id: user.id.clone(),
        }
    }
}

/// The vault owner of a consent session (by the id inside its `sessionUri`).
pub fn session_owner(id: &str) -> Owner {
    Owner::consent_session(id)
}

/// The vault owner of a user's tokens for a provider.
pub fn user_owner(workload: &str, user: &UserId, provider: &str) -> Owner {
    Owner::user_token(
        workload,
        user.issuer.as_deref().unwrap_or_default(),
        &user.id,
        provider,
    )
}

/// The session id inside a `sessionUri`.
pub fn session_id(session_uri: &str) -> Option<&str> {
    session_uri.strip_prefix(SESSION_URI_PREFIX).filter(|id| {
        !id.is_empty()
            && id.len() <= 128
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    })
}

/// The callback URL providers redirect to.
pub fn callback_url(public_url: &Url) -> String {
    format!(
        "{}/identities/oauth2/callback",
        public_url.as_str().trim_end_matches('/')
    )
}

pub(super) async fn load(vault: &Vault, id: &str) -> Result<Session, ConsentError> {
    let credential = vault
        .get(&session_owner(id))
        .await?
        .ok_or(ConsentError::UnknownSession)?;
    let session = decode(&credential)?;
    if session.expires_at <= store::now() {
        return Err(ConsentError::UnknownSession);
    }
    Ok(session)
}

/// A live session with its record version, for a compare-and-swap update.
pub(super) async fn load_versioned(
    vault: &Vault,
    owner: &Owner,
) -> Result<(i64, Session), ConsentError> {
    let (version, credential) = vault
        .get_versioned(owner)
        .await?
        .ok_or(ConsentError::UnknownSession)?;
    let session = decode(&credential)?;
    if session.expires_at <= store::now() {
        return Err(ConsentError::UnknownSession);
    }
    Ok((version, session))
}

pub(super) fn decode(credential: &Credential) -> Result<Session, ConsentError> {
    match credential {
        Credential::Secret(json) => {
            serde_json::from_str(json.expose_secret()).map_err(|_| ConsentError::UnknownSession)
        }
        Credential::OAuth(_) => Err(ConsentError::UnknownSession),
    }
}

pub(super) async fn save(vault: &Vault, id: &str, session: &Session) -> Result<(), ConsentError> {
    let json = serde_json::to_string(session).map_err(|_| ConsentError::UnknownSession)?;
    vault
        .put_until(
            &session_owner(id),
            &Credential::Secret(SecretString::from(json)),
            Some(session.expires_at),
        )
        .await?;
    Ok(())
}

/// Writes `session` over the record at `version`; false when someone else changed it first.
pub(super) async fn replace(
    vault: &Vault,
    owner: &Owner,
    version: i64,
    session: &Session,
) -> Result<bool, ConsentError> {
    let json = serde_json::to_string(session).map_err(|_| ConsentError::UnknownSession)?;
    Ok(vault
        .replace_version(
            owner,
            version,
            &Credential::Secret(SecretString::from(json)),
            Some(session.expires_at),
        )
        .await?)
}

/// The session behind a `sessionUri` (for the API to check who may poll or complete it).
pub async fn peek(vault: &Vault, session_uri: &str) -> Result<Session, ConsentError> {
    let id = session_id(session_uri).ok_or(ConsentError::UnknownSession)?;
    load(vault, id).await
}

/// Sessions counted at most, so a flood of sessions cannot make a scrape slow.
const PENDING_COUNT_CAP: usize = 10_000;

/// Sessions still waiting for the user or for `CompleteResourceTokenAuth` (not expired).
pub async fn pending_count(vault: &Vault) -> Result<usize, ConsentError> {
    let mut pending = 0;
    for owner in vault
        .owners(OwnerKind::ConsentSession)
        .await?
        .iter()
        .take(PENDING_COUNT_CAP)
    {
        if let Some((_, credential)) = vault.get_versioned(owner).await?
            && let Ok(session) = decode(&credential)
            && matches!(session.status, Status::Pending | Status::Authorized { .. })
        {
            pending += 1;
        }
    }
    Ok(pending)
}

/// Status of a session for polling (`GetResourceOauth2Token` with `sessionUri`).
pub async fn status(vault: &Vault, session_uri: &str) -> Result<Status, ConsentError> {
    let id = session_id(session_uri).ok_or(ConsentError::UnknownSession)?;
    Ok(load(vault, id).await?.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_tokens_or_the_verifier() {
        let session = Session {
            workload: "w".into(),
            user: SessionUser {
                issuer: None,
                id: "alice".into(),
            },
            provider: "p".into(),
            scopes: vec![],
            return_url: "https://app/cb".into(),
            custom_state: Some("s3cret-state".into()),
            custom_parameters: vec![],
            verifier: "s3cret-verifier".into(),
            expires_at: 0,
            index: None,
            status: Status::Authorized {
                access_token: "s3cret-access".into(),
                refresh_token: Some("s3cret-refresh".into()),
                expires_at: None,
                scopes: vec![],
                lifetime_secs: None,
            },
        };
        let shown = format!("{session:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }
}
