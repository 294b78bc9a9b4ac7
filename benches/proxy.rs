//! The proxy's request path without authentication: path normalisation, route matching, the
//! header rewrite, and a
//! whole request through an in-process keygate to a local upstream (compared with the upstream
//! reached directly).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keygate::{Gateway, config};
use tokio::sync::mpsc;

fn normalisation(c: &mut Criterion) {
    c.bench_function("path/normalize/plain", |b| {
        b.iter(|| {
            keygate::proxy::path::normalize(black_box(
                "/tools/confluence/wiki/rest/api/content/12345",
            ))
        })
    });
    c.bench_function("path/normalize/dots-and-escapes", |b| {
        b.iter(|| {
            keygate::proxy::path::normalize(black_box(
                "/tools/confluence/./wiki/%7Euser/../rest//api",
            ))
        })
    });
}

/// `[server]`, `[audit]` and a vault in `dir`, so benches leave nothing behind.
fn base_config(dir: &std::path::Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[audit]\npath = \"-\"\n[vault]\nstore = \"sqlite://{0}/keygate.db\"\nkey = \"file:{0}/vault.key\"\n",
        dir.display()
    )
}

fn many_routes_config(dir: &std::path::Path) -> String {
    let mut toml = base_config(dir);
    for i in 0..50 {
        toml.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\npath_prefix = \"/tools/tool{i}/\"\nupstream = \"http://127.0.0.1:9/\"\n"
        ));
    }
    toml
}

fn route_matching(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let loaded = config::load_str(
        std::path::Path::new("bench.toml"),
        &many_routes_config(dir.path()),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state = rt
        .block_on(keygate::state::AppState::new(loaded.config))
        .unwrap();
    let runtime = state.runtime();
    c.bench_function("route/find/50-routes", |b| {
        b.iter(|| {
            runtime
                .routes
                .find(None, black_box("/tools/tool37/some/path"))
                .is_some()
        })
    });
}

async fn start_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn whole_request(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (upstream, gateway, bearer) = rt.block_on(async {
        let upstream = start_upstream().await;
        let toml = format!(
            "{}[[routes]]\nname = \"b\"\npath_prefix = \"/tools/b/\"\nupstream = \"http://{upstream}/\"\n",
            base_config(dir.path())
        );
        let loaded = config::load_str(std::path::Path::new("bench.toml"), &toml).unwrap();
        let gateway = Gateway::bind(loaded.config).await.unwrap();
        let addr = gateway.proxy_addr().unwrap();
        let token = gateway.state().workload_tokens().issue("bench-agent", None).unwrap();
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(gateway.run(rx));
        std::mem::forget(tx);
        (upstream, addr, format!("Bearer {token}"))
    });
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut group = c.benchmark_group("request");
    for (name, url) in [
        ("direct", format!("http://{upstream}/x")),
        ("through-keygate", format!("http://{gateway}/tools/b/x")),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let request = Request::get(url.as_str())
                    .header("authorization", bearer.as_str())
                    .body(Empty::new())
                    .unwrap();
                let response = client.request(request).await.unwrap();
                assert!(response.status().is_success());
                response.into_body().collect().await.unwrap();
            })
        });
    }
    group.finish();
}

/// The header rewrite of one request: hop-by-hop headers out, X-Forwarded-* in, the inbound
/// credential out and the outbound one in (a typical agent request's headers).
fn header_rewrite(c: &mut Criterion) {
    use http::{HeaderMap, HeaderName, HeaderValue};
    use keygate::proxy::{credential, headers};
    let mut template = HeaderMap::new();
    for (name, value) in [
        ("host", "gateway.local:8080"),
        ("user-agent", "agent-sdk/1.25 python/3.11"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        (
            "authorization",
            "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2ln",
        ),
        ("connection", "keep-alive, x-trace"),
        ("x-trace", "abc"),
        ("keep-alive", "timeout=5"),
        ("x-request-id", "7f9c1b2e-1111-2222-3333-444455556666"),
    ] {
        template.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    let secret = secrecy::SecretString::from("ya29.a0AfH6SMBx-example-access-token".to_string());
    let authorization = HeaderName::from_static("authorization");
    let host = template.get("host").cloned();
    let peer: std::net::IpAddr = "10.0.0.7".parse().unwrap();
    c.bench_function("headers/rewrite", |b| {
        b.iter(|| {
            let mut h = template.clone();
            headers::strip_hop_by_hop(&mut h, true);
            h.remove("host");
            headers::set_forwarded(&mut h, peer, false, host.as_ref());
            h.remove(&authorization);
            credential::inject_header(&mut h, &authorization, "Bearer {token}", &secret).unwrap();
            black_box(h)
        })
    });
}

criterion_group!(
    benches,
    normalisation,
    route_matching,
    header_rewrite,
    whole_request
);
criterion_main!(benches);
