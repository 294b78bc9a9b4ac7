//! Request hygiene on the proxy (issue 20): dot segments in disguise (`..;`, double encoding),
//! ambiguous hosts (two `Host` headers, HTTP/2 `host` against `:authority`), `TRACE`, and the
//! client's own credentials and identity claims on routes where keygate injects one.

use std::sync::atomic::Ordering;

use http::{Method, StatusCode};

use crate::common::*;

/// The routes every test here uses; `extra` is appended.
fn config(upstream: &Upstream, extra: &str) -> String {
    format!(
        r#"{server}
[[providers]]
name = "weather"
kind = "api_key"
api_key = "weather-secret"

[[routes]]
name = "public"
path_prefix = "/public/"
upstream = "{up}/"

[[routes]]
name = "admin"
path_prefix = "/admin/"
upstream = "{up}/"

[[routes]]
name = "tenant"
path_prefix = "/t/"
host = "tenant.example"
upstream = "{up}/tenant/"

[[routes]]
name = "any-host"
path_prefix = "/t/"
upstream = "{up}/any/"

[[routes]]
name = "keyed"
path_prefix = "/keyed/"
upstream = "{up}/"
[routes.credential]
provider = "weather"
flow = "api_key"
{extra}"#,
        server = server_block(),
        up = upstream.url()
    )
}

/// A raw HTTP/1.1 request with the test token and extra header lines.
fn raw_request(gw: &TestGateway, target: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n{extra}Connection: close\r\n\r\n",
        gw.addr,
        gw.bearer()
    )
}

#[tokio::test]
async fn dot_segments_in_disguise_are_refused() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&upstream, "")).await;
    for target in [
        "/public/..;/admin/users",
        "/public/..;jsessionid=1/admin/users",
        "/public/.;/x",
        "/public/%2e%2e;/admin/users",
        "/public/..%3B/admin/users",
        "/public/%252e%252e/admin/x",
        "/public/%252E%252E/admin/x",
        "/public/.%252e/admin/x",
        "/public/%25252e%25252e/admin/x",
    ] {
        let (status, text) = raw(gw.addr, &raw_request(&gw, target, "")).await;
        assert_eq!(status, 400, "{target}: {text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        assert_eq!(error_code(body), "bad_request", "{target}");
    }
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        0,
        "something was forwarded"
    );
    // Semicolons and dots elsewhere are ordinary characters.
    let (status, text) = raw(gw.addr, &raw_request(&gw, "/public/a;b/...;x/c", "")).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn ambiguous_hosts_are_refused() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&upstream, "")).await;
    // Two Host headers, in either order.
    for extra in ["Host: tenant.example\r\n", "host: other.example\r\n"] {
        let (status, text) = raw(gw.addr, &raw_request(&gw, "/t/x", extra)).await;
        assert_eq!(status, 400, "{extra}: {text}");
    }
    // Absolute form naming one host, Host naming another.
    let request = format!(
        "GET http://{addr}/t/x HTTP/1.1\r\nHost: tenant.example\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        gw.bearer(),
        addr = gw.addr
    );
    assert_eq!(raw(gw.addr, &request).await.0, 400);
    // HTTP/2: `host` differing from `:authority`.
    let request = gw
        .request(Method::GET, "/t/x")
        .header("host", "tenant.example")
        .body(full(""))
        .unwrap();
    let (status, _, body) = send(&h2c_client(), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "bad_request");
    // The reserved paths refuse them too.
    let request = "GET /.well-known/jwks.json HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(gw.addr, request).await.0, 400);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);

    // One host, however it is given, still routes.
    let (status, _, body) = send(
        &h2c_client(),
        gw.request(Method::GET, "/t/x").body(full("")).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(seen(&body).path(), "/any/x");
    let (status, text) = raw(
        gw.addr,
        &raw_request(&gw, "/t/x", "")
            .replace(&format!("Host: {}", gw.addr), "Host: Tenant.example"),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("/tenant/x"), "{text}");
}

#[tokio::test]
async fn trace_is_refused() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&upstream, "")).await;
    for path in ["/keyed/echo", "/public/echo"] {
        let request = gw.request(Method::TRACE, path).body(full("")).unwrap();
        let (status, headers, body) = send(&http_client(), request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}: {body}");
        assert_eq!(error_code(&body), "method_not_allowed");
        let allow = headers["allow"].to_str().unwrap();
        assert!(allow.contains("GET") && !allow.contains("TRACE"), "{allow}");
        assert!(!body.contains("weather-secret"));
    }
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        0,
        "TRACE was forwarded"
    );
}

const CLIENT_HEADERS: [(&str, &str); 7] = [
    ("cookie", "session=someone-else"),
    ("x-api-key", "client-key"),
    ("x-auth-token", "client-token"),
    ("x-forwarded-user", "admin"),
    ("x-auth-request-email", "admin@example.com"),
    ("remote-user", "admin"),
    ("x-real-ip", "10.0.0.1"),
];

async fn forwarded_with_client_headers(gw: &TestGateway, path: &str) -> Seen {
    let mut request = gw.request(Method::GET, path).header("x-custom", "kept");
    for (name, value) in CLIENT_HEADERS {
        request = request.header(name, value);
    }
    let (status, _, body) = send(&http_client(), request.body(full("")).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    seen(&body)
}

#[tokio::test]
async fn client_credentials_never_reach_the_upstream_beside_an_injected_one() {
    let upstream = Upstream::start().await;
    let cookies = format!(
        r#"
[[routes]]
name = "keyed-cookies"
path_prefix = "/keyed-cookies/"
upstream = "{}/"
[routes.credential]
provider = "weather"
flow = "api_key"
header = "X-Api-Key"
format = "{{token}}"
pass_headers = ["Cookie"]
"#,
        upstream.url()
    );
    let gw = TestGateway::start(&config(&upstream, &cookies)).await;

    let seen = forwarded_with_client_headers(&gw, "/keyed/x").await;
    for (name, _) in CLIENT_HEADERS {
        assert_eq!(seen.header(name), None, "{name} reached the upstream");
    }
    assert_eq!(seen.header("authorization"), Some("Bearer weather-secret"));
    assert_eq!(seen.header("x-custom"), Some("kept"));

    // A route that lets cookies through keeps them, and only them.
    let seen = forwarded_with_client_headers(&gw, "/keyed-cookies/x").await;
    assert_eq!(seen.header("cookie"), Some("session=someone-else"));
    assert_eq!(seen.header("x-api-key"), Some("weather-secret"));
    assert_eq!(seen.header("x-forwarded-user"), None);

    // A route that injects nothing forwards them as before.
    let seen = forwarded_with_client_headers(&gw, "/public/x").await;
    for (name, value) in CLIENT_HEADERS {
        assert_eq!(seen.header(name), Some(value), "{name}");
    }
}
