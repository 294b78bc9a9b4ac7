//! Inbound identity against the real `oidc-provider`: its JWT access tokens pass, scopes are
//! enforced, key rotation is picked up without restarting keygate, and with the provider stopped
//! the keys already held keep working.

use http::StatusCode;

use crate::common::*;
use crate::oidc::OidcProvider;

fn config(provider: &OidcProvider, upstream: &Upstream) -> String {
    format!(
        r#"{server}
[[authorizers]]
name = "idp"
discovery_url = "{discovery}"
allowed_audience = ["agents"]
allowed_clients = ["agent-m2m", "agent-m2m-post"]
allowed_scopes = ["tools"]

[[workloads]]
name = "agent-one"
authorizer = "idp"

[[routes]]
name = "tools"
path_prefix = "/tools/"
upstream = "{up}/"
authorizer = "idp"
workload = "agent-one"
"#,
        server = server_block(),
        discovery = provider.discovery_url(),
        up = upstream.url()
    )
}

#[tokio::test]
async fn real_provider_tokens_pass_rotate_and_survive_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut provider = OidcProvider::start(dir.path()).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&provider, &upstream)).await;
    gw.wait_for_keys().await;

    let token = provider
        .client_credentials("agent-m2m", "m2m-secret", "tools")
        .await;
    let (status, _, body) = get_auth(&gw.url("/tools/x"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = seen(&body);
    assert_eq!(seen.header("x-keygate-user"), Some("agent-m2m"));
    assert_eq!(
        seen.header("x-keygate-user-issuer"),
        Some(provider.issuer.as_str())
    );
    assert!(seen.header("authorization").is_none());

    let other_scope = provider
        .client_credentials("agent-m2m", "m2m-secret", "other")
        .await;
    let (status, headers, _) = get_auth(&gw.url("/tools/x"), &other_scope).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        headers["www-authenticate"],
        r#"Bearer realm="keygate", error="insufficient_scope""#
    );

    // The provider restarts with a new signing key first; its new tokens pass at once.
    let before_rotation = provider
        .client_credentials("agent-m2m-post", "m2m-post-secret", "tools")
        .await;
    provider.rotate_keys().await;
    let rotated = provider
        .client_credentials("agent-m2m", "m2m-secret", "tools")
        .await;
    assert_ne!(
        jsonwebtoken::decode_header(&rotated).unwrap().kid,
        jsonwebtoken::decode_header(&token).unwrap().kid,
        "the provider did not rotate"
    );
    let (status, _, body) = get_auth(&gw.url("/tools/x"), &rotated).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The provider goes away; tokens signed by keys keygate holds keep passing.
    provider.stop().await;
    let (status, _, body) = get_auth(&gw.url("/tools/x"), &before_rotation).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = get_auth(&gw.url("/tools/x"), &rotated).await;
    assert_eq!(status, StatusCode::OK);
}
