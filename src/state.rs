//! The gateway's shared state: the live [`Runtime`] (compiled config) behind an `ArcSwap`, so a
//! reload swaps it atomically while in-flight requests finish on the one they started with, plus
//! what outlives reloads (metrics, the default upstream client, readiness).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::audit::Audit;
use crate::config::{self, Config, ConfigError};
use crate::http_client::{self, UpstreamClient};
use crate::inbound::discovery::IssuerRegistry;
use crate::inbound::jwks::{FetchCounters, KeySource, SourceOptions};
use crate::inbound::workload_token::SigningKeyError;
use crate::inbound::{Authorizer, WorkloadTokens};
use crate::metrics::Metrics;
use crate::providers::{self, Provider, m2m::M2mTokens};
use crate::proxy::route::{Route, RouteTable};
use crate::tls::TlsError;
use crate::vault::{Vault, VaultError, VaultMetrics};

/// Why the gateway could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid config:\n{0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    SigningKey(#[from] SigningKeyError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("cannot open the audit log: {0}")]
    Audit(std::io::Error),
}

/// How often the vault's change log is read (writes by other processes reach the cache).
const VAULT_CHANGE_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Verified-token cache entries per authorizer.
const VERIFIED_CACHE_CAPACITY: u64 = 100_000;

/// Everything compiled from one config file.
pub struct Runtime {
    pub config: Arc<Config>,
    pub routes: RouteTable,
    pub authorizers: HashMap<String, Arc<Authorizer>>,
    pub providers: HashMap<String, Provider>,
    /// Machine-to-machine tokens (also kept in the vault, so a reload refetches nothing).
    pub m2m: M2mTokens,
    /// Refreshes of users' tokens in progress, merged per vault entry.
    pub refreshes: moka::future::Cache<crate::vault::Owner, Arc<secrecy::SecretString>>,
}

/// Cheap to clone; one per gateway.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

struct Shared {
    runtime: ArcSwap<Runtime>,
    metrics: Metrics,
    default_client: UpstreamClient,
    /// keygate's own fetches (discovery, JWKS, token endpoints): [`crate::egress`] rules.
    fetch_client: UpstreamClient,
    ready: AtomicBool,
    workload_tokens: Arc<WorkloadTokens>,
    vault: Arc<Vault>,
    audit: Audit,
    directory: crate::directory::Directory,
    /// One key source per discovery URL, kept across reloads so keys are not refetched.
    key_sources: Mutex<HashMap<String, Arc<KeySource>>>,
    /// Which key source speaks for each issuer.
    issuers: Arc<IssuerRegistry>,
}

/// What authorizers and providers are built with, beyond the config.
struct Fetching<'a> {
    client: &'a UpstreamClient,
    key_sources: &'a Mutex<HashMap<String, Arc<KeySource>>>,
    issuers: &'a Arc<IssuerRegistry>,
}

impl AppState {
    /// Opens the vault (store and keys) and compiles the config; fails if any of it is unusable.
    pub async fn new(config: Config) -> Result<Self, StartError> {
        let metrics = Metrics::new()?;
        let default_client = http_client::client(None)?;
        let audit = Audit::start(&config.audit, Some(metrics.audit_refused_total.clone()))
            .map_err(StartError::Audit)?;
        let vault = Vault::open(&config.vault, Some(VaultMetrics::from(&metrics))).await?;
        vault.spawn_change_watcher(VAULT_CHANGE_POLL);
        let workload_tokens =
            Arc::new(WorkloadTokens::load(&vault, config.server.public_url.as_str()).await?);
        let fetch_client = http_client::for_fetches(&config.server.extra_ca_certs)?;
        let key_sources = Mutex::new(HashMap::new());
        let issuers = IssuerRegistry::new();
        let fetching = Fetching {
            client: &fetch_client,
            key_sources: &key_sources,
            issuers: &issuers,
        };
        let runtime = build_runtime(config, &metrics, &default_client, &fetching)?;
        let directory = crate::directory::Directory::new(vault.clone(), fetch_client.clone());
        Ok(AppState {
            shared: Arc::new(Shared {
                runtime: ArcSwap::from_pointee(runtime),
                metrics,
                default_client,
                fetch_client,
                ready: AtomicBool::new(false),
                workload_tokens,
                vault,
                audit,
                directory,
                key_sources,
                issuers,
            }),
        })
    }

