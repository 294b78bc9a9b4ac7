//! Phase 6 of a proxied request: sending it upstream, bounded by the route's timeout up to the
//! response headers, and the one retry with a refreshed user token after a 401 (for bodies small
//! enough to be kept).

use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;
use secrecy::SecretString;

use super::RequestContext;
use super::credential;
use super::rewrite::UpstreamTarget;
use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::inbound::Caller;
use crate::runtime::Runtime;
use crate::runtime::{Outbound, Route, UserFederation};
use crate::state::AppState;

/// 6. Send, bounded by the route's timeout up to the response headers; the body streams. A
///    user's vaulted token may be refused before its time (revoked, rotated at the provider):
///    one refresh and one retry, for requests whose body can be replayed.
pub(super) async fn send_upstream(
    state: &AppState,
    runtime: &Runtime,
    upstream: &UpstreamTarget<'_>,
    caller: &Caller,
    request: Request<Incoming>,
    secret: Option<SecretString>,
    context: &RequestContext,
) -> Result<Response<Incoming>, ProxyError> {
    let route = upstream.route;
    let (parts, body) = request.into_parts();
    let Some((config, rejected)) = user_token_retry(route, secret) else {
        return send(route, Request::from_parts(parts, body::stream(body))).await;
    };
    let bytes = match replayable(body).await? {
        Replay::Stream(body) => {
            return send(route, Request::from_parts(parts, body::stream(body))).await;
        }
        Replay::Buffered(bytes) => bytes,
    };
    let mut again = copy_parts(&parts);
    let response = send(route, Request::from_parts(parts, body::full(bytes.clone()))).await?;
    if response.status() != http::StatusCode::UNAUTHORIZED {
        return Ok(response);
    }
    let renewed =
        credential::after_rejection(state, runtime, config, caller, &rejected, &context.id).await;
    let Some(renewed) = renewed else {
        return Ok(response);
    };
    tracing::info!("upstream refused the vaulted token; retrying once with a refreshed one");
    again.uri = upstream.uri(Some(&renewed))?;
    upstream.inject_header(&mut again.headers, &renewed)?;
    send(route, Request::from_parts(again, body::full(bytes))).await
}

/// The route's user-federation credential and the token sent with it, when a refused token
/// may be refreshed and the request retried.
fn user_token_retry(
    route: &Route,
    secret: Option<SecretString>,
) -> Option<(&UserFederation, SecretString)> {
    match (&route.outbound, secret) {
        (Outbound::UserFederation(user), Some(token)) => Some((user, token)),
        _ => None,
    }
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
        .map_err(|e| ProxyError::UpstreamUnavailable(Box::new(e)))?;
    route
        .upstream_duration
        .observe(sent.elapsed().as_secs_f64());
    Ok(response)
}
