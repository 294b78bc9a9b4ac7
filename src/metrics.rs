//! Prometheus metrics: one registry per gateway (no globals), metric names prefixed `keygate_`,
//! labels only from bounded sets (route names, status codes, fixed reasons), never user ids or
//! tokens.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub(crate) requests_total: IntCounterVec,
    pub(crate) request_duration: HistogramVec,
    pub(crate) upstream_duration: HistogramVec,
    pub(crate) config_reloads_total: IntCounterVec,
    pub(crate) config_last_reload_success: IntGauge,
    pub(crate) connections_open: IntGauge,
    pub(crate) inbound_auth_failures_total: IntCounterVec,
    pub(crate) jwks_fetches_total: IntCounterVec,
    pub(crate) vault_lookups_total: IntCounterVec,
    pub(crate) vault_integrity_errors_total: prometheus::IntCounter,
    pub(crate) token_requests_total: IntCounterVec,
    pub(crate) audit_refused_total: prometheus::IntCounter,
    /// Consent sessions by outcome: started, authorized, denied (at the provider), completed,
    /// user_mismatch.
    consent_sessions_total: IntCounterVec,
    /// Consent sessions waiting for the user (set at each scrape from the vault).
    pub(crate) consent_sessions_pending: IntGauge,
    /// Share of vault lookups answered by the cache (set at each scrape).
    vault_cache_hit_ratio: prometheus::Gauge,
}

/// `keygate_vault_lookups_total{result}` values.
const VAULT_LOOKUP_RESULTS: &[&str] = &[
    "cache_hit",
    "store_hit",
    "absent",
    "integrity_error",
    "unavailable",
];

/// `keygate_consent_sessions_total{result}` values. `scope_reduced` counts consents whose
/// provider said it granted fewer scopes than requested (the tokens are served all the same).
const CONSENT_RESULTS: &[&str] = &[
    "started",
    "authorized",
    "denied",
    "completed",
    "user_mismatch",
    "refresh_refused",
    "scope_reduced",
];

/// `keygate_token_requests_total{grant}` values.
const GRANTS: &[&str] = &["authorization_code", "refresh_token", "client_credentials"];

/// `keygate_token_requests_total{result}` values.
const TOKEN_RESULTS: &[&str] = &["success", "refused", "unreachable", "error"];

