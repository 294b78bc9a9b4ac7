//! Validation and compilation of [`RawConfig`] into [`Config`]. Every check records a
//! [`Problem`] at a key path and carries on, so one run of `keygate check` reports every problem.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use secrecy::SecretString;
use url::Url;

use super::diagnostics::{ConfigError, Diagnostic, Locator, Problem, Severity, line_column};
use super::raw::*;
use super::*;

/// OAuth vendors accepted by `vendor = "..."` (AgentCore's list, in config spelling).
pub const VENDORS: &[&str] = &[
    "google",
    "github",
    "slack",
    "salesforce",
    "microsoft",
    "atlassian",
    "linkedin",
    "x",
    "facebook",
    "yandex",
    "reddit",
    "zoom",
    "twitch",
    "spotify",
    "dropbox",
    "notion",
    "hubspot",
    "okta",
    "auth0",
    "cognito",
    "onelogin",
    "pingone",
    "cyberark",
    "fusionauth",
    "custom",
];

const MAX_SCOPES: usize = 10;
const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

pub(super) fn compile(path: &Path, text: &str) -> Result<Loaded, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
        ConfigError {
            diagnostics: vec![Diagnostic {
                severity: Severity::Error,
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }],
        }
    })?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut checker = Checker {
        base_dir,
        problems: Vec::new(),
    };
    let config = checker.config(path, raw);

    let locator = Locator::new(text);
    let mut diagnostics: Vec<Diagnostic> = checker
        .problems
        .into_iter()
        .map(|p| locator.place(path, p))
        .collect();
    diagnostics.sort_by_key(|d| (d.line, d.column));
    match config {
        Some(config) if !diagnostics.iter().any(|d| d.severity == Severity::Error) => Ok(Loaded {
            config,
            warnings: diagnostics,
        }),
        _ => Err(ConfigError { diagnostics }),
    }
}

/// Only the `[vault]` table of config text (for `keygate vault` commands, which must not need
/// the secrets of providers they never use).
pub(super) fn compile_vault(path: &Path, text: &str) -> Result<VaultConfig, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
        ConfigError {
            diagnostics: vec![Diagnostic {
                severity: Severity::Error,
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }],
        }
    })?;
    let mut checker = Checker {
        base_dir: match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        },
        problems: Vec::new(),
    };
    let vault = checker.vault(raw.vault.as_ref());
    let locator = Locator::new(text);
    let diagnostics: Vec<Diagnostic> = checker
        .problems
        .into_iter()
        .map(|p| locator.place(path, p))
        .filter(|d| d.severity == Severity::Error)
        .collect();
    if diagnostics.is_empty() {
        Ok(vault)
    } else {
        Err(ConfigError { diagnostics })
    }
}

struct Checker {
    base_dir: PathBuf,
    problems: Vec<Problem>,
}

