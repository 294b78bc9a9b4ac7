//! Validation and compilation of [`RawConfig`] into [`Config`]. Every check records a
//! [`Problem`] at a key path and carries on, so one run of `keygate check` reports every problem.
//! The checker core is here; each group of tables has its file.

mod authorizers;
mod primitives;
mod providers;
mod routes;
mod server;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diagnostics::{ConfigError, Diagnostic, Locator, Problem, Severity, line_column};
use super::raw::*;
use super::*;

pub(super) const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(30);
pub(super) const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
pub(super) const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

pub(super) fn compile(path: &Path, text: &str) -> Result<Loaded, ConfigError> {
    let (raw, mut checker) = parse(path, text)?;
    let config = checker.config(path, raw);
    let mut diagnostics = checker.diagnostics(path, text);
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
    let (raw, mut checker) = parse(path, text)?;
    let vault = checker.vault(raw.vault.as_ref());
    let mut diagnostics = checker.diagnostics(path, text);
    diagnostics.retain(|d| d.severity == Severity::Error);
    if diagnostics.is_empty() {
        Ok(vault)
    } else {
        Err(ConfigError { diagnostics })
    }
}

/// The raw TOML (a syntax or shape error is the only diagnostic) and a checker for it, with
/// relative paths taken from the config's folder.
pub(crate) fn parse(path: &Path, text: &str) -> Result<(RawConfig, Checker), ConfigError> {
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
    let checker = Checker {
        base_dir,
        problems: Vec::new(),
    };
    Ok((raw, checker))
}

pub(super) struct Checker {
    base_dir: PathBuf,
    problems: Vec<Problem>,
}

impl Checker {
    /// The problems recorded, placed at their line and column in `text`.
    fn diagnostics(self, path: &Path, text: &str) -> Vec<Diagnostic> {
        let locator = Locator::new(text);
        self.problems
            .into_iter()
            .map(|p| locator.place(path, p))
            .collect()
    }

    /// Runs every check; `None` only when an error was recorded.
    pub(super) fn config(&mut self, path: &Path, raw: RawConfig) -> Option<Config> {
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
        self.unique_route_targets(&raw.routes);
        let vault = self.vault(raw.vault.as_ref());
        let audit = self.audit(raw.audit.as_ref());
        let api = raw.api.as_ref().map(|a| self.api(a, &authorizer_names));
        Some(Config {
            source: path.to_path_buf(),
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

    /// One route per path prefix and host (the host as requests are matched).
    fn unique_route_targets(&mut self, routes: &[RawRoute]) {
        let mut seen = HashSet::new();
        for (i, route) in routes.iter().enumerate() {
            let host = route.host.as_deref().map(crate::rules::host_without_port);
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
    }

    pub(super) fn unique_names<'a>(
        &mut self,
        table: &str,
        names: impl Iterator<Item = &'a String>,
    ) {
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
}
