//! Whom keygate trusts for inbound identity and where its own fetches go: a discovery document
//! speaks only for the issuer its URL names (one key source per issuer), `jwks_uri` and token
//! endpoints obey the egress rules (no link-local, no clear text off loopback unless allowed, no
//! https-to-http downgrade), and IdPs behind a private CA are trusted through `extra_ca_certs`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use keygate::egress::EgressError;
use keygate::inbound::UserId;
use keygate::inbound::jwks::{KeySource, KeysError, SourceOptions};
use keygate::vault::{Credential, OAuthTokens};
use serde_json::{Value, json};

use crate::common::*;
use crate::fake_idp::{Document, FakeIdp, SigningKey, now};

const ES256_K1: &str = r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#;
const RETURN_URL: &str = "https://app.example/cb";

fn claims(issuer: &str, user: &str) -> Value {
    json!({"iss": issuer, "sub": user, "aud": "agents", "iat": now(), "exp": now() + 300})
}

/// Two authorizers (`corp` over `first`, `other` over `second`), each with a route injecting the
/// user's vaulted `docs` token.
fn two_idps(first: &str, second: &str, upstream: &Upstream) -> String {
    let mut toml = server_block().to_string();
    for (name, discovery) in [("corp", first), ("other", second)] {
        toml += &format!(
            "[[authorizers]]\nname = \"{name}\"\ndiscovery_url = \"{discovery}\"\nallowed_audience = [\"agents\"]\n\n"
        );
    }
    toml += &format!(
        r#"[[workloads]]
name = "agent-one"
allowed_return_urls = ["{RETURN_URL}"]

[[providers]]
name = "docs"
kind = "oauth2"
vendor = "custom"
client_id = "web-app"
client_secret = "web-secret"
authorization_endpoint = "http://127.0.0.1:9/auth"
token_endpoint = "http://127.0.0.1:9/token"
"#
    );
    for name in ["corp", "other"] {
        toml += &format!(
            r#"
[[routes]]
name = "{name}"
path_prefix = "/{name}/"
upstream = "{up}/"
authorizer = "{name}"
workload = "agent-one"
[routes.credential]
provider = "docs"
flow = "user_federation"
scopes = ["tools"]
return_url = "{RETURN_URL}"
"#,
            up = upstream.url()
        );
    }
    toml
}

async fn vault_token_for(gw: &TestGateway, issuer: &str, user: &str, secret: &str) {
    let user = UserId {
        issuer: Some(issuer.to_string()),
        id: user.to_string(),
    };
    let owner = keygate::consent::user_owner("agent-one", &user, "docs");
    let tokens = Credential::OAuth(OAuthTokens {
        access_token: secret.to_string().into(),
        refresh_token: None,
        expires_at: Some(keygate::vault::store::now() + 3600),
        scopes: vec!["tools".into()],
        requested: vec!["tools".into()],
        lifetime_secs: None,
    });
    gw.state.vault().put(&owner, &tokens).await.unwrap();
}

/// Waits until the readiness body names exactly `missing` as the authorizers without keys.
async fn wait_for_keys_except(gw: &TestGateway, missing: &str) {
    wait_for_readyz_line(
        gw,
        &format!("authorizers without signing keys yet: {missing}\n"),
    )
    .await;
}

