//! The AgentCore-compatible identity API on the `listen` address: the same REST-JSON
//! operations, paths and shapes as AWS's `bedrock-agentcore` (data plane) and
//! `bedrock-agentcore-control` (control plane), so AWS's SDKs work against keygate unchanged.
//!
//! Every call: the body is read (bounded in size and time), the SigV4 signature is verified
//! against `[[api.credentials]]` (refusals so far are audited best-effort), an audit slot is
//! reserved (a full audit queue refuses the call rather than serving it unaudited), and the
//! operation runs in its own task together with its audit line, so a client that disconnects
//! cannot separate an effect from its record.
//!
//! - [`workload_identities`], [`credential_providers`], [`token_vault`]: the control plane.
//! - [`access_tokens`]: workload access tokens (data plane).
//! - [`resource_credentials`]: OAuth2 tokens, API keys and consent completion (data plane).

pub mod access_tokens;
pub mod credential_providers;
pub mod error;
pub mod replay;
pub mod resource_credentials;
pub mod sigv4;
pub mod token_vault;
pub mod validate;
pub mod workload_identities;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::audit::{AuditEvent, Outcome};
use crate::body::{self, Body};
use crate::config::ApiConfig;
use crate::inbound::UserId;
use crate::proxy::ConnInfo;
use crate::state::{AppState, Runtime};
pub use error::ApiError;

/// Largest request body accepted (a user token may be 128 KiB).
const MAX_BODY_BYTES: usize = 256 * 1024;
/// Longest a client may take to send its body.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The operations, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    GetWorkloadAccessToken,
    GetWorkloadAccessTokenForJwt,
    GetWorkloadAccessTokenForUserId,
    GetResourceOauth2Token,
    GetResourceApiKey,
    CompleteResourceTokenAuth,
    CreateWorkloadIdentity,
    GetWorkloadIdentity,
    UpdateWorkloadIdentity,
    ListWorkloadIdentities,
    DeleteWorkloadIdentity,
    CreateOauth2CredentialProvider,
    GetOauth2CredentialProvider,
    UpdateOauth2CredentialProvider,
    ListOauth2CredentialProviders,
    DeleteOauth2CredentialProvider,
    CreateApiKeyCredentialProvider,
    GetApiKeyCredentialProvider,
    UpdateApiKeyCredentialProvider,
    ListApiKeyCredentialProviders,
    DeleteApiKeyCredentialProvider,
    GetTokenVault,
    SetTokenVaultCmk,
}

use Operation::*;

const OPERATIONS: &[(&str, Operation)] = &[
    ("/identities/GetWorkloadAccessToken", GetWorkloadAccessToken),
    (
        "/identities/GetWorkloadAccessTokenForJWT",
        GetWorkloadAccessTokenForJwt,
    ),
    (
        "/identities/GetWorkloadAccessTokenForUserId",
        GetWorkloadAccessTokenForUserId,
    ),
    ("/identities/oauth2/token", GetResourceOauth2Token),
    ("/identities/api-key", GetResourceApiKey),
    (
        "/identities/CompleteResourceTokenAuth",
        CompleteResourceTokenAuth,
    ),
    ("/identities/CreateWorkloadIdentity", CreateWorkloadIdentity),
    ("/identities/GetWorkloadIdentity", GetWorkloadIdentity),
    ("/identities/UpdateWorkloadIdentity", UpdateWorkloadIdentity),
    ("/identities/ListWorkloadIdentities", ListWorkloadIdentities),
    ("/identities/DeleteWorkloadIdentity", DeleteWorkloadIdentity),
    (
        "/identities/CreateOauth2CredentialProvider",
        CreateOauth2CredentialProvider,
    ),
    (
        "/identities/GetOauth2CredentialProvider",
        GetOauth2CredentialProvider,
    ),
    (
        "/identities/UpdateOauth2CredentialProvider",
        UpdateOauth2CredentialProvider,
    ),
    (
        "/identities/ListOauth2CredentialProviders",
        ListOauth2CredentialProviders,
    ),
    (
        "/identities/DeleteOauth2CredentialProvider",
        DeleteOauth2CredentialProvider,
    ),
    (
        "/identities/CreateApiKeyCredentialProvider",
        CreateApiKeyCredentialProvider,
    ),
    (
        "/identities/GetApiKeyCredentialProvider",
        GetApiKeyCredentialProvider,
    ),
    (
        "/identities/UpdateApiKeyCredentialProvider",
        UpdateApiKeyCredentialProvider,
    ),
    (
        "/identities/ListApiKeyCredentialProviders",
        ListApiKeyCredentialProviders,
    ),
    (
        "/identities/DeleteApiKeyCredentialProvider",
        DeleteApiKeyCredentialProvider,
    ),
    ("/identities/get-token-vault", GetTokenVault),
    ("/identities/set-token-vault-cmk", SetTokenVaultCmk),
];

