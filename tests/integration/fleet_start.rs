//! Replicas started at the same instant on a fresh PostgreSQL database, as a platform team rolls
//! keygate out: every one becomes ready, the schema is migrated once, one vault key file and one
//! set of workload-token signing keys serve the whole fleet (identical JWKS, a token from any
//! replica accepted by every other), and a consent crosses replicas. Repeated, since a race shows
//! only now and then.

use http::StatusCode;
use serde_json::Value;
use sqlx::Connection;

use crate::common::*;
use crate::consent::{RETURN_URL, challenge};
use crate::oidc::OidcProvider;
use crate::replicas::{
    Fleet, ONE_FLEET_AT_A_TIME, Ports, api, docs, oauth_body, upstream_bearer, workload_token,
};
use crate::vault::fresh_postgres;

/// Trials of five replicas started together.
const TRIALS: usize = 3;

/// Ports are chosen before the replicas start (their configs name them), so another test may
/// take one meanwhile: such a trial is started again on new ports, at most this often.
const PORT_RACE_RETRIES: usize = 3;

/// Whether a replica failed only because another process took its port first.
fn lost_port_race(why: &str) -> bool {
    why.contains("Address already in use")
}

async fn jwks(url: &str) -> Value {
    let (status, _, body) = get(url).await;
    assert_eq!(status, StatusCode::OK, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The schema versions the database records, in order.
async fn schema_versions(store: &str) -> Vec<i64> {
    let mut conn = sqlx::PgConnection::connect(store).await.unwrap();
    sqlx::query_scalar("SELECT version FROM keygate_schema ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_replicas_started_together_agree_on_schema_and_keys() {
    let _one = ONE_FLEET_AT_A_TIME.lock().await;
    let upstream = Upstream::start().await;
    for trial in 0..TRIALS {
        // An OAuth provider is not needed to check keys: discovery is fetched on first use.
        let body = oauth_body(
            &upstream.url(),
            "discovery_url = \"http://127.0.0.1:1/.well-known/openid-configuration\"",
        );
        let mut attempt = 0;
        let (store, fleet) = loop {
            let store = fresh_postgres().await;
            match Fleet::try_start_together(&Ports::pick_n(5), &store, &body).await {
                Ok(fleet) => break (store, fleet),
                Err(why) if lost_port_race(&why) && attempt < PORT_RACE_RETRIES => attempt += 1,
                Err(why) => panic!("trial {trial}: {why}"),
            }
        };

        let versions = schema_versions(&store).await;
        let expected: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(
            versions, expected,
            "trial {trial}: schema applied more than once or out of order"
        );
        assert!(!versions.is_empty());

        let first = jwks(&fleet.r(0).url("/.well-known/jwks.json")).await;
        assert!(first["keys"].as_array().is_some_and(|k| !k.is_empty()));
        for replica in &fleet.replicas {
            let keys = jwks(&replica.url("/.well-known/jwks.json")).await;
            assert_eq!(
                keys, first,
                "trial {trial}: replica {} has its own keys",
                replica.name
            );
        }
        // A workload access token from each replica is accepted by every other: the route
        // then asks for consent (the token was good), never `invalid_token`.
        for issuer in &fleet.replicas {
            let token = workload_token(issuer, "alice").await;
            for verifier in &fleet.replicas {
                let (status, _, body) = docs(verifier, &token).await;
                assert_eq!(
                    (status, error_code(&body).as_str()),
                    (StatusCode::UNAUTHORIZED, "consent_required"),
                    "trial {trial}: a token from {} on {}: {body}",
                    issuer.name,
                    verifier.name
                );
            }
        }
        drop(fleet);
    }
}

/// The same path and query on another replica (what a load balancer does).
fn on(replica: &crate::replicas::Replica, url: &str) -> String {
    let parsed = url::Url::parse(url).unwrap();
    let query = parsed.query().map(|q| format!("?{q}")).unwrap_or_default();
    replica.url(&format!("{}{query}", parsed.path()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_crosses_replicas_started_together() {
    let _one = ONE_FLEET_AT_A_TIME.lock().await;
    let upstream = Upstream::start().await;
    for trial in 0..TRIALS {
        consent_across_a_fresh_fleet(trial, &upstream).await;
    }
}

/// Three replicas started together on a fresh database: a consent started on A, authorized on
/// B, called back on C and completed on A serves alice on every replica.
async fn consent_across_a_fresh_fleet(trial: usize, upstream: &Upstream) {
    let mut attempt = 0;
    let (_provider_dir, provider, _store, fleet) = loop {
        let ports = Ports::pick_n(3);
        let provider_dir = tempfile::tempdir().unwrap();
        let provider =
            OidcProvider::start_with(provider_dir.path(), &[&ports.callback()], 600).await;
        let store = fresh_postgres().await;
        let endpoints = format!("discovery_url = \"{}\"", provider.discovery_url());
        let body = oauth_body(&upstream.url(), &endpoints);
        match Fleet::try_start_together(&ports, &store, &body).await {
            Ok(fleet) => break (provider_dir, provider, store, fleet),
            Err(why) if lost_port_race(&why) && attempt < PORT_RACE_RETRIES => attempt += 1,
            Err(why) => panic!("trial {trial}: {why}"),
        }
    };
    let (a, b, c) = (fleet.r(0), fleet.r(1), fleet.r(2));

    // Started on A...
    let token = workload_token(a, "alice").await;
    let (status, _, body) = docs(a, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "trial {trial}: {body}");
    let (authorization_url, session_uri) = challenge(&body);
    // ... authorized on B ...
    let (status, headers, body) = get(&on(b, &authorization_url)).await;
    assert_eq!(
        status,
        StatusCode::FOUND,
        "trial {trial}: authorize on B: {body}"
    );
    let to_provider = headers["location"].to_str().unwrap().to_string();
    let callback = provider.drive_consent(&to_provider, "alice").await;
    // ... called back on C ...
    let (status, headers, body) = get(&on(c, &callback)).await;
    assert_eq!(
        status,
        StatusCode::FOUND,
        "trial {trial}: callback on C: {body}"
    );
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .starts_with(RETURN_URL)
    );
    // ... and completed on A.
    let (status, _, body) = api(
        a,
        "/identities/CompleteResourceTokenAuth",
        &serde_json::json!({ "sessionUri": session_uri, "userIdentifier": { "userId": "alice" } }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "trial {trial}: complete on A: {body}"
    );
    for replica in &fleet.replicas {
        let (status, _, body) = docs(replica, &token).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "trial {trial}: alice on {}: {body}",
            replica.name
        );
        upstream_bearer(&body, "alice");
    }
}
