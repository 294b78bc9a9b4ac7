//! Outbound credentials through the proxy: API keys in a header or a query parameter, and M2M
//! tokens from the real oidc-provider (client credentials), fetched once for 200 concurrent
//! requests on a cold cache, counted by a shim in front of the token endpoint.

use std::sync::atomic::Ordering;

use http::{Request, StatusCode};

use crate::common::*;
use crate::oidc::OidcProvider;

fn config(upstream: &Upstream, token_endpoint: &str) -> String {
    format!(
        r#"{server}
[[workloads]]
name = "agent-one"

[[providers]]
name = "weather"
kind = "api_key"
api_key = "weather-secret"

[[providers]]
name = "idp-basic"
kind = "oauth2"
vendor = "custom"
client_id = "agent-m2m"
client_secret = "m2m-secret"
token_endpoint = "{token_endpoint}"

[[providers]]
name = "idp-post"
kind = "oauth2"
vendor = "custom"
client_id = "agent-m2m-post"
client_secret = "m2m-post-secret"
client_auth = "client_secret_post"
token_endpoint = "{token_endpoint}"

[[providers]]
name = "dead"
kind = "oauth2"
vendor = "custom"
client_id = "x"
client_secret = "y"
token_endpoint = "http://127.0.0.1:9/token"

[[routes]]
name = "weather"
path_prefix = "/weather/"
upstream = "{up}/"
[routes.credential]
provider = "weather"
flow = "api_key"
header = "X-API-Key"
format = "{{token}}"

[[routes]]
name = "maps"
path_prefix = "/maps/"
upstream = "{up}/"
[routes.credential]
provider = "weather"
flow = "api_key"
query_param = "key"

[[routes]]
name = "m2m"
path_prefix = "/m2m/"
upstream = "{up}/"
workload = "agent-one"
[routes.credential]
provider = "idp-basic"
flow = "m2m"
scopes = ["tools"]

[[routes]]
name = "m2m-post"
path_prefix = "/m2m-post/"
upstream = "{up}/"
[routes.credential]
provider = "idp-post"
flow = "m2m"
scopes = ["tools"]

[[routes]]
name = "dead"
path_prefix = "/dead/"
upstream = "{up}/"
[routes.credential]
provider = "dead"
flow = "m2m"
"#,
        server = server_block(),
        up = upstream.url()
    )
}

#[tokio::test]
async fn api_keys_go_in_a_header_or_a_query_parameter_and_replace_what_the_client_sent() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&upstream, "http://127.0.0.1:9/token")).await;
    let request = gw
        .request(http::Method::GET, "/weather/today?city=Oslo")
        .header("x-api-key", "forged")
        .body(full(""))
        .unwrap();
    let (status, _, body) = send(&http_client(), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = seen(&body);
    assert_eq!(
        seen.headers["x-api-key"],
        vec!["weather-secret".to_string()]
    );
    assert!(seen.header("authorization").is_none());
    assert_eq!(seen.uri, "/today?city=Oslo");

    let (status, _, body) = gw.get("/maps/tile?z=3&key=forged").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let maps = crate::common::seen(&body);
    assert_eq!(maps.uri, "/tile?z=3&key=weather-secret");
    assert!(maps.header("authorization").is_none());
}

#[tokio::test]
async fn m2m_tokens_are_fetched_once_for_a_burst_and_shared() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path()).await;
    let shim = CountingShim::start(provider.issuer.clone()).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&upstream, &format!("http://{}/token", shim.addr))).await;
    let token = gw.state_token("agent-one");

    let client = http_client();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let request = Request::get(gw.url("/m2m/x"))
            .header("authorization", format!("Bearer {token}"))
            .body(full(""))
            .unwrap();
        let client = client.clone();
        tasks.push(tokio::spawn(async move { send(&client, request).await }));
    }
    let mut injected = std::collections::HashSet::new();
    for task in tasks {
        let (status, _, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        injected.insert(seen(&body).header("authorization").unwrap().to_string());
    }
    assert_eq!(
        shim.count(),
        1,
        "200 concurrent requests on a cold cache made {} token requests",
        shim.count()
    );
    assert_eq!(injected.len(), 1, "requests got different tokens");
    let bearer = injected.into_iter().next().unwrap();
    let jwt = bearer.strip_prefix("Bearer ").unwrap();
    assert_ne!(jwt, token, "the inbound token was forwarded");
    let claims = jwt_claims(jwt);
    assert_eq!(claims["client_id"], "agent-m2m");
    assert_eq!(claims["scope"], "tools");

    // client_secret_post works too, and is a separate token.
    let (status, _, body) = get_auth(&gw.url("/m2m-post/x"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(shim.count(), 2);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"keygate_token_requests_total{grant="client_credentials",provider="idp-basic",result="success"} 1"#),
        "{metrics}"
    );
    // The token sits sealed in the vault under the workload, not a user.
    let stored = gw
        .state
        .vault()
        .get(&keygate::providers::m2m::M2mTokens::owner(
            "agent-one",
            "idp-basic",
            &["tools".into()],
        ))
        .await
        .unwrap();
    assert!(stored.is_some());

    // Revoked in the vault (as `keygate vault revoke` or another replica would): the running
    // gateway stops injecting it and fetches a new one.
    let owner =
        keygate::providers::m2m::M2mTokens::owner("agent-one", "idp-basic", &["tools".into()]);
    assert!(gw.state.vault().delete(&owner).await.unwrap());
    let (status, _, body) = get_auth(&gw.url("/m2m/x"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        shim.count(),
        3,
        "the revoked M2M token was still served from the cache"
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_502_and_nothing_goes_upstream() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&upstream, "http://127.0.0.1:9/token")).await;
    let (status, _, body) = gw.get("/dead/x").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(error_code(&body), "credential_provider_error");
    assert!(
        !body.contains("127.0.0.1:9"),
        "provider details leaked: {body}"
    );
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
}
