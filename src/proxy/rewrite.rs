//! Phase 5 of a proxied request, the rewrite: the upstream URI (with the credential in the
//! query when the route puts it there), hop-by-hop headers out, `X-Forwarded-*` in, the
//! client's own credentials out, the caller described in `x-keygate-*` headers, the credential
//! in.

use http::Version;
use http::header::{self, HeaderValue};
use secrecy::SecretString;

use super::{RequestContext, X_REQUEST_ID, credential, headers};
use crate::config::Injection;
use crate::error::ProxyError;
use crate::inbound::Caller;
use crate::runtime::{Outbound, Route};

/// Headers keygate sets to describe the caller to upstreams; whatever a client sends under
/// this prefix is removed first.
const CALLER_HEADER_PREFIX: &str = "x-keygate-";
static X_KEYGATE_WORKLOAD: header::HeaderName =
    header::HeaderName::from_static("x-keygate-workload");
static X_KEYGATE_USER: header::HeaderName = header::HeaderName::from_static("x-keygate-user");
static X_KEYGATE_USER_ISSUER: header::HeaderName =
    header::HeaderName::from_static("x-keygate-user-issuer");

/// Where the request goes upstream: the route, the matched path, the client's query, and where
/// the credential goes (built again for a retry with a refreshed credential).
pub(super) struct UpstreamTarget<'a> {
    pub(super) route: &'a Route,
    path: String,
    client_query: Option<String>,
    injection: Option<&'a Injection>,
}

impl<'a> UpstreamTarget<'a> {
    pub(super) fn new(route: &'a Route, path: String, parts: &http::request::Parts) -> Self {
        UpstreamTarget {
            route,
            path,
            client_query: parts.uri.query().map(str::to_string),
            injection: route.outbound.injection(),
        }
    }

    pub(super) fn uri(&self, secret: Option<&SecretString>) -> Result<http::Uri, ProxyError> {
        let query = match (self.injection, secret) {
            (Some(Injection::QueryParam(param)), Some(secret)) => Some(credential::query_with(
                self.client_query.as_deref(),
                param,
                secret,
            )),
            _ => self.client_query.clone(),
        };
        self.route
            .upstream_uri(&self.path, query.as_deref())
            .parse()
            .map_err(|_| ProxyError::BadRequest("the request target cannot be forwarded"))
    }

    /// Puts the credential in its header, when the route injects it in one.
    pub(super) fn inject_header(
        &self,
        headers: &mut header::HeaderMap,
        secret: &SecretString,
    ) -> Result<(), ProxyError> {
        match self.injection {
            Some(Injection::Header { name, format }) => {
                credential::inject_header(headers, name, format, secret)
            }
            _ => Ok(()),
        }
    }
}

/// 5. Rewrite: upstream URI, hop-by-hop headers out, X-Forwarded-* in, Host from the upstream,
///    the inbound credential out (unless passed through), on credential routes the client's own
///    credentials and identity claims out (unless the route passes them), the caller described,
///    the credential in.
pub(super) fn rewrite(
    upstream: &UpstreamTarget<'_>,
    parts: &mut http::request::Parts,
    caller: &Caller,
    secret: Option<&SecretString>,
    context: &RequestContext,
) -> Result<(), ProxyError> {
    let original_host = parts
        .headers
        .get(header::HOST)
        .cloned()
        .or_else(|| authority_value(parts));
    parts.uri = upstream.uri(secret)?;
    headers::strip_hop_by_hop(&mut parts.headers, true);
    parts.headers.remove(header::HOST);
    headers::set_forwarded(
        &mut parts.headers,
        context.conn.peer.ip(),
        context.conn.tls,
        original_host.as_ref(),
    );
    strip_client_credentials(upstream.route, &mut parts.headers);
    describe_caller(&mut parts.headers, caller);
    if let Some(secret) = secret {
        upstream.inject_header(&mut parts.headers, secret)?;
    }
    if let Ok(value) = HeaderValue::from_str(&context.id) {
        parts.headers.insert(X_REQUEST_ID.clone(), value);
    }
    // The pooled client picks HTTP/1.1 or HTTP/2 per upstream connection (ALPN).
    parts.version = Version::HTTP_11;
    Ok(())
}

/// The inbound credential (unless the route passes it through) and, on credential routes, the
/// client's own credentials the route does not pass.
fn strip_client_credentials(route: &Route, headers: &mut header::HeaderMap) {
    if !matches!(route.outbound, Outbound::Passthrough) {
        headers.remove(header::AUTHORIZATION);
    }
    if route.outbound.is_configured() {
        headers::strip_client_credentials(headers, &route.pass_headers);
    }
}

/// Replaces any client-sent `x-keygate-*` headers with the authenticated caller's identity.
fn describe_caller(headers: &mut header::HeaderMap, caller: &Caller) {
    let spoofed: Vec<header::HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(CALLER_HEADER_PREFIX))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
    let values = [
        (&X_KEYGATE_WORKLOAD, caller.workload.as_deref()),
        (&X_KEYGATE_USER, caller.user.as_ref().map(|u| u.id.as_str())),
        (
            &X_KEYGATE_USER_ISSUER,
            caller.user.as_ref().and_then(|u| u.issuer.as_deref()),
        ),
    ];
    for (name, value) in values {
        let encoded =
            value.map(|v| percent_encoding::utf8_percent_encode(v, CALLER_ENCODE).to_string());
        if let Some(value) = encoded.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name.clone(), value);
        }
    }
}

/// Caller headers carry UTF-8 percent-encoded where a header cannot carry it as it is (control
/// and non-ASCII characters), and `%` itself, so upstreams percent-decode every value and a
/// user such as `josé` is never dropped.
const CALLER_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

fn authority_value(parts: &http::request::Parts) -> Option<HeaderValue> {
    parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}
