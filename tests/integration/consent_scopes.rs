//! Consent that ends, against the real oidc-provider configured as real providers are (resource
//! indicators on: the token answer's `scope` carries only the resource's scopes, never `openid`
//! or `offline_access`): one consent, then the vaulted token serves, then it is refreshed, and
//! no request asks again.

use http::StatusCode;
use keygate::consent;
use keygate::vault::Credential;

use crate::common::*;
use crate::consent::{PAST_MARGIN, SHORT_TTL, call, challenge, consent_as, setup_scoped, user};

fn started_sessions(metrics: &str) -> f64 {
    metric_value(
        metrics,
        r#"keygate_consent_sessions_total{result="started"}"#,
    )
}

pub(crate) fn metric_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn openid_in_the_scopes_consents_once_then_serves_and_refreshes() {
    // Short-lived access tokens: due for refresh after PAST_MARGIN.
    let (setup, shim) =
        setup_scoped(SHORT_TTL, true, r#"["openid", "offline_access", "tools"]"#).await;
    let shim = shim.unwrap();
    let (status, _, body) = call(&setup, "alice").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (authorization_url, session_uri) = challenge(&body);
    consent_as(&setup, &authorization_url, "alice").await;
    consent::complete(setup.gw.state.vault(), &session_uri, &user("alice"))
        .await
        .unwrap();

    // The provider really did answer without `openid`: this is the case that used to loop.
    let owner = consent::user_owner("agent-one", &user("alice"), "docs");
    match &*setup.gw.state.vault().get(&owner).await.unwrap().unwrap() {
        Credential::OAuth(tokens) => {
            assert!(!tokens.scopes.iter().any(|s| s == "openid"), "{tokens:?}");
            assert!(tokens.refresh_token.is_some(), "no refresh token issued");
        }
        other => panic!("not an OAuth entry: {other:?}"),
    }

    let (status, _, body) = call(&setup, "alice").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the completed consent was not used: {body}"
    );
    let first = seen(&body).header("authorization").unwrap().to_string();
    assert_eq!(
        jwt_claims(first.trim_start_matches("Bearer "))["sub"],
        "alice"
    );
    let (status, _, body) = call(&setup, "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(seen(&body).header("authorization"), Some(first.as_str()));

    // Past the refresh margin: refreshed once, still served, still no second consent.
    let exchanges = shim.count();
    tokio::time::sleep(PAST_MARGIN).await;
    let (status, _, body) = call(&setup, "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refreshed = seen(&body).header("authorization").unwrap().to_string();
    assert_ne!(refreshed, first, "the token was not refreshed");
    assert_eq!(shim.count() - exchanges, 1);
    let (status, _, body) = call(&setup, "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let metrics = setup.gw.metrics().await;
    assert_eq!(started_sessions(&metrics), 1.0, "{metrics}");
    assert_eq!(
        metric_value(
            &metrics,
            r#"keygate_consent_sessions_total{result="scope_reduced"}"#
        ),
        0.0,
        "OIDC scopes missing from an access token are not a reduced grant"
    );
}
