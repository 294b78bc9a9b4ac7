//! keygate: a self-hosted identity gateway for AI agents.
//!
//! Agents send their tool traffic through keygate. It checks who is calling, takes that caller's
//! credential for the tool from an encrypted vault, rewrites the outbound `Authorization` header
//! and forwards the request. The modules follow the request:
//!
//! - [`config`]: `routes.toml`, read and checked; [`rules`]: the rules config and API share.
//! - [`runtime`]: a checked config compiled into routes with resolved authorizers and credentials.
//! - [`server`]: listeners, TLS, HTTP/1.1 and HTTP/2, limits, reload and graceful drain.
//! - [`router`]: reserved paths versus proxied ones.
//! - [`inbound`]: who is calling: JWT authorizers over OIDC discovery, workload access tokens.
//! - [`proxy`]: route matching, path normalisation, header rewriting, forwarding.
//! - [`error`]: the proxy's own responses, produced in one place.
//! - [`admin`], [`metrics`], [`audit`]: health, readiness, Prometheus metrics, the audit log.
//! - [`logging`]: log lines on stderr, control characters escaped.
//! - [`tls`]: rustls configs and development certificates; [`upstream`]: the pooled HTTP client.
//! - [`fetch`], [`egress`]: keygate's own bounded fetches (discovery, JWKS, token endpoints) and where they may go.
//! - [`vault`]: envelope encryption of stored secrets, SQLite/PostgreSQL stores, moka cache.
//! - [`providers`], [`consent`]: credential providers, M2M tokens, 3-legged OAuth and refresh.
//! - [`consent_endpoints`]: the consent flow's browser-facing HTTP endpoints (authorize, callback).
//! - [`directory`]: workload identities and credential providers, from config and API.
//! - [`identity_api`]: the AgentCore-compatible identity API (SigV4, AWS error shapes).

mod admin;
mod audit;
mod body;
pub mod config;
pub mod consent;
mod consent_endpoints;
pub mod dev_echo;
pub mod directory;
pub mod egress;
mod error;
mod fetch;
mod fsutil;
pub mod identity_api;
pub mod inbound;
pub mod logging;
pub mod metrics;
pub mod providers;
pub mod proxy;
mod router;
mod rules;
mod runtime;
mod server;
pub mod state;
pub mod tls;
pub mod upstream;
pub mod vault;

pub use config::Config;
pub use server::{Control, Gateway};
