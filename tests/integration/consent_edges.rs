//! The edges of 3-legged OAuth, against the real oidc-provider: a vaulted token the resource
//! server refuses before its time (one refresh, one retry, body replayed), a session that
//! expired, routes that force a fresh authentication, and the consent metrics.

use http::{Method, Request, StatusCode};
use keygate::consent::{self, ConsentError};
use keygate::vault::{Credential, store};
use secrecy::{ExposeSecret, SecretString};

use crate::common::*;
use crate::consent::{Setup, call, challenge, consent_as, setup_with, user};

/// alice consents and her tokens are vaulted; returns her current upstream `Authorization`.
async fn alice_consented(setup: &Setup) -> String {
    let (status, _, body) = call(setup, "alice").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (authorization_url, session_uri) = challenge(&body);
    consent_as(setup, &authorization_url, "alice").await;
    consent::complete(setup.gw.state.vault(), &session_uri, &user("alice"))
        .await
        .unwrap();
    let (status, _, body) = call(setup, "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    seen(&body).header("authorization").unwrap().to_string()
}

async fn post_as(setup: &Setup, user_id: &str, path: &str, body: &str) -> (StatusCode, String) {
    let token = setup
        .gw
        .state
        .workload_tokens()
        .issue("agent-one", Some(&user(user_id)))
        .unwrap();
    let request = Request::builder()
        .method(Method::POST)
        .uri(setup.gw.url(path))
        .header("authorization", format!("Bearer {token}"))
        .body(full(body.to_string()))
        .unwrap();
    let (status, _, body) = send(&http_client(), request).await;
    (status, body)
}

#[tokio::test]
async fn a_token_the_upstream_refuses_is_refreshed_once_and_the_request_replayed() {
    let (setup, shim) = setup_with(600, true).await;
    let shim = shim.unwrap();
    let first = alice_consented(&setup).await;
    let token_requests = shim.count();

    // The resource server revokes alice's access token before its expiry.
    setup
        .upstream
        .rejected
        .lock()
        .unwrap()
        .insert(first.clone());
    let (status, body) = post_as(&setup, "alice", "/docs/pages", "payload-123").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = seen(&body);
    let second = seen.header("authorization").unwrap().to_string();
    assert_ne!(second, first, "the retry must carry a refreshed token");
    assert_eq!(seen.body_len, 11, "the body is replayed in full");
    assert_eq!(shim.count(), token_requests + 1, "exactly one refresh");
    assert_eq!(
        jwt_claims(second.trim_start_matches("Bearer "))["sub"],
        "alice"
    );

    // The refreshed token is what the vault holds now, and it is reused.
    let owner = consent::user_owner("agent-one", &user("alice"), "docs");
    let stored = setup
        .gw
        .state
        .vault()
        .get_fresh(&owner)
        .await
        .unwrap()
        .unwrap();
    let Credential::OAuth(tokens) = &*stored else {
        panic!("not an OAuth entry")
    };
    assert_eq!(
        format!("Bearer {}", tokens.access_token.expose_secret()),
        second
    );
    let (status, _, body) = call(&setup, "alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        crate::common::seen(&body).header("authorization"),
        Some(second.as_str())
    );
    assert_eq!(shim.count(), token_requests + 1);

    // A body too large to keep (over 64 KiB) streams through once: the upstream's 401 goes back
    // to the caller, and nothing is refreshed for it.
    setup
        .upstream
        .rejected
        .lock()
        .unwrap()
        .insert(second.clone());
    let hits = setup
        .upstream
        .hits
        .load(std::sync::atomic::Ordering::SeqCst);
    let large = "x".repeat(100 * 1024);
    let (status, _) = post_as(&setup, "alice", "/docs/pages", &large).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        setup
            .upstream
            .hits
            .load(std::sync::atomic::Ordering::SeqCst),
        hits + 1
    );
    assert_eq!(shim.count(), token_requests + 1);
}

#[tokio::test]
async fn an_expired_session_cannot_be_authorized_or_completed() {
    let (setup, _) = setup_with(600, false).await;
    let (status, _, body) = call(&setup, "alice").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (authorization_url, session_uri) = challenge(&body);

    // Ten minutes pass: the session's own expiry is what keygate checks.
    let vault = setup.gw.state.vault();
    let mut session = consent::peek(vault, &session_uri).await.unwrap();
    session.expires_at = store::now() - 1;
    let id = consent::session_id(&session_uri).unwrap();
    vault
        .put_until(
            &consent::session_owner(id),
            &Credential::Secret(SecretString::from(serde_json::to_string(&session).unwrap())),
            Some(store::now() + 600),
        )
        .await
        .unwrap();

    let (status, _, body) = get(&authorization_url).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("expired"), "{body}");
    let callback = setup.gw.url(&format!(
        "/identities/oauth2/callback?state={id}&code=anything"
    ));
    let (status, _, _) = get(&callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let completed = consent::complete(vault, &session_uri, &user("alice")).await;
    assert!(
        matches!(completed, Err(ConsentError::UnknownSession)),
        "{completed:?}"
    );
    // alice simply gets a new challenge.
    let (status, _, body) = call(&setup, "alice").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_ne!(challenge(&body).1, session_uri);
}

#[tokio::test]
async fn force_authentication_ignores_the_vault_and_starts_a_session_every_time() {
    let (setup, _) = setup_with(600, false).await;
    alice_consented(&setup).await;
    let token = setup
        .gw
        .state
        .workload_tokens()
        .issue("agent-one", Some(&user("alice")))
        .unwrap();
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let (status, _, body) = get_auth(&setup.gw.url("/docs-fresh/pages"), &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        sessions.push(challenge(&body).1);
    }
    assert_ne!(sessions[0], sessions[1], "a new session each time");
    // The ordinary route still uses the vaulted token.
    let (status, _, _) = call(&setup, "alice").await;
    assert_eq!(status, StatusCode::OK);

    let metrics = setup.gw.metrics().await;
    let value = |line: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{line} missing in\n{metrics}"))
    };
    assert_eq!(
        value(r#"keygate_consent_sessions_total{result="started"}"#),
        3.0
    );
    assert_eq!(
        value(r#"keygate_consent_sessions_total{result="authorized"}"#),
        1.0
    );
    // The two forced sessions are still waiting for alice.
    assert_eq!(value("keygate_consent_sessions_pending "), 2.0);
    assert!(value("keygate_vault_cache_hit_ratio ") > 0.0);
}
