//! 3-legged OAuth consent (USER_FEDERATION) with session binding. A session is created when a
//! user has no usable token; its `authorizationUrl` points at keygate, which redirects to the
//! provider with `state` and a PKCE S256 challenge. The provider's callback exchanges the code
//! and holds the tokens sealed in the session; the browser goes to the app's return URL with
//! `session_id`. Tokens reach the user's vault entry only when `CompleteResourceTokenAuth` names
//! the same user who started the session; anyone else makes the session fail and the tokens
//! are discarded. Sessions live 10 minutes, in the vault (so any replica can serve any step).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::inbound::UserId;
use crate::providers::ProviderError;
use crate::providers::oauth::OAuthClient;
use crate::vault::{Credential, OAuthTokens, Owner, OwnerKind, Vault, VaultError, store};

pub mod http;
pub mod lookup;
pub mod pending;
pub mod refresh;

pub const SESSION_LIFETIME_SECS: i64 = 600;
pub const SESSION_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("no such consent session, or it expired")]
    UnknownSession,
    #[error("the consent session was already used")]
    AlreadyUsed,
    #[error("the consent session is not authorized yet")]
    NotReady,
    #[error("the consent session failed: {0}")]
    Failed(String),
    #[error("the session was started by another user")]
    UserMismatch,
    #[error("too many consent sessions are open for this user; finish or let one expire first")]
    TooManySessions,
    #[error("the provider has no authorization endpoint")]
    NoAuthorizationEndpoint,
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

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
    pub workload: String,
    pub user: SessionUser,
    pub provider: String,
    pub scopes: Vec<String>,
    pub return_url: String,
    pub custom_state: Option<String>,
    pub custom_parameters: Vec<(String, String)>,
    pub verifier: String,
    pub expires_at: i64,
    pub status: Status,
    /// The qualifier of its `consent_pending` index entry (see [`pending`]).
    #[serde(default)]
    pub index: Option<String>,
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
    pub issuer: Option<String>,
    pub id: String,
}

impl From<&UserId> for SessionUser {
    fn from(user: &UserId) -> Self {
        SessionUser {
            issuer: user.issuer.clone(),
            id: user.id.clone(),
        }
    }
}

/// Where the consent steps find a provider's OAuth client (config or API-created).
pub trait Clients: Sync {
    fn client(
        &self,
        provider: &str,
    ) -> impl Future<Output = Option<std::sync::Arc<OAuthClient>>> + Send;
}

/// What starting a session returns to the caller.
#[derive(Debug, Clone)]
pub struct Started {
    pub session_uri: String,
    pub authorization_url: String,
    pub expires_in: i64,
    /// An earlier pending session for the same request, handed out again.
    pub reused: bool,
}

/// Everything a session needs to start.
pub struct Request<'a> {
    pub workload: &'a str,
    pub user: &'a UserId,
    pub provider: &'a str,
    pub scopes: &'a [String],
    pub return_url: &'a str,
    pub custom_state: Option<String>,
    pub custom_parameters: Vec<(String, String)>,
}

fn random_token() -> Result<String, VaultError> {
    let bytes: [u8; 32] = {
        use aws_lc_rs::rand::SecureRandom;
        let mut b = [0u8; 32];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| VaultError::Seal(crate::vault::SealError::Random))?;
        b
    };
    Ok(URL_SAFE_NO_PAD.encode(bytes))
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

