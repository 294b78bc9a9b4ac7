//! Errors the proxy and the consent endpoints answer themselves, and the one place where they
//! are classified ([`ProxyError::classify`]) and become the contract's HTTP responses
//! ([`ProxyError::into_response`]): status, `WWW-Authenticate`, and the JSON body
//! `{"error": CODE, "error_description": TEXT}`. Each variant keeps its typed source for the
//! log ([`ProxyError::log`], which writes the whole chain once); descriptions are fixed texts
//! chosen here, never an upstream's or a library's message, so nothing secret can be echoed to
//! a client.

use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::audit::AuditFull;
use crate::body::{self, Body};
use crate::consent::refresh::RefreshError;
use crate::consent::{ConsentError, ObtainError};
use crate::inbound::AuthError;
use crate::providers::m2m::CredentialError;
use crate::vault::VaultError;

/// What a caller needs to get a user's consent.
#[derive(Debug)]
pub struct ConsentChallenge {
    pub(crate) authorization_url: String,
    pub(crate) session_uri: String,
    pub(crate) provider: String,
    pub(crate) expires_in: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    #[error("no route matches")]
    NoRoute,
    /// `TRACE`: an upstream that echoes the request would hand the injected credential back.
    #[error("method {0} is not forwarded")]
    MethodNotAllowed(http::Method),
    #[error("caller not accepted: {0}")]
    Auth(#[from] AuthError),
    /// The store unreachable is 503; any other vault failure (seal, key, size) is internal.
    #[error("vault failed")]
    Vault(#[from] VaultError),
    /// An M2M token could not be had (shared between the requests that asked at once).
    #[error("M2M credential failed")]
    M2mCredential(#[source] Arc<CredentialError>),
    /// A user's token could not be refreshed (shared between the requests that asked at once).
    #[error("token refresh failed")]
    Refresh(#[source] Arc<RefreshError>),
    #[error("consent step failed")]
    Consent(#[source] ConsentError),
    #[error("the credential is not a valid header value")]
    CredentialNotAHeader(#[source] http::header::InvalidHeaderValue),
    #[error("audit unavailable")]
    AuditUnavailable(#[from] AuditFull),
    #[error("the user has not consented to provider {}", .0.provider)]
    ConsentRequired(Box<ConsentChallenge>),
    #[error("upstream unreachable")]
    UpstreamUnavailable(#[source] Box<hyper_util::client::legacy::Error>),
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    /// A broken invariant (the config check should have made it impossible).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// What a client is told about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Classified {
    status: StatusCode,
    /// The `error` code of the JSON body; also the metric, audit and log reason.
    pub(crate) code: &'static str,
    description: &'static str,
    /// The `WWW-Authenticate` challenge, for authentication failures (RFC 6750 section 3).
    challenge: Option<&'static str>,
}

const fn plain(status: StatusCode, code: &'static str, description: &'static str) -> Classified {
    Classified {
        status,
        code,
        description,
        challenge: None,
    }
}

const VAULT_UNAVAILABLE: Classified = plain(
    StatusCode::SERVICE_UNAVAILABLE,
    "vault_unavailable",
    "the token vault cannot be reached; try again shortly",
);
const PROVIDER_FAILED: Classified = plain(
    StatusCode::BAD_GATEWAY,
    "credential_provider_error",
    "the credential provider could not issue a token",
);
const INTERNAL: Classified = plain(
    StatusCode::INTERNAL_SERVER_ERROR,
    "internal_error",
    "keygate failed to handle the request",
);
const UNUSABLE_SESSION: Classified = plain(
    StatusCode::BAD_REQUEST,
    "bad_request",
    "the consent session is unknown, expired or already used",
);

impl ProxyError {
    /// Status, code, description and challenge: the one table for every error.
    pub(crate) fn classify(&self) -> Classified {
        match self {
            ProxyError::BadRequest(reason) => plain(StatusCode::BAD_REQUEST, "bad_request", reason),
            ProxyError::NoRoute => plain(
                StatusCode::NOT_FOUND,
                "no_route",
                "no route matches this request",
            ),
            ProxyError::MethodNotAllowed(_) => plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "keygate does not forward this method",
            ),
            ProxyError::Auth(error) => classify_auth(*error),
            ProxyError::Vault(error) => classify_vault(error),
            ProxyError::M2mCredential(error) => match &**error {
                CredentialError::Provider(_) => PROVIDER_FAILED,
                CredentialError::Vault(error) => classify_vault(error),
            },
            ProxyError::Refresh(error) => match &**error {
                RefreshError::Provider(_) => PROVIDER_FAILED,
                RefreshError::Vault(_) => VAULT_UNAVAILABLE,
                RefreshError::ConsentNeeded => INTERNAL,
            },
            ProxyError::Consent(error) => classify_consent(error),
            ProxyError::CredentialNotAHeader(_) => PROVIDER_FAILED,
            ProxyError::AuditUnavailable(_) => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                "keygate cannot audit this request now; try again shortly",
            ),
            ProxyError::ConsentRequired(_) => plain(
                StatusCode::UNAUTHORIZED,
                "consent_required",
                "the user must authorize access at authorizationUrl, then retry",
            ),
            ProxyError::UpstreamUnavailable(_) => plain(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "the upstream could not be reached",
            ),
            ProxyError::UpstreamTimeout => plain(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the upstream did not answer in time",
            ),
            ProxyError::Internal(_) => INTERNAL,
        }
    }

    /// Logs the error once, with its whole source chain: an internal error as an error, other
    /// server-side failures as warnings, refusals of the client's request at debug level.
    pub(crate) fn log(&self) {
        let class = self.classify();
        let chain = Chain(self);
        if class.code == INTERNAL.code {
            tracing::error!(error = %chain, "request failed unexpectedly");
        } else if class.status.is_server_error() {
            tracing::warn!(error = %chain, code = class.code, "request failed");
        } else {
            tracing::debug!(error = %chain, code = class.code, "request refused");
        }
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        let class = self.classify();
        let mut body = json!({ "error": class.code, "error_description": class.description });
        if let ProxyError::ConsentRequired(challenge) = &self {
            body["authorizationUrl"] = json!(challenge.authorization_url);
            body["sessionUri"] = json!(challenge.session_uri);
            body["provider"] = json!(challenge.provider);
            body["expiresIn"] = json!(challenge.expires_in);
            let mut response = json_response(class.status, &body);
            let value = format!(
                r#"Bearer realm="keygate", error="consent_required", authorization_uri="{}""#,
                challenge.authorization_url
            );
            if let Ok(value) = HeaderValue::from_str(&value) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
            return response;
        }
        let mut response = json_response(class.status, &body);
        if let ProxyError::MethodNotAllowed(_) = &self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        }
        if let Some(challenge) = class.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

fn classify_auth(error: AuthError) -> Classified {
    match error {
        AuthError::MultipleCredentials => plain(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "present exactly one credential, in the Authorization header",
        ),
        AuthError::Missing => Classified {
            challenge: Some(r#"Bearer realm="keygate""#),
            ..plain(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a Bearer token is required",
            )
        },
        e if e.is_forbidden() => Classified {
            challenge: Some(r#"Bearer realm="keygate", error="insufficient_scope""#),
            ..plain(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "the token does not grant access to this route",
            )
        },
        _ => Classified {
            challenge: Some(r#"Bearer realm="keygate", error="invalid_token""#),
            ..plain(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is not valid for this route",
            )
        },
    }
}

/// A vault that cannot answer is never "no credential": the request fails with 503 and neither
/// starts a consent flow nor goes upstream without its credential.
fn classify_vault(error: &VaultError) -> Classified {
    match error {
        VaultError::Unavailable(_) => VAULT_UNAVAILABLE,
        VaultError::TooLarge | VaultError::Seal(_) | VaultError::Key(_) => INTERNAL,
    }
}

fn classify_consent(error: &ConsentError) -> Classified {
    match error {
        ConsentError::Vault(error) => classify_vault(error),
        ConsentError::Provider(_) => PROVIDER_FAILED,
        ConsentError::TooManySessions => plain(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_consent_sessions",
            "this user has too many consent sessions open; finish one or wait for it to expire",
        ),
        ConsentError::UnknownSession
        | ConsentError::AlreadyUsed
        | ConsentError::NotReady
        | ConsentError::Failed(_)
        | ConsentError::UserMismatch
        | ConsentError::NoAuthorizationEndpoint => UNUSABLE_SESSION,
    }
}

impl From<Arc<CredentialError>> for ProxyError {
    fn from(error: Arc<CredentialError>) -> Self {
        ProxyError::M2mCredential(error)
    }
}

impl From<Arc<RefreshError>> for ProxyError {
    fn from(error: Arc<RefreshError>) -> Self {
        ProxyError::Refresh(error)
    }
}

impl From<ConsentError> for ProxyError {
    fn from(error: ConsentError) -> Self {
        ProxyError::Consent(error)
    }
}

impl From<ObtainError> for ProxyError {
    fn from(error: ObtainError) -> Self {
        match error {
            ObtainError::Refresh(error) => ProxyError::Refresh(error),
            ObtainError::Consent(error) => ProxyError::Consent(error),
        }
    }
}

/// An error and its sources, `: `-separated, for logs (a top-level message alone often says
/// little). A source whose text its parent already ends with is not repeated.
struct Chain<'a>(pub(crate) &'a dyn std::error::Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            let text = error.to_string();
            if !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            source = error.source();
        }
        Ok(())
    }
}

/// What the proxy forwards: every method but `TRACE` (and `CONNECT`, which has no path).
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// A JSON response with the given status.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(body::full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests;
