//! The runtime: one checked config compiled into what requests use ([`build`]). Routes hold
//! their authorizer and outbound credential resolved ([`route`]); the proxy only matches and
//! forwards, and [`crate::state`] only swaps runtimes on reload.

mod build;
pub(crate) mod route;

use std::collections::HashMap;
use std::sync::Arc;

pub(crate) use build::{BuildContext, BuildError, build};
pub(crate) use route::{Outbound, Route, RouteTable, UserFederation};

use crate::config::Config;
use crate::inbound::Authorizer;
use crate::providers::{Provider, m2m::M2mTokens};

/// Everything compiled from one config file.
pub struct Runtime {
    pub(crate) config: Arc<Config>,
    pub routes: RouteTable,
    /// The config's authorizers by name (readiness and the identity API's workloads name them;
    /// routes hold theirs).
    pub authorizers: HashMap<String, Arc<Authorizer>>,
    /// The config's providers by name (the identity API reads them too).
    pub(crate) providers: HashMap<String, Provider>,
    /// Machine-to-machine tokens (also kept in the vault, so a reload refetches nothing).
    pub(crate) m2m: M2mTokens,
    /// Refreshes of users' tokens in progress, merged per vault entry.
    pub(crate) refreshes: moka::future::Cache<crate::vault::Owner, Arc<secrecy::SecretString>>,
}
