//! The checker's primitives: recording problems and checking one value (name, duration,
//! address, URL, file, secret).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::super::SecretSource;
use super::super::diagnostics::{Problem, Severity};
use crate::rules::NameRule;

use super::*;

impl Checker {
    pub(super) fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Error,
            key: key.into(),
            message: message.into(),
        });
    }

    pub(super) fn warn(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            severity: Severity::Warning,
            key: key.into(),
            message: message.into(),
        });
    }

    pub(super) fn name(&mut self, key: &str, value: &str, rule: &NameRule) {
        if !rule.accepts(value) {
            let what = rule.description;
            self.error(key, format!("invalid name `{value}`: use {what}"));
        }
    }

    pub(super) fn duration(
        &mut self,
        key: &str,
        value: Option<&str>,
        default: Duration,
    ) -> Duration {
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

    pub(super) fn socket_addr(&mut self, key: &str, value: &str) -> Option<SocketAddr> {
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

    pub(super) fn url(&mut self, key: &str, value: &str) -> Option<Url> {
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

    pub(super) fn existing_file(&mut self, key: &str, value: &str) -> PathBuf {
        let path = self.base_dir.join(value);
        if !path.is_file() {
            self.error(key, format!("file `{}` does not exist", path.display()));
        }
        path
    }

    pub(super) fn secret(&mut self, key: &str, value: &str) -> Option<SecretString> {
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

    /// A URL keygate itself fetches: never link-local, https unless loopback or allowed.
    pub(super) fn fetched_url(&mut self, key: &str, url: &Url, allow_insecure_http: bool) {
        if let Err(e) = crate::egress::check(url, None, allow_insecure_http) {
            self.error(key, format!("`{url}`: {e}"));
        }
    }

    /// A PEM file of CA certificates, readable as trust roots (or the route's client could
    /// not be built).
    pub(super) fn ca_file(&mut self, key: &str, value: &str) -> PathBuf {
        let path = self.existing_file(key, value);
        if path.is_file()
            && let Err(e) = crate::tls::client_config(Some(&path))
        {
            self.error(key, e.to_string());
        }
        path
    }
}
