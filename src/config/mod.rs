//! Configuration: `routes.toml` read and checked into the [`Config`] types below.
//!
//! [`load`] is the only way in: it parses the raw TOML ([`raw`]), checks every field and every
//! cross-reference ([`compile`]), resolves secrets ([`secret`]) and reports each problem with its
//! position ([`diagnostics`]). A config that loads always builds: [`crate::runtime::build`]
//! compiles it into the routes the proxy uses, which never sees raw config.

mod compile;
mod diagnostics;
pub(crate) mod raw;
pub(crate) mod secret;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use secrecy::SecretString;
use url::Url;

pub(crate) use diagnostics::{ConfigError, Diagnostic};
pub use secret::{SecretError, SecretSource};

/// A validated configuration. Cheap to share behind an `Arc`; replaced whole on reload.
#[derive(Debug)]
pub struct Config {
    /// The file this was read from.
    pub(crate) source: PathBuf,
    pub server: ServerConfig,
    pub vault: VaultConfig,
    pub(crate) audit: AuditConfig,
    pub(crate) api: Option<ApiConfig>,
    pub authorizers: Vec<AuthorizerConfig>,
    pub(crate) workloads: Vec<WorkloadConfig>,
    pub providers: Vec<ProviderConfig>,
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) admin_listen: Option<SocketAddr>,
    /// How browsers and IdPs reach `listen`; no trailing slash.
    pub public_url: Url,
    pub(crate) tls: Option<TlsFiles>,
    pub(crate) limits: ServerLimits,
    /// Extra roots (PEM files) trusted for IdP and provider fetches.
    pub(crate) extra_ca_certs: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// Edge hardening, after Envoy's edge guide.
#[derive(Debug, Clone)]
pub(crate) struct ServerLimits {
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) max_headers: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) h2_max_concurrent_streams: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(10),
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            h2_max_concurrent_streams: 100,
        }
    }
}

#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// `sqlite://PATH` or `postgres://...`; a relative SQLite path is taken from the config's folder.
    pub store: String,
    pub key: SecretSource,
    pub previous_keys: Vec<SecretSource>,
    pub cache_capacity: u64,
}

#[derive(Debug, Clone)]
pub(crate) enum AuditSink {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub(crate) struct AuditConfig {
    pub(crate) sink: AuditSink,
    pub(crate) queue_capacity: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct ApiConfig {
    pub(crate) region: String,
    pub(crate) account_id: String,
    pub(crate) max_workload_identities: u32,
    /// Most credential providers the API may create (their names label metrics).
    pub(crate) max_credential_providers: u32,
    pub(crate) default_authorizer: Option<String>,
    pub(crate) credentials: Vec<ApiCredential>,
}

#[derive(Debug, Clone)]
pub struct ApiCredential {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
}

#[derive(Debug, Clone)]
pub struct AuthorizerConfig {
    pub name: String,
    pub discovery_url: Url,
    pub allowed_audience: Option<Vec<String>>,
    pub allowed_clients: Option<Vec<String>>,
    pub allowed_scopes: Vec<String>,
    pub user_claim: String,
    pub leeway: Duration,
    pub custom_claims: Vec<ClaimRule>,
    /// Verified tokens are cached (by digest, until `exp`) unless this is false.
    pub cache_verified_tokens: bool,
    /// Longest accepted token lifetime (`exp - iat`, or `exp - now` without `iat`).
    pub max_token_lifetime: Duration,
    /// Clear-text discovery and JWKS fetches allowed from non-loopback hosts.
    pub allow_insecure_http: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRule {
    pub(crate) claim: String,
    pub(crate) operator: ClaimOperator,
    pub(crate) values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimOperator {
    Equals,
    Contains,
    ContainsAny,
}

#[derive(Debug, Clone)]
pub(crate) struct WorkloadConfig {
    pub(crate) name: String,
    pub(crate) authorizer: Option<String>,
    pub(crate) allowed_return_urls: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub(crate) name: String,
    pub(crate) kind: ProviderKind,
}

#[derive(Debug, Clone)]
pub(crate) enum ProviderKind {
    OAuth2(Box<OAuth2Provider>),
    ApiKey { api_key: SecretString },
}

#[derive(Debug, Clone)]
pub(crate) struct OAuth2Provider {
    pub(crate) vendor: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<SecretString>,
    pub(crate) discovery_url: Option<Url>,
    pub(crate) issuer: Option<String>,
    pub(crate) authorization_endpoint: Option<Url>,
    pub(crate) token_endpoint: Option<Url>,
    /// How the client authenticates at the token endpoint; `None`: the way the vendor's
    /// documentation does (`providers::vendors::dialect`).
    pub(crate) client_auth: Option<ClientAuth>,
    pub(crate) tenant: Option<String>,
    pub(crate) domain: Option<String>,
    /// Clear-text discovery and token endpoints allowed on non-loopback hosts.
    pub(crate) allow_insecure_http: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub(crate) name: String,
    pub(crate) path_prefix: String,
    /// Lower-cased host name (no port) this route is limited to.
    pub(crate) host: Option<String>,
    pub(crate) upstream: Url,
    pub(crate) authorizer: Option<String>,
    pub(crate) workload: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) credential: Option<CredentialConfig>,
}

#[derive(Debug, Clone)]
pub(crate) struct CredentialConfig {
    pub(crate) provider: Option<String>,
    pub(crate) flow: Flow,
    pub(crate) scopes: Vec<String>,
    pub(crate) return_url: Option<String>,
    pub(crate) force_authentication: bool,
    pub(crate) injection: Injection,
    /// Client headers of `crate::rules::CLIENT_CREDENTIAL_HEADERS` that still reach the
    /// upstream on this route (`pass_headers`).
    pub(crate) pass_headers: Vec<HeaderName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    UserFederation,
    M2m,
    ApiKey,
    Passthrough,
}

/// Where an outbound credential goes.
#[derive(Debug, Clone)]
pub(crate) enum Injection {
    /// `format` holds `{token}` once.
    Header {
        name: HeaderName,
        format: String,
    },
    QueryParam(String),
}

/// The outcome of a successful load: the config, and warnings worth printing.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Reads, validates and compiles the config file at `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
    load_str(path, &text)
}

/// Reads only the `[vault]` table of the config file at `path` (nothing else is resolved).
pub fn load_vault(path: &Path) -> Result<VaultConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, &e))?;
    compile::compile_vault(path, &text)
}

/// Validates and compiles config text; `path` names it in messages and anchors relative paths.
pub fn load_str(path: &Path, text: &str) -> Result<Loaded, ConfigError> {
    compile::compile(path, text)
}
