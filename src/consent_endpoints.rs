//! The browser-facing endpoints of the consent flow: `GET /identities/oauth2/authorize` (to the
//! provider) and `GET /identities/oauth2/callback` (back from it, on to the app's return URL).
//! Both answer 302, or 400 with the contract's JSON error when the session is unknown, expired
//! or already used (503 `vault_unavailable`, 502 `credential_provider_error` when a dependency
//! fails; see [`ProxyError::classify`]). Every answer carries `Referrer-Policy: no-referrer` and `Cache-Control:
//! no-store`: these URLs hold a session reference, a code and a state, and neither the next page
//! (the app at the return URL, the provider) nor a cache may keep them.
//!
//! This is the HTTP layer over [`crate::consent`], which knows nothing of HTTP responses.

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode, header};
use url::form_urlencoded;

use crate::audit::Audit;
use crate::audit::{AuditEvent, Outcome};
use crate::body::{self, Body};
use crate::consent::{self, ConsentError};
use crate::directory::{Configured, Directory};
use crate::error::ProxyError;
use crate::inbound::UserId;
use crate::metrics::Metrics;
use crate::providers::oauth::OAuthClient;
use crate::vault::Vault;
use std::net::IpAddr;
use url::Url;

/// What the browser-facing endpoints use, built by their caller (the router) from the
/// gateway's state and the runtime in use.
pub(crate) struct Endpoints<'a> {
    pub(crate) vault: &'a Vault,
    pub(crate) metrics: &'a Metrics,
    pub(crate) audit: &'a Audit,
    pub(crate) public_url: &'a Url,
    /// Where providers' OAuth clients come from (config or API-created).
    pub(crate) directory: &'a Directory,
    pub(crate) configured: Configured<'a>,
}

impl consent::Clients for Endpoints<'_> {
    async fn client(&self, provider: &str) -> Option<Arc<OAuthClient>> {
        self.directory
            .oauth_client(&self.configured, provider)
            .await
    }
}

fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn redirect(location: &url::Url) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(value) = HeaderValue::from_str(location.as_str()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The answer to a failed step, classified like every error keygate answers itself: an
/// unusable session is 400 `bad_request`, a vault or provider failure 503 or 502 with the
/// proxy's codes.
fn refused(error: impl Into<ProxyError>) -> Response<Body> {
    let error = error.into();
    error.log();
    error.into_response()
}

/// The headers every consent answer carries (see the module comment).
fn private(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) async fn authorize(endpoints: &Endpoints<'_>, query: Option<&str>) -> Response<Body> {
    private(answer_authorize(endpoints, query).await)
}

pub(crate) async fn callback(
    endpoints: &Endpoints<'_>,
    query: Option<&str>,
    peer: IpAddr,
) -> Response<Body> {
    private(answer_callback(endpoints, query, peer).await)
}

async fn answer_authorize(endpoints: &Endpoints<'_>, query: Option<&str>) -> Response<Body> {
    let Some(request_uri) = query_value(query, "request_uri") else {
        return refused(ConsentError::UnknownSession);
    };
    match consent::authorization_redirect(
        endpoints.vault,
        endpoints.public_url,
        endpoints,
        &request_uri,
    )
    .await
    {
        Ok(url) => redirect(&url),
        Err(error) => refused(error),
    }
}

async fn answer_callback(
    endpoints: &Endpoints<'_>,
    query: Option<&str>,
    peer: IpAddr,
) -> Response<Body> {
    let Some(session_state) = query_value(query, "state") else {
        return refused(ConsentError::UnknownSession);
    };
    let code = query_value(query, "code");
    let error = query_value(query, "error");
    // Reserved first: a full audit queue refuses the step before it changes anything.
    let slot = match endpoints.audit.reserve() {
        Ok(slot) => slot,
        Err(full) => return refused(full),
    };
    let result = consent::callback(
        endpoints.vault,
        endpoints.public_url,
        endpoints,
        &session_state,
        consent::Response {
            code: code.as_deref(),
            error: error.as_deref(),
            iss: query_value(query, "iss").as_deref(),
        },
    )
    .await;
    let event = match &result {
        Ok(done) => called_back(endpoints.metrics, done),
        Err(error) => {
            let outcome = match error {
                ConsentError::Vault(_) | ConsentError::Provider(_) => Outcome::Error,
                _ => Outcome::Denied,
            };
            AuditEvent::new(
                "ConsentCallback",
                &uuid::Uuid::new_v4().to_string(),
                outcome,
            )
            .reason(Some("invalid_session"))
        }
    };
    slot.record(event.source(peer));
    match result {
        Ok(done) => redirect(&done.redirect),
        Err(error) => refused(error),
    }
}

/// A callback that settled its session: counted, logged when the provider granted less, and
/// the audit event for it.
fn called_back(metrics: &Metrics, done: &consent::Callback) -> AuditEvent {
    let (outcome, result) = match &done.refused {
        None => (Outcome::Success, "authorized"),
        Some(_) => (Outcome::Denied, "denied"),
    };
    metrics.consent(result);
    let session = &done.session;
    count_exchange(metrics, &session.provider, done.exchange);
    if !done.reduced.is_empty() {
        // Served all the same: the provider decides what its tokens are good for.
        metrics.consent("scope_reduced");
        tracing::warn!(
            provider = %session.provider,
            missing = %done.reduced.join(" "),
            "the provider granted fewer scopes than requested"
        );
    }
    let user = UserId {
        issuer: session.user.issuer.clone(),
        id: session.user.id.clone(),
    };
    AuditEvent::new(
        "ConsentCallback",
        &uuid::Uuid::new_v4().to_string(),
        outcome,
    )
    .workload(Some(&session.workload))
    .user(Some(&user))
    .provider(Some(&session.provider))
    .reason(done.refused.as_deref())
}

/// Counts the code exchange as a token request, and logs a provider that refused keygate's own
/// client credentials as the misconfiguration it is (not as a user who said no).
fn count_exchange(metrics: &Metrics, provider: &str, exchange: Option<consent::Exchange>) {
    let result = match exchange {
        None => return,
        Some(consent::Exchange::Success) => "success",
        Some(consent::Exchange::Failed {
            result,
            misconfigured,
        }) => {
            if misconfigured {
                tracing::error!(
                    provider,
                    "the provider refused keygate's client credentials at the code exchange: \
                     check the provider's client_id and client_secret"
                );
            }
            result
        }
    };
    metrics
        .token_requests_total
        .with_label_values(&[provider, "authorization_code", result])
        .inc();
}