impl Checker {
    fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Error,
            key: key.into(),
            message: message.into(),
        });
    }

    fn warn(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Warning,
            key: key.into(),
            message: message.into(),
        });
    }

    /// Runs every check; `None` only when an error was recorded.
    fn config(&mut self, path: &Path, raw: RawConfig) -> Option<Config> {
        let server = self.server(&raw.server);
        let authorizers: Vec<_> = raw
            .authorizers
            .iter()
            .enumerate()
            .filter_map(|(i, a)| self.authorizer(&format!("authorizers[{i}]"), a))
            .collect();
        self.unique_names("authorizers", raw.authorizers.iter().map(|a| &a.name));
        self.one_key_source_per_issuer(&authorizers);
        let authorizer_names: HashSet<&str> =
            raw.authorizers.iter().map(|a| a.name.as_str()).collect();

        let workloads: Vec<_> = raw
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| self.workload(&format!("workloads[{i}]"), w, &authorizer_names))
            .collect();
        self.unique_names("workloads", raw.workloads.iter().map(|w| &w.name));

        let providers: Vec<_> = raw
            .providers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| self.provider(&format!("providers[{i}]"), p))
            .collect();
        self.unique_names("providers", raw.providers.iter().map(|p| &p.name));

        let routes: Vec<_> = raw
            .routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                self.route(
                    &format!("routes[{i}]"),
                    r,
                    &authorizer_names,
                    &workloads,
                    &providers,
                )
            })
            .collect();
        self.unique_names("routes", raw.routes.iter().map(|r| &r.name));
        let mut seen = HashSet::new();
        for (i, route) in raw.routes.iter().enumerate() {
            let host = route.host.as_deref().map(str::to_ascii_lowercase);
            if !seen.insert((route.path_prefix.clone(), host)) {
                self.error(
                    format!("routes[{i}].path_prefix"),
                    format!(
                        "another route already has path_prefix `{}`{}",
                        route.path_prefix,
                        route
                            .host
                            .as_deref()
                            .map(|h| format!(" and host `{h}`"))
                            .unwrap_or_default()
                    ),
                );
            }
        }

        let vault = self.vault(raw.vault.as_ref());
        let audit = self.audit(raw.audit.as_ref());
        let api = raw.api.as_ref().map(|a| self.api(a, &authorizer_names));

        let data_dir = match vault.store.strip_prefix("sqlite://") {
            Some(file) => Path::new(file)
                .parent()
                .map_or_else(|| self.base_dir.clone(), Path::to_path_buf),
            None => self.base_dir.join("data"),
        };
        Some(Config {
            source: path.to_path_buf(),
            data_dir,
            server: server?,
            vault,
            audit,
            api,
            authorizers,
            workloads,
            providers,
            routes,
        })
    }

    fn unique_names<'a>(&mut self, table: &str, names: impl Iterator<Item = &'a String>) {
        let mut seen = HashSet::new();
        for (i, name) in names.enumerate() {
            if !seen.insert(name.as_str()) {
                self.error(
                    format!("{table}[{i}].name"),
                    format!("duplicate name `{name}` in [[{table}]]"),
                );
            }
        }
    }

    fn server(&mut self, raw: &RawServer) -> Option<ServerConfig> {
        let listen = self.socket_addr("server.listen", &raw.listen);
        let admin_listen = raw
            .admin_listen
            .as_deref()
            .and_then(|a| self.socket_addr("server.admin_listen", a));
        if admin_listen.is_some_and(|a| a.port() != 0) && admin_listen == listen {
            self.error(
                "server.admin_listen",
                "admin_listen must differ from listen",
            );
        }
        let tls = raw.tls.as_ref().map(|t| TlsFiles {
            cert: self.existing_file("server.tls.cert", &t.cert),
            key: self.existing_file("server.tls.key", &t.key),
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let public_url = match (&raw.public_url, listen) {
            (Some(u), _) => self.url("server.public_url", u),
            (None, Some(listen)) => Url::parse(&format!("{scheme}://{listen}")).ok(),
            (None, None) => None,
        };
        if public_url
            .as_ref()
            .is_some_and(|u| u.query().is_some() || u.fragment().is_some())
        {
            self.error(
                "server.public_url",
                "public_url must not have a query or fragment",
            );
        }
        let defaults = ServerLimits::default();
        let limits = ServerLimits {
            max_connections: match raw.max_connections {
                Some(0) => {
                    self.error(
                        "server.max_connections",
                        "max_connections must be at least 1",
                    );
                    defaults.max_connections
                }
                Some(n) => n as usize,
                None => defaults.max_connections,
            },
            header_read_timeout: self.duration(
                "server.header_read_timeout",
                raw.header_read_timeout.as_deref(),
                defaults.header_read_timeout,
            ),
            idle_timeout: self.duration(
                "server.idle_timeout",
                raw.idle_timeout.as_deref(),
                defaults.idle_timeout,
            ),
            drain_timeout: self.duration(
                "server.drain_timeout",
                raw.drain_timeout.as_deref(),
                defaults.drain_timeout,
            ),
            ..defaults
        };
        let extra_ca_certs = raw
            .extra_ca_certs
            .iter()
            .enumerate()
            .map(|(i, f)| self.existing_file(&format!("server.extra_ca_certs[{i}]"), f))
            .collect();
        Some(ServerConfig {
            listen: listen?,
            admin_listen,
            public_url: public_url?,
            tls,
            limits,
            extra_ca_certs,
        })
    }

    fn vault(&mut self, raw: Option<&RawVault>) -> VaultConfig {
        let store = raw
            .and_then(|v| v.store.clone())
            .unwrap_or_else(|| "sqlite://data/keygate.db".to_string());
        let store = if let Some(file) = store.strip_prefix("sqlite://") {
            if file.is_empty() {
                self.error(
                    "vault.store",
                    "sqlite:// needs a file path, e.g. sqlite://data/keygate.db",
                );
            }
            format!("sqlite://{}", self.base_dir.join(file).display())
        } else if store.starts_with("postgres://") || store.starts_with("postgresql://") {
            store
        } else {
            self.error(
                "vault.store",
                "store must start with sqlite:// (embedded) or postgres:// (shared by replicas)",
            );
            store
        };
        let key = raw
            .and_then(|v| v.key.clone())
            .unwrap_or_else(|| "file:data/vault.key".to_string());
        let key_source = SecretSource::parse(&key, &self.base_dir);
        if key_source.is_literal() {
            self.error(
                "vault.key",
                "the vault key must be `env:NAME` or `file:PATH`, never inline",
            );
        }
        let previous_keys = raw
            .map(|v| &v.previous_keys[..])
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let source = SecretSource::parse(k, &self.base_dir);
                if source.is_literal() {
                    self.error(
                        format!("vault.previous_keys[{i}]"),
                        "previous keys must be `env:NAME` or `file:PATH`",
                    );
                }
                source
            })
            .collect();
        VaultConfig {
            store,
            key: key_source,
            previous_keys,
            cache_capacity: raw.and_then(|v| v.cache_capacity).unwrap_or(100_000),
        }
    }

    fn audit(&mut self, raw: Option<&RawAudit>) -> AuditConfig {
        let path = raw.map_or("data/audit.jsonl", |a| a.path.as_str());
        let sink = match path {
            "-" => AuditSink::Stdout,
            "" => {
                self.error("audit.path", "audit path is empty; use \"-\" for stdout");
                AuditSink::Stdout
            }
            p => AuditSink::File(self.base_dir.join(p)),
        };
        let queue_capacity = raw.and_then(|a| a.queue_capacity).unwrap_or(10_000);
        if queue_capacity == 0 {
            self.error("audit.queue_capacity", "queue_capacity must be at least 1");
        }
        AuditConfig {
            sink,
            queue_capacity,
        }
    }

    fn api(&mut self, raw: &RawApi, authorizers: &HashSet<&str>) -> ApiConfig {
        if raw.region.is_empty()
            || !raw
                .region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            self.error(
                "api.region",
                format!("`{}` is not a region name like us-west-2", raw.region),
            );
        }
        if raw.account_id.len() != 12 || !raw.account_id.chars().all(|c| c.is_ascii_digit()) {
            self.error("api.account_id", "account_id must be 12 digits");
        }
        if let Some(name) = &raw.default_authorizer
            && !authorizers.contains(name.as_str())
        {
            self.error(
                "api.default_authorizer",
                format!("unknown authorizer `{name}`"),
            );
        }
        if raw.credentials.is_empty() {
            self.warn(
                "api",
                "no [[api.credentials]]: every identity API call will be refused",
            );
        }
        let credentials = raw
            .credentials
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let key = format!("api.credentials[{i}]");
                if c.access_key_id.len() < 16
                    || !c.access_key_id.chars().all(|ch| ch.is_ascii_alphanumeric())
                {
                    self.error(
                        format!("{key}.access_key_id"),
                        "access_key_id must be 16 or more letters and digits",
                    );
                }
                let secret =
                    self.secret(&format!("{key}.secret_access_key"), &c.secret_access_key)?;
                Some(ApiCredential {
                    access_key_id: c.access_key_id.clone(),
                    secret_access_key: secret,
                })
            })
            .collect();
        ApiConfig {
            region: raw.region.clone(),
            account_id: raw.account_id.clone(),
            max_workload_identities: raw.max_workload_identities.unwrap_or(100),
            max_credential_providers: raw.max_credential_providers.unwrap_or(100),
            default_authorizer: raw.default_authorizer.clone(),
            credentials,
        }
    }

    fn authorizer(&mut self, key: &str, raw: &RawAuthorizer) -> Option<AuthorizerConfig> {
        self.name(&format!("{key}.name"), &raw.name, NameRule::Identifier);
        let discovery_url = self.url(&format!("{key}.discovery_url"), &raw.discovery_url);
        if discovery_url
            .as_ref()
            .is_some_and(|u| crate::inbound::discovery::expected_issuer(u).is_none())
        {
            self.error(
                format!("{key}.discovery_url"),
                "discovery_url must end in /.well-known/openid-configuration or /.well-known/oauth-authorization-server",
            );
        }
        let allow_insecure_http = raw.allow_insecure_http.unwrap_or(false);
        if let Some(url) = &discovery_url {
            self.fetched_url(&format!("{key}.discovery_url"), url, allow_insecure_http);
        }
        if raw.allowed_audience.is_none() && raw.allowed_clients.is_none() {
            self.warn(
                format!("{key}.name"),
                "authorizer checks neither `allowed_audience` nor `allowed_clients`: any token of the IdP (an ID token, a token for another app) is accepted",
            );
        }
        let max_token_lifetime = self.duration(
            &format!("{key}.max_token_lifetime"),
            raw.max_token_lifetime.as_deref(),
            DEFAULT_MAX_TOKEN_LIFETIME,
        );
        for (field, list) in [
            ("allowed_audience", &raw.allowed_audience),
            ("allowed_clients", &raw.allowed_clients),
        ] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                self.error(
                    format!("{key}.{field}"),
                    format!("{field} is empty, so no token could pass; omit it to skip the check"),
                );
            }
        }
        let custom_claims = raw
            .custom_claims
            .iter()
            .enumerate()
            .filter_map(|(i, c)| self.claim_rule(&format!("{key}.custom_claims[{i}]"), c))
            .collect();
        Some(AuthorizerConfig {
            name: raw.name.clone(),
            discovery_url: discovery_url?,
            allowed_audience: raw.allowed_audience.clone(),
            allowed_clients: raw.allowed_clients.clone(),
            allowed_scopes: raw.allowed_scopes.clone(),
            user_claim: raw.user_claim.clone().unwrap_or_else(|| "sub".to_string()),
            leeway: self.duration(
                &format!("{key}.leeway"),
                raw.leeway.as_deref(),
                DEFAULT_LEEWAY,
            ),
            custom_claims,
            cache_verified_tokens: raw.cache_verified_tokens.unwrap_or(true),
            max_token_lifetime,
            allow_insecure_http,
        })
    }

    /// Two discovery URLs naming the same issuer would be two key sources for one set of users:
    /// refused (the second one is reported).
    fn one_key_source_per_issuer(&mut self, authorizers: &[AuthorizerConfig]) {
        let mut seen: Vec<(String, &AuthorizerConfig)> = Vec::new();
        for (i, authorizer) in authorizers.iter().enumerate() {
            let Some(issuer) =
                crate::inbound::discovery::expected_issuer(&authorizer.discovery_url)
            else {
                continue;
            };
            match seen.iter().find(|(other, _)| *other == issuer) {
                Some((_, first)) if first.discovery_url != authorizer.discovery_url => self.error(
                    format!("authorizers[{i}].discovery_url"),
                    format!(
                        "names issuer `{issuer}` like authorizer `{}` ({}): one issuer needs one discovery_url",
                        first.name, first.discovery_url
                    ),
                ),
                Some(_) => {}
                None => seen.push((issuer, authorizer)),
            }
        }
    }

    /// A URL keygate itself fetches: never link-local, https unless loopback or allowed.
    fn fetched_url(&mut self, key: &str, url: &Url, allow_insecure_http: bool) {
        if let Err(e) = crate::egress::check(url, None, allow_insecure_http) {
            self.error(key, format!("`{url}`: {e}"));
        }
    }

    fn claim_rule(&mut self, key: &str, raw: &RawCustomClaim) -> Option<ClaimRule> {
        if raw.claim.is_empty() {
            self.error(format!("{key}.claim"), "claim name is empty");
        }
        let operator = match raw.operator.as_str() {
            "equals" => ClaimOperator::Equals,
            "contains" => ClaimOperator::Contains,
            "contains_any" => ClaimOperator::ContainsAny,
            other => {
                self.error(
                    format!("{key}.operator"),
                    format!(
                        "unknown operator `{other}`; expected equals, contains or contains_any"
                    ),
                );
                return None;
            }
        };
        let values = match (&raw.value, operator) {
            (StringOrList::One(v), ClaimOperator::Equals | ClaimOperator::Contains) => {
                vec![v.clone()]
            }
            (StringOrList::Many(v), ClaimOperator::ContainsAny) if !v.is_empty() => v.clone(),
            (_, ClaimOperator::ContainsAny) => {
                self.error(
                    format!("{key}.value"),
                    "contains_any takes a non-empty list of strings",
                );
                return None;
            }
            (StringOrList::Many(_), _) => {
                self.error(
                    format!("{key}.value"),
                    "equals and contains take one string; use contains_any for a list",
                );
                return None;
            }
        };
        Some(ClaimRule {
            claim: raw.claim.clone(),
            operator,
            values,
        })
    }

    fn workload(
        &mut self,
        key: &str,
        raw: &RawWorkload,
        authorizers: &HashSet<&str>,
    ) -> WorkloadConfig {
        self.name(&format!("{key}.name"), &raw.name, NameRule::Workload);
        if let Some(a) = &raw.authorizer
            && !authorizers.contains(a.as_str())
        {
            self.error(
                format!("{key}.authorizer"),
                format!("unknown authorizer `{a}`"),
            );
        }
        for (i, u) in raw.allowed_return_urls.iter().enumerate() {
            self.url(&format!("{key}.allowed_return_urls[{i}]"), u);
        }
        WorkloadConfig {
            name: raw.name.clone(),
            authorizer: raw.authorizer.clone(),
            allowed_return_urls: raw.allowed_return_urls.clone(),
        }
    }

    fn provider(&mut self, key: &str, raw: &RawProvider) -> Option<ProviderConfig> {
        self.name(&format!("{key}.name"), &raw.name, NameRule::Provider);
        let kind = match raw.kind.as_str() {
            "oauth2" => ProviderKind::OAuth2(Box::new(self.oauth2_provider(key, raw)?)),
            "api_key" => {
                let oauth_fields = [
                    ("vendor", raw.vendor.is_some()),
                    ("client_id", raw.client_id.is_some()),
                    ("client_secret", raw.client_secret.is_some()),
                    ("discovery_url", raw.discovery_url.is_some()),
                    ("token_endpoint", raw.token_endpoint.is_some()),
                    (
                        "authorization_endpoint",
                        raw.authorization_endpoint.is_some(),
                    ),
                ];
                for (field, present) in oauth_fields {
                    if present {
                        self.error(
                            format!("{key}.{field}"),
                            format!("`{field}` does not apply to kind = \"api_key\""),
                        );
                    }
                }
                let Some(api_key) = &raw.api_key else {
                    self.error(format!("{key}.kind"), "kind = \"api_key\" needs `api_key`");
                    return None;
                };
                ProviderKind::ApiKey {
                    api_key: self.secret(&format!("{key}.api_key"), api_key)?,
                }
            }
            other => {
                self.error(
                    format!("{key}.kind"),
                    format!("unknown kind `{other}`; expected oauth2 or api_key"),
                );
                return None;
            }
        };
        Some(ProviderConfig {
            name: raw.name.clone(),
            kind,
        })
    }

    fn oauth2_provider(&mut self, key: &str, raw: &RawProvider) -> Option<OAuth2Provider> {
        if raw.api_key.is_some() {
            self.error(
                format!("{key}.api_key"),
                "`api_key` does not apply to kind = \"oauth2\"",
            );
        }
        let vendor = raw.vendor.clone().unwrap_or_else(|| "custom".to_string());
        if !VENDORS.contains(&vendor.as_str()) {
            self.error(
                format!("{key}.vendor"),
                format!(
                    "unknown vendor `{vendor}`; expected one of {}",
                    VENDORS.join(", ")
                ),
            );
        }
        let Some(client_id) = raw.client_id.clone().filter(|c| !c.is_empty()) else {
            self.error(format!("{key}.kind"), "kind = \"oauth2\" needs `client_id`");
            return None;
        };
        let client_secret = match &raw.client_secret {
            Some(s) => Some(self.secret(&format!("{key}.client_secret"), s)?),
            None => None,
        };
        let discovery_url = raw
            .discovery_url
            .as_deref()
            .and_then(|u| self.url(&format!("{key}.discovery_url"), u));
        let authorization_endpoint = raw
            .authorization_endpoint
            .as_deref()
            .and_then(|u| self.url(&format!("{key}.authorization_endpoint"), u));
        let token_endpoint = raw
            .token_endpoint
            .as_deref()
            .and_then(|u| self.url(&format!("{key}.token_endpoint"), u));
        let allow_insecure_http = raw.allow_insecure_http.unwrap_or(false);
        for (field, url) in [
            ("discovery_url", &discovery_url),
            ("token_endpoint", &token_endpoint),
        ] {
            if let Some(url) = url {
                self.fetched_url(&format!("{key}.{field}"), url, allow_insecure_http);
            }
        }
        let tenant_domain_vendor = matches!(
            vendor.as_str(),
            "okta" | "auth0" | "cognito" | "onelogin" | "pingone" | "cyberark" | "fusionauth"
        );
        if vendor == "custom" && raw.discovery_url.is_none() && raw.token_endpoint.is_none() {
            self.error(
                format!("{key}.vendor"),
                "a custom provider needs `discovery_url`, or `issuer` + `authorization_endpoint` + `token_endpoint`",
            );
        }
        if tenant_domain_vendor
            && raw.domain.is_none()
            && raw.discovery_url.is_none()
            && raw.token_endpoint.is_none()
        {
            self.error(
                format!("{key}.vendor"),
                format!(
                    "vendor `{vendor}` needs `domain` (your tenant's host name) or `discovery_url`"
                ),
            );
        }
        let client_auth = match raw.client_auth.as_deref() {
            // Unset: the way the vendor's documentation authenticates clients.
            None => crate::providers::vendors::dialect(&vendor).client_auth,
            Some("client_secret_basic") => ClientAuth::ClientSecretBasic,
            Some("client_secret_post") => ClientAuth::ClientSecretPost,
            Some(other) => {
                self.error(
                    format!("{key}.client_auth"),
                    format!("unknown client_auth `{other}`; expected client_secret_basic or client_secret_post"),
                );
                ClientAuth::ClientSecretBasic
            }
        };
        Some(OAuth2Provider {
            vendor,
            client_id,
            client_secret,
            discovery_url,
            issuer: raw.issuer.clone(),
            authorization_endpoint,
            token_endpoint,
            client_auth,
            tenant: raw.tenant.clone(),
            domain: raw.domain.clone(),
            allow_insecure_http,
        })
    }

    fn route(
        &mut self,
        key: &str,
        raw: &RawRoute,
        authorizers: &HashSet<&str>,
        workloads: &[WorkloadConfig],
        providers: &[ProviderConfig],
    ) -> Option<RouteConfig> {
        self.name(&format!("{key}.name"), &raw.name, NameRule::Identifier);
        let prefix = &raw.path_prefix;
        if !prefix.starts_with('/') {
            self.error(
                format!("{key}.path_prefix"),
                "path_prefix must start with `/`",
            );
        } else if prefix.contains(['?', '#', '%', '\\'])
            || prefix.split('/').any(|s| s == "." || s == "..")
        {
            self.error(
                format!("{key}.path_prefix"),
                "path_prefix must be a plain path: no `?`, `#`, `%`, `\\` or dot segments",
            );
        } else if ["/identities/", "/.well-known/"]
            .iter()
            .any(|r| prefix.starts_with(r))
            || prefix == "/identities"
        {
            self.error(
                format!("{key}.path_prefix"),
                "paths under /identities/ and /.well-known/ are reserved",
            );
        }
        let host = raw.host.as_deref().map(|h| {
            let h = h.to_ascii_lowercase();
            if h.is_empty() || h.contains(['/', ' ', '@']) {
                self.error(format!("{key}.host"), format!("`{h}` is not a host name"));
            }
            h.split(':').next().unwrap_or_default().to_string()
        });
        let upstream = self.url(&format!("{key}.upstream"), &raw.upstream);
        if let Some(u) = &upstream {
            if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
                self.error(
                    format!("{key}.upstream"),
                    "upstream must not carry a query, fragment or user info",
                );
            }
            if u.host_str().is_none() {
                self.error(format!("{key}.upstream"), "upstream needs a host");
            }
        }
        if let Some(a) = &raw.authorizer
            && !authorizers.contains(a.as_str())
        {
            self.error(
                format!("{key}.authorizer"),
                format!("unknown authorizer `{a}`"),
            );
        }
        let workload = match &raw.workload {
            Some(w) => {
                let found = workloads.iter().find(|x| &x.name == w);
                if found.is_none() {
                    self.error(format!("{key}.workload"), format!("unknown workload `{w}`"));
                }
                found
            }
            None => None,
        };
        let timeout = self.duration(
            &format!("{key}.timeout"),
            raw.timeout.as_deref(),
            DEFAULT_ROUTE_TIMEOUT,
        );
        let ca_file = raw
            .ca_file
            .as_deref()
            .map(|f| self.existing_file(&format!("{key}.ca_file"), f));
        let credential = match &raw.credential {
            Some(c) => {
                Some(self.credential(&format!("{key}.credential"), c, raw, workload, providers)?)
            }
            None => None,
        };
        Some(RouteConfig {
            name: raw.name.clone(),
            path_prefix: prefix.clone(),
            host,
            upstream: upstream?,
            authorizer: raw.authorizer.clone(),
            workload: raw.workload.clone(),
            timeout,
            ca_file,
            credential,
        })
    }

    fn credential(
        &mut self,
        key: &str,
        raw: &RawCredential,
        route: &RawRoute,
        workload: Option<&WorkloadConfig>,
        providers: &[ProviderConfig],
    ) -> Option<CredentialConfig> {
        let flow = match raw.flow.as_str() {
            "user_federation" => Flow::UserFederation,
            "m2m" => Flow::M2m,
            "api_key" => Flow::ApiKey,
            "passthrough" => Flow::Passthrough,
            other => {
                self.error(
                    format!("{key}.flow"),
                    format!("unknown flow `{other}`; expected user_federation, m2m, api_key or passthrough"),
                );
                return None;
            }
        };
        let provider = match (&raw.provider, flow) {
            (Some(_), Flow::Passthrough) => {
                self.error(
                    format!("{key}.provider"),
                    "flow = \"passthrough\" forwards the inbound JWT and takes no provider",
                );
                None
            }
            (None, Flow::Passthrough) => None,
            (None, _) => {
                self.error(format!("{key}.flow"), "this flow needs `provider`");
                None
            }
            (Some(name), _) => {
                let found = providers.iter().find(|p| &p.name == name);
                if found.is_none() {
                    self.error(
                        format!("{key}.provider"),
                        format!("unknown provider `{name}`"),
                    );
                }
                found
            }
        };
        if let Some(p) = provider {
            match (&p.kind, flow) {
                (ProviderKind::OAuth2(o), Flow::M2m) if o.client_secret.is_none() => {
                    self.error(
                        format!("{key}.provider"),
                        format!(
                            "flow = \"m2m\" needs provider `{}` to have client_secret",
                            p.name
                        ),
                    );
                }
                (ProviderKind::OAuth2(_), Flow::UserFederation | Flow::M2m)
                | (ProviderKind::ApiKey { .. }, Flow::ApiKey) => {}
                (ProviderKind::OAuth2(_), _) => {
                    self.error(
                        format!("{key}.flow"),
                        format!(
                            "provider `{}` is oauth2: use user_federation or m2m",
                            p.name
                        ),
                    );
                }
                (ProviderKind::ApiKey { .. }, _) => {
                    self.error(
                        format!("{key}.flow"),
                        format!(
                            "provider `{}` is an api_key provider: use flow = \"api_key\"",
                            p.name
                        ),
                    );
                }
            }
        }
        if flow == Flow::Passthrough && route.authorizer.is_none() {
            self.error(
                format!("{key}.flow"),
                "flow = \"passthrough\" needs the route to have an `authorizer`",
            );
        }
        if flow != Flow::Passthrough && route.authorizer.is_some() && route.workload.is_none() {
            self.error(
                format!("{key}.flow"),
                "a route that takes user JWTs and injects a credential needs `workload` (which agent the traffic belongs to)",
            );
        }
        if raw.scopes.len() > MAX_SCOPES {
            self.error(
                format!("{key}.scopes"),
                format!("at most {MAX_SCOPES} scopes per request"),
            );
        }
        if raw
            .scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            self.error(
                format!("{key}.scopes"),
                "a scope must be non-empty and contain no spaces",
            );
        }
        let return_url = if flow == Flow::UserFederation {
            let allowed = workload
                .map(|w| &w.allowed_return_urls[..])
                .unwrap_or_default();
            match &raw.return_url {
                Some(u) if workload.is_some() && !allowed.contains(u) => {
                    self.error(
                        format!("{key}.return_url"),
                        format!("`{u}` is not one of the workload's allowed_return_urls"),
                    );
                    None
                }
                Some(u) => Some(u.clone()),
                None => {
                    let first = allowed.first().cloned();
                    if first.is_none() {
                        self.error(
                            format!("{key}.flow"),
                            "flow = \"user_federation\" needs `return_url` (where the browser goes after consent), or a `workload` with allowed_return_urls",
                        );
                    }
                    first
                }
            }
        } else {
            if raw.return_url.is_some() {
                self.error(
                    format!("{key}.return_url"),
                    "return_url applies only to flow = \"user_federation\"",
                );
            }
            None
        };
        if raw.force_authentication && flow != Flow::UserFederation {
            self.error(
                format!("{key}.force_authentication"),
                "force_authentication applies only to flow = \"user_federation\"",
            );
        }
        let injection = self.injection(key, raw, flow);
        let pass_headers = self.pass_headers(key, &raw.pass_headers, &injection);
        Some(CredentialConfig {
            provider: raw.provider.clone(),
            flow,
            scopes: raw.scopes.clone(),
            return_url,
            force_authentication: raw.force_authentication,
            injection,
            pass_headers,
        })
    }

    /// `pass_headers`: each a header keygate would otherwise drop on a credential route, and
    /// never the header the credential goes in.
    fn pass_headers(
        &mut self,
        key: &str,
        raw: &[String],
        injection: &Injection,
    ) -> Vec<HeaderName> {
        let mut names = Vec::with_capacity(raw.len());
        for header in raw {
            let Ok(name) = HeaderName::from_bytes(header.as_bytes()) else {
                self.error(
                    format!("{key}.pass_headers"),
                    format!("`{header}` is not a valid header name"),
                );
                continue;
            };
            if matches!(injection, Injection::Header { name: injected, .. } if *injected == name) {
                self.error(
                    format!("{key}.pass_headers"),
                    format!("`{header}` is where this route's credential goes"),
                );
            } else if !crate::proxy::headers::is_client_credential(&name) {
                self.error(
                    format!("{key}.pass_headers"),
                    format!(
                        "`{header}` is not a header keygate drops on credential routes (those are: {})",
                        crate::proxy::headers::CLIENT_CREDENTIAL_HEADERS.join(", ")
                    ),
                );
            } else {
                names.push(name);
            }
        }
        names
    }

    fn injection(&mut self, key: &str, raw: &RawCredential, flow: Flow) -> Injection {
        if flow == Flow::Passthrough
            && (raw.header.is_some() || raw.format.is_some() || raw.query_param.is_some())
        {
            self.error(format!("{key}.flow"), "flow = \"passthrough\" forwards the Authorization header as it came; header, format and query_param do not apply");
        }
        let format = raw
            .format
            .clone()
            .unwrap_or_else(|| "Bearer {token}".to_string());
        if format.matches("{token}").count() != 1 {
            self.error(
                format!("{key}.format"),
                "format must contain `{token}` exactly once",
            );
        }
        if let Some(param) = &raw.query_param {
            if raw.header.is_some() {
                self.error(
                    format!("{key}.query_param"),
                    "set either `header` or `query_param`, not both",
                );
            }
            if param.is_empty()
                || !param
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c))
            {
                self.error(
                    format!("{key}.query_param"),
                    format!("`{param}` is not a plain query parameter name"),
                );
            }
            return Injection::QueryParam(param.clone());
        }
        let header = raw.header.as_deref().unwrap_or("Authorization");
        let name = match HeaderName::from_bytes(header.as_bytes()) {
            Ok(n) => n,
            Err(_) => {
                self.error(
                    format!("{key}.header"),
                    format!("`{header}` is not a valid header name"),
                );
                http::header::AUTHORIZATION
            }
        };
        if crate::proxy::headers::is_hop_by_hop(&name) || name == http::header::HOST {
            self.error(
                format!("{key}.header"),
                format!("`{header}` cannot carry a credential"),
            );
        }
        Injection::Header { name, format }
    }

    fn name(&mut self, key: &str, value: &str, rule: NameRule) {
        let (ok_char, min, max, what): (fn(char) -> bool, usize, usize, &str) = match rule {
            NameRule::Identifier => (
                |c| c.is_ascii_alphanumeric() || "-_.".contains(c),
                1,
                128,
                "letters, digits, `-`, `_`, `.`",
            ),
            NameRule::Workload => (
                |c| c.is_ascii_alphanumeric() || "-_.".contains(c),
                3,
                255,
                "3 to 255 letters, digits, `-`, `_`, `.`",
            ),
            NameRule::Provider => (
                |c| c.is_ascii_alphanumeric() || "-_".contains(c),
                1,
                128,
                "1 to 128 letters, digits, `-`, `_`",
            ),
        };
        if value.len() < min || value.len() > max || !value.chars().all(ok_char) {
            self.error(key, format!("invalid name `{value}`: use {what}"));
        }
    }

    fn duration(&mut self, key: &str, value: Option<&str>, default: Duration) -> Duration {
        let Some(value) = value else { return default };
        match humantime::parse_duration(value) {
            Ok(d) if d.is_zero() => {
                self.error(key, "duration must be greater than zero");
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(
                    key,
                    format!("bad duration `{value}` ({e}); write e.g. \"90s\", \"10m\", \"1h\""),
                );
                default
            }
        }
    }

    fn socket_addr(&mut self, key: &str, value: &str) -> Option<SocketAddr> {
        match value.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    key,
                    format!(
                        "`{value}` is not a listen address; write IP:PORT, e.g. 127.0.0.1:8080"
                    ),
                );
                None
            }
        }
    }

    fn url(&mut self, key: &str, value: &str) -> Option<Url> {
        match Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
            Ok(_) => {
                self.error(
                    key,
                    format!("`{value}` must be an http:// or https:// URL with a host"),
                );
                None
            }
            Err(e) => {
                self.error(key, format!("`{value}` is not a URL: {e}"));
                None
            }
        }
    }

    fn existing_file(&mut self, key: &str, value: &str) -> PathBuf {
        let path = self.base_dir.join(value);
        if !path.is_file() {
            self.error(key, format!("file `{}` does not exist", path.display()));
        }
        path
    }

    fn secret(&mut self, key: &str, value: &str) -> Option<SecretString> {
        let source = SecretSource::parse(value, &self.base_dir);
        if source.is_literal() {
            self.warn(
                key,
                "secret written inline; use `env:NAME` or `file:PATH` outside local development",
            );
        }
        match source.resolve() {
            Ok(s) => Some(s),
            Err(e) => {
                self.error(key, e.to_string());
                None
            }
        }
    }
}

#[derive(Clone, Copy)]
enum NameRule {
    Identifier,
    Workload,
    Provider,
}
