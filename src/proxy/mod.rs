//! The reverse proxy: one request's phases, in order, in [`forward`] (target check, route,
//! caller, credential, rewrite, send, response), inside the request's span and under the guard
//! that writes its access log line. Matching happens on the normalised path, the upstream gets
//! exactly what was matched, and bodies stream both ways.

mod access;
pub mod credential;
pub mod headers;
pub(crate) mod host;
pub mod path;
mod rewrite;
mod send;
/// The HTTP client, a module of its own below `proxy` (re-exported for older paths).
use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::SecretString;
use tracing::Instrument;

use http::header::{self, HeaderValue};
use http::{Request, Response, Version};
use hyper::body::Incoming;

use crate::audit::{AuditEvent, Outcome};
use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::inbound::{self, Caller};
use crate::rules::host_without_port;
use crate::runtime::{Outbound, Route, Runtime};
use crate::state::AppState;
use access::AccessLog;
use rewrite::{UpstreamTarget, rewrite};
use send::send_upstream;

static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// What the listener knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnInfo {
    pub(crate) peer: SocketAddr,
    pub(crate) tls: bool,
}

/// One request's own facts that phases keep as data (audit events, the `x-request-id` header).
/// Logging needs none of it: every log line inside the request carries its span.
struct RequestContext {
    id: String,
    conn: ConnInfo,
}

/// Handles one proxied request: never fails, errors become the contract's responses. The
/// access log line and the request metrics are written by a guard, so a request whose client
/// goes away before the answer is logged and counted too (as 499).
pub(crate) async fn handle(
    state: &AppState,
    request: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    // One config for the whole request, even if a reload lands meanwhile.
    let runtime = state.runtime();
    let context = RequestContext {
        id: uuid::Uuid::new_v4().to_string(),
        conn,
    };
    let span = access::request_span(&context.id);
    let mut access = AccessLog::start(
        state.metrics(),
        &context.id,
        request.method(),
        request.uri().path(),
    );
    let result = forward(state, &runtime, request, &context, &mut access)
        .instrument(span.clone())
        .await;
    let (mut response, reason) = match result {
        Ok(response) => (response, None),
        Err(error) => {
            let code = error.classify().code;
            (span.in_scope(|| refuse(state, error)), Some(code))
        }
    };
    if let Ok(value) = HeaderValue::from_str(&context.id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    access.finish(response.status(), reason);
    response
}

/// The answer keygate gives itself for a failed request (logged once, counted if the caller
/// was refused).
fn refuse(state: &AppState, error: ProxyError) -> Response<Body> {
    if let ProxyError::Auth(auth) = &error {
        state
            .metrics()
            .inbound_auth_failures_total
            .with_label_values(&[auth.reason()])
            .inc();
    }
    error.log();
    error.into_response()
}

/// The request's phases, one line each.
async fn forward(
    state: &AppState,
    runtime: &Runtime,
    request: Request<Incoming>,
    context: &RequestContext,
    access: &mut AccessLog<'_>,
) -> Result<Response<Body>, ProxyError> {
    let (mut parts, body) = request.into_parts();
    let target = check_target(runtime, &parts)?;
    let route = match_route(runtime, &target)?;
    access.matched(route);
    let caller = authenticate(state, route, &parts).await?;
    let secret = find_credential(state, runtime, route, &caller, &mut parts, context).await?;
    let upstream = UpstreamTarget::new(route, target.path.path, &parts);
    rewrite(&upstream, &mut parts, &caller, secret.as_ref(), context)?;
    let request = Request::from_parts(parts, body);
    let response = send_upstream(state, runtime, &upstream, &caller, request, secret, context);
    Ok(respond(response.await?))
}

/// What phase 1 found in the request target.
struct Target {
    /// The host the client addressed, without its port.
    authority_host: Option<String>,
    path: path::NormalizedPath,
}

/// 1. Request target: a method we forward (TRACE would echo the injected credential back), one
///    host, absolute form only for our own authority, and a path with one meaning.
fn check_target(runtime: &Runtime, parts: &http::request::Parts) -> Result<Target, ProxyError> {
    if parts.method == http::Method::TRACE {
        return Err(ProxyError::MethodNotAllowed(parts.method.clone()));
    }
    host::check(&parts.headers, &parts.uri)?;
    let authority_host = request_authority(parts).map(host_without_port);
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
    Ok(Target {
        authority_host,
        path,
    })
}

/// 2. Route: matched on the normalised path; dot segments may not carry a request out of the
///    prefix its raw form was aimed at.
fn match_route<'r>(runtime: &'r Runtime, target: &Target) -> Result<&'r Arc<Route>, ProxyError> {
    let host = target.authority_host.as_deref();
    let route = runtime.routes.find(host, &target.path.path);
    if target.path.had_dot_segments()
        && let Some(aimed_at) = runtime.routes.find(host, &target.path.unresolved)
        && !route.is_some_and(|r| Arc::ptr_eq(r, aimed_at))
    {
        return Err(ProxyError::BadRequest(
            "the path climbs out of its route prefix",
        ));
    }
    route.ok_or(ProxyError::NoRoute)
}

/// 4. Credential: what the route's flow injects, found before anything goes upstream (a vault
///    or provider failure answers 503/502 instead of forwarding without it).
async fn find_credential(
    state: &AppState,
    runtime: &Runtime,
    route: &Route,
    caller: &Caller,
    parts: &mut http::request::Parts,
    context: &RequestContext,
) -> Result<Option<SecretString>, ProxyError> {
    let consent_session = parts
        .headers
        .remove(&credential::CONSENT_SESSION_HEADER)
        .and_then(|v| v.to_str().ok().map(str::to_string));
    let resolved = credential::resolve(
        state,
        runtime,
        route,
        caller,
        consent_session.as_deref(),
        &context.id,
    )
    .await;
    audit_credential_use(state, context, &route.outbound, caller, &resolved)?;
    resolved
}

/// 7. Response: hop-by-hop headers out, the body streamed back.
fn respond(response: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    Response::from_parts(parts, body::stream(body))
}

/// `ProxyCredentialUse` for a request that used (or failed to get) an injected credential. A
/// full audit queue refuses the request rather than serving it unaudited.
fn audit_credential_use(
    state: &AppState,
    context: &RequestContext,
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
    let event = AuditEvent::new("ProxyCredentialUse", &context.id, outcome)
        .workload(caller.workload.as_deref())
        .user(caller.user.as_ref())
        .provider(outbound.provider())
        .reason(resolved.as_ref().err().map(|e| e.classify().code))
        .source(context.conn.peer.ip());
    Ok(state.audit().record(event)?)
}

/// 3. Caller: one Bearer token, a user JWT for the route's authorizer or a workload access token
///    of ours. Before anything reaches the upstream.
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
    if let Some(workload) = &caller.workload {
        tracing::Span::current().record("workload", workload.as_str());
    }
    Ok(caller)
}

/// The authority the client addressed: the `Host` header, else the URI's (HTTP/2 `:authority`).
fn request_authority(parts: &http::request::Parts) -> Option<&str> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
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
