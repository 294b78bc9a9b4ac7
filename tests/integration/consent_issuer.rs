//! RFC 9207 at the consent callback, against the real oidc-provider (which advertises
//! `authorization_response_iss_parameter_supported` and sends `iss`): a response naming another
//! issuer, or lacking `iss` although the provider always sends it, is never exchanged; the
//! session fails with `invalid_issuer` and the app is told.

use http::StatusCode;
use keygate::consent::{self, ConsentError};

use crate::common::*;
use crate::consent::{call, challenge, setup_with, user};

/// The provider's redirect back for `who`'s new session, before keygate sees it.
async fn provider_callback(setup: &crate::consent::Setup, who: &str) -> (String, String) {
    let (_, _, body) = call(setup, who).await;
    let (authorization_url, session_uri) = challenge(&body);
    let (_, headers, _) = get(&authorization_url).await;
    let to_provider = headers["location"].to_str().unwrap().to_string();
    let callback = setup.provider.drive_consent(&to_provider, who).await;
    assert!(
        callback.contains("iss="),
        "the provider sent no iss: {callback}"
    );
    (callback, session_uri)
}

fn with_iss(callback: &str, iss: Option<&str>) -> String {
    let mut url = url::Url::parse(callback).unwrap();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "iss")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut query = url.query_pairs_mut();
        query.clear();
        for (k, v) in &kept {
            query.append_pair(k, v);
        }
        if let Some(iss) = iss {
            query.append_pair("iss", iss);
        }
    }
    url.to_string()
}

#[tokio::test]
async fn a_callback_from_another_issuer_or_without_iss_is_never_exchanged() {
    let (setup, _) = setup_with(600, false).await;
    for (who, iss) in [("alice", Some("http://evil.example")), ("bob", None)] {
        let (callback, session_uri) = provider_callback(&setup, who).await;
        let (status, headers, body) = get(&with_iss(&callback, iss)).await;
        assert_eq!(status, StatusCode::FOUND, "{body}");
        let back = headers["location"].to_str().unwrap();
        assert!(back.contains("error=invalid_issuer"), "{who}: {back}");
        let completed = consent::complete(setup.gw.state.vault(), &session_uri, &user(who)).await;
        assert!(
            matches!(completed, Err(ConsentError::Failed(_))),
            "{who}: {completed:?}"
        );
        let owner = consent::user_owner("agent-one", &user(who), "docs");
        assert!(setup.gw.state.vault().get(&owner).await.unwrap().is_none());
    }
    // The genuine response (its own iss) still goes through.
    let (callback, session_uri) = provider_callback(&setup, "carol").await;
    let (status, headers, _) = get(&callback).await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(!headers["location"].to_str().unwrap().contains("error="));
    consent::complete(setup.gw.state.vault(), &session_uri, &user("carol"))
        .await
        .unwrap();
}
