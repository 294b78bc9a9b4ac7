//! The request as one unit for logs and metrics: a client that goes away before the upstream
//! answers is still logged and counted (status 499, "client closed request").

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::*;

const CLOSED: &str = r#"keygate_requests_total{route="up",status="499"} 1"#;

#[tokio::test]
async fn a_client_that_disconnects_before_the_answer_is_counted_as_499() {
    let upstream = Upstream::start().await;
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[audit]\npath = \"-\"\n\n[[routes]]\nname = \"up\"\npath_prefix = \"/up/\"\nupstream = \"{}/\"\n",
        upstream.url()
    );
    let gw = TestGateway::start(&toml).await;
    let mut client = TcpStream::connect(gw.addr).await.unwrap();
    let request = format!(
        "GET /up/slow/5000 HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\r\n",
        gw.addr,
        gw.bearer()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    // Gone once the upstream is working on it.
    for _ in 0..100 {
        if upstream.hits.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        1,
        "the upstream never saw the request"
    );
    assert!(!gw.metrics().await.contains("status=\"499\""));
    drop(client);

    // Counted well before the upstream would have answered.
    let mut metrics = String::new();
    for _ in 0..40 {
        metrics = gw.metrics().await;
        if metrics.contains(CLOSED) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metrics.contains(CLOSED), "{metrics}");
    assert!(!metrics.contains(r#"keygate_requests_total{route="up",status="200"} 1"#));
}
