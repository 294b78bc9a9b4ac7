//! Credential providers: what it takes to reach a tool. OAuth 2.0 clients (vendor presets,
//! custom endpoints or discovery; [`oauth`]) and static API keys, compiled from the config, plus
//! the machine-to-machine token cache ([`m2m`]).

mod answer;
pub(crate) mod cooldown;
pub mod m2m;
pub(crate) mod oauth;
pub(crate) mod scopes;
pub(crate) mod vendors;

use std::collections::HashMap;
use std::sync::Arc;

use secrecy::SecretString;

use crate::config::{ProviderConfig, ProviderKind};
use crate::fetch::FetchError;
use crate::upstream::UpstreamClient;
use oauth::OAuthClient;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider {provider} is unreachable: {source}")]
    Unreachable {
        provider: String,
        #[source]
        source: FetchError,
    },
    #[error("provider {provider} refused the token request (HTTP {status}, {error})")]
    Refused {
        provider: String,
        status: u16,
        /// The OAuth error code (`invalid_grant`, ...), sanitised.
        error: String,
    },
    #[error("provider {provider} answered without an access token")]
    NoToken { provider: String },
    #[error("provider {provider} gave an unreadable token answer: {reason}")]
    BadAnswer {
        provider: String,
        reason: &'static str,
    },
    #[error("provider {provider}: {message}")]
    Config { provider: String, message: String },
    #[error("provider {provider} failed moments ago; not asking again yet")]
    CoolingDown { provider: String },
}

impl ProviderError {
    /// Metric label for `keygate_token_requests_total{result}`.
    /// The provider refused keygate's client authentication or registration
    /// (`invalid_client`, `unauthorized_client`): a configuration problem to log loudly.
    pub(crate) fn is_client_misconfiguration(&self) -> bool {
        matches!(self, ProviderError::Refused { error, .. }
            if error == "invalid_client" || error == "unauthorized_client")
    }

    pub(crate) fn result(&self) -> &'static str {
        match self {
            ProviderError::Refused { .. } => "refused",
            ProviderError::Unreachable { .. } => "unreachable",
            ProviderError::NoToken { .. }
            | ProviderError::BadAnswer { .. }
            | ProviderError::Config { .. } => "error",
            ProviderError::CoolingDown { .. } => "cooldown",
        }
    }
}

/// A provider ready for use.
#[derive(Clone)]
pub(crate) enum Provider {
    OAuth2(Arc<OAuthClient>),
    ApiKey(SecretString),
}

/// The providers of one config, by name.
pub(crate) fn build(
    providers: &[ProviderConfig],
    http: &UpstreamClient,
) -> HashMap<String, Provider> {
    providers
        .iter()
        .map(|p| {
            let provider = match &p.kind {
                ProviderKind::OAuth2(config) => Provider::OAuth2(Arc::new(OAuthClient::new(
                    &p.name,
                    (**config).clone(),
                    http.clone(),
                ))),
                ProviderKind::ApiKey { api_key } => Provider::ApiKey(api_key.clone()),
            };
            (p.name.clone(), provider)
        })
        .collect()
}
