//! The proxy's own behaviour over real sockets: routing, rewriting, streaming and every error row
//! of the contract's table that needs no authentication.

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use crate::common::*;

fn routes(upstream: &str) -> String {
    format!(
        r#"{server}
[[routes]]
name = "tools-a"
path_prefix = "/tools/a/"
upstream = "{upstream}/base/"

[[routes]]
name = "tools-a-deep"
path_prefix = "/tools/a/deep/"
upstream = "{upstream}/deep/"

[[routes]]
name = "tools-b-host"
path_prefix = "/tools/b/"
host = "b.example"
upstream = "{upstream}/b-host/"

[[routes]]
name = "tools-b"
path_prefix = "/tools/b/"
upstream = "{upstream}/b-any/"

[[routes]]
name = "stream"
path_prefix = "/stream/"
upstream = "{upstream}/"

[[routes]]
name = "slow"
path_prefix = "/slow/"
upstream = "{upstream}/slow/"
timeout = "300ms"

[[routes]]
name = "dead"
path_prefix = "/dead/"
upstream = "http://127.0.0.1:9/"
"#,
        server = server_block()
    )
}

async fn setup() -> (Upstream, TestGateway) {
    let upstream = Upstream::start().await;
    let gateway = TestGateway::start(&routes(&upstream.url())).await;
    (upstream, gateway)
}

#[tokio::test]
async fn forwards_with_prefix_rewritten_and_query_kept() {
    let (upstream, gw) = setup().await;
    let (status, headers, body) = gw.get("/tools/a/pages/1?expand=body&x=%20y").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-upstream"], "yes");
    let seen = seen(&body);
    assert_eq!(seen.uri, "/base/pages/1?expand=body&x=%20y");
    assert_eq!(seen.method, "GET");
    assert_eq!(
        seen.header("host"),
        Some(upstream.addr.to_string().as_str())
    );
    assert!(headers.contains_key("x-request-id"));
    assert_eq!(
        seen.header("x-request-id"),
        headers["x-request-id"].to_str().ok()
    );
}

#[tokio::test]
async fn longest_prefix_wins_and_host_routes_beat_hostless_ones() {
    let (_upstream, gw) = setup().await;
    let (_, _, body) = gw.get("/tools/a/deep/x").await;
    assert_eq!(seen(&body).uri, "/deep/x");
    let (_, _, body) = gw.get("/tools/a/x").await;
    assert_eq!(seen(&body).uri, "/base/x");

    let client = http_client();
    let request = gw
        .request(http::Method::GET, "/tools/b/x")
        .header("host", "B.Example:8080")
        .body(full(""))
        .unwrap();
    let (_, _, body) = send(&client, request).await;
    assert_eq!(seen(&body).uri, "/b-host/x");
    let (_, _, body) = gw.get("/tools/b/x").await;
    assert_eq!(seen(&body).uri, "/b-any/x");
}

#[tokio::test]
async fn no_route_is_404_json() {
    let (_upstream, gw) = setup().await;
    let (status, headers, body) = gw.get("/nothing/here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(error_code(&body), "no_route");
}

#[tokio::test]
async fn reserved_paths_are_never_routed() {
    let upstream = Upstream::start().await;
    let toml = format!(
        "{}[[routes]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"{}/\"\n",
        server_block(),
        upstream.url()
    );
    let gw = TestGateway::start(&toml).await;
    for path in [
        "/identities/oauth2/callback",
        "/.well-known/jwks.json",
        "/.well-known/other",
    ] {
        let (_, _, body) = gw.get(path).await;
        assert!(
            !body.contains("\"uri\""),
            "{path} reached the upstream: {body}"
        );
    }
    let (status, _, _) = gw.get("/anything").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let (_upstream, gw) = setup().await;
    let (status, _, body) = gw.get("/dead/x").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error_code(&body), "upstream_unavailable");
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let (_upstream, gw) = setup().await;
    let (status, _, body) = gw.get("/slow/3000").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(error_code(&body), "upstream_timeout");
    let (status, _, body) = gw.get("/slow/10").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let (_upstream, gw) = setup().await;
    let request = gw
        .request(http::Method::GET, "/tools/a/h")
        .header("connection", "x-client-hop, keep-alive")
        .header("x-client-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic abc")
        .header("te", "gzip")
        .header("upgrade", "websocket")
        .header("x-end-to-end", "kept")
        .body(full(""))
        .unwrap();
    let (status, headers, body) = send(&http_client(), request).await;
    assert_eq!(status, StatusCode::OK);
    let seen = seen(&body);
    for name in [
        "x-client-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
        "upgrade",
    ] {
        assert!(seen.header(name).is_none(), "{name} reached the upstream");
    }
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
    assert!(
        !headers.contains_key("x-upstream-hop"),
        "response hop header passed: {headers:?}"
    );
    assert_eq!(headers["x-upstream"], "yes");
}

#[tokio::test]
async fn forwarded_headers_describe_the_client() {
    let (_upstream, gw) = setup().await;
    let request = gw
        .request(http::Method::GET, "/tools/a/f")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "spoofed.example")
        .body(full(""))
        .unwrap();
    let (_, _, body) = send(&http_client(), request).await;
    let seen = seen(&body);
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(gw.addr.to_string().as_str())
    );
}

