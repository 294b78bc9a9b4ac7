//! The one step from a checked [`Config`] to a [`Runtime`]: authorizers (sharing key sources
//! with the previous runtime), providers, and routes holding their resolved authorizer and
//! outbound credential. The checker refuses every config this step would refuse, so a
//! [`BuildError`] after a passing `keygate check` is a bug.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::{Config, CredentialConfig, Flow, RouteConfig};
use crate::inbound::Authorizer;
use crate::inbound::discovery::IssuerRegistry;
use crate::inbound::jwks::{FetchCounters, KeySource, SourceOptions};
use crate::metrics::Metrics;
use crate::providers::{self, Provider, m2m::M2mTokens};
use crate::tls::TlsError;
use crate::upstream::{self, UpstreamClient};

use super::Runtime;
use super::route::{Authentication, Outbound, Route, RouteTable, Upstream, UserFederation};

/// Verified-token cache entries per authorizer.
const VERIFIED_CACHE_CAPACITY: u64 = 100_000;

/// Why a config could not become a runtime.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("route {route}: {source}")]
    Tls {
        route: String,
        #[source]
        source: TlsError,
    },
    #[error("route {route} names {what} `{name}`, which the config lacks")]
    Unresolved {
        route: String,
        what: &'static str,
        name: String,
    },
    #[error("route {route}: flow {flow:?} does not fit its provider's kind")]
    FlowMismatch { route: String, flow: Flow },
    #[error("route {route}: {missing}")]
    Incomplete {
        route: String,
        missing: &'static str,
    },
}

/// What runtimes are built with, beyond the config; outlives reloads.
pub(crate) struct BuildContext<'a> {
    pub(crate) metrics: &'a Metrics,
    /// The client of routes without their own `ca_file`.
    pub(crate) default_client: &'a UpstreamClient,
    /// keygate's own fetches (discovery, JWKS, token endpoints).
    pub(crate) fetch_client: &'a UpstreamClient,
    /// One key source per discovery URL, kept across reloads so keys are not refetched.
    pub(crate) key_sources: &'a Mutex<HashMap<String, Arc<KeySource>>>,
    pub(crate) issuers: &'a Arc<IssuerRegistry>,
}

/// Compiles `config` into a runtime.
pub(crate) fn build(config: Config, context: &BuildContext<'_>) -> Result<Runtime, BuildError> {
    let authorizers = authorizers(&config, context);
    let providers = providers::build(&config.providers, context.fetch_client);
    let mut routes = Vec::with_capacity(config.routes.len());
    for route in &config.routes {
        routes.push(Arc::new(self::route(
            route,
            &authorizers,
            &providers,
            context,
        )?));
    }
    zero_known_series(&config, context.metrics);
    Ok(Runtime {
        config: Arc::new(config),
        routes: RouteTable::new(routes),
        authorizers,
        providers,
        m2m: M2mTokens::new(context.metrics.token_requests_total.clone()),
        refreshes: moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(std::time::Duration::from_secs(5))
            .build(),
    })
}

fn route(
    route: &RouteConfig,
    authorizers: &HashMap<String, Arc<Authorizer>>,
    providers: &HashMap<String, Provider>,
    context: &BuildContext<'_>,
) -> Result<Route, BuildError> {
    let client = match &route.ca_file {
        Some(ca) => upstream::client(Some(ca)).map_err(|source| BuildError::Tls {
            route: route.name.clone(),
            source,
        })?,
        None => context.default_client.clone(),
    };
    let authentication = match &route.authorizer {
        Some(name) => Authentication::Authorizer(
            authorizers
                .get(name)
                .cloned()
                .ok_or_else(|| unresolved(route, "authorizer", name))?,
        ),
        None => Authentication::WorkloadTokens,
    };
    let outbound = match &route.credential {
        Some(credential) => outbound(route, credential, providers)?,
        None => Outbound::Nothing,
    };
    if outbound.injection().is_some() && route.authorizer.is_some() && route.workload.is_none() {
        return Err(BuildError::Incomplete {
            route: route.name.clone(),
            missing: "a route taking user JWTs and injecting a credential needs `workload`",
        });
    }
    let label = [route.name.as_str()];
    Ok(Route {
        name: route.name.clone(),
        path_prefix: route.path_prefix.clone(),
        host: route.host.clone(),
        authentication,
        workload: route.workload.clone(),
        outbound,
        pass_headers: route
            .credential
            .as_ref()
            .map(|c| c.pass_headers.clone())
            .unwrap_or_default(),
        timeout: route.timeout,
        upstream: Upstream::new(&route.upstream),
        client,
        duration: context.metrics.request_duration.with_label_values(&label),
        upstream_duration: context.metrics.upstream_duration.with_label_values(&label),
    })
}

