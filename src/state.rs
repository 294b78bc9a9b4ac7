//! The gateway's shared state: the live [`Runtime`] (built by [`crate::runtime::build`]) behind
//! an `ArcSwap`, so a reload swaps it atomically while in-flight requests finish on the one they
//! started with, plus what outlives reloads (metrics, the default upstream client, readiness).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::audit::Audit;
use crate::config::{self, Config, ConfigError};
use crate::inbound::WorkloadTokens;
use crate::inbound::discovery::IssuerRegistry;
use crate::inbound::jwks::KeySource;
use crate::inbound::workload_token::SigningKeyError;
use crate::metrics::Metrics;
pub(crate) use crate::runtime::Runtime;
use crate::runtime::{BuildContext, BuildError};
use crate::tls::TlsError;
use crate::upstream::{self, UpstreamClient};
use crate::vault::{Vault, VaultError, VaultMetrics};

/// Why the gateway could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid config:\n{0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Build(#[from] BuildError),
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

impl AppState {
    /// Opens the vault (store and keys) and compiles the config; fails if any of it is unusable.
    pub async fn new(config: Config) -> Result<Self, StartError> {
        let metrics = Metrics::new()?;
        let default_client = upstream::client(None)?;
        let audit = Audit::start(&config.audit, Some(metrics.audit_refused_total.clone()))
            .map_err(StartError::Audit)?;
        let vault = Vault::open(&config.vault, Some(VaultMetrics::from(&metrics))).await?;
        vault.spawn_change_watcher(VAULT_CHANGE_POLL);
        let workload_tokens =
            Arc::new(WorkloadTokens::load(&vault, config.server.public_url.as_str()).await?);
        let fetch_client = upstream::for_fetches(&config.server.extra_ca_certs)?;
        let key_sources = Mutex::new(HashMap::new());
        let issuers = IssuerRegistry::new();
        let runtime = crate::runtime::build(
            config,
            &BuildContext {
                metrics: &metrics,
                default_client: &default_client,
                fetch_client: &fetch_client,
                key_sources: &key_sources,
                issuers: &issuers,
            },
        )?;
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

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    pub fn workload_tokens(&self) -> &WorkloadTokens {
        &self.shared.workload_tokens
    }

    pub fn audit(&self) -> &Audit {
        &self.shared.audit
    }

    /// Workload identities and credential providers, from the config and the API.
    pub(crate) fn directory(&self) -> &crate::directory::Directory {
        &self.shared.directory
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.shared.vault
    }

    /// What the consent flow uses of the gateway, for a request on `runtime`.
    pub(crate) fn consent<'a>(&'a self, runtime: &'a Runtime) -> crate::consent::Context<'a> {
        crate::consent::Context {
            vault: self.vault(),
            metrics: self.metrics(),
            audit: self.audit(),
            public_url: &runtime.config.server.public_url,
            refreshes: &runtime.refreshes,
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.shared.ready.store(ready, Ordering::Release);
    }

    /// Re-reads the config file and swaps it in; on any error the old config keeps serving.
    pub(crate) async fn reload(&self) -> Result<(), StartError> {
        // SIGHUP is also the log-rotation signal.
        self.shared.audit.reopen().await;
        let result = self.next_runtime().await;
        let metrics = &self.shared.metrics;
        let outcome = if result.is_ok() { "success" } else { "failure" };
        metrics
            .config_reloads_total
            .with_label_values(&[outcome])
            .inc();
        metrics
            .config_last_reload_success
            .set(i64::from(result.is_ok()));
        let runtime = result?;
        self.shared.runtime.store(Arc::new(runtime));
        Ok(())
    }

    /// The runtime of the config file as it is now, with the vault keys and the signing key it
    /// names applied (or an error, and nothing applied that the old runtime depends on).
    async fn next_runtime(&self) -> Result<Runtime, StartError> {
        let current = self.runtime();
        let loaded = config::load(&current.config.source)?;
        for warning in &loaded.warnings {
            tracing::warn!(%warning, "config warning");
        }
        warn_restart_only_changes(&current.config, &loaded.config);
        let shared = &self.shared;
        let runtime = crate::runtime::build(
            loaded.config,
            &BuildContext {
                metrics: &shared.metrics,
                default_client: &shared.default_client,
                fetch_client: &shared.fetch_client,
                key_sources: &shared.key_sources,
                issuers: &shared.issuers,
            },
        )?;
        // Vault keys changed in the config (a new `vault.key`, the old one among
        // `previous_keys`) apply now, or the whole reload is refused.
        shared
            .vault
            .reload_keys(&runtime.config.vault)
            .map_err(|e| StartError::Vault(e.into()))?;
        // Picks up a signing key rotated with `keygate token rotate-key`.
        shared.workload_tokens.reload(&shared.vault).await?;
        Ok(runtime)
    }
}

/// Settings a reload cannot apply, logged when they changed.
fn warn_restart_only_changes(old: &Config, new: &Config) {
    let (new_server, old_server) = (&new.server, &old.server);
    if new_server.listen != old_server.listen
        || new_server.admin_listen != old_server.admin_listen
        || new_server.tls.is_some() != old_server.tls.is_some()
    {
        tracing::warn!("listen addresses and TLS on/off take effect only after a restart");
    }
    if new.vault.store != old.vault.store || new.vault.cache_capacity != old.vault.cache_capacity {
        tracing::warn!("vault.store and vault.cache_capacity take effect only after a restart");
    }
    if new_server.extra_ca_certs != old_server.extra_ca_certs {
        tracing::warn!("server.extra_ca_certs takes effect only after a restart");
    }
}