impl Operation {
    pub fn from_path(path: &str) -> Option<Operation> {
        OPERATIONS
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, op)| *op)
    }

    /// The operation's name, as AWS spells it (the audit event).
    pub fn name(self) -> &'static str {
        match self {
            GetWorkloadAccessTokenForJwt => "GetWorkloadAccessTokenForJWT",
            SetTokenVaultCmk => "SetTokenVaultCMK",
            GetWorkloadAccessToken => "GetWorkloadAccessToken",
            GetWorkloadAccessTokenForUserId => "GetWorkloadAccessTokenForUserId",
            GetResourceOauth2Token => "GetResourceOauth2Token",
            GetResourceApiKey => "GetResourceApiKey",
            CompleteResourceTokenAuth => "CompleteResourceTokenAuth",
            CreateWorkloadIdentity => "CreateWorkloadIdentity",
            GetWorkloadIdentity => "GetWorkloadIdentity",
            UpdateWorkloadIdentity => "UpdateWorkloadIdentity",
            ListWorkloadIdentities => "ListWorkloadIdentities",
            DeleteWorkloadIdentity => "DeleteWorkloadIdentity",
            CreateOauth2CredentialProvider => "CreateOauth2CredentialProvider",
            GetOauth2CredentialProvider => "GetOauth2CredentialProvider",
            UpdateOauth2CredentialProvider => "UpdateOauth2CredentialProvider",
            ListOauth2CredentialProviders => "ListOauth2CredentialProviders",
            DeleteOauth2CredentialProvider => "DeleteOauth2CredentialProvider",
            CreateApiKeyCredentialProvider => "CreateApiKeyCredentialProvider",
            GetApiKeyCredentialProvider => "GetApiKeyCredentialProvider",
            UpdateApiKeyCredentialProvider => "UpdateApiKeyCredentialProvider",
            ListApiKeyCredentialProviders => "ListApiKeyCredentialProviders",
            DeleteApiKeyCredentialProvider => "DeleteApiKeyCredentialProvider",
            GetTokenVault => "GetTokenVault",
        }
    }
}

/// One API call in progress: what operations read, and what they report for the audit line.
pub struct Call {
    pub request_id: String,
    pub state: AppState,
    pub runtime: Arc<Runtime>,
    pub workload: Option<String>,
    pub user: Option<UserId>,
    pub provider: Option<String>,
}

impl Call {
    /// The `[api]` section (present, or the call would not have been dispatched).
    pub fn api(&self) -> Result<&ApiConfig, ApiError> {
        self.runtime
            .config
            .api
            .as_ref()
            .ok_or_else(|| ApiError::Internal("no [api] section".into()))
    }

    /// The directory service (workload identities and credential providers).
    pub fn directory(&self) -> &crate::directory::Directory {
        self.state.directory()
    }

    /// The config's entries of the runtime this call holds, for the directory.
    pub fn configured(&self) -> crate::directory::Configured<'_> {
        crate::directory::Configured {
            config: &self.runtime.config,
            providers: &self.runtime.providers,
        }
    }

    /// The consent flow's view of the gateway for this call.
    pub fn consent(&self) -> crate::consent::Context<'_> {
        crate::consent::Context {
            vault: self.state.vault(),
            metrics: self.state.metrics(),
            audit: self.state.audit(),
            public_url: &self.runtime.config.server.public_url,
            refreshes: &self.runtime.refreshes,
        }
    }

    /// `arn:aws:bedrock-agentcore:{region}:{account}:{resource}`.
    pub fn arn(&self, resource: &str) -> Result<String, ApiError> {
        let api = self.api()?;
        Ok(format!(
            "arn:aws:bedrock-agentcore:{}:{}:{resource}",
            api.region, api.account_id
        ))
    }
}

/// A successful answer: status and JSON body (`None` for an empty body).
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<serde_json::Value>,
}