async fn load(vault: &Vault, id: &str) -> Result<Session, ConsentError> {
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
async fn load_versioned(vault: &Vault, owner: &Owner) -> Result<(i64, Session), ConsentError> {
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

fn decode(credential: &Credential) -> Result<Session, ConsentError> {
    match credential {
        Credential::Secret(json) => {
            serde_json::from_str(json.expose_secret()).map_err(|_| ConsentError::UnknownSession)
        }
        Credential::OAuth(_) => Err(ConsentError::UnknownSession),
    }
}

async fn save(vault: &Vault, id: &str, session: &Session) -> Result<(), ConsentError> {
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

/// Creates a session, or (unless `forced`) hands out again the user's pending session for the
/// very same request; the caller answers with `authorization_url` and `session_uri`. A user
/// holding [`pending::MAX_PENDING_PER_USER`] sessions gets [`ConsentError::TooManySessions`].
pub async fn start(
    vault: &Vault,
    public_url: &Url,
    request: Request<'_>,
    forced: bool,
) -> Result<Started, ConsentError> {
    let now = store::now();
    if !forced {
        let index = pending::index_owner(&request, None);
        if let Some((id, session)) = pending::reusable(vault, &index).await? {
            return Ok(Started {
                reused: true,
                ..started(public_url, &id, session.expires_at - now)
            });
        }
    }
    let id = random_token()?;
    let index = pending::index_owner(&request, forced.then_some(id.as_str()));
    pending::check_capacity(vault, &index).await?;
    let session = Session {
        workload: request.workload.to_string(),
        user: request.user.into(),
        provider: request.provider.to_string(),
        scopes: request.scopes.to_vec(),
        return_url: request.return_url.to_string(),
        custom_state: request.custom_state,
        custom_parameters: request.custom_parameters,
        verifier: random_token()?,
        expires_at: now + SESSION_LIFETIME_SECS,
        status: Status::Pending,
        index: Some(index.qualifier.clone()),
    };
    save(vault, &id, &session).await?;
    pending::record(vault, &index, &id, session.expires_at).await?;
    Ok(started(public_url, &id, SESSION_LIFETIME_SECS))
}

fn started(public_url: &Url, id: &str, expires_in: i64) -> Started {
    let session_uri = format!("{SESSION_URI_PREFIX}{id}");
    Started {
        authorization_url: authorization_url(public_url, &session_uri),
        session_uri,
        expires_in,
        reused: false,
    }
}

/// The URL at keygate that starts the browser's part of a session.
pub fn authorization_url(public_url: &Url, session_uri: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("request_uri", session_uri)
        .finish();
    format!(
        "{}/identities/oauth2/authorize?{query}",
        public_url.as_str().trim_end_matches('/')
    )
}

/// Where `/identities/oauth2/authorize` sends the browser: the provider, with `state` and PKCE.
pub async fn authorization_redirect(
    vault: &Vault,
    public_url: &Url,
    clients: &impl Clients,
    session_uri: &str,
) -> Result<Url, ConsentError> {
    let id = session_id(session_uri).ok_or(ConsentError::UnknownSession)?;
    let session = load(vault, id).await?;
    if !matches!(session.status, Status::Pending) {
        return Err(ConsentError::AlreadyUsed);
    }
    let client = clients
        .client(&session.provider)
        .await
        .ok_or(ConsentError::NoAuthorizationEndpoint)?;
    let endpoints = client.endpoints().await?;
    let mut url = endpoints
        .authorization
        .clone()
        .ok_or(ConsentError::NoAuthorizationEndpoint)?;
    let challenge =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, session.verifier.as_bytes());
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client.client_id())
            .append_pair("redirect_uri", &callback_url(public_url))
            .append_pair("state", id)
            .append_pair(
                "code_challenge",
                &URL_SAFE_NO_PAD.encode(challenge.as_ref()),
            )
            .append_pair("code_challenge_method", "S256");
        // The scopes as the vendor spells them, what it needs to issue a refresh token, and the
        // caller's customParameters (never in place of the vendor's own).
        let parameters =
            client.authorization_parameters(&session.scopes, &session.custom_parameters);
        for (name, value) in &parameters {
            query.append_pair(name, value);
        }
    }
    Ok(url)
}

