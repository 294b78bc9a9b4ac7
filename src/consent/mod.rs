//! 3-legged OAuth consent (USER_FEDERATION) with session binding. A session is created when a
//! user has no usable token; its `authorizationUrl` points at keygate, which redirects to the
//! provider with `state` and a PKCE S256 challenge. The provider's callback exchanges the code
//! and holds the tokens sealed in the session; the browser goes to the app's return URL with
//! `session_id`. Tokens reach the user's vault entry only when `CompleteResourceTokenAuth` names
//! the same user who started the session; anyone else makes the session fail and the tokens
//! are discarded. Sessions live 10 minutes, in the vault (so any replica can serve any step).

use secrecy::SecretString;
use url::Url;

use crate::providers::ProviderError;
use crate::providers::oauth::OAuthClient;
use crate::vault::{Owner, Vault, VaultError};

mod callback;
mod complete;
pub(crate) mod lookup;
mod obtain;
pub mod pending;
pub(crate) mod refresh;
mod session;
mod start;

pub(crate) use callback::{Callback, Exchange, Response, callback};
pub use complete::{Redemption, complete, redeem};
pub(crate) use obtain::{
    ObtainError, Obtained, Polled, SessionDetails, Wanted, poll, token_or_challenge,
};
pub use session::{
    Session, SessionUser, Status, callback_url, peek, pending_count, session_id, session_owner,
    status, user_owner,
};
use session::{load, load_versioned, replace, save};
use start::started;
pub(crate) use start::{Request, Started, authorization_redirect, authorization_url, start};

/// What the consent flow uses of the gateway, handed in by its callers (the proxy, the identity
/// API): the vault, metrics and audit log, keygate's public URL, and the runtime's merging of
/// concurrent refreshes.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) vault: &'a Vault,
    pub(crate) metrics: &'a crate::metrics::Metrics,
    pub(crate) audit: &'a crate::audit::Audit,
    pub(crate) public_url: &'a Url,
    /// Refreshes of users' tokens in progress, merged per vault entry.
    pub(crate) refreshes: &'a moka::future::Cache<Owner, std::sync::Arc<SecretString>>,
}

const SESSION_LIFETIME_SECS: i64 = 600;
pub const SESSION_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("no such consent session, or it expired")]
    UnknownSession,
    #[error("the consent session was already used")]
    AlreadyUsed,
    #[error("the consent session is not authorized yet")]
    NotReady,
    #[error("the consent session failed: {0}")]
    Failed(String),
    #[error("the session was started by another user")]
    UserMismatch,
    #[error("too many consent sessions are open for this user; finish or let one expire first")]
    TooManySessions,
    #[error("the provider has no authorization endpoint")]
    NoAuthorizationEndpoint,
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// Where the consent steps find a provider's OAuth client (config or API-created).
pub(crate) trait Clients: Sync {
    fn client(
        &self,
        provider: &str,
    ) -> impl Future<Output = Option<std::sync::Arc<OAuthClient>>> + Send;
}
