//! Edge limits that protect the gateway: the connection cap, HTTP/2 concurrent streams, and the
//! idle timeout (which must never cut a response that is still streaming).

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