/// The provider's redirect back: exchanges the code (or records the provider's error) and
/// returns where to send the browser (the session's return URL with `session_id`).
pub async fn callback(
    vault: &Vault,
    public_url: &Url,
    clients: &impl Clients,
    state: &str,
    response: Response<'_>,
) -> Result<Callback, ConsentError> {
    let owner = session_owner(state);
    let (version, mut session) = load_versioned(vault, &owner).await?;
    if !matches!(session.status, Status::Pending) {
        return Err(ConsentError::AlreadyUsed);
    }
    let mut return_url =
        Url::parse(&session.return_url).map_err(|_| ConsentError::UnknownSession)?;
    let session_uri = format!("{SESSION_URI_PREFIX}{state}");
    let mut exchange = None;
    let client = clients.client(&session.provider).await;
    let issuer_ok = match &client {
        Some(client) => match client.endpoints().await {
            Ok(endpoints) => endpoints.accepts_response_issuer(response.iss),
            Err(_) => response.iss.is_none(),
        },
        None => true,
    };
    let outcome = match (response.code, response.error) {
        // RFC 9207: a response naming another issuer (a mix-up) is never exchanged.
        _ if !issuer_ok => Err("invalid_issuer".to_string()),
        (_, Some(error)) => Err(sanitize(error)),
        (Some(code), None) => match client {
            Some(client) => {
                let exchanged = client
                    .exchange_code(code, &callback_url(public_url), &session.verifier)
                    .await;
                exchange = Some(match &exchanged {
                    Ok(_) => Exchange::Success,
                    Err(e) => Exchange::Failed {
                        result: e.result(),
                        misconfigured: e.is_client_misconfiguration(),
                    },
                });
                exchanged.map_err(|e| match e {
                    ProviderError::Refused { error, .. } => error,
                    _ => "provider_error".to_string(),
                })
            }
            None => Err("unknown_provider".to_string()),
        },
        (None, None) => Err("invalid_request".to_string()),
    };
    {
        let mut query = return_url.query_pairs_mut();
        query.append_pair("session_id", &session_uri);
        if let Some(custom) = &session.custom_state {
            query.append_pair("state", custom);
        }
        if let Err(reason) = &outcome {
            query.append_pair("error", reason);
        }
    }
    session.status = match outcome {
        Ok(tokens) => Status::Authorized {
            access_token: tokens.access_token.expose_secret().to_string(),
            refresh_token: tokens.refresh_token.map(|r| r.expose_secret().to_string()),
            expires_at: tokens
                .expires_in
                .map(|s| store::now() + crate::vault::credential::lifetime_secs(s)),
            lifetime_secs: tokens
                .expires_in
                .map(crate::vault::credential::lifetime_secs),
            scopes: tokens.scope.as_deref().map_or_else(
                || session.scopes.clone(),
                crate::providers::scopes::parse_granted,
            ),
        },
        Err(reason) => Status::Failed { reason },
    };
    let reduced = match &session.status {
        Status::Authorized { scopes, .. } => {
            crate::providers::scopes::missing(&session.scopes, scopes)
        }
        _ => Vec::new(),
    };
    // One outcome per session: a second callback racing this one (a double load, a replayed
    // code) finds the session changed and gets 400.
    if !replace(vault, &owner, version, &session).await? {
        return Err(ConsentError::AlreadyUsed);
    }
    let refused = match &session.status {
        Status::Failed { reason } => Some(reason.clone()),
        _ => None,
    };
    if refused.is_some() {
        pending::forget(vault, pending::index_of(&session).as_ref()).await;
    }
    Ok(Callback {
        redirect: return_url,
        refused,
        reduced,
        exchange,
        session,
    })
}

/// How the code exchange at the provider's token endpoint went, when one was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    Success,
    Failed {
        /// The `keygate_token_requests_total{result}` label.
        result: &'static str,
        /// The provider refused keygate's own client credentials (a wrong secret, an unknown
        /// client): the operator's problem, not the user's.
        misconfigured: bool,
    },
}

/// The parameters of the provider's redirect back (the authorization response).
#[derive(Debug, Clone, Copy, Default)]
pub struct Response<'a> {
    pub code: Option<&'a str>,
    pub error: Option<&'a str>,
    /// RFC 9207's `iss`, naming the authorization server that answered.
    pub iss: Option<&'a str>,
}

/// The outcome of the provider's redirect back.
pub struct Callback {
    /// Where the browser goes next (the app's return URL).
    pub redirect: Url,
    /// Why the session failed, when the provider or the code exchange refused it.
    pub refused: Option<String>,
    /// Requested scopes the provider's answer says it did not grant (the tokens serve all the
    /// same: the provider decides what they are good for).
    pub reduced: Vec<String>,
    /// The code exchange, when the provider sent a code.
    pub exchange: Option<Exchange>,
    pub session: Session,
}

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

/// Writes `session` over the record at `version`; false when someone else changed it first.
async fn replace(
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

fn sanitize(code: &str) -> String {
    if code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        code.to_string()
    } else {
        "provider_error".to_string()
    }
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