/// Waits until the readiness body contains `expected`.
async fn wait_for_readyz_line(gw: &TestGateway, expected: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, _, body) = get(&format!("http://{}/readyz", gw.admin)).await;
        if body.contains(expected) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_idp_claiming_another_idps_issuer_never_gets_its_users() {
    let genuine = SigningKey::generate("k1");
    let forger = SigningKey::generate("k1");
    let first = FakeIdp::start(&[&genuine]).await;
    let second = FakeIdp::start(&[&forger]).await;
    // The second IdP's document claims the first IdP's issuer, with its own keys.
    second.lie(Document {
        issuer: Some(first.issuer.clone()),
        ..Document::default()
    });
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&two_idps(
        &first.discovery_url(),
        &second.discovery_url(),
        &upstream,
    ))
    .await;
    vault_token_for(&gw, &first.issuer, "alice", "alices-vaulted-token").await;
    wait_for_keys_except(&gw, "other").await;
    let why = format!("other: discovery document names issuer `{}`", first.issuer);
    wait_for_readyz_line(&gw, &why).await;

    // The genuine IdP's alice gets her token (the setup works).
    let real = genuine.sign_raw(ES256_K1, &claims(&first.issuer, "alice").to_string());
    let (status, _, body) = get_auth(&gw.url("/corp/x"), &real).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        seen(&body).header("authorization"),
        Some("Bearer alices-vaulted-token")
    );

    // The forger's "alice" is nobody, on either route, and reaches no upstream.
    let hits = upstream.hits.load(Ordering::SeqCst);
    let forged = forger.sign_raw(ES256_K1, &claims(&first.issuer, "alice").to_string());
    for route in ["/other/x", "/corp/x"] {
        let (status, _, body) = get_auth(&gw.url(route), &forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{route}: {body}");
        assert!(!body.contains("alices-vaulted-token"));
    }
    assert_eq!(upstream.hits.load(Ordering::SeqCst), hits);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"keygate_jwks_fetches_total{authorizer="other",result="failure"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_document_claiming_a_foreign_issuer_is_refused_until_it_tells_the_truth() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    idp.lie(Document {
        issuer: Some("https://evil.example".into()),
        ..Document::default()
    });
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&one_authorizer("", &idp.discovery_url(), &upstream)).await;
    let evil = key.sign_raw(
        ES256_K1,
        &claims("https://evil.example", "alice").to_string(),
    );
    let honest = key.sign_raw(ES256_K1, &claims(&idp.issuer, "alice").to_string());
    // /readyz names the authorizer and why (without failing readiness over one IdP).
    let why =
        "corp: discovery document names issuer `https://evil.example`, but its URL speaks only for";
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) = get(&format!("http://{}/readyz", gw.admin)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("without signing keys yet: corp\n"), "{body}");
        if body.contains(why) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for token in [&evil, &honest] {
        let (status, _, body) = get_auth(&gw.url("/corp/x"), token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);

    // Once the document names its own issuer, its keys are taken; the liar's tokens stay refused.
    idp.lie(Document::default());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, body) = get_auth(&gw.url("/corp/x"), &honest).await;
        if status == StatusCode::OK {
            assert_eq!(
                seen(&body).header("x-keygate-user-issuer"),
                Some(idp.issuer.as_str())
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "keys never taken");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        get_auth(&gw.url("/corp/x"), &evil).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_second_key_source_for_a_held_issuer_is_refused_at_fetch_time() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let client = keygate::upstream::for_fetches(&[]).unwrap();
    let registry = keygate::inbound::discovery::IssuerRegistry::new();
    let source = |path: &str| {
        KeySource::with_options(
            format!("{}{path}", idp.issuer).parse().unwrap(),
            client.clone(),
            SourceOptions {
                registry: Some(registry.clone()),
                ..SourceOptions::default()
            },
        )
    };
    let first = source("/.well-known/openid-configuration");
    let second = source("/.well-known/oauth-authorization-server");
    first.refresh().await.unwrap();
    match second.refresh().await {
        Err(KeysError::IssuerTaken { issuer, other }) => {
            assert_eq!(issuer, idp.issuer);
            assert_eq!(other, idp.discovery_url());
        }
        other => panic!("second source for one issuer: {:?}", other.map(|_| ())),
    }
    assert!(second.current().is_none());
    // The first one keeps refreshing; once it is gone, the issuer is free again.
    first.refresh().await.unwrap();
    drop(first);
    second.refresh().await.unwrap();
}

/// What a key source says when its discovery document names `jwks_uri`.
async fn fetch_with_jwks_uri(
    idp: &FakeIdp,
    jwks_uri: &str,
    allow_insecure_http: bool,
    client: &keygate::upstream::UpstreamClient,
) -> Result<(), KeysError> {
    idp.lie(Document {
        jwks_uri: Some(jwks_uri.into()),
        ..Document::default()
    });
    let source = KeySource::with_options(
        idp.discovery_url().parse().unwrap(),
        client.clone(),
        SourceOptions {
            allow_insecure_http,
            ..SourceOptions::default()
        },
    );
    source.refresh().await.map(|_| ())
}

#[tokio::test]
async fn jwks_uris_off_limits_are_never_fetched() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let client = keygate::upstream::for_fetches(&[]).unwrap();
    let cases = [
        (
            "http://169.254.169.254/latest/meta-data/jwks",
            true,
            EgressError::LinkLocal,
        ),
        ("https://[fe80::1]/jwks", false, EgressError::LinkLocal),
        ("http://idp.invalid/jwks", false, EgressError::InsecureHttp),
        ("http://10.1.2.3/jwks", false, EgressError::InsecureHttp),
    ];
    for (jwks_uri, allow, expected) in cases {
        match fetch_with_jwks_uri(&idp, jwks_uri, allow, &client).await {
            Err(KeysError::Egress(e)) => assert_eq!(e, expected, "{jwks_uri}"),
            other => panic!("{jwks_uri}: {:?}", other.err()),
        }
    }
    // With the explicit opt-in, a clear-text remote jwks_uri is tried (and fails here on DNS).
    match fetch_with_jwks_uri(&idp, "http://idp.invalid/jwks", true, &client).await {
        Err(KeysError::Fetch(_)) => {}
        other => panic!("allow_insecure_http: {:?}", other.err()),
    }
}

