//! TLS on the listener (HTTP/1.1 and HTTP/2 chosen by ALPN) and TLS to upstreams trusted through
//! a route's `ca_file`, with HTTP/2 negotiated to the upstream.

use http::{Request, StatusCode, Version};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

use crate::common::*;

fn tls_client(
    ca: &std::path::Path,
    http2: bool,
) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, TestBody> {
    let config = keygate::tls::client_config(Some(ca)).unwrap();
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    let connector = if http2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    Client::builder(TokioExecutor::new()).build(connector)
}

#[tokio::test]
async fn tls_listener_serves_h1_and_h2_by_alpn_and_tls_upstreams_get_h2() {
    let certs_dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = dev_certs(certs_dir.path());
    let upstream =
        Upstream::start_with_tls(Some(keygate::tls::server_config(&cert, &key).unwrap())).await;
    let toml = format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[server.tls]
cert = "{cert}"
key = "{key}"

[audit]
path = "-"

[[routes]]
name = "secure"
path_prefix = "/secure/"
upstream = "https://localhost:{port}/up/"
ca_file = "{ca}"
"#,
        cert = cert.display(),
        key = key.display(),
        ca = ca.display(),
        port = upstream.addr.port()
    );
    let gw = TestGateway::start(&toml).await;
    let url = format!("https://localhost:{}/secure/x", gw.addr.port());

    for http2 in [false, true] {
        let client = tls_client(&ca, http2);
        let response = client
            .request(
                Request::get(&url)
                    .header("authorization", gw.bearer())
                    .body(full(""))
                    .unwrap(),
            )
            .await
            .unwrap();
        let expected = if http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        assert_eq!(response.version(), expected);
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let seen = seen(&String::from_utf8_lossy(&body));
        assert_eq!(seen.path(), "/up/x");
        assert_eq!(
            seen.version, "HTTP/2.0",
            "keygate should speak h2 to a TLS upstream that offers it"
        );
        assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    }
}

#[tokio::test]
async fn upstream_with_an_untrusted_certificate_is_502() {
    let certs_dir = tempfile::tempdir().unwrap();
    let (_ca, cert, key) = dev_certs(certs_dir.path());
    let upstream =
        Upstream::start_with_tls(Some(keygate::tls::server_config(&cert, &key).unwrap())).await;
    let toml = format!(
        "{}[[routes]]\nname = \"untrusted\"\npath_prefix = \"/u/\"\nupstream = \"https://localhost:{}/\"\n",
        server_block(),
        upstream.addr.port()
    );
    let gw = TestGateway::start(&toml).await;
    let (status, _, body) = gw.get("/u/x").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(error_code(&body), "upstream_unavailable");
}

#[test]
fn certs_dev_writes_a_ca_and_a_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(binary())
        .args(["certs", "dev", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    for name in ["ca.crt", "server.crt", "server.key"] {
        assert!(dir.path().join(name).is_file(), "{name} missing");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("server.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    keygate::tls::server_config(
        &dir.path().join("server.crt"),
        &dir.path().join("server.key"),
    )
    .unwrap();
}
