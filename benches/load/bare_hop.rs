//! The floor for any hyper proxy on this machine: a bare pass-through hop built from the same
//! crates keygate uses (hyper, hyper-util's pooled client, tokio), doing only a header swap
//! (drop the client's `Authorization`, set a static one) and streaming both bodies. The load
//! script runs it beside keygate so ratios are read against what hyper itself costs.
//! `cargo run --release --example bare-hop -- 127.0.0.1:19210 http://127.0.0.1:19200`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

use http::header::{AUTHORIZATION, HOST, HeaderValue};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = BoxBody<bytes::Bytes, hyper::Error>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:19210".into());
    let upstream: Uri = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:19200".into())
        .parse()
        .expect("upstream URL");
    let authority = upstream.authority().expect("upstream host:port").clone();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(connector);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (client, authority) = (client.clone(), authority.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let (client, authority) = (client.clone(), authority.clone());
                async move { Ok::<_, Infallible>(hop(&client, authority, request).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn hop(
    client: &Client<HttpConnector, Body>,
    authority: http::uri::Authority,
    request: Request<Incoming>,
) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let mut uri = parts.uri.into_parts();
    uri.scheme = Some(http::uri::Scheme::HTTP);
    uri.authority = Some(authority);
    parts.uri = Uri::from_parts(uri).expect("upstream URI");
    parts.version = http::Version::HTTP_11;
    parts.headers.remove(HOST);
    parts.headers.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Bearer bench-api-key-0123456789abcdef"),
    );
    match client
        .request(Request::from_parts(parts, body.boxed()))
        .await
    {
        Ok(response) => response.map(|b| b.boxed()),
        Err(_) => {
            let mut response = Response::new(
                Full::new(bytes::Bytes::from_static(b"bad gateway"))
                    .map_err(|never| match never {})
                    .boxed(),
            );
            *response.status_mut() = http::StatusCode::BAD_GATEWAY;
            response
        }
    }
}
