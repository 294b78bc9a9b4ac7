//! The credential phase: what the route's flow puts upstream (an M2M token, an API key; the
//! user's own token comes with the consent flow) and how it is put there (a header with a
//! format, or a query parameter). The inbound credential is always removed first.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use url::form_urlencoded;

use crate::config::{CredentialConfig, Flow, Injection};
use crate::consent::{self, Obtained, refresh};
use crate::error::{ConsentChallenge, ProxyError};
use crate::inbound::AuthError;

use crate::inbound::Caller;
use crate::providers::Provider;
use crate::state::{AppState, Runtime};

/// Where a client retrying a forced route names the consent session it completed (its
/// `sessionUri`). keygate's own: never forwarded.
pub static CONSENT_SESSION_HEADER: http::header::HeaderName =
    http::header::HeaderName::from_static("x-keygate-consent-session");

/// The secret to inject for this request, if the route's flow injects one.
/// `consent_session` is the `sessionUri` a client presents (in [`CONSENT_SESSION_HEADER`]) when
/// it retries a forced route after completing the consent it was asked for.
pub async fn resolve(
    state: &AppState,
    runtime: &Runtime,
    credential: &CredentialConfig,
    caller: &Caller,
    consent_session: Option<&str>,
    request_id: &str,
) -> Result<Option<SecretString>, ProxyError> {
    let provider = || {
        credential
            .provider
            .as_ref()
            .and_then(|name| runtime.providers.get(name))
            .ok_or_else(|| ProxyError::Internal("route names a provider the runtime lacks"))
    };
    match credential.flow {
        Flow::Passthrough => Ok(None),
        Flow::ApiKey => match provider()? {
            Provider::ApiKey(key) => Ok(Some(key.clone())),
            Provider::OAuth2(_) => Err(ProxyError::Internal("api_key flow on an oauth2 provider")),
        },
        Flow::M2m => {
            let Provider::OAuth2(client) = provider()? else {
                return Err(ProxyError::Internal("m2m flow on an api_key provider"));
            };
            let workload = caller
                .workload
                .as_deref()
                .ok_or_else(|| ProxyError::Internal("an m2m route reached without a workload"))?;
            let token = runtime
                .m2m
                .token(state.vault(), client, workload, &credential.scopes)
                .await?;
            Ok(Some(token))
        }
        Flow::UserFederation => {
            user_token(
                state,
                runtime,
                credential,
                caller,
                consent_session,
                request_id,
            )
            .await
        }
    }
}

/// The consent flow's view of the gateway for this request.
fn consent_context<'a>(state: &'a AppState, runtime: &'a Runtime) -> consent::Context<'a> {
    consent::Context {
        vault: state.vault(),
        metrics: state.metrics(),
        audit: state.audit(),
        public_url: &runtime.config.server.public_url,
        refreshes: &runtime.refreshes,
    }
}

/// The user's own token from the vault, or a consent challenge when there is none usable (or
/// the route forces a fresh authentication): [`consent::token_or_challenge`].
async fn user_token(
    state: &AppState,
    runtime: &Runtime,
    credential: &CredentialConfig,
    caller: &Caller,
    consent_session: Option<&str>,
    request_id: &str,
) -> Result<Option<SecretString>, ProxyError> {
    let provider = credential
        .provider
        .as_deref()
        .ok_or_else(|| ProxyError::Internal("user_federation route without a provider"))?;
    let (Some(workload), Some(user)) = (caller.workload.as_deref(), caller.user.as_ref()) else {
        return Err(ProxyError::Auth(AuthError::MissingUser));
    };
    let wanted = consent::Wanted {
        workload,
        user,
        provider,
        client: match runtime.providers.get(provider) {
            Some(Provider::OAuth2(client)) => Some(client),
            _ => None,
        },
        scopes: &credential.scopes,
        force_authentication: credential.force_authentication,
        completed_session: consent_session,
    };
    let details = || async {
        let return_url = credential
            .return_url
            .clone()
            .ok_or_else(|| ProxyError::Internal("user_federation route without a return_url"))?;
        Ok::<_, ProxyError>(consent::SessionDetails {
            return_url,
            custom_state: None,
            custom_parameters: Vec::new(),
        })
    };
    let cx = consent_context(state, runtime);
    match consent::token_or_challenge(&cx, &wanted, request_id, details).await? {
        Obtained::Token(token) => Ok(Some(token)),
        Obtained::Challenge(started) => Err(challenge(started, provider)),
    }
}

fn challenge(started: consent::Started, provider: &str) -> ProxyError {
    ProxyError::ConsentRequired(Box::new(ConsentChallenge {
        authorization_url: started.authorization_url,
        session_uri: started.session_uri,
        provider: provider.to_string(),
        expires_in: started.expires_in,
    }))
}

/// A refreshed user token after the upstream refused `rejected` (one retry); `None` when the
/// route is not a user-federation route or there is nothing to refresh with.
pub async fn after_rejection(
    state: &AppState,
    runtime: &Runtime,
    credential: &CredentialConfig,
    caller: &Caller,
    rejected: &SecretString,
    request_id: &str,
) -> Option<SecretString> {
    let provider = credential.provider.as_deref()?;
    let (workload, user) = (caller.workload.as_deref()?, caller.user.as_ref()?);
    let Some(Provider::OAuth2(client)) = runtime.providers.get(provider) else {
        return None;
    };
    let owner = consent::user_owner(workload, user, provider);
    refresh::after_rejection(
        &consent_context(state, runtime),
        client,
        &owner,
        rejected,
        request_id,
    )
    .await
}

/// Puts the secret in its header (replacing whatever the client sent under that name), marked
/// sensitive so HTTP/2 never indexes it.
pub fn inject_header(
    headers: &mut HeaderMap,
    name: &HeaderName,
    format: &str,
    secret: &SecretString,
) -> Result<(), ProxyError> {
    let value = format.replace("{token}", secret.expose_secret());
    let mut value = HeaderValue::from_str(&value).map_err(ProxyError::CredentialNotAHeader)?;
    value.set_sensitive(true);
    headers.remove(name);
    headers.insert(name.clone(), value);
    Ok(())
}

/// The query with `param` set to the secret (any value the client sent for it dropped).
pub fn query_with(query: Option<&str>, param: &str, secret: &SecretString) -> String {
    let kept = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name != param);
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .append_pair(param, secret.expose_secret())
        .finish()
}

/// Where a route's credential goes, when it has one.
pub fn injection(credential: Option<&CredentialConfig>) -> Option<&Injection> {
    credential
        .filter(|c| c.flow != Flow::Passthrough)
        .map(|c| &c.injection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_param_replaces_a_client_supplied_one() {
        let secret = SecretString::from("k&y=1".to_string());
        assert_eq!(
            query_with(Some("q=a+b&key=forged"), "key", &secret),
            "q=a+b&key=k%26y%3D1"
        );
        assert_eq!(query_with(None, "key", &secret), "key=k%26y%3D1");
    }

    #[test]
    fn header_is_formatted_sensitive_and_replaces_the_clients() {
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("forged"));
        let name = HeaderName::from_static("x-api-key");
        inject_header(
            &mut headers,
            &name,
            "Key {token}",
            &SecretString::from("s3cret".to_string()),
        )
        .unwrap();
        assert_eq!(headers.get_all("x-api-key").iter().count(), 1);
        assert_eq!(headers["x-api-key"], "Key s3cret");
        assert!(headers["x-api-key"].is_sensitive());
    }
}
