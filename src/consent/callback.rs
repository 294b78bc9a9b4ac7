//! The provider's redirect back: the code exchanged (or the provider's error recorded), one
//! outcome per session, and where the browser goes next.

use secrecy::ExposeSecret;
use url::Url;

use super::{
    Clients, ConsentError, SESSION_URI_PREFIX, Session, Status, callback_url, load_versioned,
    pending, replace, session_owner,
};
use crate::providers::ProviderError;
use crate::providers::oauth::TokenResponse;
use crate::vault::{Vault, store};

/// The provider's redirect back: exchanges the code (or records the provider's error) and
/// returns where to send the browser (the session's return URL with `session_id`).
pub(crate) async fn callback(
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
    let (outcome, exchange) = exchange_code(clients, public_url, &session, response).await;
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
        Ok(tokens) => authorized(tokens, &session.scopes),
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

/// The provider's answer settled: the tokens for the code, or why there are none (the reason
/// the app sees as `error`), and how the code exchange went when one was made.
async fn exchange_code(
    clients: &impl Clients,
    public_url: &Url,
    session: &Session,
    response: Response<'_>,
) -> (Result<TokenResponse, String>, Option<Exchange>) {
    let client = clients.client(&session.provider).await;
    let issuer_ok = match &client {
        Some(client) => match client.endpoints().await {
            Ok(endpoints) => endpoints.accepts_response_issuer(response.iss),
            Err(_) => response.iss.is_none(),
        },
        None => true,
    };
    match (response.code, response.error) {
        // RFC 9207: a response naming another issuer (a mix-up) is never exchanged.
        _ if !issuer_ok => (Err("invalid_issuer".to_string()), None),
        (_, Some(error)) => (Err(sanitize(error)), None),
        (Some(code), None) => match client {
            Some(client) => {
                let exchanged = client
                    .exchange_code(code, &callback_url(public_url), &session.verifier)
                    .await;
                let exchange = match &exchanged {
                    Ok(_) => Exchange::Success,
                    Err(e) => Exchange::Failed {
                        result: e.result(),
                        misconfigured: e.is_client_misconfiguration(),
                    },
                };
                let outcome = exchanged.map_err(|e| match e {
                    ProviderError::Refused { error, .. } => error,
                    _ => "provider_error".to_string(),
                });
                (outcome, Some(exchange))
            }
            None => (Err("unknown_provider".to_string()), None),
        },
        (None, None) => (Err("invalid_request".to_string()), None),
    }
}

/// The session's state once the provider's tokens are in (held until completion).
fn authorized(tokens: TokenResponse, requested: &[String]) -> Status {
    Status::Authorized {
        access_token: tokens.access_token.expose_secret().to_string(),
        refresh_token: tokens.refresh_token.map(|r| r.expose_secret().to_string()),
        expires_at: tokens
            .expires_in
            .map(|s| store::now() + crate::vault::credential::lifetime_secs(s)),
        lifetime_secs: tokens
            .expires_in
            .map(crate::vault::credential::lifetime_secs),
        scopes: tokens.scope.as_deref().map_or_else(
            || requested.to_vec(),
            crate::providers::scopes::parse_granted,
        ),
    }
}

/// How the code exchange at the provider's token endpoint went, when one was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exchange {
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
pub(crate) struct Response<'a> {
    pub(crate) code: Option<&'a str>,
    pub(crate) error: Option<&'a str>,
    /// RFC 9207's `iss`, naming the authorization server that answered.
    pub(crate) iss: Option<&'a str>,
}

/// The outcome of the provider's redirect back.
pub(crate) struct Callback {
    /// Where the browser goes next (the app's return URL).
    pub(crate) redirect: Url,
    /// Why the session failed, when the provider or the code exchange refused it.
    pub(crate) refused: Option<String>,
    /// Requested scopes the provider's answer says it did not grant (the tokens serve all the
    /// same: the provider decides what they are good for).
    pub(crate) reduced: Vec<String>,
    /// The code exchange, when the provider sent a code.
    pub(crate) exchange: Option<Exchange>,
    pub(crate) session: Session,
}

pub(super) fn sanitize(code: &str) -> String {
    if code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        code.to_string()
    } else {
        "provider_error".to_string()
    }
}
