//! The pooled client keygate forwards with: HTTP/1.1 to plain upstreams, HTTP/1.1 or HTTP/2 (by
//! ALPN) over rustls to TLS ones, trusting the webpki roots plus an optional per-route CA file.

use std::path::Path;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::Body;
use crate::egress::Resolver;
use crate::tls::{self, TlsError};

pub type UpstreamClient = Client<HttpsConnector<HttpConnector<Resolver>>, Body>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A client trusting the public roots and, when given, the CAs in `extra_roots` (PEM).
pub fn client(extra_roots: Option<&Path>) -> Result<UpstreamClient, TlsError> {
    Ok(client_with(
        tls::client_config(extra_roots)?,
        Resolver::new(false),
    ))
}

/// A client with this TLS config and resolver.
pub fn client_with(tls: rustls::ClientConfig, resolver: Resolver) -> UpstreamClient {
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector)
}
