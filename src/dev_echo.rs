//! `keygate dev echo`: a stand-in tool for trying keygate out (the README's quickstart). It
//! answers every request with JSON describing what it received (method, path, query, headers),
//! so a newcomer sees the credential keygate injected arrive at the tool. Development only: it
//! shows every header it gets, secrets included, to whoever asks; it binds to loopback by default.

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Map, Value, json};

use crate::body::{self, Body};

/// What the echo answers for one request.
fn describe(request: &Request<Incoming>) -> Value {
    let mut headers = Map::new();
    for (name, value) in request.headers() {
        headers.insert(
            name.as_str().to_string(),
            Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        );
    }
    json!({
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": request.uri().query(),
        "headers": headers,
    })
}

/// Serves the echo on `addr` until the process ends.
pub async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("keygate dev echo: answering on http://{addr}/ with what each request carried");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(|request: Request<Incoming>| async move {
                let text = format!("{:#}\n", describe(&request));
                let mut response: Response<Body> = Response::new(body::full(text));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, Infallible>(response)
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
