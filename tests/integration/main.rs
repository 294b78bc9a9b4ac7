//! keygate's integration tests: one binary, real sockets, keygate booted from TOML text.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod audit;
mod check;
mod cli_vault;
mod code_shape;
mod common;
mod consent;
mod consent_edges;
mod consent_issuer;
mod consent_scopes;
mod consent_sessions;
mod credentials;
mod deploy;
mod disk_full;
mod fake_idp;
mod fleet_start;
mod hygiene;
mod idp_trust;
mod inbound;
mod key_reload;
mod lifecycle;
mod limits;
mod metrics_start;
mod oidc;
mod oidc_interop;
mod provider_cooldown;
mod proxy;
mod quickstart;
mod replicas;
mod request_span;
mod small_fs;
mod store;
mod tls;
mod vault;
mod vendors;
