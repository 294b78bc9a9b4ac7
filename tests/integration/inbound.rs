//! Inbound identity against an in-process IdP: each rejection rule, key rotation and outage,
//! the unknown-`kid` flood bound, workload access tokens, and what reaches the upstream.

use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::*;
use crate::fake_idp::{FakeIdp, JwksMode, SigningKey, now};

/// The test gateway: an authorizer over `idp`, a JWT route, a WAT-only route and a passthrough route.
fn config(idp: &FakeIdp, upstream: &Upstream) -> String {
    let passthrough = format!(
        "\n[[routes]]\nname = \"pass\"\npath_prefix = \"/pass/\"\nupstream = \"{}/\"\nauthorizer = \"corp\"\n[routes.credential]\nflow = \"passthrough\"\n",
        upstream.url()
    );
    config_with_discovery(&idp.discovery_url(), upstream) + &passthrough
}

fn good_claims(idp: &FakeIdp) -> Value {
    json!({
        "iss": idp.issuer, "sub": "alice", "aud": ["other", "agents"], "client_id": "web-app",
        "scope": "openid tools", "groups": ["staff", "agent-users"], "iat": now(), "exp": now() + 300,
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

const ES256_K1: &str = r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#;

async fn call(
    gw: &TestGateway,
    path: &str,
    authorization: Option<&str>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut request = http::Request::builder()
        .method(Method::GET)
        .uri(gw.url(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    send(&http_client(), request.body(full("")).unwrap()).await
}

#[tokio::test]
async fn a_valid_user_jwt_reaches_the_upstream_without_its_authorization_header() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&idp, &upstream)).await;
    let token = key.sign_raw(ES256_K1, &good_claims(&idp).to_string());
    let request = http::Request::get(gw.url("/tools/x"))
        .header("authorization", format!("Bearer {token}"))
        .header("X-Keygate-User", "mallory")
        .header("x-keygate-workload", "admin-agent")
        .body(full(""))
        .unwrap();
    let (status, _, body) = send(&http_client(), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = seen(&body);
    assert!(
        seen.header("authorization").is_none(),
        "inbound token leaked upstream"
    );
    assert_eq!(seen.header("x-keygate-user"), Some("alice"));
    assert_eq!(
        seen.header("x-keygate-user-issuer"),
        Some(idp.issuer.as_str())
    );
    assert_eq!(seen.header("x-keygate-workload"), Some("agent-one"));

    // passthrough forwards the validated JWT exactly as it came
    let (status, _, body) = call(&gw, "/pass/x", Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        seen_of(&body).header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
}

fn seen_of(body: &str) -> Seen {
    seen(body)
}

#[tokio::test]
async fn every_bad_token_is_refused_before_the_upstream() {
    let key = SigningKey::generate("k1");
    let stranger = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&idp, &upstream)).await;
    let good = good_claims(&idp);
    let sign = |claims: &Value| key.sign_raw(ES256_K1, &claims.to_string());
    let valid = sign(&good);
    let (h, p, s) = {
        let parts: Vec<&str> = valid.split('.').collect();
        (
            parts[0].to_string(),
            parts[1].to_string(),
            parts[2].to_string(),
        )
    };
    let b64 = |t: &str| URL_SAFE_NO_PAD.encode(t);
    let jwk = key.jwk().to_string();
    let hs256 = {
        // HS256 "signed" with the public key as the secret: the classic algorithm confusion.
        let header = b64(r#"{"alg":"HS256","kid":"k1"}"#);
        let input = format!("{header}.{p}");
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, jwk.as_bytes()),
            input.as_bytes(),
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "alg none",
            format!("{}.{p}.", b64(r#"{"alg":"none"}"#)),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "alg none with signature",
            format!("{}.{p}.{s}", b64(r#"{"alg":"none"}"#)),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "HS256 with the public key",
            hs256,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "wrong issuer",
            sign(&with(good.clone(), "iss", json!("https://evil.example"))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "no issuer",
            sign(&without(good.clone(), "iss")),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "expired",
            sign(&with(good.clone(), "exp", json!(now() - 3600))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "not yet valid",
            sign(&with(good.clone(), "nbf", json!(now() + 3600))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "string exp",
            sign(&with(good.clone(), "exp", json!((now() + 300).to_string()))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "missing exp",
            sign(&without(good.clone(), "exp")),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "wrong audience",
            sign(&with(good.clone(), "aud", json!("someone-else"))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "wrong client",
            sign(&with(good.clone(), "client_id", json!("cli"))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "missing scope",
            sign(&with(good.clone(), "scope", json!("openid"))),
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        ),
        (
            "custom claim mismatch",
            sign(&with(good.clone(), "groups", json!(["staff"]))),
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        ),
        (
            "unknown kid",
            key.sign_raw(r#"{"alg":"ES256","kid":"k9"}"#, &good.to_string()),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "kid with path characters",
            key.sign_raw(
                r#"{"alg":"ES256","kid":"../../jwks?x=/etc/passwd"}"#,
                &good.to_string(),
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "signed by another key with the same kid",
            stranger.sign_raw(ES256_K1, &good.to_string()),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "tampered payload",
            format!(
                "{h}.{}.{s}",
                b64(&with(good.clone(), "sub", json!("admin")).to_string())
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "tampered signature",
            format!("{h}.{p}.{}", {
                let mut sig = s.clone().into_bytes();
                sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
                String::from_utf8(sig).unwrap()
            }),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "embedded jwk",
            key.sign_raw(
                &format!(r#"{{"alg":"ES256","kid":"k1","jwk":{jwk}}}"#),
                &good.to_string(),
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "jku",
            key.sign_raw(
                r#"{"alg":"ES256","kid":"k1","jku":"http://evil.example/jwks"}"#,
                &good.to_string(),
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "x5u",
            key.sign_raw(
                r#"{"alg":"ES256","kid":"k1","x5u":"http://evil.example/cert"}"#,
                &good.to_string(),
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "crit",
            key.sign_raw(
                r#"{"alg":"ES256","kid":"k1","crit":["exp"]}"#,
                &good.to_string(),
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "oversized",
            sign(&with(good.clone(), "pad", json!("x".repeat(17 * 1024)))),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "bad base64",
            format!("{h}.{p}!!.{s}"),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "duplicate JSON keys",
            key.sign_raw(
                ES256_K1,
                &format!(
                    r#"{{"sub":"alice","sub":"admin",{}"#,
                    &good.to_string()[1..]
                ),
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "ES256 all-zero signature",
            format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode([0u8; 64])),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "RS256 header on an EC key",
            key.sign_raw(r#"{"alg":"RS256","kid":"k1"}"#, &good.to_string()),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "two parts",
            format!("{h}.{p}"),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "no user claim",
            sign(&without(good.clone(), "sub")),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
    ];
    assert!(cases.len() >= 20);
    for (what, token, status, error) in &cases {
        let before = upstream.hits.load(Ordering::SeqCst);
        let (got, headers, body) = call(&gw, "/tools/x", Some(&format!("Bearer {token}"))).await;
        assert_eq!(got, *status, "{what}: {body}");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert_eq!(
            challenge,
            format!(r#"Bearer realm="keygate", error="{error}""#),
            "{what}"
        );
        assert_eq!(error_code(&body), *error, "{what}");
        assert_eq!(
            upstream.hits.load(Ordering::SeqCst),
            before,
            "{what}: the upstream saw the request"
        );
    }
    // The good token still passes after all that.
    let (status, _, body) = call(&gw, "/tools/x", Some(&format!("Bearer {valid}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let metrics = gw.metrics().await;
    for reason in [
        "bad_algorithm",
        "forbidden_header",
        "expired",
        "missing_scope",
        "unknown_key",
        "too_large",
        "malformed",
    ] {
        assert!(
            metrics.contains(&format!(
                r#"keygate_inbound_auth_failures_total{{reason="{reason}"}}"#
            )),
            "{reason} not counted:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn credential_carrier_rules() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&idp, &upstream)).await;
    let token = key.sign_raw(ES256_K1, &good_claims(&idp).to_string());

    let (status, headers, body) = call(&gw, "/tools/x", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], r#"Bearer realm="keygate""#);
    assert_eq!(error_code(&body), "unauthorized");

    let (status, _, body) = call(&gw, "/tools/x", Some("Basic YWxpY2U6c2VjcmV0")).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );

    let two = format!(
        "GET /tools/x HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        gw.addr
    );
    let (status, text) = raw(gw.addr, &two).await;
    assert_eq!(status, 400, "{text}");
    let (status, _, body) = call(
        &gw,
        &format!("/tools/x?access_token={token}"),
        Some(&format!("Bearer {token}")),
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rotated_keys_are_picked_up_and_cached_keys_survive_an_outage() {
    let old = SigningKey::generate("k1");
    let new = SigningKey::generate("k2");
    let idp = FakeIdp::start(&[&old]).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&idp, &upstream)).await;
    gw.wait_for_keys().await;
    let claims = good_claims(&idp).to_string();
    let old_token = old.sign_raw(ES256_K1, &claims);
    assert_eq!(
        call(&gw, "/tools/x", Some(&format!("Bearer {old_token}")))
            .await
            .0,
        StatusCode::OK
    );

    idp.publish(&[&new, &old]);
    let new_token = new.sign_raw(r#"{"alg":"ES256","kid":"k2"}"#, &claims);
    assert_eq!(
        call(&gw, "/tools/x", Some(&format!("Bearer {new_token}")))
            .await
            .0,
        StatusCode::OK
    );

    idp.set_down(true);
    let fresh = old.sign_raw(
        ES256_K1,
        &with(good_claims(&idp), "jti", json!("another")).to_string(),
    );
    assert_eq!(
        call(&gw, "/tools/x", Some(&format!("Bearer {fresh}")))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_a_bounded_number_of_jwks_fetches() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&idp, &upstream)).await;
    gw.wait_for_keys().await;
    let claims = good_claims(&idp).to_string();
    assert_eq!(
        call(
            &gw,
            "/tools/x",
            Some(&format!("Bearer {}", key.sign_raw(ES256_K1, &claims)))
        )
        .await
        .0,
        StatusCode::OK
    );
    let before = idp.fetches();
    let client = http_client();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let token = key.sign_raw(&format!(r#"{{"alg":"ES256","kid":"random-{i}"}}"#), &claims);
        let request = http::Request::get(gw.url("/tools/x"))
            .header("authorization", format!("Bearer {token}"))
            .body(full(""))
            .unwrap();
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.request(request).await.unwrap().status()
        }));
        if tasks.len() == 50 {
            for t in tasks.drain(..) {
                assert_eq!(t.await.unwrap(), StatusCode::UNAUTHORIZED);
            }
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    let extra = idp.fetches() - before;
    assert!(extra <= 2, "1000 unknown kids caused {extra} JWKS fetches");
}

#[tokio::test]
async fn an_idp_down_at_startup_does_not_stop_keygate() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let key = SigningKey::generate("k1");
    let upstream = Upstream::start().await;
    // The IdP's port is known but nothing answers there yet.
    drop(listener);
    let placeholder = FakeIdpAddress(addr);
    let gw = TestGateway::start(&config_for(&placeholder, &upstream)).await;
    let (status, _, body) = get(&format!("http://{}/readyz", gw.admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("authorizers without signing keys yet: corp"),
        "{body}"
    );
    // Other routes serve (workload access tokens do not need the IdP).
    let (status, _, _) = get_auth(&gw.url("/wat/x"), &gw.state_token("agent-one")).await;
    assert_eq!(status, StatusCode::OK);
    // The authorizer's routes answer 401 until keys arrive.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let idp = FakeIdp::serve(listener, &[&key]);
    let token = key.sign_raw(ES256_K1, &good_claims(&idp).to_string());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, _) = call(&gw, "/tools/x", Some(&format!("Bearer {token}"))).await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(std::time::Instant::now() < deadline, "keys never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct FakeIdpAddress(std::net::SocketAddr);

fn config_for(addr: &FakeIdpAddress, upstream: &Upstream) -> String {
    let issuer = format!("http://{}", addr.0);
    config_with_discovery(
        &format!("{issuer}/.well-known/openid-configuration"),
        upstream,
    )
}

fn config_with_discovery(discovery: &str, upstream: &Upstream) -> String {
    let template = r#"{server}
[[authorizers]]
name = "corp"
discovery_url = "{discovery}"
allowed_audience = ["agents"]
allowed_clients = ["web-app"]
allowed_scopes = ["tools"]
[[authorizers.custom_claims]]
claim = "groups"
operator = "contains"
value = "agent-users"

[[workloads]]
name = "agent-one"
authorizer = "corp"

[[routes]]
name = "jwt"
path_prefix = "/tools/"
upstream = "{up}/"
authorizer = "corp"
workload = "agent-one"

[[routes]]
name = "wat-only"
path_prefix = "/wat/"
upstream = "{up}/"
workload = "agent-one"
"#;
    template
        .replace("{server}", server_block())
        .replace("{discovery}", discovery)
        .replace("{up}", &upstream.url())
}

#[tokio::test]
async fn workload_access_tokens_name_workload_and_user() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&idp, &upstream)).await;

    let (status, _, body) = get_auth(&gw.url("/wat/x"), &gw.state_token("agent-one")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(seen(&body).header("x-keygate-workload"), Some("agent-one"));

    // A route with an authorizer accepts workload access tokens too.
    let (status, _, _) = get_auth(&gw.url("/tools/x"), &gw.state_token("agent-one")).await;
    assert_eq!(status, StatusCode::OK);

    // A token for another workload is refused on a route bound to agent-one.
    let (status, headers, _) = get_auth(&gw.url("/wat/x"), &gw.state_token("agent-two")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers["www-authenticate"],
        r#"Bearer realm="keygate", error="invalid_token""#
    );

    // A user JWT is not a workload access token.
    let jwt = key.sign_raw(ES256_K1, &good_claims(&idp).to_string());
    assert_eq!(
        get_auth(&gw.url("/wat/x"), &jwt).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Another keygate's token is refused.
    let foreign = keygate::inbound::WorkloadTokens::generate(gw.state.workload_tokens().issuer())
        .unwrap()
        .issue("agent-one", None)
        .unwrap();
    assert_eq!(
        get_auth(&gw.url("/wat/x"), &foreign).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The public key is served, and verifies what keygate signs.
    let (status, _, body) = get(&gw.url("/.well-known/jwks.json")).await;
    assert_eq!(status, StatusCode::OK);
    let jwks: Value = serde_json::from_str(&body).unwrap();
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["alg"], "ES256");
    assert!(jwk.get("d").is_none(), "private key material published");
    let token = gw.state_token("agent-one");
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    assert_eq!(jwk["kid"], kid);
    let decoding = jsonwebtoken::DecodingKey::from_ec_components(
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["keygate"]);
    let claims = jsonwebtoken::decode::<Value>(&token, &decoding, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "agent-one");
    assert_eq!(claims["iss"], gw.state.workload_tokens().issuer());
    assert!(claims["jti"].is_string());
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn garbage_or_oversized_jwks_keep_the_keys_held_and_are_counted() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&idp, &upstream)).await;
    gw.wait_for_keys().await;
    for (i, (mode, kid)) in [(JwksMode::Garbage, "k7"), (JwksMode::Oversized, "k8")]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            // Forced refreshes are spaced; wait out the interval before the next one.
            tokio::time::sleep(keygate::inbound::jwks::UNKNOWN_KID_INTERVAL).await;
        }
        idp.set_jwks_mode(mode);
        let unknown = key.sign_raw(
            &format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#),
            &good_claims(&idp).to_string(),
        );
        let (status, _, _) = call(&gw, "/tools/x", Some(&format!("Bearer {unknown}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let fresh = key.sign_raw(
            ES256_K1,
            &with(good_claims(&idp), "jti", json!(kid)).to_string(),
        );
        let (status, _, body) = call(&gw, "/tools/x", Some(&format!("Bearer {fresh}"))).await;
        assert_eq!(status, StatusCode::OK, "held keys stopped working: {body}");
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"keygate_jwks_fetches_total{authorizer="corp",result="failure"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"keygate_jwks_fetches_total{authorizer="corp",result="success"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_rotated_signing_key_is_used_after_reload_and_old_tokens_stay_valid() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let upstream = Upstream::start().await;
    let toml = config(&idp, &upstream);
    let gw = TestGateway::start(&toml).await;
    let old = gw.state_token("agent-one");
    let new_kid = keygate::inbound::WorkloadTokens::rotate(gw.state.vault())
        .await
        .unwrap();
    gw.reload_with(&toml).await;
    let new = gw.state_token("agent-one");
    assert_eq!(
        jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(),
        Some(new_kid.as_str())
    );
    for token in [&old, &new] {
        assert_eq!(get_auth(&gw.url("/wat/x"), token).await.0, StatusCode::OK);
    }
    let (_, _, body) = get(&gw.url("/.well-known/jwks.json")).await;
    let jwks: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_verified_token_cache_can_be_turned_off() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let upstream = Upstream::start().await;
    let token = key.sign_raw(ES256_K1, &good_claims(&idp).to_string());
    let digest = keygate::inbound::verified_cache::digest(&token);
    for (setting, cached) in [("", true), ("cache_verified_tokens = false\n", false)] {
        let toml = config(&idp, &upstream).replacen(
            "allowed_audience = [\"agents\"]\n",
            &format!("allowed_audience = [\"agents\"]\n{setting}"),
            1,
        );
        let gw = TestGateway::start(&toml).await;
        for _ in 0..2 {
            let (status, _, body) = call(&gw, "/tools/x", Some(&format!("Bearer {token}"))).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let runtime = gw.state.runtime();
        assert_eq!(
            runtime.authorizers["corp"].cached(&digest).is_some(),
            cached,
            "{setting}"
        );
    }
}

#[tokio::test]
async fn user_ids_any_header_cannot_carry_reach_the_upstream_percent_encoded() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&idp, &upstream)).await;
    for (sub, sent) in [
        ("josé", "jos%C3%A9"),
        ("100%", "100%25"),
        ("line\nbreak", "line%0Abreak"),
        ("plain-user@example.com", "plain-user@example.com"),
    ] {
        let claims = with(good_claims(&idp), "sub", json!(sub));
        let token = key.sign_raw(ES256_K1, &claims.to_string());
        let (status, _, body) = call(&gw, "/tools/x", Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(seen(&body).header("x-keygate-user"), Some(sent), "{sub:?}");
    }
}

#[tokio::test]
async fn claims_once_accepted_too_leniently_are_refused() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&idp, &upstream)).await;
    let good = good_claims(&idp);
    let signed = |header: &str, claims: &Value| key.sign_raw(header, &claims.to_string());
    let typ = |t: &str| format!(r#"{{"alg":"ES256","kid":"k1","typ":"{t}"}}"#);
    let ten_years = now() + 10 * 365 * 86400;
    let refused = [
        (
            "iss as an array",
            signed(ES256_K1, &with(good.clone(), "iss", json!([idp.issuer]))),
            "wrong_issuer",
        ),
        (
            "exp ten years out",
            signed(ES256_K1, &with(good.clone(), "exp", json!(ten_years))),
            "lifetime_too_long",
        ),
        (
            "no iat, exp in 25 hours",
            signed(
                ES256_K1,
                &with(
                    without(good.clone(), "iat"),
                    "exp",
                    json!(now() + 25 * 3600),
                ),
            ),
            "lifetime_too_long",
        ),
        (
            "iat an hour ahead",
            signed(ES256_K1, &with(good.clone(), "iat", json!(now() + 3600))),
            "issued_in_future",
        ),
        (
            "typ refresh+jwt",
            signed(&typ("refresh+jwt"), &good),
            "wrong_type",
        ),
        (
            "typ logout+jwt",
            signed(&typ("logout+jwt"), &good),
            "wrong_type",
        ),
    ];
    for (what, token, reason) in &refused {
        let (status, _, body) = call(&gw, "/tools/x", Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert_eq!(error_code(&body), "invalid_token", "{what}");
        let metrics = gw.metrics().await;
        let series = format!(r#"keygate_inbound_auth_failures_total{{reason="{reason}"}} "#);
        let count: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(count >= 1, "{what}: {reason} not counted");
    }
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
    let accepted = [
        ("typ at+jwt", signed(&typ("at+jwt"), &good)),
        (
            "typ application/at+jwt",
            signed(&typ("application/AT+JWT"), &good),
        ),
        ("no typ", signed(r#"{"alg":"ES256","kid":"k1"}"#, &good)),
        (
            "iat within the leeway",
            signed(ES256_K1, &with(good.clone(), "iat", json!(now() + 30))),
        ),
        (
            "a 23-hour token",
            signed(
                ES256_K1,
                &with(good.clone(), "exp", json!(now() + 23 * 3600)),
            ),
        ),
    ];
    for (what, token) in &accepted {
        let (status, _, body) = call(&gw, "/tools/x", Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, StatusCode::OK, "{what}: {body}");
    }

    // The maximum is the authorizer's to set.
    let toml = config(&idp, &upstream).replacen(
        "allowed_audience = [\"agents\"]\n",
        "allowed_audience = [\"agents\"]\nmax_token_lifetime = \"1h\"\n",
        1,
    );
    let gw = TestGateway::start(&toml).await;
    for (lifetime, expected) in [(2 * 3600, StatusCode::UNAUTHORIZED), (1800, StatusCode::OK)] {
        let token = signed(
            ES256_K1,
            &with(good.clone(), "exp", json!(now() + lifetime)),
        );
        let (status, _, body) = call(&gw, "/tools/x", Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, expected, "{lifetime}s: {body}");
    }
}

#[tokio::test]
async fn a_key_dropped_from_the_jwks_takes_its_cached_tokens_with_it() {
    let old = SigningKey::generate("k1");
    let new = SigningKey::generate("k2");
    let idp = FakeIdp::start(&[&old]).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&idp, &upstream)).await;
    gw.wait_for_keys().await;
    let token = old.sign_raw(ES256_K1, &good_claims(&idp).to_string());
    let digest = keygate::inbound::verified_cache::digest(&token);
    for _ in 0..2 {
        let (status, _, body) = call(&gw, "/tools/x", Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert!(
        gw.state.runtime().authorizers["corp"]
            .cached(&digest)
            .is_some()
    );

    // The IdP drops k1; a token under k2 makes keygate refetch the JWKS.
    idp.publish(&[&new]);
    let fresh = new.sign_raw(
        r#"{"alg":"ES256","kid":"k2"}"#,
        &good_claims(&idp).to_string(),
    );
    let (status, _, body) = call(&gw, "/tools/x", Some(&format!("Bearer {fresh}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hits = upstream.hits.load(Ordering::SeqCst);
    let (status, _, body) = call(&gw, "/tools/x", Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(upstream.hits.load(Ordering::SeqCst), hits);
    assert!(
        gw.state.runtime().authorizers["corp"]
            .cached(&digest)
            .is_none()
    );
}

#[tokio::test]
async fn a_workload_token_of_a_rotated_out_key_is_refused_even_when_cached() {
    let key = SigningKey::generate("k1");
    let idp = FakeIdp::start(&[&key]).await;
    let upstream = Upstream::start().await;
    let toml = config(&idp, &upstream);
    let gw = TestGateway::start(&toml).await;
    let old = gw.state_token("agent-one");
    assert_eq!(get_auth(&gw.url("/wat/x"), &old).await.0, StatusCode::OK);
    // Three rotations push the key that signed `old` out of the ring of three.
    for _ in 0..keygate::inbound::workload_token::MAX_KEYS {
        keygate::inbound::WorkloadTokens::rotate(gw.state.vault())
            .await
            .unwrap();
    }
    gw.reload_with(&toml).await;
    let (status, _, body) = get_auth(&gw.url("/wat/x"), &old).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let new = gw.state_token("agent-one");
    assert_eq!(get_auth(&gw.url("/wat/x"), &new).await.0, StatusCode::OK);
}