/// The route's credential with its provider resolved and checked against the flow.
fn outbound(
    route: &RouteConfig,
    credential: &CredentialConfig,
    providers: &HashMap<String, Provider>,
) -> Result<Outbound, BuildError> {
    if credential.flow == Flow::Passthrough {
        return Ok(Outbound::Passthrough);
    }
    let name = credential
        .provider
        .as_deref()
        .ok_or(BuildError::Incomplete {
            route: route.name.clone(),
            missing: "this flow needs `provider`",
        })?;
    let provider = providers
        .get(name)
        .ok_or_else(|| unresolved(route, "provider", name))?;
    let injection = credential.injection.clone();
    let scopes = credential.scopes.clone();
    match (credential.flow, provider) {
        (Flow::ApiKey, Provider::ApiKey(key)) => Ok(Outbound::ApiKey {
            provider: name.to_string(),
            key: key.clone(),
            injection,
        }),
        (Flow::M2m, Provider::OAuth2(client)) => Ok(Outbound::M2m {
            client: client.clone(),
            scopes,
            injection,
        }),
        (Flow::UserFederation, Provider::OAuth2(client)) => {
            let return_url = credential
                .return_url
                .clone()
                .ok_or(BuildError::Incomplete {
                    route: route.name.clone(),
                    missing: "flow = \"user_federation\" needs a return URL",
                })?;
            Ok(Outbound::UserFederation(UserFederation {
                client: client.clone(),
                scopes,
                return_url,
                force: credential.force_authentication,
                injection,
            }))
        }
        (flow, _) => Err(BuildError::FlowMismatch {
            route: route.name.clone(),
            flow,
        }),
    }
}

fn unresolved(route: &RouteConfig, what: &'static str, name: &str) -> BuildError {
    BuildError::Unresolved {
        route: route.name.clone(),
        what,
        name: name.to_string(),
    }
}

/// Authorizers for the config, sharing key sources (and so fetched keys) by discovery URL with
/// the previous config. Sources no authorizer names any more are dropped, which stops their
/// background refresh.
fn authorizers(config: &Config, context: &BuildContext<'_>) -> HashMap<String, Arc<Authorizer>> {
    let mut sources = context
        .key_sources
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut kept = HashMap::new();
    let mut authorizers = HashMap::new();
    for authorizer in &config.authorizers {
        let url = format!(
            "{} insecure_http={}",
            authorizer.discovery_url, authorizer.allow_insecure_http
        );
        let source = match sources.get(&url) {
            Some(source) => source.clone(),
            None => key_source(authorizer, context),
        };
        kept.insert(url, source.clone());
        let cache_capacity = if authorizer.cache_verified_tokens {
            VERIFIED_CACHE_CAPACITY
        } else {
            0
        };
        authorizers.insert(
            authorizer.name.clone(),
            Arc::new(Authorizer::new(authorizer.clone(), source, cache_capacity)),
        );
    }
    *sources = kept;
    authorizers
}

/// A new key source for an authorizer's discovery URL, refreshing in the background.
fn key_source(
    authorizer: &crate::config::AuthorizerConfig,
    context: &BuildContext<'_>,
) -> Arc<KeySource> {
    let fetches = &context.metrics.jwks_fetches_total;
    let counters = FetchCounters {
        success: fetches.with_label_values(&[authorizer.name.as_str(), "success"]),
        failure: fetches.with_label_values(&[authorizer.name.as_str(), "failure"]),
    };
    let source = KeySource::with_options(
        authorizer.discovery_url.clone(),
        context.fetch_client.clone(),
        SourceOptions {
            counters: Some(counters),
            registry: Some(context.issuers.clone()),
            allow_insecure_http: authorizer.allow_insecure_http,
        },
    );
    if tokio::runtime::Handle::try_current().is_ok() {
        source.spawn_refresher();
    }
    source
}

/// The config's routes and OAuth providers, and every auth failure reason, at 0 in the metrics.
fn zero_known_series(config: &Config, metrics: &Metrics) {
    let reasons: Vec<&str> = crate::inbound::AuthError::ALL
        .iter()
        .map(|e| e.reason())
        .collect();
    let routes: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    let oauth_providers: Vec<&str> = config
        .providers
        .iter()
        .filter(|p| matches!(p.kind, crate::config::ProviderKind::OAuth2(_)))
        .map(|p| p.name.as_str())
        .collect();
    metrics.zero_known_series(&reasons, &routes, &oauth_providers);
}
