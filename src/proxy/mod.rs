//! The reverse proxy: one request's phases, in order, in [`forward`]. Matching happens on the
//! normalised path, the upstream gets exactly what was matched, and bodies stream both ways.

pub mod credential;
pub mod headers;
pub mod host;
pub mod path;
/// The HTTP client, a module of its own below `proxy` (re-exported for older paths).
pub use crate::upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, Version};
use hyper::body::Incoming;

use crate::audit::{AuditEvent, Outcome};
use crate::body::{self, Body};
use crate::config::Injection;
use crate::error::ProxyError;
use crate::inbound::{self, Caller};
use crate::rules::host_without_port;
use crate::runtime::{Outbound, Route, Runtime};
use crate::state::AppState;

static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");
/// Headers keygate sets to describe the caller to upstreams; whatever a client sends under
/// this prefix is removed first.
const CALLER_HEADER_PREFIX: &str = "x-keygate-";
static X_KEYGATE_WORKLOAD: header::HeaderName =
    header::HeaderName::from_static("x-keygate-workload");
static X_KEYGATE_USER: header::HeaderName = header::HeaderName::from_static("x-keygate-user");
static X_KEYGATE_USER_ISSUER: header::HeaderName =
    header::HeaderName::from_static("x-keygate-user-issuer");

