//! The admin listener: `/healthz` (the process runs), `/readyz` (serving, store reachable and
//! writing)
//! and `/metrics` (Prometheus text). Never the proxy.

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::state::AppState;

const STORE_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) async fn handle(state: &AppState, request: Request<Incoming>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => readiness(state).await,
        "/metrics" => {
            refresh_gauges(state).await;
            let mut response = Response::new(body::full(state.metrics().encode()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Gauges computed at scrape time: the cache hit ratio, and the consent sessions pending across
/// every replica sharing the vault (left as they were if the store does not answer in time).
async fn refresh_gauges(state: &AppState) {
    let metrics = state.metrics();
    metrics.update_ratios();
    let pending = crate::consent::pending_count(state.vault());
    if let Ok(Ok(n)) = tokio::time::timeout(STORE_PING_TIMEOUT, pending).await {
        metrics
            .consent_sessions_pending
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// Ready once serving with a reachable vault store. Authorizers still without keys are named in
/// the body, each with why its last fetch failed, but do not fail readiness: one IdP outage (or
/// a refused discovery document) must not take the whole pod out of service.
async fn readiness(state: &AppState) -> Response<Body> {
    if !state.is_ready() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n");
    }
    if !state.vault().store().ping(STORE_PING_TIMEOUT).await {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the vault store is unreachable\n",
        );
    }
    if state.vault().writes_failing() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the vault store cannot write\n",
        );
    }
    let runtime = state.runtime();
    let mut waiting: Vec<_> = runtime
        .authorizers
        .values()
        .filter(|a| !a.has_keys())
        .collect();
    if waiting.is_empty() {
        return text(StatusCode::OK, "ready\n");
    }
    waiting.sort_unstable_by(|a, b| a.name().cmp(b.name()));
    let names: Vec<&str> = waiting.iter().map(|a| a.name()).collect();
    let mut body = format!(
        "ready\nauthorizers without signing keys yet: {}\n",
        names.join(", ")
    );
    for authorizer in waiting {
        if let Some(error) = authorizer.keys().last_error() {
            body.push_str(&format!("{}: {error}\n", authorizer.name()));
        }
    }
    let mut response = Response::new(body::full(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn text(status: StatusCode, message: &'static str) -> Response<Body> {
    let mut response = Response::new(body::full(message));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