/// Statuses shown at 0 for every route: success and the ones keygate itself answers there.
const ROUTE_STATUSES: &[&str] = &["200", "401", "403", "502", "503", "504"];

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = &registry;
        let metrics = Metrics {
            requests_total: counters(
                r,
                "keygate_requests_total",
                "Requests handled by the proxy, by route and status code.",
                &["route", "status"],
            )?,
            request_duration: histograms(
                r,
                "keygate_request_duration_seconds",
                "Time from request received to response headers sent, by route.",
            )?,
            upstream_duration: histograms(
                r,
                "keygate_upstream_duration_seconds",
                "Time the upstream took to answer with response headers, by route.",
            )?,
            config_reloads_total: counters(
                r,
                "keygate_config_reloads_total",
                "Config reloads, by result.",
                &["result"],
            )?,
            config_last_reload_success: register(
                r,
                IntGauge::new(
                    "keygate_config_last_reload_success",
                    "1 when the last config reload succeeded (or none was tried), 0 when it was rejected.",
                )?,
            )?,
            connections_open: register(
                r,
                IntGauge::new(
                    "keygate_connections_open",
                    "Open client connections on the proxy listener.",
                )?,
            )?,
            inbound_auth_failures_total: counters(
                r,
                "keygate_inbound_auth_failures_total",
                "Callers refused, by reason.",
                &["reason"],
            )?,
            jwks_fetches_total: counters(
                r,
                "keygate_jwks_fetches_total",
                "Fetches of an IdP's discovery document and JWKS, by authorizer and result.",
                &["authorizer", "result"],
            )?,
            vault_lookups_total: counters(
                r,
                "keygate_vault_lookups_total",
                "Vault reads, by result: cache_hit, store_hit, absent, integrity_error, unavailable.",
                &["result"],
            )?,
            vault_integrity_errors_total: register(
                r,
                prometheus::IntCounter::new(
                    "keygate_vault_integrity_errors_total",
                    "Vault records that failed to open (tampered, moved, or sealed by an unknown key); treated as absent.",
                )?,
            )?,
            token_requests_total: counters(
                r,
                "keygate_token_requests_total",
                "Requests to providers' token endpoints, by provider, grant and result.",
                &["provider", "grant", "result"],
            )?,
            audit_refused_total: register(
                r,
                prometheus::IntCounter::new(
                    "keygate_audit_refused_total",
                    "Requests refused because the audit queue was full (never served unaudited).",
                )?,
            )?,
            consent_sessions_total: counters(
                r,
                "keygate_consent_sessions_total",
                "3-legged OAuth consent sessions, by outcome.",
                &["result"],
            )?,
            consent_sessions_pending: register(
                r,
                IntGauge::new(
                    "keygate_consent_sessions_pending",
                    "Consent sessions started and not yet completed or expired (all replicas).",
                )?,
            )?,
            vault_cache_hit_ratio: register(
                r,
                prometheus::Gauge::new(
                    "keygate_vault_cache_hit_ratio",
                    "Share of vault lookups answered from the in-memory cache since start.",
                )?,
            )?,
            registry: registry.clone(),
        };
        let build_info = gauges(
            r,
            "keygate_build_info",
            "Build information; the value is always 1.",
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        metrics.config_last_reload_success.set(1);
        Ok(metrics)
    }

    /// Counts a consent session outcome.
    pub(crate) fn consent(&self, result: &str) {
        self.consent_sessions_total
            .with_label_values(&[result])
            .inc();
    }

    /// Shows at 0 every series whose label values are known before anything happens
    /// (Prometheus' advice), so alerts and dashboards never see "no data": auth failures by
    /// reason, vault lookups and consent sessions by result, reloads, and for the config's
    /// routes and OAuth providers their requests by the statuses keygate itself answers and
    /// their token requests by grant and result. Called at start and on every reload.
    pub(crate) fn zero_known_series(
        &self,
        auth_reasons: &[&str],
        routes: &[&str],
        oauth_providers: &[&str],
    ) {
        for reason in auth_reasons {
            self.inbound_auth_failures_total
                .with_label_values(&[reason]);
        }
        for result in VAULT_LOOKUP_RESULTS {
            self.vault_lookups_total.with_label_values(&[result]);
        }
        for result in CONSENT_RESULTS {
            self.consent_sessions_total.with_label_values(&[result]);
        }
        for result in ["success", "failure"] {
            self.config_reloads_total.with_label_values(&[result]);
        }
        self.requests_total.with_label_values(&["_none", "404"]);
        for route in routes {
            for status in ROUTE_STATUSES {
                self.requests_total.with_label_values(&[route, status]);
            }
        }
        for provider in oauth_providers {
            for grant in GRANTS {
                for result in TOKEN_RESULTS {
                    self.token_requests_total
                        .with_label_values(&[provider, grant, result]);
                }
            }
        }
    }

    /// Recomputes the derived gauges from the counters they summarise.
    pub(crate) fn update_ratios(&self) {
        let count =
            |result: &str| self.vault_lookups_total.with_label_values(&[result]).get() as f64;
        let hits = count("cache_hit");
        let total = hits + count("store_hit") + count("absent") + count("integrity_error");
        self.vault_cache_hit_ratio
            .set(if total > 0.0 { hits / total } else { 0.0 });
    }

    /// Everything in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// Registers a metric and hands it back.
fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M, prometheus::Error> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counters(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn gauges(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, prometheus::Error> {
    register(registry, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

/// Latency histograms by route.
fn histograms(
    registry: &Registry,
    name: &str,
    help: &str,
) -> Result<HistogramVec, prometheus::Error> {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    register(registry, HistogramVec::new(opts, &["route"])?)
}
