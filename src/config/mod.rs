//! Configuration: `routes.toml` read and checked into the [`Config`] types below.
//!
//! [`load`] is the only way in: it parses the raw TOML ([`raw`]), checks every field and every
//! cross-reference ([`compile`]), resolves secrets ([`secret`]) and reports each problem with its
//! position ([`diagnostics`]). A config that loads always builds: [`crate::runtime::build`]
//! compiles it into the routes the proxy uses, which never sees raw config.

mod compile;
pub mod diagnostics;
pub mod raw;
pub mod secret;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use secrecy::SecretString;
use url::Url;

pub use diagnostics::{ConfigError, Diagnostic, Severity};
pub use secret::{SecretError, SecretSource};

/// A validated configuration. Cheap to share behind an `Arc`; replaced whole on reload.
#[derive(Debug)]
pub struct Config {
    /// The file this was read from.
    pub source: PathBuf,
    /// Where keygate keeps local state (the SQLite store's folder, else `data/` beside the config).
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub vault: VaultConfig,
    pub audit: AuditConfig,
    pub api: Option<ApiConfig>,
    pub authorizers: Vec<AuthorizerConfig>,
    pub workloads: Vec<WorkloadConfig>,
    pub providers: Vec<ProviderConfig>,
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    /// How browsers and IdPs reach `listen`; no trailing slash.
    pub public_url: Url,
    pub tls: Option<TlsFiles>,
    pub limits: ServerLimits,
    /// Extra roots (PEM files) trusted for IdP and provider fetches.
    pub extra_ca_certs: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Edge hardening, after Envoy's edge guide.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub drain_timeout: Duration,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub h2_max_concurrent_streams: u32,
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
pub enum AuditSink {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub sink: AuditSink,
    pub queue_capacity: usize,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub region: String,
    pub account_id: String,
    pub max_workload_identities: u32,
    /// Most credential providers the API may create (their names label metrics).
    pub max_credential_providers: u32,
    pub default_authorizer: Option<String>,
    pub credentials: Vec<ApiCredential>,
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
    pub claim: String,
    pub operator: ClaimOperator,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOperator {
    Equals,
    Contains,
    ContainsAny,
}

#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub name: String,
    pub authorizer: Option<String>,
    pub allowed_return_urls: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
}

#[derive(Debug, Clone)]
pub enum ProviderKind {
    OAuth2(Box<OAuth2Provider>),
    ApiKey { api_key: SecretString },
}

#[derive(Debug, Clone)]
pub struct OAuth2Provider {
    pub vendor: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub discovery_url: Option<Url>,
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<Url>,
    pub token_endpoint: Option<Url>,
    /// How the client authenticates at the token endpoint; `None`: the way the vendor's
    /// documentation does (`providers::vendors::dialect`).
    pub client_auth: Option<ClientAuth>,
    pub tenant: Option<String>,
    pub domain: Option<String>,
    /// Clear-text discovery and token endpoints allowed on non-loopback hosts.
    pub allow_insecure_http: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub path_prefix: String,
    /// Lower-cased host name (no port) this route is limited to.
    pub host: Option<String>,
    pub upstream: Url,
    pub authorizer: Option<String>,
    pub workload: Option<String>,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub credential: Option<CredentialConfig>,
}

#[derive(Debug, Clone)]
pub struct CredentialConfig {
    pub provider: Option<String>,
    pub flow: Flow,
    pub scopes: Vec<String>,
    pub return_url: Option<String>,
    pub force_authentication: bool,
    pub injection: Injection,
    /// Client headers of `crate::rules::CLIENT_CREDENTIAL_HEADERS` that still reach the
    /// upstream on this route (`pass_headers`).
    pub pass_headers: Vec<HeaderName>,
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
pub enum Injection {
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