impl Reply {
    pub fn ok(body: serde_json::Value) -> Self {
        Reply {
            status: StatusCode::OK,
            body: Some(body),
        }
    }

    pub fn created(body: serde_json::Value) -> Self {
        Reply {
            status: StatusCode::CREATED,
            body: Some(body),
        }
    }

    pub fn no_content() -> Self {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }
}

/// Parses a request body (an empty one is `{}`); unknown fields are refused by the types.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ApiError::Validation(body_error(&e)))
}

/// A body error for the caller. serde's own text names unknown and missing fields (useful)
/// but quotes the offending value for a wrong type, which may be a secret in the wrong field:
/// those are reported by position only.
fn body_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.starts_with("invalid type")
        || text.starts_with("invalid value")
        || text.starts_with("invalid length")
    {
        return format!(
            "invalid request body: a field has the wrong type or value (line {}, column {})",
            error.line(),
            error.column()
        );
    }
    format!("invalid request body: {text}")
}

/// Whether this path belongs to the identity API.
pub fn is_api_path(path: &str) -> bool {
    Operation::from_path(path).is_some()
}

/// Handles one identity API request; never fails (errors become AWS error responses).
pub async fn handle(
    state: &AppState,
    request: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Body> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let path = request.uri().path().to_string();
    let Some(operation) = Operation::from_path(&path) else {
        return ApiError::UnknownOperation(path).into_response(&request_id);
    };
    let runtime = state.runtime();
    let Some(api) = runtime.config.api.clone() else {
        return ApiError::UnknownOperation(path).into_response(&request_id);
    };
    // Refusals before the signature is verified are audited best-effort: an unauthenticated
    // client must not be able to hold audit slots (or fill the queue) for everyone else.
    let refuse = |error: ApiError| {
        let _ = state.audit().record(
            AuditEvent::new(operation.name(), &request_id, Outcome::Denied)
                .reason(Some(error.type_name()))
                .source(conn.peer.ip()),
        );
        error.into_response(&request_id)
    };
    if request.method() != http::Method::POST {
        return refuse(ApiError::UnknownOperation(format!(
            "{} {path}",
            request.method()
        )));
    }
    let (parts, incoming) = request.into_parts();
    // Bounded in size and in time: a client trickling its body cannot hold the request open.
    let read = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(incoming, MAX_BODY_BYTES).collect(),
    )
    .await;
    let body: Bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => {
            return refuse(ApiError::Validation(format!(
                "the request body is unreadable, slower than {} s, or larger than {} KiB",
                BODY_READ_TIMEOUT.as_secs(),
                MAX_BODY_BYTES / 1024
            )));
        }
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let signed = sigv4::Signed {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        host,
        body: &body,
    };
    if let Err(refusal) = sigv4::verify(&signed, &api.credentials, &api.region, SystemTime::now()) {
        tracing::info!(request_id, operation = operation.name(), %refusal, "identity API call refused");
        return refuse(ApiError::AccessDenied(refusal.public_message().to_string()));
    }
    // A signed request is good for one use (see `replay`): a captured one resent within its
    // 5 minutes changes nothing and mints nothing.
    if replay::tracked(operation) {
        let Some(signature) = sigv4::signature_of(&parts.headers) else {
            return refuse(ApiError::AccessDenied("unsigned request".into()));
        };
        match state
            .vault()
            .first_use(signature, sigv4::REPLAY_MEMORY_SECS)
            .await
        {
            Ok(first) if replay::is_replay(first, crate::vault::store::now_ms()) => {
                tracing::warn!(
                    request_id,
                    operation = operation.name(),
                    "replayed identity API request refused"
                );
                let _ = state.audit().record(
                    AuditEvent::new(operation.name(), &request_id, Outcome::Denied)
                        .reason(Some("replay"))
                        .source(conn.peer.ip()),
                );
                return ApiError::AccessDenied(
                    "this signed request was already used: sign every request anew".to_string(),
                )
                .into_response(&request_id);
            }
            Ok(_) => {}
            Err(error) => return ApiError::from(&error).into_response(&request_id),
        }
    }
    // Authenticated: reserved before anything happens, so the outcome is always written.
    let Ok(slot) = state.audit().reserve() else {
        return ApiError::Unavailable("the audit log is not keeping up; retry later".into())
            .into_response(&request_id);
    };
    let call = Call {
        request_id: request_id.clone(),
        state: state.clone(),
        runtime,
        workload: None,
        user: None,
        provider: None,
    };
    let source = conn.peer.ip();
    // The operation and its audit line run in their own task: a client that disconnects cannot
    // cut the call short between its effect and its audit line.
    let task = tokio::spawn(async move {
        let mut call = call;
        let result = run(operation, &mut call, &body).await;
        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(e) if e.is_refusal() => Outcome::Denied,
            Err(_) => Outcome::Error,
        };
        let mut event = AuditEvent::new(operation.name(), &call.request_id, outcome)
            .workload(call.workload.as_deref())
            .user(call.user.as_ref())
            .provider(call.provider.as_deref())
            .source(source);
        if let Err(error) = &result {
            event = event.reason(Some(error.type_name()));
        }
        slot.record(event);
        result
    });
    let result = match task.await {
        Ok(result) => result,
        Err(_) => Err(ApiError::Internal("the operation panicked".into())),
    };

    match result {
        Ok(reply) => respond(reply, &request_id),
        Err(error) => {
            if error.is_refusal() {
                tracing::debug!(request_id, operation = operation.name(), %error, "identity API call refused");
            } else {
                tracing::warn!(request_id, operation = operation.name(), %error, "identity API call failed");
            }
            error.into_response(&request_id)
        }
    }
}