    /// The runtime as of now; hold it for the whole request.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.shared.runtime.load_full()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    pub fn workload_tokens(&self) -> &WorkloadTokens {
        &self.shared.workload_tokens
    }

    pub fn audit(&self) -> &Audit {
        &self.shared.audit
    }

    /// Workload identities and credential providers, from the config and the API.
    pub fn directory(&self) -> &crate::directory::Directory {
        &self.shared.directory
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.shared.vault
    }

    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.shared.ready.store(ready, Ordering::Release);
    }

    /// Re-reads the config file and swaps it in; on any error the old config keeps serving.
    pub async fn reload(&self) -> Result<(), StartError> {
        // SIGHUP is also the log-rotation signal.
        self.shared.audit.reopen().await;
        let current = self.runtime();
        let result = config::load(&current.config.source)
            .map_err(StartError::from)
            .and_then(|loaded| {
                for warning in &loaded.warnings {
                    tracing::warn!(%warning, "config warning");
                }
                let new = &loaded.config.server;
                let old = &current.config.server;
                if new.listen != old.listen
                    || new.admin_listen != old.admin_listen
                    || new.tls.is_some() != old.tls.is_some()
                {
                    tracing::warn!(
                        "listen addresses and TLS on/off take effect only after a restart"
                    );
                }
                if loaded.config.vault.store != current.config.vault.store
                    || loaded.config.vault.cache_capacity != current.config.vault.cache_capacity
                {
                    tracing::warn!(
                        "vault.store and vault.cache_capacity take effect only after a restart"
                    );
                }
                if new.extra_ca_certs != old.extra_ca_certs {
                    tracing::warn!("server.extra_ca_certs takes effect only after a restart");
                }
                build_runtime(
                    loaded.config,
                    &self.shared.metrics,
                    &self.shared.default_client,
                    &Fetching {
                        client: &self.shared.fetch_client,
                        key_sources: &self.shared.key_sources,
                        issuers: &self.shared.issuers,
                    },
                )
            });
        // Vault keys changed in the config (a new `vault.key`, the old one among
        // `previous_keys`) apply now, or the whole reload is refused.
        let result = result.and_then(|runtime| {
            self.shared
                .vault
                .reload_keys(&runtime.config.vault)
                .map(|()| runtime)
                .map_err(|e| StartError::Vault(e.into()))
        });
        // Picks up a signing key rotated with `keygate token rotate-key`.
        let result = match result {
            Ok(runtime) => self
                .shared
                .workload_tokens
                .reload(&self.shared.vault)
                .await
                .map(|()| runtime)
                .map_err(StartError::from),
            Err(e) => Err(e),
        };
        let metrics = &self.shared.metrics;
        match result {
            Ok(runtime) => {
                self.shared.runtime.store(Arc::new(runtime));
                metrics
                    .config_reloads_total
                    .with_label_values(&["success"])
                    .inc();
                metrics.config_last_reload_success.set(1);
                Ok(())
            }
            Err(e) => {
                metrics
                    .config_reloads_total
                    .with_label_values(&["failure"])
                    .inc();
                metrics.config_last_reload_success.set(0);
                Err(e)
            }
        }
    }
}

fn build_runtime(
    config: Config,
    metrics: &Metrics,
    default_client: &UpstreamClient,
    fetching: &Fetching<'_>,
) -> Result<Runtime, StartError> {
    let authorizers = build_authorizers(&config, metrics, fetching);
    let mut routes = Vec::with_capacity(config.routes.len());
    for route in &config.routes {
        let client = match &route.ca_file {
            Some(ca) => http_client::client(Some(ca))?,
            None => default_client.clone(),
        };
        routes.push(Arc::new(Route::new(
            route.clone(),
            client,
            metrics
                .request_duration
                .with_label_values(&[route.name.as_str()]),
            metrics
                .upstream_duration
                .with_label_values(&[route.name.as_str()]),
        )));
    }
    let providers = providers::build(&config.providers, fetching.client);
    zero_known_series(&config, metrics);
    Ok(Runtime {
        config: Arc::new(config),
        routes: RouteTable::new(routes),
        authorizers,
        providers,
        m2m: M2mTokens::new(metrics.token_requests_total.clone()),
        refreshes: moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(std::time::Duration::from_secs(5))
            .build(),
    })
}

/// Authorizers for the config, sharing key sources (and so fetched keys) by discovery URL with
/// the previous config. Sources no authorizer names any more are dropped, which stops their
/// background refresh.
fn build_authorizers(
    config: &Config,
    metrics: &Metrics,
    fetching: &Fetching<'_>,
) -> HashMap<String, Arc<Authorizer>> {
    let mut sources = fetching
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
            None => {
                let counters = FetchCounters {
                    success: metrics
                        .jwks_fetches_total
                        .with_label_values(&[authorizer.name.as_str(), "success"]),
                    failure: metrics
                        .jwks_fetches_total
                        .with_label_values(&[authorizer.name.as_str(), "failure"]),
                };
                let source = KeySource::with_options(
                    authorizer.discovery_url.clone(),
                    fetching.client.clone(),
                    SourceOptions {
                        counters: Some(counters),
                        registry: Some(fetching.issuers.clone()),
                        allow_insecure_http: authorizer.allow_insecure_http,
                    },
                );
                if tokio::runtime::Handle::try_current().is_ok() {
                    source.spawn_refresher();
                }
                source
            }
        };
        kept.insert(url, source.clone());
        authorizers.insert(
            authorizer.name.clone(),
            Arc::new(Authorizer::new(
                authorizer.clone(),
                source,
                if authorizer.cache_verified_tokens {
                    VERIFIED_CACHE_CAPACITY
                } else {
                    0
                },
            )),
        );
    }
    *sources = kept;
    authorizers
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
