//! Errors the proxy answers itself, and the one place ([`ProxyError::into_response`]) where they
//! become the contract's HTTP responses: status, `WWW-Authenticate`, and the JSON body
//! `{"error": CODE, "error_description": TEXT}`. Descriptions are fixed texts chosen here, never
//! an upstream's or a library's message, so nothing secret can be echoed to a client.

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::body::{self, Body};
use crate::inbound::AuthError;

/// What a caller needs to get a user's consent.
#[derive(Debug)]
pub struct ConsentChallenge {
    pub authorization_url: String,
    pub session_uri: String,
    pub provider: String,
    pub expires_in: i64,
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
    #[error("vault unavailable: {0}")]
    VaultUnavailable(String),
    #[error("credential provider failed: {0}")]
    CredentialProvider(String),
    #[error("the audit log cannot record (queue full or file not writable)")]
    AuditUnavailable,
    #[error("the user holds the most consent sessions allowed")]
    TooManyConsentSessions,
    #[error("the user has not consented to provider {}", .0.provider)]
    ConsentRequired(Box<ConsentChallenge>),
    #[error("upstream unreachable: {0}")]
    UpstreamUnavailable(String),
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    /// The `error` code of the JSON body; also the metric and log reason.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(_) | ProxyError::Auth(AuthError::MultipleCredentials) => {
                "bad_request"
            }
            ProxyError::NoRoute => "no_route",
            ProxyError::MethodNotAllowed(_) => "method_not_allowed",
            ProxyError::Auth(AuthError::Missing) => "unauthorized",
            ProxyError::Auth(e) if e.is_forbidden() => "insufficient_scope",
            ProxyError::Auth(_) => "invalid_token",
            ProxyError::VaultUnavailable(_) => "vault_unavailable",
            ProxyError::CredentialProvider(_) => "credential_provider_error",
            ProxyError::AuditUnavailable => "audit_unavailable",
            ProxyError::TooManyConsentSessions => "too_many_consent_sessions",
            ProxyError::ConsentRequired(_) => "consent_required",
            ProxyError::UpstreamUnavailable(_) => "upstream_unavailable",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::Internal(_) => "internal_error",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) | ProxyError::Auth(AuthError::MultipleCredentials) => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::Auth(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
            ProxyError::Auth(_) => StatusCode::UNAUTHORIZED,
            ProxyError::VaultUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::CredentialProvider(_) => StatusCode::BAD_GATEWAY,
            ProxyError::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::TooManyConsentSessions => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::ConsentRequired(_) => StatusCode::UNAUTHORIZED,
            ProxyError::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn description(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(reason) => reason,
            ProxyError::NoRoute => "no route matches this request",
            ProxyError::MethodNotAllowed(_) => "keygate does not forward this method",
            ProxyError::Auth(AuthError::Missing) => "a Bearer token is required",
            ProxyError::Auth(AuthError::MultipleCredentials) => {
                "present exactly one credential, in the Authorization header"
            }
            ProxyError::Auth(e) if e.is_forbidden() => {
                "the token does not grant access to this route"
            }
            ProxyError::Auth(_) => "the token is not valid for this route",
            ProxyError::VaultUnavailable(_) => {
                "the token vault cannot be reached; try again shortly"
            }
            ProxyError::CredentialProvider(_) => "the credential provider could not issue a token",
            ProxyError::AuditUnavailable => {
                "keygate cannot audit this request now; try again shortly"
            }
            ProxyError::TooManyConsentSessions => {
                "this user has too many consent sessions open; finish one or wait for it to expire"
            }
            ProxyError::ConsentRequired(_) => {
                "the user must authorize access at authorizationUrl, then retry"
            }
            ProxyError::UpstreamUnavailable(_) => "the upstream could not be reached",
            ProxyError::UpstreamTimeout => "the upstream did not answer in time",
            ProxyError::Internal(_) => "keygate failed to handle the request",
        }
    }

    /// The `WWW-Authenticate` challenge, for authentication failures (RFC 6750 section 3).
    fn challenge(&self) -> Option<&'static str> {
        match self {
            ProxyError::Auth(AuthError::MultipleCredentials) => None,
            ProxyError::Auth(AuthError::Missing) => Some(r#"Bearer realm="keygate""#),
            ProxyError::Auth(e) if e.is_forbidden() => {
                Some(r#"Bearer realm="keygate", error="insufficient_scope""#)
            }
            ProxyError::Auth(_) => Some(r#"Bearer realm="keygate", error="invalid_token""#),
            _ => None,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let mut body = json!({ "error": self.code(), "error_description": self.description() });
        if let ProxyError::ConsentRequired(challenge) = &self {
            body["authorizationUrl"] = json!(challenge.authorization_url);
            body["sessionUri"] = json!(challenge.session_uri);
            body["provider"] = json!(challenge.provider);
            body["expiresIn"] = json!(challenge.expires_in);
            let mut response = json_response(self.status(), &body);
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
        let mut response = json_response(self.status(), &body);
        if let ProxyError::MethodNotAllowed(_) = &self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        }
        if let Some(challenge) = self.challenge() {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// What the proxy forwards: every method but `TRACE` (and `CONNECT`, which has no path).
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
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

impl From<crate::vault::VaultError> for ProxyError {
    /// A vault that cannot answer is never "no credential": the request fails with 503 and
    /// neither starts a consent flow nor goes upstream without its credential.
    fn from(error: crate::vault::VaultError) -> Self {
        match error {
            crate::vault::VaultError::Unavailable(e) => ProxyError::VaultUnavailable(e.to_string()),
            other => ProxyError::Internal(other.to_string()),
        }
    }
}

impl From<&crate::providers::m2m::CredentialError> for ProxyError {
    fn from(error: &crate::providers::m2m::CredentialError) -> Self {
        use crate::providers::m2m::CredentialError;
        match error {
            CredentialError::Provider(e) => ProxyError::CredentialProvider(e.to_string()),
            CredentialError::Vault(crate::vault::VaultError::Unavailable(e)) => {
                ProxyError::VaultUnavailable(e.to_string())
            }
            CredentialError::Vault(e) => ProxyError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn an_unreachable_vault_is_503_vault_unavailable() {
        let error = ProxyError::from(crate::vault::VaultError::Unavailable(
            crate::vault::StoreError::Unavailable("pool timed out".into()),
        ));
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code(), "vault_unavailable");
    }

    #[tokio::test]
    async fn upstream_details_never_reach_the_body() {
        let response = ProxyError::UpstreamUnavailable("connect to 10.0.0.1?key=secret".into())
            .into_response();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(!text.contains("secret"));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["error"], "upstream_unavailable");
    }
}