#[tokio::test]
async fn dot_segments_are_resolved_before_matching_and_forwarding() {
    let (_upstream, gw) = setup().await;
    let request = format!(
        "GET /elsewhere/../tools/a/x/./y HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        gw.addr, gw.token
    );
    let (status, text) = raw(gw.addr, &request).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"uri\":\"/base/x/y\""), "{text}");

    let request = format!(
        "GET /tools/a/x/%2e%2e/y HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        gw.addr, gw.token
    );
    let (status, text) = raw(gw.addr, &request).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"uri\":\"/base/y\""), "{text}");
}

#[tokio::test]
async fn paths_that_climb_out_of_their_prefix_are_400() {
    let (_upstream, gw) = setup().await;
    for path in [
        "/tools/a/../b/x",
        "/tools/a/%2e%2e/b/x",
        "/tools/a/%2E%2E/%2e%2e/stream/x",
        "/tools/a/deep/../../b/x",
        "/tools/a/..",
        "/../tools/a/x",
        "/tools/a/x%2f..%2f..%2fb",
        "/tools/a/x%5c..",
        "/tools/a/x\\..",
    ] {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            gw.addr, gw.token
        );
        let (status, text) = raw(gw.addr, &request).await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("\"error\":\"bad_request\""), "{path}: {text}");
        assert!(
            !text.contains("\"uri\""),
            "{path} reached the upstream: {text}"
        );
    }
}

#[tokio::test]
async fn repeated_slashes_are_merged() {
    let (_upstream, gw) = setup().await;
    let request = format!(
        "GET //tools//a///x//y HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        gw.addr, gw.token
    );
    let (status, text) = raw(gw.addr, &request).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"uri\":\"/base/x/y\""), "{text}");
}

#[tokio::test]
async fn absolute_form_for_a_foreign_authority_is_400() {
    let (_upstream, gw) = setup().await;
    let request = "GET http://169.254.169.254/tools/a/x HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n";
    let (status, text) = raw(gw.addr, request).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("bad_request"));
    let own = format!(
        "GET http://{0}/tools/a/x HTTP/1.1\r\nHost: {0}\r\nAuthorization: Bearer {1}\r\nConnection: close\r\n\r\n",
        gw.addr, gw.token
    );
    let (status, text) = raw(gw.addr, &own).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test]
async fn header_limits_answer_431() {
    let (_upstream, gw) = setup().await;
    let mut many = format!(
        "GET /tools/a/x HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n",
        gw.addr, gw.token
    );
    for i in 0..101 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (status, _) = raw(gw.addr, &many).await;
    assert_eq!(status, 431);

    let big = format!(
        "GET /tools/a/x HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nx-big: {}\r\n\r\n",
        gw.addr,
        gw.token,
        "a".repeat(70 * 1024)
    );
    let (status, _) = raw(gw.addr, &big).await;
    assert_eq!(status, 431);

    let (status, _, _) = gw.get("/tools/a/fine").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn server_sent_events_arrive_one_by_one() {
    let (upstream, gw) = setup().await;
    let response = http_client()
        .request(
            gw.request(http::Method::GET, "/stream/sse")
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    // The upstream holds its second event until we have seen the first: if keygate buffered,
    // this would never complete.
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("first event did not arrive while the upstream was still streaming")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), Bytes::from("data: one\n\n"));
    upstream.release_sse.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, Bytes::from("data: two\n\n"));
}

#[tokio::test]
async fn request_bodies_stream_to_the_upstream() {
    let (_upstream, gw) = setup().await;
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    let body = BodyExt::boxed(StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let request = gw
        .request(http::Method::POST, "/stream/echo-stream")
        .body(body)
        .unwrap();
    tx.send(Ok(Frame::data(Bytes::from("chunk-1"))))
        .await
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), http_client().request(request))
        .await
        .expect("the response did not start while the request body was still open")
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, Bytes::from("chunk-1"));
    tx.send(Ok(Frame::data(Bytes::from("chunk-2"))))
        .await
        .unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, Bytes::from("chunk-2"));
}

#[tokio::test]
async fn large_bodies_round_trip() {
    let (_upstream, gw) = setup().await;
    let payload = vec![b'x'; 4 * 1024 * 1024];
    let request = gw
        .request(http::Method::POST, "/stream/echo-stream")
        .body(full(payload.clone()))
        .unwrap();
    let (status, _, body) = send(&http_client(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), payload.len());
}

#[tokio::test]
async fn h2c_prior_knowledge_works_end_to_end() {
    let (_upstream, gw) = setup().await;
    let request = gw
        .request(http::Method::GET, "/tools/a/h2?q=1")
        .body(full(""))
        .unwrap();
    let (status, _, body) = send(&h2c_client(), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = seen(&body);
    assert_eq!(seen.uri, "/base/h2?q=1");
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(gw.addr.to_string().as_str())
    );
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_status() {
    let (_upstream, gw) = setup().await;
    gw.get("/tools/a/x").await;
    gw.get("/tools/a/x").await;
    gw.get("/nowhere").await;
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"keygate_requests_total{route="tools-a",status="200"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"keygate_requests_total{route="_none",status="404"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"keygate_request_duration_seconds_count{route="tools-a"} 2"#),
        "{metrics}"
    );
}
