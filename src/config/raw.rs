//! The shape of `routes.toml` exactly as written: serde types with `deny_unknown_fields`, no
//! defaults applied and no cross-references checked. [`super::compile`] turns these into the
//! runtime [`super::Config`]; nothing outside the config module sees these types.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    pub vault: Option<RawVault>,
    pub audit: Option<RawAudit>,
    pub api: Option<RawApi>,
    #[serde(default)]
    pub authorizers: Vec<RawAuthorizer>,
    #[serde(default)]
    pub workloads: Vec<RawWorkload>,
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: String,
    pub admin_listen: Option<String>,
    pub public_url: Option<String>,
    pub tls: Option<RawTls>,
    pub max_connections: Option<u32>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub drain_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVault {
    pub store: Option<String>,
    pub key: Option<String>,
    #[serde(default)]
    pub previous_keys: Vec<String>,
    pub cache_capacity: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub path: String,
    pub queue_capacity: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub region: String,
    pub account_id: String,
    pub max_workload_identities: Option<u32>,
    pub max_credential_providers: Option<u32>,
    pub default_authorizer: Option<String>,
    #[serde(default)]
    pub credentials: Vec<RawApiCredential>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiCredential {
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthorizer {
    pub name: String,
    pub discovery_url: String,
    pub allowed_audience: Option<Vec<String>>,
    pub allowed_clients: Option<Vec<String>>,
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
    pub user_claim: Option<String>,
    pub leeway: Option<String>,
    #[serde(default)]
    pub custom_claims: Vec<RawCustomClaim>,
    /// Keep verified tokens until they expire (default true); off re-verifies every request.
    pub cache_verified_tokens: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustomClaim {
    pub claim: String,
    pub operator: String,
    pub value: StringOrList,
}

/// A value that may be written as one string or as a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    pub name: String,
    pub authorizer: Option<String>,
    #[serde(default)]
    pub allowed_return_urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    pub kind: String,
    pub vendor: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub discovery_url: Option<String>,
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub client_auth: Option<String>,
    /// Tenant for Microsoft (`common`, `organizations` or a tenant id).
    pub tenant: Option<String>,
    /// Tenant domain for Okta, Auth0, Cognito, OneLogin, PingOne, CyberArk, FusionAuth.
    pub domain: Option<String>,
    pub api_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    pub path_prefix: String,
    pub host: Option<String>,
    pub upstream: String,
    pub authorizer: Option<String>,
    pub workload: Option<String>,
    pub timeout: Option<String>,
    /// PEM bundle of extra roots trusted for this upstream (private CAs).
    pub ca_file: Option<String>,
    pub credential: Option<RawCredential>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    pub provider: Option<String>,
    pub flow: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub return_url: Option<String>,
    #[serde(default)]
    pub force_authentication: bool,
    pub header: Option<String>,
    pub format: Option<String>,
    pub query_param: Option<String>,
    /// Client headers this route lets through although they could carry a credential.
    #[serde(default)]
    pub pass_headers: Vec<String>,
}
