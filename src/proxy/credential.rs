//! The credential phase: what the route's flow puts upstream (an M2M token, an API key; the
//! user's own token comes with the consent flow) and how it is put there (a header with a
//! format, or a query parameter). The inbound credential is always removed first.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use url::form_urlencoded;

use crate::consent::{self, Obtained, refresh};
use crate::error::{ConsentChallenge, ProxyError};
use crate::inbound::{AuthError, Caller};
use crate::runtime::{Outbound, Route, Runtime, UserFederation};
use crate::state::AppState;

/// Where a client retrying a forced route names the consent session it completed (its
/// `sessionUri`). keygate's own: never forwarded.
pub(crate) static CONSENT_SESSION_HEADER: http::header::HeaderName =
    http::header::HeaderName::from_static("x-keygate-consent-session");

/// The secret to inject for this request, if the route's outbound credential injects one.
/// `consent_session` is the `sessionUri` a client presents (in [`CONSENT_SESSION_HEADER`]) when
/// it retries a forced route after completing the consent it was asked for.
pub(crate) async fn resolve(
    state: &AppState,
    runtime: &Runtime,
    route: &Route,
    caller: &Caller,
    consent_session: Option<&str>,
    request_id: &str,
) -> Result<Option<SecretString>, ProxyError> {
    match &route.outbound {
        Outbound::Nothing | Outbound::Passthrough => Ok(None),
        Outbound::ApiKey { key, .. } => Ok(Some(key.clone())),
        Outbound::M2m { client, scopes, .. } => {
            // A route taking user JWTs and injecting a credential always names its workload
            // (the runtime build refuses one without); workload tokens always name theirs.
            let workload = caller
                .workload
                .as_deref()
                .ok_or(ProxyError::Auth(AuthError::WrongWorkload))?;
            let token = runtime
                .m2m
                .token(state.vault(), client, workload, scopes)
                .await?;
            Ok(Some(token))
        }
        Outbound::UserFederation(user) => {
            user_token(state, runtime, user, caller, consent_session, request_id).await
        }
    }
}

/// The user's own token from the vault, or a consent challenge when there is none usable (or
/// the route forces a fresh authentication): [`consent::token_or_challenge`].
async fn user_token(
    state: &AppState,
    runtime: &Runtime,
    credential: &UserFederation,
    caller: &Caller,
    consent_session: Option<&str>,
    request_id: &str,
) -> Result<Option<SecretString>, ProxyError> {
    let provider = credential.provider();
    let (Some(workload), Some(user)) = (caller.workload.as_deref(), caller.user.as_ref()) else {
        return Err(ProxyError::Auth(AuthError::MissingUser));
    };
    let wanted = consent::Wanted {
        workload,
        user,
        provider,
        client: Some(&credential.client),
        scopes: &credential.scopes,
        force_authentication: credential.force,
        completed_session: consent_session,
    };
    let details = || async {
        Ok::<_, ProxyError>(consent::SessionDetails {
            return_url: credential.return_url.clone(),
            custom_state: None,
            custom_parameters: Vec::new(),
        })
    };
    let cx = state.consent(runtime);
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

/// A refreshed user token after the upstream refused `rejected` (one retry); `None` when
/// there is nothing to refresh with.
pub(crate) async fn after_rejection(
    state: &AppState,
    runtime: &Runtime,
    credential: &UserFederation,
    caller: &Caller,
    rejected: &SecretString,
    request_id: &str,
) -> Option<SecretString> {
    let (workload, user) = (caller.workload.as_deref()?, caller.user.as_ref()?);
    let owner = consent::user_owner(workload, user, credential.provider());
    refresh::after_rejection(
        &state.consent(runtime),
        &credential.client,
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
pub(crate) fn query_with(query: Option<&str>, param: &str, secret: &SecretString) -> String {
    let kept = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name != param);
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .append_pair(param, secret.expose_secret())
        .finish()
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
