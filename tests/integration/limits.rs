//! Edge limits that protect the gateway: the connection cap, HTTP/2 concurrent streams, the
//! idle timeout (which must never cut a response that is still streaming), and the admin
//! listener's own cap and header timeout (it must never starve the proxy).

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

fn config(upstream: &Upstream, server_extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{server_extra}\n[audit]\npath = \"-\"\n\n[[routes]]\nname = \"up\"\npath_prefix = \"/up/\"\nupstream = \"{}/\"\n",
        upstream.url()
    )
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&upstream, "max_connections = 2")).await;
    let first = TcpStream::connect(gw.addr).await.unwrap();
    let _second = TcpStream::connect(gw.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    let request = format!(
        "GET /up/x HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        gw.addr,
        gw.bearer()
    );
    third.write_all(request.as_bytes()).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "a third connection was served while two were open"
    );

    drop(first);
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut answer))
        .await
        .expect("the waiting connection was never served")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn http2_streams_per_connection_are_capped_at_100() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&upstream, "")).await;
    let client = h2c_client();
    let mut tasks = Vec::new();
    for _ in 0..150 {
        let request = gw
            .request(http::Method::GET, "/up/slow/400")
            .body(full(""))
            .unwrap();
        let client = client.clone();
        tasks.push(tokio::spawn(async move { send(&client, request).await.0 }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let max = upstream.max_concurrent.load(Ordering::SeqCst);
    assert!(
        max <= 100,
        "{max} requests were in flight on one HTTP/2 connection"
    );
    assert!(
        max >= 50,
        "the test did not load the connection ({max} at most)"
    );
}

async fn h1_connection(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    (
        sender,
        tokio::spawn(async move {
            let _ = connection.await;
        }),
    )
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(
        &upstream,
        "idle_timeout = \"300ms\"\nheader_read_timeout = \"60s\"",
    ))
    .await;

    // HTTP/1.1: one request, then nothing; the server closes the connection.
    let (mut sender, closed) = h1_connection(gw.addr).await;
    let request = http::Request::get("/up/x")
        .header("host", gw.addr.to_string())
        .header("authorization", gw.bearer())
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("idle HTTP/1.1 connection left open")
        .unwrap();

    // HTTP/2: likewise (GOAWAY, then close).
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let closed = tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::get(gw.url("/up/x"))
        .header("authorization", gw.bearer())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("idle HTTP/2 connection left open")
        .unwrap();
}

#[tokio::test]
async fn a_streaming_response_is_not_idle() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&config(&upstream, "idle_timeout = \"200ms\"")).await;
    let response = http_client()
        .request(
            gw.request(http::Method::GET, "/up/sse")
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, Bytes::from("data: one\n\n"));
    // Well past the idle timeout, with the stream still open.
    tokio::time::sleep(Duration::from_millis(800)).await;
    upstream.release_sse.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, Bytes::from("data: two\n\n"));
}

/// Opens `n` connections to `addr` that send the start of a request head and nothing more.
async fn half_open(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        streams.push(stream);
    }
    streams
}

#[tokio::test]
async fn a_half_open_admin_connection_is_closed_after_the_header_timeout() {
    let upstream = Upstream::start().await;
    // The idle timeout stays at its 5 minutes: only the header timeout can close it.
    let gw = TestGateway::start(&config(&upstream, "header_read_timeout = \"1s\"")).await;
    let mut stream = half_open(gw.admin, 1).await.pop().unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "a half-open admin connection was still open 30 s after a 1 s header timeout"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `keygate serve` with at most `fds` open file descriptors (the limit a container may set).
fn serve_with_fd_limit(dir: &std::path::Path, toml: &str, fds: u32) -> std::process::Child {
    let path = dir.join("routes.toml");
    std::fs::write(&path, toml).unwrap();
    std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n {fds} && exec \"$0\" serve --config \"$1\""
        ))
        .arg(binary())
        .arg(&path)
        .spawn()
        .unwrap()
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn half_open_admin_connections_never_starve_the_proxy() {
    // keygate itself holds about 22 descriptors; the limit leaves room for the admin cap (32)
    // and a few proxied requests, not for 120 admin connections.
    const FD_LIMIT: u32 = 80;
    const ADMIN_CONNECTIONS: usize = 120;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n[audit]\npath = \"-\"\n\n[[routes]]\nname = \"up\"\npath_prefix = \"/up/\"\nupstream = \"{}/\"\n",
        upstream.url()
    );
    let _process = KillOnDrop(serve_with_fd_limit(dir.path(), &toml, FD_LIMIT));
    let admin: std::net::SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    wait_until_ok(&format!("http://{admin}/readyz")).await;
    let token = mint_token(&dir.path().join("routes.toml"), "test-agent");

    let _held = half_open(admin, ADMIN_CONNECTIONS).await;
    // Let the gateway accept what it will.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let url = format!("http://127.0.0.1:{port}/up/x");
    for _ in 0..3 {
        let answer = tokio::time::timeout(Duration::from_secs(8), get_auth(&url, &token)).await;
        let (status, _, body) =
            answer.expect("the proxy did not answer while the admin port was flooded");
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}
