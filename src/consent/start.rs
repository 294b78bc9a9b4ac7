//! Starting a session (or handing out again the user's pending one for the same request) and
//! the browser's first step: keygate's authorization URL, then the redirect to the provider
//! with `state` and a PKCE S256 challenge.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use url::Url;

use super::{
    Clients, ConsentError, SESSION_LIFETIME_SECS, SESSION_URI_PREFIX, Session, Status,
    callback_url, load, pending, save, session_id,
};
use crate::inbound::UserId;
use crate::vault::{Vault, VaultError, store};

/// What starting a session returns to the caller.
#[derive(Debug, Clone)]
pub struct Started {
    pub(crate) session_uri: String,
    pub(crate) authorization_url: String,
    pub(crate) expires_in: i64,
    /// An earlier pending session for the same request, handed out again.
    pub(crate) reused: bool,
}

/// Everything a session needs to start.
pub(crate) struct Request<'a> {
    pub(crate) workload: &'a str,
    pub(crate) user: &'a UserId,
    pub(crate) provider: &'a str,
    pub(crate) scopes: &'a [String],
    pub(crate) return_url: &'a str,
    pub(crate) custom_state: Option<String>,
    pub(crate) custom_parameters: Vec<(String, String)>,
}

pub(super) fn random_token() -> Result<String, VaultError> {
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

/// Creates a session, or (unless `forced`) hands out again the user's pending session for the
/// very same request; the caller answers with `authorization_url` and `session_uri`. A user
/// holding [`pending::MAX_PENDING_PER_USER`] sessions gets [`ConsentError::TooManySessions`].
pub(crate) async fn start(
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

pub(super) fn started(public_url: &Url, id: &str, expires_in: i64) -> Started {
    let session_uri = format!("{SESSION_URI_PREFIX}{id}");
    Started {
        authorization_url: authorization_url(public_url, &session_uri),
        session_uri,
        expires_in,
        reused: false,
    }
}

/// The URL at keygate that starts the browser's part of a session.
pub(crate) fn authorization_url(public_url: &Url, session_uri: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("request_uri", session_uri)
        .finish();
    format!(
        "{}/identities/oauth2/authorize?{query}",
        public_url.as_str().trim_end_matches('/')
    )
}

/// Where `/identities/oauth2/authorize` sends the browser: the provider, with `state` and PKCE.
pub(crate) async fn authorization_redirect(
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
