//! The top of the `listen` address: reserved paths (`/identities/...`, `/.well-known/...`) go to
//! keygate's own endpoints and are never routed; everything else goes to the proxy.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::Body;
use crate::consent_endpoints;
use crate::directory::Configured;
use crate::error::{ProxyError, json_response};
use crate::identity_api;
use crate::proxy::{self, ConnInfo};
use crate::state::{AppState, Runtime};

pub(crate) async fn dispatch(
    state: &AppState,
    request: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    let path = request.uri().path();
    // The proxy checks this in its own first phase (counted and logged with the request).
    if is_reserved(path)
        && let Err(error) = proxy::host::check(request.headers(), request.uri())
    {
        return error.into_response();
    }
    if path == "/.well-known/jwks.json" {
        return json_response(StatusCode::OK, &state.workload_tokens().jwks());
    }
    if request.method() == http::Method::GET {
        let query = request.uri().query();
        match path {
            "/identities/oauth2/authorize" => {
                let runtime = state.runtime();
                let endpoints = endpoints_for(state, &runtime);
                return Box::pin(consent_endpoints::authorize(&endpoints, query)).await;
            }
            "/identities/oauth2/callback" => {
                let runtime = state.runtime();
                let endpoints = endpoints_for(state, &runtime);
                return Box::pin(consent_endpoints::callback(
                    &endpoints,
                    query,
                    conn.peer.ip(),
                ))
                .await;
            }
            _ => {}
        }
    }
    // The identity API's and the consent endpoints' futures are large and rare: boxed, they do
    // not make every proxied request's future (moved a few times per request) as large.
    if identity_api::is_api_path(path) {
        return Box::pin(identity_api::handle(state, request, conn)).await;
    }
    if is_reserved(path) {
        return ProxyError::NoRoute.into_response();
    }
    proxy::handle(state, request, conn).await
}

/// What the consent flow's browser endpoints use of the gateway.
fn endpoints_for<'a>(
    state: &'a AppState,
    runtime: &'a Runtime,
) -> consent_endpoints::Endpoints<'a> {
    consent_endpoints::Endpoints {
        vault: state.vault(),
        metrics: state.metrics(),
        audit: state.audit(),
        public_url: &runtime.config.server.public_url,
        directory: state.directory(),
        configured: Configured {
            config: &runtime.config,
            providers: &runtime.providers,
        },
    }
}

/// Paths keygate keeps for itself, whatever the routes say.
fn is_reserved(path: &str) -> bool {
    crate::rules::is_reserved_path(path)
}
