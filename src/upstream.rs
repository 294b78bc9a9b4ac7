//! The low-level HTTP client type every outbound request uses (the proxy's forwarding, OIDC
//! discovery, JWKS, provider token endpoints): pooled, HTTP/1.1 to plain hosts, HTTP/1.1 or
//! HTTP/2 (by ALPN) over rustls to TLS ones, trusting the webpki roots plus optional extra CAs
//! (a route's CA file, `[server] extra_ca_certs`). It knows nothing of routes or providers; the
//! modules above it choose which client to use.

use std::path::{Path, PathBuf};
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
pub(crate) fn client_with(tls: rustls::ClientConfig, resolver: Resolver) -> UpstreamClient {
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

/// The client for keygate's own fetches (discovery, JWKS, token requests): public roots plus
/// `extra_ca_certs`, and a resolver that never answers a link-local address (see
/// [`crate::egress`]).
pub fn for_fetches(extra_ca_certs: &[PathBuf]) -> Result<UpstreamClient, TlsError> {
    let tls = tls::client_config_with_roots(extra_ca_certs.iter().map(PathBuf::as_path))?;
    Ok(client_with(tls, Resolver::new(true)))
}
