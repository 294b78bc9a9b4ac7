//! A compiled route and the route table. A route carries what its requests need, resolved at
//! build time: its authentication and its [`Outbound`] credential, never names to look up.
//! Matching: longest `path_prefix` wins; among equal prefixes a route limited to the request's
//! host beats one for any host.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use prometheus::Histogram;
use secrecy::SecretString;
use url::Url;

use crate::config::Injection;
use crate::inbound::Authorizer;
use crate::providers::oauth::OAuthClient;
use crate::upstream::UpstreamClient;

/// Who may call a route.
pub(crate) enum Authentication {
    /// User JWTs of this authorizer, or workload access tokens.
    Authorizer(Arc<Authorizer>),
    /// Workload access tokens only.
    WorkloadTokens,
}

impl Authentication {
    pub(crate) fn authorizer(&self) -> Option<&Authorizer> {
        match self {
            Authentication::Authorizer(authorizer) => Some(authorizer),
            Authentication::WorkloadTokens => None,
        }
    }
}

/// What a route sends upstream in place of the caller's credential.
pub(crate) enum Outbound {
    /// No `[routes.credential]`: the inbound credential is removed, nothing is injected.
    Nothing,
    /// The inbound `Authorization` header goes upstream as it came.
    Passthrough,
    ApiKey {
        provider: String,
        key: SecretString,
        injection: Injection,
    },
    M2m {
        client: Arc<OAuthClient>,
        scopes: Vec<String>,
        injection: Injection,
    },
    UserFederation(UserFederation),
}

/// A route that sends the user's own token, from the vault or after consent.
pub(crate) struct UserFederation {
    pub(crate) client: Arc<OAuthClient>,
    pub(crate) scopes: Vec<String>,
    /// Where the browser goes after consent.
    pub(crate) return_url: String,
    /// A fresh authentication on every request (`force_authentication`).
    pub(crate) force: bool,
    pub(crate) injection: Injection,
}

impl UserFederation {
    pub(crate) fn provider(&self) -> &str {
        &self.client.provider
    }
}

impl Outbound {
    /// Where the credential goes, when the route injects one.
    pub(crate) fn injection(&self) -> Option<&Injection> {
        match self {
            Outbound::Nothing | Outbound::Passthrough => None,
            Outbound::ApiKey { injection, .. } | Outbound::M2m { injection, .. } => Some(injection),
            Outbound::UserFederation(user) => Some(&user.injection),
        }
    }

    /// The credential provider the route uses, if any (for the audit log).
    pub(crate) fn provider(&self) -> Option<&str> {
        match self {
            Outbound::Nothing | Outbound::Passthrough => None,
            Outbound::ApiKey { provider, .. } => Some(provider),
            Outbound::M2m { client, .. } => Some(&client.provider),
            Outbound::UserFederation(user) => Some(user.provider()),
        }
    }

    /// Whether the route has a `[routes.credential]` table at all.
    pub(crate) fn is_configured(&self) -> bool {
        !matches!(self, Outbound::Nothing)
    }
}

/// One route, ready for the hot path.
pub struct Route {
    pub(crate) name: String,
    pub(crate) path_prefix: String,
    /// Lower-cased host (no port) this route is limited to.
    pub(crate) host: Option<String>,
    pub(crate) authentication: Authentication,
    /// Which agent the route's traffic belongs to, when the route names one.
    pub(crate) workload: Option<String>,
    pub(crate) outbound: Outbound,
    /// Client credential headers that still reach the upstream (`pass_headers`).
    pub(crate) pass_headers: Vec<HeaderName>,
    pub(crate) timeout: Duration,
    pub(crate) upstream: Upstream,
    pub(crate) client: UpstreamClient,
    pub(crate) duration: Histogram,
    pub(crate) upstream_duration: Histogram,
}

/// Where a route forwards to, split for building request URIs.
pub(crate) struct Upstream {
    /// `scheme://host[:port]`.
    origin: String,
    /// The upstream's path with no trailing slash (empty for the root).
    base: String,
}

impl Upstream {
    pub(crate) fn new(url: &Url) -> Self {
        let mut origin = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
        if let Some(port) = url.port() {
            origin.push_str(&format!(":{port}"));
        }
        Upstream {
            origin,
            base: url.path().trim_end_matches('/').to_string(),
        }
    }
}

impl Route {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The upstream URI for a normalised request path (which starts with this route's prefix)
    /// and its raw query.
    pub(crate) fn upstream_uri(&self, path: &str, query: Option<&str>) -> String {
        let rest = path.get(self.path_prefix.len()..).unwrap_or_default();
        let Upstream { origin, base } = &self.upstream;
        let mut uri = String::with_capacity(origin.len() + base.len() + rest.len() + 64);
        uri.push_str(origin);
        uri.push_str(base);
        if !rest.starts_with('/') {
            uri.push('/');
        }
        uri.push_str(rest);
        if let Some(q) = query {
            uri.push('?');
            uri.push_str(q);
        }
        uri
    }
}

#[derive(Default)]
pub struct RouteTable {
    /// Sorted: longest prefix first, host-limited before host-less.
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub(crate) fn new(mut routes: Vec<Arc<Route>>) -> Self {
        routes.sort_by_key(|r| (std::cmp::Reverse(r.path_prefix.len()), r.host.is_none()));
        RouteTable { routes }
    }

    /// The route for a request to `host` (lower-case, no port) and normalised `path`.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| {
            path.starts_with(r.path_prefix.as_str())
                && match (&r.host, host) {
                    (None, _) => true,
                    (Some(want), Some(got)) => want == got,
                    (Some(_), None) => false,
                }
        })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }
}
