//! Caller authentication on the hot path: a user JWT verified cold (signature, claims) versus
//! served from the verified-token cache, per algorithm; and a workload access token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use keygate::config::AuthorizerConfig;
use keygate::inbound::jwks::{KeyFamily, KeySet, KeySource, VerifyKey};
use keygate::inbound::{Authorizer, WorkloadTokens};
use rcgen::{KeyPair, SignatureAlgorithm};
use serde_json::json;

const ISSUER: &str = "https://idp.example.com";

struct Case {
    name: &'static str,
    alg: Algorithm,
    family: KeyFamily,
    rcgen: &'static SignatureAlgorithm,
}

fn keys(case: &Case) -> (EncodingKey, DecodingKey) {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let pair = KeyPair::generate_for(case.rcgen).unwrap();
    let private = pair.serialize_der();
    let public = pair.public_key_raw();
    match case.family {
        KeyFamily::Rsa => (
            EncodingKey::from_rsa_der(pkcs1_from_pkcs8(&private)),
            DecodingKey::from_rsa_der(public),
        ),
        KeyFamily::P256 | KeyFamily::P384 => {
            let half = (public.len() - 1) / 2;
            let (x, y) = (&public[1..=half], &public[half + 1..]);
            (
                EncodingKey::from_ec_der(&private),
                DecodingKey::from_ec_components(&b64(x), &b64(y)).unwrap(),
            )
        }
        KeyFamily::Ed25519 => (
            EncodingKey::from_ed_der(&private),
            DecodingKey::from_ed_components(&b64(public)).unwrap(),
        ),
    }
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (its third element, an OCTET STRING).
fn pkcs1_from_pkcs8(der: &[u8]) -> &[u8] {
    // Returns (header length, content length) of the DER element at the start of `bytes`.
    fn element(bytes: &[u8]) -> (usize, usize) {
        let first = bytes[1] as usize;
        if first < 0x80 {
            return (2, first);
        }
        let n = first & 0x7f;
        let len = bytes[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (2 + n, len)
    }
    let (header, _) = element(der);
    let mut rest = &der[header..];
    for _ in 0..2 {
        let (h, len) = element(rest);
        rest = &rest[h + len..];
    }
    let (h, len) = element(rest);
    &rest[h..h + len]
}

fn authorizer(case: &Case, decoding: DecodingKey, cache_capacity: u64) -> Authorizer {
    let config = AuthorizerConfig {
        name: "bench".into(),
        discovery_url: "https://idp.example.com/.well-known/openid-configuration"
            .parse()
            .unwrap(),
        allowed_audience: Some(vec!["agents".into()]),
        allowed_clients: Some(vec!["web-app".into()]),
        allowed_scopes: vec!["tools".into()],
        user_claim: "sub".into(),
        leeway: Duration::from_secs(60),
        custom_claims: vec![],
        cache_verified_tokens: cache_capacity > 0,
        max_token_lifetime: Duration::from_secs(24 * 3600),
        allow_insecure_http: false,
    };
    let client = keygate::upstream::client(None).unwrap();
    let source = KeySource::new(config.discovery_url.clone(), client);
    source.install(KeySet {
        issuer: ISSUER.into(),
        keys: vec![VerifyKey {
            tag: 1,
            kid: Some("k1".into()),
            alg: Some(case.alg),
            family: case.family,
            key: decoding,
        }],
        refresh_after: Duration::from_secs(600),
    });
    Authorizer::new(config, source, cache_capacity)
}

fn user_jwts(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cases = [
        Case {
            name: "RS256",
            alg: Algorithm::RS256,
            family: KeyFamily::Rsa,
            rcgen: &rcgen::PKCS_RSA_SHA256,
        },
        Case {
            name: "PS256",
            alg: Algorithm::PS256,
            family: KeyFamily::Rsa,
            rcgen: &rcgen::PKCS_RSA_SHA256,
        },
        Case {
            name: "ES256",
            alg: Algorithm::ES256,
            family: KeyFamily::P256,
            rcgen: &rcgen::PKCS_ECDSA_P256_SHA256,
        },
        Case {
            name: "ES384",
            alg: Algorithm::ES384,
            family: KeyFamily::P384,
            rcgen: &rcgen::PKCS_ECDSA_P384_SHA384,
        },
        Case {
            name: "EdDSA",
            alg: Algorithm::EdDSA,
            family: KeyFamily::Ed25519,
            rcgen: &rcgen::PKCS_ED25519,
        },
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": ISSUER, "sub": "alice", "aud": "agents", "client_id": "web-app", "scope": "openid tools",
        "iat": now, "exp": now + 3600,
    });
    let _guard = rt.enter();
    let mut group = c.benchmark_group("jwt");
    for case in &cases {
        let (encoding, decoding) = keys(case);
        let mut header = Header::new(case.alg);
        header.kid = Some("k1".into());
        let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
        let cold = authorizer(case, decoding.clone(), 0);
        let cached = authorizer(case, decoding, 10_000);
        rt.block_on(cached.verify(&token)).unwrap();
        group.bench_function(format!("{}/cold", case.name), |b| {
            b.iter(|| rt.block_on(cold.verify(black_box(&token))).unwrap())
        });
        group.bench_function(format!("{}/cached", case.name), |b| {
            b.iter(|| rt.block_on(cached.verify(black_box(&token))).unwrap())
        });
    }
    group.finish();
}

fn workload_tokens(c: &mut Criterion) {
    let tokens = WorkloadTokens::generate("http://127.0.0.1:8080").unwrap();
    let token = tokens.issue("agent-one", None).unwrap();
    tokens.verify(&token).unwrap();
    c.bench_function("workload_token/issue", |b| {
        b.iter(|| tokens.issue(black_box("agent-one"), None).unwrap())
    });
    c.bench_function("workload_token/verify-cached", |b| {
        b.iter(|| tokens.verify(black_box(&token)).unwrap())
    });
}

criterion_group!(benches, user_jwts, workload_tokens);
criterion_main!(benches);
