//! Data plane: credentials for resources, decided by the workload access token in the body
//! (which names workload and user). `GetResourceApiKey`; `GetResourceOauth2Token` for M2M
//! (client credentials, shared by the workload) and USER_FEDERATION (the user's vaulted token,
//! refreshed if needed, else a consent session polled by `sessionUri`); and
//! `CompleteResourceTokenAuth`, which binds a session to the user who started it.

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::access_tokens::jwt_user;
use super::validate;
use super::workload_identities;
use super::{ApiError, Call, Reply, parse};
use crate::consent::{self, Obtained, Polled, SessionDetails};
use crate::inbound::{UserId, WorkloadClaims};
use crate::providers::Provider;
use crate::providers::m2m::Grant;
use crate::providers::oauth::OAuthClient;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ApiKeyInput {
    workload_identity_token: String,
    resource_credential_provider_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OAuth2Input {
    workload_identity_token: String,
    resource_credential_provider_name: String,
    scopes: Vec<String>,
    oauth2_flow: String,
    session_uri: Option<String>,
    resource_oauth2_return_url: Option<String>,
    force_authentication: Option<bool>,
    custom_parameters: Option<BTreeMap<String, String>>,
    custom_state: Option<String>,
    resources: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CompleteInput {
    user_identifier: UserIdentifier,
    session_uri: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UserIdentifier {
    user_token: Option<String>,
    user_id: Option<String>,
}

/// The caller named by a workload access token; its workload must still exist.
async fn caller(call: &mut Call, token: &str) -> Result<Arc<WorkloadClaims>, ApiError> {
    validate::token("workloadIdentityToken", token)?;
    let claims = call.state.workload_tokens().verify(token).map_err(|e| {
        ApiError::Unauthorized(format!("the workload access token was refused: {e}"))
    })?;
    call.workload = Some(claims.sub.clone());
    call.user = claims.user();
    let exists = call
        .directory()
        .workload(&call.configured(), &claims.sub)
        .await?
        .is_some();
    if !exists {
        return Err(ApiError::Unauthorized(format!(
            "the workload access token names workload '{}', which no longer exists",
            claims.sub
        )));
    }
    Ok(claims)
}

async fn provider(call: &mut Call, name: &str) -> Result<Provider, ApiError> {
    validate::provider_name("resourceCredentialProviderName", name)?;
    call.provider = Some(name.to_string());
    call.directory()
        .provider(&call.configured(), name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Credential provider '{name}' not found")))
}

pub(crate) async fn api_key(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: ApiKeyInput = parse(body)?;
    caller(call, &input.workload_identity_token).await?;
    match provider(call, &input.resource_credential_provider_name).await? {
        Provider::ApiKey(key) => Ok(Reply::ok(json!({ "apiKey": key.expose_secret() }))),
        Provider::OAuth2(_) => Err(ApiError::validation(
            "resourceCredentialProviderName",
            "names an OAuth2 credential provider; use GetResourceOauth2Token",
        )),
    }
}

pub(crate) async fn oauth2_token(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: OAuth2Input = parse(body)?;
    validate::scopes("scopes", &input.scopes)?;
    let resources = input.resources.clone().unwrap_or_default();
    let audiences = input.audiences.clone().unwrap_or_default();
    validate::resources("resources", &resources)?;
    validate::audiences("audiences", &audiences)?;
    let claims = caller(call, &input.workload_identity_token).await?;
    let Provider::OAuth2(client) = provider(call, &input.resource_credential_provider_name).await?
    else {
        return Err(ApiError::validation(
            "resourceCredentialProviderName",
            "names an API key credential provider; use GetResourceApiKey",
        ));
    };
    match input.oauth2_flow.as_str() {
        "M2M" => {
            let grant = Grant {
                scopes: &input.scopes,
                resources: &resources,
                audiences: &audiences,
            };
            m2m(call, &client, &claims.sub, grant).await
        }
        "USER_FEDERATION" if !resources.is_empty() || !audiences.is_empty() => {
            Err(ApiError::validation(
                if resources.is_empty() {
                    "audiences"
                } else {
                    "resources"
                },
                "is supported with oauth2Flow M2M only: a user's vaulted token is kept per \
                 provider and scopes",
            ))
        }
        "USER_FEDERATION" => user_federation(call, &client, &claims, input).await,
        "ON_BEHALF_OF_TOKEN_EXCHANGE" => Err(ApiError::validation(
            "oauth2Flow",
            "ON_BEHALF_OF_TOKEN_EXCHANGE is not supported by keygate; use M2M or USER_FEDERATION",
        )),
        other => Err(ApiError::validation(
            "oauth2Flow",
            format!(
                "must be one of USER_FEDERATION, M2M, ON_BEHALF_OF_TOKEN_EXCHANGE (is '{other}')"
            ),
        )),
    }
}

async fn m2m(
    call: &Call,
    client: &Arc<OAuthClient>,
    workload: &str,
    grant: Grant<'_>,
) -> Result<Reply, ApiError> {
    let token = call
        .runtime
        .m2m
        .token_for(call.state.vault(), client, workload, grant)
        .await
        .map_err(|e| match &*e {
            crate::providers::m2m::CredentialError::Vault(v) => ApiError::from(v),
            crate::providers::m2m::CredentialError::Provider(p) => {
                tracing::warn!(error = %p, "M2M token request failed");
                ApiError::from(p)
            }
        })?;
    Ok(Reply::ok(json!({ "accessToken": token.expose_secret() })))
}

async fn user_federation(
    call: &Call,
    client: &Arc<OAuthClient>,
    claims: &WorkloadClaims,
    input: OAuth2Input,
) -> Result<Reply, ApiError> {
    let user = claims.user().ok_or_else(|| {
        ApiError::validation(
            "workloadIdentityToken",
            "names no user: USER_FEDERATION needs a token from GetWorkloadAccessTokenForUserId or ForJWT",
        )
    })?;
    let wanted = consent::Wanted {
        workload: &claims.sub,
        user: &user,
        provider: &input.resource_credential_provider_name,
        client: Some(client),
        scopes: &input.scopes,
        force_authentication: input.force_authentication.unwrap_or(false),
        completed_session: None,
    };
    let cx = call.consent();
    if let Some(session_uri) = &input.session_uri {
        validate::session_uri("sessionUri", session_uri)?;
        let polled = consent::poll(&cx, &wanted, session_uri, &call.request_id).await?;
        return Ok(polled_reply(call, session_uri, polled));
    }
    let details = || session_details(call, &claims.sub, &input);
    match consent::token_or_challenge(&cx, &wanted, &call.request_id, details).await? {
        Obtained::Token(token) => Ok(token_reply(&token)),
        Obtained::Challenge(started) => Ok(Reply::ok(json!({
            "authorizationUrl": started.authorization_url,
            "sessionUri": started.session_uri,
            "sessionStatus": "IN_PROGRESS",
        }))),
    }
}

fn token_reply(token: &SecretString) -> Reply {
    Reply::ok(json!({ "accessToken": token.expose_secret() }))
}

/// A poll's answer: the token once the session is completed, `IN_PROGRESS` while it is not,
/// `FAILED` once it failed or expired (or is someone else's).
fn polled_reply(call: &Call, session_uri: &str, polled: Polled) -> Reply {
    match polled {
        Polled::Token(token) => token_reply(&token),
        Polled::InProgress => Reply::ok(json!({
            "authorizationUrl": consent::authorization_url(
                &call.runtime.config.server.public_url,
                session_uri,
            ),
            "sessionUri": session_uri,
            "sessionStatus": "IN_PROGRESS",
        })),
        Polled::Failed => {
            Reply::ok(json!({ "sessionUri": session_uri, "sessionStatus": "FAILED" }))
        }
    }
}

/// What a new session carries, checked only when one is started: the return URL (one of the
/// workload's registered ones), the caller's custom state and parameters.
async fn session_details(
    call: &Call,
    workload: &str,
    input: &OAuth2Input,
) -> Result<SessionDetails, ApiError> {
    let registered = workload_identities::find(call, workload)
        .await?
        .allowed_return_urls;
    let return_url = match &input.resource_oauth2_return_url {
        Some(url) => {
            validate::return_url("resourceOauth2ReturnUrl", url)?;
            if !registered.contains(url) {
                return Err(ApiError::validation(
                    "resourceOauth2ReturnUrl",
                    format!(
                        "is not one of workload '{workload}''s allowedResourceOauth2ReturnUrls; \
                         register it with UpdateWorkloadIdentity first"
                    ),
                ));
            }
            url.clone()
        }
        None => match registered.as_slice() {
            [only] => only.clone(),
            _ => {
                return Err(ApiError::validation(
                    "resourceOauth2ReturnUrl",
                    format!(
                        "is required: workload '{workload}' has {} allowedResourceOauth2ReturnUrls",
                        registered.len()
                    ),
                ));
            }
        },
    };
    if let Some(state) = &input.custom_state {
        validate::custom_state("customState", state)?;
    }
    let custom_parameters = input.custom_parameters.clone().unwrap_or_default();
    validate::custom_parameters("customParameters", &custom_parameters)?;
    Ok(SessionDetails {
        return_url,
        custom_state: input.custom_state.clone(),
        custom_parameters: custom_parameters.into_iter().collect(),
    })
}

pub(crate) async fn complete(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: CompleteInput = parse(body)?;
    validate::session_uri("sessionUri", &input.session_uri)?;
    let session = consent::peek(call.state.vault(), &input.session_uri).await?;
    call.workload = Some(session.workload.clone());
    call.provider = Some(session.provider.clone());
    // A session of a workload deleted since cannot put tokens under its name.
    let workload = workload_identities::find(call, &session.workload).await?;
    let user = match (
        input.user_identifier.user_token,
        input.user_identifier.user_id,
    ) {
        (Some(token), None) => {
            validate::user_token("userIdentifier.userToken", &token)?;
            jwt_user(call, &workload, "userIdentifier.userToken", &token).await?
        }
        (None, Some(id)) => {
            validate::user_id("userIdentifier.userId", &id)?;
            UserId { issuer: None, id }
        }
        _ => {
            return Err(ApiError::validation(
                "userIdentifier",
                "must hold exactly one of userToken and userId",
            ));
        }
    };
    call.user = Some(user.clone());
    let completed = consent::complete(call.state.vault(), &input.session_uri, &user).await;
    match &completed {
        Ok(_) => call.state.metrics().consent("completed"),
        Err(consent::ConsentError::UserMismatch) => call.state.metrics().consent("user_mismatch"),
        Err(_) => {}
    }
    completed?;
    Ok(Reply::ok(json!({})))
}
