//! The classification table: every error answers its status and code, and no source text
//! reaches a body.

use super::*;
use crate::providers::ProviderError;
use crate::vault::StoreError;
use http_body_util::BodyExt;

const SECRET: &str = "s3cret-detail";

fn store_down() -> VaultError {
    VaultError::Unavailable(StoreError::Unavailable(format!("pool timed out {SECRET}")))
}

fn provider_down() -> ProviderError {
    ProviderError::Config {
        provider: "p".into(),
        message: SECRET.into(),
    }
}

async fn upstream_down() -> hyper_util::client::legacy::Error {
    let client = crate::upstream::client_with(
        crate::tls::client_config(None).unwrap(),
        crate::egress::Resolver::new(false),
    );
    let request = http::Request::get(format!("http://127.0.0.1:1/?key={SECRET}"))
        .body(body::empty())
        .unwrap();
    client.request(request).await.unwrap_err()
}

/// Every variant (and every source kind that decides its class), with what it must answer.
async fn table() -> Vec<(ProxyError, u16, &'static str)> {
    let challenge = ConsentChallenge {
        authorization_url: "https://k/a".into(),
        session_uri: "urn:s".into(),
        provider: "p".into(),
        expires_in: 600,
    };
    let bad_header = HeaderValue::from_str("\n").unwrap_err();
    vec![
        (ProxyError::BadRequest("bad path"), 400, "bad_request"),
        (ProxyError::NoRoute, 404, "no_route"),
        (
            ProxyError::MethodNotAllowed(http::Method::TRACE),
            405,
            "method_not_allowed",
        ),
        (ProxyError::Auth(AuthError::Missing), 401, "unauthorized"),
        (
            ProxyError::Auth(AuthError::MultipleCredentials),
            400,
            "bad_request",
        ),
        (ProxyError::Auth(AuthError::Expired), 401, "invalid_token"),
        (
            ProxyError::Auth(AuthError::MissingScope),
            403,
            "insufficient_scope",
        ),
        (ProxyError::Vault(store_down()), 503, "vault_unavailable"),
        (
            ProxyError::Vault(VaultError::TooLarge),
            500,
            "internal_error",
        ),
        (
            Arc::new(CredentialError::Provider(provider_down())).into(),
            502,
            "credential_provider_error",
        ),
        (
            Arc::new(CredentialError::Vault(store_down())).into(),
            503,
            "vault_unavailable",
        ),
        (
            Arc::new(CredentialError::Vault(VaultError::TooLarge)).into(),
            500,
            "internal_error",
        ),
        (
            Arc::new(RefreshError::Provider(provider_down())).into(),
            502,
            "credential_provider_error",
        ),
        (
            Arc::new(RefreshError::Vault(store_down())).into(),
            503,
            "vault_unavailable",
        ),
        (
            Arc::new(RefreshError::ConsentNeeded).into(),
            500,
            "internal_error",
        ),
        (
            ConsentError::Vault(store_down()).into(),
            503,
            "vault_unavailable",
        ),
        (
            ConsentError::Provider(provider_down()).into(),
            502,
            "credential_provider_error",
        ),
        (
            ConsentError::TooManySessions.into(),
            429,
            "too_many_consent_sessions",
        ),
        (ConsentError::UnknownSession.into(), 400, "bad_request"),
        (ConsentError::AlreadyUsed.into(), 400, "bad_request"),
        (
            ConsentError::Failed(SECRET.into()).into(),
            400,
            "bad_request",
        ),
        (
            ProxyError::CredentialNotAHeader(bad_header),
            502,
            "credential_provider_error",
        ),
        (
            ProxyError::AuditUnavailable(AuditFull),
            503,
            "audit_unavailable",
        ),
        (
            ProxyError::ConsentRequired(Box::new(challenge)),
            401,
            "consent_required",
        ),
        (
            ProxyError::UpstreamUnavailable(Box::new(upstream_down().await)),
            502,
            "upstream_unavailable",
        ),
        (ProxyError::UpstreamTimeout, 504, "upstream_timeout"),
        (ProxyError::Internal(SECRET), 500, "internal_error"),
    ]
}

#[tokio::test]
async fn every_error_classifies_to_its_status_and_code() {
    for (error, status, code) in table().await {
        let class = error.classify();
        assert_eq!(
            (class.status.as_u16(), class.code),
            (status, code),
            "{error:?}"
        );
        let response = error.into_response();
        assert_eq!(response.status().as_u16(), status);
    }
}

#[tokio::test]
async fn no_source_text_reaches_the_body() {
    for (error, _, code) in table().await {
        let response = error.into_response();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(!text.contains(SECRET), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["error"], code);
    }
}

#[test]
fn the_log_chain_keeps_every_source_once() {
    let error = ProxyError::Vault(store_down());
    let text = Chain(&error).to_string();
    assert_eq!(text.matches(SECRET).count(), 1, "{text}");
    assert!(
        text.starts_with("vault failed: the vault store is unavailable"),
        "{text}"
    );
}

#[test]
fn authentication_failures_carry_their_challenge() {
    let missing = ProxyError::Auth(AuthError::Missing).into_response();
    assert_eq!(
        missing.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer realm="keygate""#
    );
    let two = ProxyError::Auth(AuthError::MultipleCredentials).into_response();
    assert!(two.headers().get(header::WWW_AUTHENTICATE).is_none());
}