/// What the listener knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// Handles one proxied request: never fails, errors become the contract's responses.
pub async fn handle(
    state: &AppState,
    request: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    let started = Instant::now();
    // One config for the whole request, even if a reload lands meanwhile.
    let runtime = state.runtime();
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = request.method().clone();
    let raw_path = request.uri().path().to_string();
    let mut matched: Option<Arc<Route>> = None;

    let result = forward(state, &runtime, request, conn, &request_id, &mut matched).await;
    let (mut response, reason) = match result {
        Ok(response) => (response, None),
        Err(error) => {
            if let ProxyError::Auth(auth) = &error {
                state
                    .metrics()
                    .inbound_auth_failures_total
                    .with_label_values(&[auth.reason()])
                    .inc();
            }
            if error.status().is_server_error() {
                tracing::warn!(request_id, %error, "request failed");
            } else {
                tracing::debug!(request_id, %error, "request refused");
            }
            let code = error.code();
            (error.into_response(), Some(code))
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }

    let elapsed = started.elapsed();
    let status = response.status();
    let route_name = matched.as_ref().map_or("_none", |r| r.name());
    let metrics = state.metrics();
    metrics
        .requests_total
        .with_label_values(&[route_name, status.as_str()])
        .inc();
    if let Some(route) = &matched {
        route.duration.observe(elapsed.as_secs_f64());
    }
    tracing::info!(
        target: "keygate::access",
        request_id,
        %method,
        path = raw_path,
        route = route_name,
        status = status.as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        error = reason,
    );
    response
}

async fn forward(
    state: &AppState,
    runtime: &Runtime,
    request: Request<Incoming>,
    conn: ConnInfo,
    request_id: &str,
    matched: &mut Option<Arc<Route>>,
) -> Result<Response<Body>, ProxyError> {
    let (mut parts, body) = request.into_parts();

    // 1. Request target: a method we forward (TRACE would echo the injected credential back),
    //    one host, absolute form only for our own authority, and a path with one meaning.
    if parts.method == http::Method::TRACE {
        return Err(ProxyError::MethodNotAllowed(parts.method));
    }
    host::check(&parts.headers, &parts.uri)?;
    let authority_host = request_authority(&parts).map(host_without_port);
    if parts.version <= Version::HTTP_11
        && let Some(authority) = parts.uri.authority()
        && !is_own_authority(runtime, authority.as_str())
    {
        return Err(ProxyError::BadRequest(
            "absolute-form request for a foreign authority",
        ));
    }
    let path = path::normalize(parts.uri.path())
        .map_err(|e| ProxyError::BadRequest(path_error_text(&e)))?;

    // 2. Route: matched on the normalised path; dot segments may not carry a request out of
    //    the prefix its raw form was aimed at.
    let route = runtime.routes.find(authority_host.as_deref(), &path.path);
    if path.had_dot_segments()
        && let Some(aimed_at) = runtime
            .routes
            .find(authority_host.as_deref(), &path.unresolved)
        && !route.is_some_and(|r| Arc::ptr_eq(r, aimed_at))
    {
        return Err(ProxyError::BadRequest(
            "the path climbs out of its route prefix",
        ));
    }
    let route = route.ok_or(ProxyError::NoRoute)?;
    *matched = Some(route.clone());

    // 3. Caller: one Bearer token, a user JWT for the route's authorizer or a workload access
    //    token of ours. Before anything reaches the upstream.
    let caller = authenticate(state, route, &parts).await?;

    // 4. Credential: what the route's flow injects, found before anything goes upstream (a
    //    vault or provider failure answers 503/502 instead of forwarding without it).
    let consent_session = parts
        .headers
        .remove(&credential::CONSENT_SESSION_HEADER)
        .and_then(|v| v.to_str().ok().map(str::to_string));
    let resolved = credential::resolve(
        state,
        runtime,
        route,
        &caller,
        consent_session.as_deref(),
        request_id,
    )
    .await;
    audit_credential_use(state, request_id, conn, &route.outbound, &caller, &resolved)?;
    let secret = resolved?;
    let injection = route.outbound.injection();

    // 5. Rewrite: upstream URI, hop-by-hop headers out, X-Forwarded-* in, Host from the upstream,
    //    the inbound credential out (unless passed through), on credential routes the client's
    //    own credentials and identity claims out (unless the route passes them), the caller
    //    described, the credential in.
    let original_host = parts
        .headers
        .get(header::HOST)
        .cloned()
        .or_else(|| authority_value(&parts));
    let client_query = parts.uri.query().map(str::to_string);
    let upstream_uri = |secret: Option<&secrecy::SecretString>| -> Result<http::Uri, ProxyError> {
        let query = match (injection, secret) {
            (Some(Injection::QueryParam(param)), Some(secret)) => Some(credential::query_with(
                client_query.as_deref(),
                param,
                secret,
            )),
            _ => client_query.clone(),
        };
        route
            .upstream_uri(&path.path, query.as_deref())
            .parse()
            .map_err(|_| ProxyError::BadRequest("the request target cannot be forwarded"))
    };
    let uri = upstream_uri(secret.as_ref())?;
    // A user's vaulted token may be refused before its time (revoked, rotated at the
    // provider): one refresh and one retry, for requests whose body can be replayed.
    let retry = match (&route.outbound, &secret) {
        (Outbound::UserFederation(user), Some(token)) => Some((user, token.clone())),
        _ => None,
    };
    parts.uri = uri;
    headers::strip_hop_by_hop(&mut parts.headers, true);
    parts.headers.remove(header::HOST);
    headers::set_forwarded(
        &mut parts.headers,
        conn.peer.ip(),
        conn.tls,
        original_host.as_ref(),
    );
    if !matches!(route.outbound, Outbound::Passthrough) {
        parts.headers.remove(header::AUTHORIZATION);
    }
    if route.outbound.is_configured() {
        headers::strip_client_credentials(&mut parts.headers, &route.pass_headers);
    }
    describe_caller(&mut parts.headers, &caller);
    if let (Some(Injection::Header { name, format }), Some(secret)) = (injection, &secret) {
        credential::inject_header(&mut parts.headers, name, format, secret)?;
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        parts.headers.insert(X_REQUEST_ID.clone(), value);
    }
    // The pooled client picks HTTP/1.1 or HTTP/2 per upstream connection (ALPN).
    parts.version = Version::HTTP_11;

    // 6. Forward, bounded by the route's timeout up to the response headers; the body streams.
    let replay = match &retry {
        Some(_) => replayable(body).await?,
        None => Replay::Stream(body),
    };
    let (first_body, kept) = match replay {
        Replay::Stream(body) => (body::stream(body), None),
        Replay::Buffered(bytes) => (body::full(bytes.clone()), Some(bytes)),
    };
    let copy = kept.as_ref().map(|_| copy_parts(&parts));
    let mut response = send(route, Request::from_parts(parts, first_body)).await?;
    if response.status() == http::StatusCode::UNAUTHORIZED
        && let (Some((user, rejected)), Some(bytes), Some(mut parts)) = (retry, kept, copy)
        && let Some(renewed) =
            credential::after_rejection(state, runtime, user, &caller, &rejected, request_id).await
    {
        tracing::info!(
            request_id,
            "upstream refused the vaulted token; retrying once with a refreshed one"
        );
        parts.uri = upstream_uri(Some(&renewed))?;
        if let Some(Injection::Header { name, format }) = injection {
            credential::inject_header(&mut parts.headers, name, format, &renewed)?;
        }
        response = send(route, Request::from_parts(parts, body::full(bytes))).await?;
    }

    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    Ok(Response::from_parts(parts, body::stream(body)))
}

/// Request bodies up to this size are kept so the request can be sent again.
const MAX_REPLAY_BYTES: u64 = 64 * 1024;

enum Replay {
    Stream(Incoming),
    Buffered(bytes::Bytes),
}

/// Reads a small body of known size into memory (so it can be replayed); any other body
/// streams through untouched.
async fn replayable(body: Incoming) -> Result<Replay, ProxyError> {
    use http_body::Body as _;
    use http_body_util::BodyExt;
    match body.size_hint().exact() {
        Some(n) if n <= MAX_REPLAY_BYTES => body
            .collect()
            .await
            .map(|c| Replay::Buffered(c.to_bytes()))
            .map_err(|_| ProxyError::BadRequest("the request body could not be read")),
        _ => Ok(Replay::Stream(body)),
    }
}

/// The request head again (for a retry).
fn copy_parts(parts: &http::request::Parts) -> http::request::Parts {
    let mut request = Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request.into_parts().0
}

async fn send(route: &Route, request: Request<Body>) -> Result<Response<Incoming>, ProxyError> {
    let sent = Instant::now();
    let response = tokio::time::timeout(route.timeout, route.client.request(request))
        .await
        .map_err(|_| ProxyError::UpstreamTimeout)?
        .map_err(|e| ProxyError::UpstreamUnavailable(error_chain(&e)))?;
    route
        .upstream_duration
        .observe(sent.elapsed().as_secs_f64());
    Ok(response)
}

/// `ProxyCredentialUse` for a request that used (or failed to get) an injected credential. A
/// full audit queue refuses the request rather than serving it unaudited.
fn audit_credential_use(
    state: &AppState,
    request_id: &str,
    conn: ConnInfo,
    outbound: &Outbound,
    caller: &Caller,
    resolved: &Result<Option<secrecy::SecretString>, ProxyError>,
) -> Result<(), ProxyError> {
    let outcome = match resolved {
        Ok(None) => return Ok(()),
        Ok(Some(_)) => Outcome::Success,
        Err(ProxyError::ConsentRequired(_) | ProxyError::Auth(_)) => Outcome::Denied,
        Err(_) => Outcome::Error,
    };
    let event = AuditEvent::new("ProxyCredentialUse", request_id, outcome)
        .workload(caller.workload.as_deref())
        .user(caller.user.as_ref())
        .provider(outbound.provider())
        .reason(resolved.as_ref().err().map(ProxyError::code))
        .source(conn.peer.ip());
    state
        .audit()
        .record(event)
        .map_err(|_| ProxyError::AuditUnavailable)
}

async fn authenticate(
    state: &AppState,
    route: &Route,
    parts: &http::request::Parts,
) -> Result<Caller, ProxyError> {
    let token = inbound::bearer_token(&parts.headers, parts.uri.query())?;
    let caller = inbound::authenticate(
        token,
        route.authentication.authorizer(),
        route.workload.as_deref(),
        state.workload_tokens(),
    )
    .await?;
    Ok(caller)
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

/// The authority the client addressed: the `Host` header, else the URI's (HTTP/2 `:authority`).
fn request_authority(parts: &http::request::Parts) -> Option<&str> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

fn authority_value(parts: &http::request::Parts) -> Option<HeaderValue> {
    parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}

/// Whether an absolute-form authority names this gateway: its public URL, its listen address,
/// localhost, or a host a route is limited to.
fn is_own_authority(runtime: &Runtime, authority: &str) -> bool {
    let host = host_without_port(authority);
    let server = &runtime.config.server;
    let public_host = server.public_url.host_str().map(str::to_ascii_lowercase);
    let listen_ip = match server.listen.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    public_host.as_deref() == Some(host.as_str())
        || host == listen_ip
        || host == "localhost"
        || runtime
            .routes
            .iter()
            .any(|r| r.host.as_deref() == Some(host.as_str()))
}

fn path_error_text(error: &path::PathError) -> &'static str {
    match error {
        path::PathError::EncodedSeparator => "the path holds an encoded slash or backslash",
        path::PathError::ControlCharacter => "the path holds a control character",
        path::PathError::BadEscape => "the path has a malformed percent escape",
        path::PathError::AboveRoot => "the path climbs above the root",
        path::PathError::NotAbsolute => "the request target is not an absolute path",
        path::PathError::DisguisedDotSegment => {
            "the path holds a dot segment with parameters or double encoding"
        }
    }
}

/// The error and its sources, for logs (hyper's top-level message alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
