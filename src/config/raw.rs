//! The shape of `routes.toml` exactly as written: serde types with `deny_unknown_fields`, no
//! defaults applied and no cross-references checked. [`super::compile`] turns these into the
//! runtime [`super::Config`]; nothing outside the config module sees these types.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) server: RawServer,
    pub(crate) vault: Option<RawVault>,
    pub(crate) audit: Option<RawAudit>,
    pub(crate) api: Option<RawApi>,
    #[serde(default)]
    pub(crate) authorizers: Vec<RawAuthorizer>,
    #[serde(default)]
    pub(crate) workloads: Vec<RawWorkload>,
    #[serde(default)]
    pub(crate) providers: Vec<RawProvider>,
    #[serde(default)]
    pub(crate) routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub(crate) listen: String,
    pub(crate) admin_listen: Option<String>,
    pub(crate) public_url: Option<String>,
    pub(crate) tls: Option<RawTls>,
    pub(crate) max_connections: Option<u32>,
    pub(crate) header_read_timeout: Option<String>,
    pub(crate) idle_timeout: Option<String>,
    pub(crate) drain_timeout: Option<String>,
    /// PEM files of extra roots trusted for IdP and provider fetches (private CAs).
    #[serde(default)]
    pub(crate) extra_ca_certs: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert: String,
    pub(crate) key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVault {
    pub(crate) store: Option<String>,
    pub(crate) key: Option<String>,
    #[serde(default)]
    pub(crate) previous_keys: Vec<String>,
    pub(crate) cache_capacity: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    pub(crate) path: String,
    pub(crate) queue_capacity: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub(crate) region: String,
    pub(crate) account_id: String,
    pub(crate) max_workload_identities: Option<u32>,
    pub(crate) max_credential_providers: Option<u32>,
    pub(crate) default_authorizer: Option<String>,
    #[serde(default)]
    pub(crate) credentials: Vec<RawApiCredential>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiCredential {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthorizer {
    pub(crate) name: String,
    pub(crate) discovery_url: String,
    pub(crate) allowed_audience: Option<Vec<String>>,
    pub(crate) allowed_clients: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) allowed_scopes: Vec<String>,
    pub(crate) user_claim: Option<String>,
    pub(crate) leeway: Option<String>,
    #[serde(default)]
    pub(crate) custom_claims: Vec<RawCustomClaim>,
    /// Keep verified tokens until they expire (default true); off re-verifies every request.
    pub(crate) cache_verified_tokens: Option<bool>,
    /// Longest accepted `exp - iat` (default 24h).
    pub(crate) max_token_lifetime: Option<String>,
    /// Allow http:// discovery and JWKS from non-loopback hosts (default false).
    pub(crate) allow_insecure_http: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCustomClaim {
    pub(crate) claim: String,
    pub(crate) operator: String,
    pub(crate) value: StringOrList,
}

/// A value that may be written as one string or as a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkload {
    pub(crate) name: String,
    pub(crate) authorizer: Option<String>,
    #[serde(default)]
    pub(crate) allowed_return_urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvider {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) vendor: Option<String>,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Option<String>,
    pub(crate) discovery_url: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) authorization_endpoint: Option<String>,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) client_auth: Option<String>,
    /// Tenant for Microsoft (`common`, `organizations` or a tenant id).
    pub(crate) tenant: Option<String>,
    /// Tenant domain for Okta, Auth0, Cognito, OneLogin, PingOne, CyberArk, FusionAuth.
    pub(crate) domain: Option<String>,
    pub(crate) api_key: Option<String>,
    /// Allow http:// discovery and token endpoints on non-loopback hosts (default false).
    pub(crate) allow_insecure_http: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub(crate) name: String,
    pub(crate) path_prefix: String,
    pub(crate) host: Option<String>,
    pub(crate) upstream: String,
    pub(crate) authorizer: Option<String>,
    pub(crate) workload: Option<String>,
    pub(crate) timeout: Option<String>,
    /// PEM bundle of extra roots trusted for this upstream (private CAs).
    pub(crate) ca_file: Option<String>,
    pub(crate) credential: Option<RawCredential>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCredential {
    pub(crate) provider: Option<String>,
    pub(crate) flow: String,
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    pub(crate) return_url: Option<String>,
    #[serde(default)]
    pub(crate) force_authentication: bool,
    pub(crate) header: Option<String>,
    pub(crate) format: Option<String>,
    pub(crate) query_param: Option<String>,
    /// Client headers this route lets through although they could carry a credential.
    #[serde(default)]
    pub(crate) pass_headers: Vec<String>,
}
