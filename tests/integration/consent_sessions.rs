//! Consent sessions are bounded and forced routes can finish: the same request again gets the
//! user's pending session back (not a new row), a user holds at most a fixed number of
//! sessions, and a client of a `force_authentication` route that completed its consent retries
//! with the `sessionUri` in `X-Keygate-Consent-Session` and is served once, by its own token.

use http::StatusCode;
use keygate::consent::{self, pending::MAX_PENDING_PER_USER};

use crate::common::*;
use crate::consent::{Setup, call, challenge, consent_as, setup_with, user};

const SESSION_HEADER: &str = "x-keygate-consent-session";

fn token_for(setup: &Setup, who: &str) -> String {
    setup
        .gw
        .state
        .workload_tokens()
        .issue("agent-one", Some(&user(who)))
        .unwrap()
}

/// The forced route as `who`, presenting `session` when given.
async fn forced(setup: &Setup, who: &str, session: Option<&str>) -> (StatusCode, String) {
    let mut request = http::Request::get(setup.gw.url("/docs-fresh/pages"))
        .header("authorization", format!("Bearer {}", token_for(setup, who)));
    if let Some(session) = session {
        request = request.header(SESSION_HEADER, session);
    }
    let (status, _, body) = send(&http_client(), request.body(full("")).unwrap()).await;
    (status, body)
}

#[tokio::test]
async fn the_same_request_again_gets_the_pending_session_back() {
    let (setup, _) = setup_with(600, false).await;
    let mut sessions = std::collections::HashSet::new();
    for _ in 0..20 {
        let (status, _, body) = call(&setup, "alice").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        sessions.insert(challenge(&body).1);
    }
    assert_eq!(
        sessions.len(),
        1,
        "one pending session per request: {sessions:?}"
    );
    let stored = setup
        .gw
        .state
        .vault()
        .owners("consent_session")
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    // Another user has a session of their own.
    let (_, _, body) = call(&setup, "bob").await;
    assert!(!sessions.contains(&challenge(&body).1));
    let metrics = setup.gw.metrics().await;
    assert_eq!(
        crate::consent_scopes::metric_value(
            &metrics,
            r#"keygate_consent_sessions_total{result="started"}"#
        ),
        2.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_user_holds_a_bounded_number_of_sessions() {
    let (setup, _) = setup_with(600, false).await;
    for _ in 0..MAX_PENDING_PER_USER {
        let (status, body) = forced(&setup, "mallory", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, body) = forced(&setup, "mallory", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(error_code(&body), "too_many_consent_sessions");
    let stored = setup
        .gw
        .state
        .vault()
        .owners("consent_session")
        .await
        .unwrap();
    assert_eq!(stored.len(), MAX_PENDING_PER_USER);
    // Other users are not affected.
    let (status, body) = forced(&setup, "alice", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    challenge(&body);
}

#[tokio::test]
async fn a_forced_route_serves_once_after_its_consent_is_completed() {
    let (setup, _) = setup_with(600, false).await;
    let (status, body) = forced(&setup, "alice", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (authorization_url, session_uri) = challenge(&body);

    // Retried too early: the same session is asked for again.
    let (status, body) = forced(&setup, "alice", Some(&session_uri)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(challenge(&body).1, session_uri);

    consent_as(&setup, &authorization_url, "alice").await;
    consent::complete(setup.gw.state.vault(), &session_uri, &user("alice"))
        .await
        .unwrap();

    // Bob presenting alice's session gets a consent of his own, never her token.
    let hits = setup
        .upstream
        .hits
        .load(std::sync::atomic::Ordering::SeqCst);
    let (status, body) = forced(&setup, "bob", Some(&session_uri)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_ne!(challenge(&body).1, session_uri);
    assert_eq!(
        setup
            .upstream
            .hits
            .load(std::sync::atomic::Ordering::SeqCst),
        hits,
        "bob's request reached the upstream"
    );

    // Alice's retry with her completed session is served, with her own token.
    let (status, body) = forced(&setup, "alice", Some(&session_uri)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = seen(&body);
    let bearer = seen.header("authorization").unwrap();
    assert_eq!(
        jwt_claims(bearer.trim_start_matches("Bearer "))["sub"],
        "alice"
    );
    assert_eq!(
        seen.header(SESSION_HEADER),
        None,
        "keygate's header was forwarded"
    );

    // One request per forced consent: the same session again asks anew.
    let (status, body) = forced(&setup, "alice", Some(&session_uri)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_ne!(challenge(&body).1, session_uri);
}