async fn run(operation: Operation, call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    match operation {
        GetWorkloadAccessToken => access_tokens::for_workload(call, body).await,
        GetWorkloadAccessTokenForJwt => access_tokens::for_jwt(call, body).await,
        GetWorkloadAccessTokenForUserId => access_tokens::for_user_id(call, body).await,
        GetResourceOauth2Token => resource_credentials::oauth2_token(call, body).await,
        GetResourceApiKey => resource_credentials::api_key(call, body).await,
        CompleteResourceTokenAuth => resource_credentials::complete(call, body).await,
        CreateWorkloadIdentity => workload_identities::create(call, body).await,
        GetWorkloadIdentity => workload_identities::get(call, body).await,
        UpdateWorkloadIdentity => workload_identities::update(call, body).await,
        ListWorkloadIdentities => workload_identities::list(call, body).await,
        DeleteWorkloadIdentity => workload_identities::delete(call, body).await,
        CreateOauth2CredentialProvider => credential_providers::create_oauth2(call, body).await,
        GetOauth2CredentialProvider => credential_providers::get_oauth2(call, body).await,
        UpdateOauth2CredentialProvider => credential_providers::update_oauth2(call, body).await,
        ListOauth2CredentialProviders => credential_providers::list_oauth2(call, body).await,
        DeleteOauth2CredentialProvider => credential_providers::delete_oauth2(call, body).await,
        CreateApiKeyCredentialProvider => credential_providers::create_api_key(call, body).await,
        GetApiKeyCredentialProvider => credential_providers::get_api_key(call, body).await,
        UpdateApiKeyCredentialProvider => credential_providers::update_api_key(call, body).await,
        ListApiKeyCredentialProviders => credential_providers::list_api_key(call, body).await,
        DeleteApiKeyCredentialProvider => credential_providers::delete_api_key(call, body).await,
        GetTokenVault => token_vault::get(call, body).await,
        SetTokenVaultCmk => token_vault::set_cmk(call, body).await,
    }
}

fn respond(reply: Reply, request_id: &str) -> Response<Body> {
    let mut response = match reply.body {
        Some(json) => {
            let mut r = Response::new(body::full(json.to_string()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        None => Response::new(body::empty()),
    };
    *response.status_mut() = reply.status;
    if let Ok(id) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Pagination over sorted names: the page after `next_token` and the token for the next one.
pub fn page<T: Clone>(
    items: &[(String, T)],
    next_token: Option<&str>,
    max_results: Option<i64>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let max = validate::max_results(max_results)?;
    let after = match next_token {
        None => None,
        Some(token) => Some(
            URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::validation("nextToken", "is not a token this API issued")
                })?,
        ),
    };
    let start = match &after {
        None => 0,
        Some(after) => items.partition_point(|(name, _)| name <= after),
    };
    let page: Vec<&(String, T)> = items[start..].iter().take(max).collect();
    let next = (start + page.len() < items.len())
        .then(|| page.last().map(|(name, _)| URL_SAFE_NO_PAD.encode(name)))
        .flatten();
    Ok((page.into_iter().map(|(_, v)| v.clone()).collect(), next))
}
