//! keygate: a self-hosted identity gateway for AI agents.
//!
//! Agents send their tool traffic through keygate. It checks who is calling, takes that caller's
//! credential for the tool from an encrypted vault, rewrites the outbound `Authorization` header
//! and forwards the request.
//!
//! The modules, in layer order (each uses only modules above it; no import cycles):
//!
//! - `body`: the one streaming body type requests and responses flow through.
//! - `egress`: where keygate's own fetches may go (no link-local, no clear text off loopback).
//! - `fsutil`: small helpers for writing secret files to disk.
//! - `logging`: log lines on stderr, text or JSON, control characters escaped.
//! - `metrics`: the Prometheus registry and every metric keygate exports.
//! - `rules`: rules shared by config and API validation (names, vendors, reserved paths, hosts).
//! - `dev_echo`: `keygate dev echo`, a stand-in tool for the quickstart.
//! - `tls`: rustls configs for the listener and upstream trust, development certificates.
//! - `config`: `routes.toml`, read and checked into a [`Config`], diagnostics with line:col.
//! - `upstream`: the pooled HTTP clients (to tools, and for keygate's own fetches).
//! - `fetch`: keygate's own bounded fetches (discovery, JWKS, token endpoints).
//! - `vault`: envelope encryption of stored secrets, SQLite/PostgreSQL stores, cache, rotation.
//! - `inbound`: who is calling: JWT authorizers over OIDC discovery, workload access tokens.
//! - `providers`: credential providers: OAuth clients, static API keys, the M2M token cache.
//! - `audit`: the audit log (events, bounded queue, writer).
//! - `directory`: workload identities and credential providers, from config and API.
//! - `runtime`: a checked config compiled into routes with resolved authorizers and credentials.
//! - `consent`: 3-legged OAuth: consent sessions, callback, user tokens and their refresh.
//! - `state`: the gateway's shared state: the live runtime behind an `ArcSwap`, readiness.
//! - `admin`: the admin listener: `/healthz`, `/readyz` and `/metrics`.
//! - `error`: the proxy's own responses, every error classified in one place.
//! - `consent_endpoints`: the consent flow's browser-facing HTTP endpoints (authorize, callback).
//! - `proxy`: route matching, path normalisation, header rewriting, forwarding.
//! - `identity_api`: the AgentCore-compatible identity API (SigV4, AWS error shapes).
//! - `server`: listeners, TLS, HTTP/1.1 and HTTP/2, limits, reload and graceful drain.
//! - `router`: reserved paths versus proxied ones, the entry point of every request.
//!
//! Visibility: items are `pub(crate)` (or private) by default. What is `pub` is what the binary
//! (`src/main.rs`), the integration tests, the benches and the examples use: the public API on
//! purpose, kept as small as they allow. The compiler therefore reports dead code.

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
