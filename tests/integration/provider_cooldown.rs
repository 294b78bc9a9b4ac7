//! A token endpoint that keeps failing (issue 21.5): `invalid_client` answered to a
//! client-credentials request is remembered for a growing cool-down, so sequential requests get
//! 502 without calling the provider each time, and the cool-downs are counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::common::*;

/// A token endpoint answering every request 401 `invalid_client`; counts the calls.
async fn refusing_token_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async {
                        Response::builder()
                            .status(401)
                            .header("content-type", "application/json")
                            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                br#"{"error":"invalid_client"}"#,
                            )))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/token"), calls)
}

#[tokio::test]
async fn a_refusing_token_endpoint_is_not_called_once_per_request() {
    let (token_endpoint, calls) = refusing_token_endpoint().await;
    let upstream = Upstream::start().await;
    let toml = format!(
        r#"{server}
[[providers]]
name = "broken"
kind = "oauth2"
vendor = "custom"
client_id = "agent"
client_secret = "wrong"
token_endpoint = "{token_endpoint}"

[[routes]]
name = "m2m"
path_prefix = "/m2m/"
upstream = "{up}/"
[routes.credential]
provider = "broken"
flow = "m2m"
scopes = ["tools"]
"#,
        server = server_block(),
        up = upstream.url()
    );
    let gw = TestGateway::start(&toml).await;
    for _ in 0..30 {
        let (status, _, body) = gw.get("/m2m/x").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        assert_eq!(error_code(&body), "credential_provider_error");
    }
    let made = calls.load(Ordering::SeqCst);
    assert!(
        (1..=5).contains(&made),
        "30 sequential requests made {made} token requests"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"grant="client_credentials",provider="broken",result="cooldown"}"#),
        "{metrics}"
    );
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
}