/// A private CA, a TLS IdP whose certificate it signed, and the CA's PEM path.
async fn tls_idp(dir: &std::path::Path, key: &SigningKey) -> (FakeIdp, std::path::PathBuf) {
    let (ca, cert, server_key) = dev_certs(dir);
    let tls = keygate::tls::server_config(&cert, &server_key).unwrap();
    (FakeIdp::start_tls(&[key], tls).await, ca)
}

#[tokio::test]
async fn an_https_document_naming_http_urls_is_refused_and_nothing_is_fetched_there() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate("k1");
    let (idp, ca) = tls_idp(dir.path(), &key).await;
    let plain = FakeIdp::start(&[&key]).await;
    let client = keygate::upstream::for_fetches(&[ca]).unwrap();
    match fetch_with_jwks_uri(&idp, &format!("{}/jwks", plain.issuer), false, &client).await {
        Err(KeysError::Egress(EgressError::Downgrade)) => {}
        other => panic!("downgrade: {:?}", other.err()),
    }
    assert_eq!(plain.fetches(), 0, "the http jwks_uri was fetched");

    // A provider whose https discovery names an http token endpoint: 502, and no token request.
    let discoveries = idp.requests_for("/.well-known/openid-configuration");
    idp.lie(Document {
        token_endpoint: Some(format!("{}/token", plain.issuer)),
        ..Document::default()
    });
    let upstream = Upstream::start().await;
    let toml = format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
extra_ca_certs = ["{ca}"]
[audit]
path = "-"

[[workloads]]
name = "agent-one"

[[providers]]
name = "m2m"
kind = "oauth2"
vendor = "custom"
client_id = "agent"
client_secret = "agent-secret"
discovery_url = "{discovery}"

[[routes]]
name = "m2m"
path_prefix = "/m2m/"
upstream = "{up}/"
workload = "agent-one"
[routes.credential]
provider = "m2m"
flow = "m2m"
"#,
        ca = dir.path().join("ca.crt").display(),
        discovery = idp.discovery_url(),
        up = upstream.url()
    );
    let gw = TestGateway::start(&toml).await;
    let (status, _, body) = get_auth(&gw.url("/m2m/x"), &gw.state_token("agent-one")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(error_code(&body), "credential_provider_error");
    assert_eq!(
        idp.requests_for("/.well-known/openid-configuration"),
        discoveries + 1
    );
    assert_eq!(
        plain.requests_for("/token"),
        0,
        "the http token endpoint was called"
    );
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
}

fn one_authorizer(server_extra: &str, discovery: &str, upstream: &Upstream) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{server_extra}
[audit]
path = "-"

[[authorizers]]
name = "corp"
discovery_url = "{discovery}"
allowed_audience = ["agents"]

[[workloads]]
name = "agent-one"

[[routes]]
name = "corp"
path_prefix = "/corp/"
upstream = "{up}/"
authorizer = "corp"
workload = "agent-one"
"#,
        up = upstream.url()
    )
}

#[tokio::test]
async fn an_idp_behind_a_private_ca_is_trusted_through_extra_ca_certs() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate("k1");
    let (idp, ca) = tls_idp(dir.path(), &key).await;
    let upstream = Upstream::start().await;
    let token = key.sign_raw(ES256_K1, &claims(&idp.issuer, "alice").to_string());

    // Without the CA, the IdP's certificate is not trusted: no keys, 401, failures counted.
    let gw = TestGateway::start(&one_authorizer("", &idp.discovery_url(), &upstream)).await;
    let (status, _, _) = get_auth(&gw.url("/corp/x"), &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        gw.metrics()
            .await
            .contains(r#"keygate_jwks_fetches_total{authorizer="corp",result="failure"}"#)
    );
    assert_eq!(idp.fetches(), 0);

    let extra = format!("extra_ca_certs = [\"{}\"]", ca.display());
    let gw = TestGateway::start(&one_authorizer(&extra, &idp.discovery_url(), &upstream)).await;
    gw.wait_for_keys().await;
    let (status, _, body) = get_auth(&gw.url("/corp/x"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(seen(&body).header("x-keygate-user"), Some("alice"));
}
