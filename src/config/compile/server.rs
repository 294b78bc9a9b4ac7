//! Checks of the gateway-wide tables: `[server]`, `[vault]`, `[audit]`, `[api]`.

use std::collections::HashSet;

use url::Url;

use super::super::raw::*;
use super::super::*;

use super::*;

impl Checker {
    pub(super) fn server(&mut self, raw: &RawServer) -> Option<ServerConfig> {
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
        let tls = raw.tls.as_ref().map(|t| self.tls_files(t));
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
            .map(|(i, f)| self.ca_file(&format!("server.extra_ca_certs[{i}]"), f))
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

    pub(super) fn vault(&mut self, raw: Option<&RawVault>) -> VaultConfig {
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

    pub(super) fn audit(&mut self, raw: Option<&RawAudit>) -> AuditConfig {
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

    pub(super) fn api(&mut self, raw: &RawApi, authorizers: &HashSet<&str>) -> ApiConfig {
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

    /// The listener's certificate chain and key: files that exist and make a TLS server
    /// config (or the gateway could not start).
    fn tls_files(&mut self, raw: &RawTls) -> TlsFiles {
        let cert = self.existing_file("server.tls.cert", &raw.cert);
        let key = self.existing_file("server.tls.key", &raw.key);
        if cert.is_file()
            && key.is_file()
            && let Err(e) = crate::tls::server_config(&cert, &key)
        {
            self.error("server.tls.cert", e.to_string());
        }
        TlsFiles { cert, key }
    }
}
