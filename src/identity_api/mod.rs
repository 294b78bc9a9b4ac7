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

mod access_tokens;
mod credential_providers;
pub(crate) mod error;
mod operation;
mod replay;
mod resource_credentials;
pub mod sigv4;
mod token_vault;
mod validate;
mod workload_identities;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::audit::{AuditEvent, AuditSlot, Outcome};
use crate::body::{self, Body};
use crate::config::ApiConfig;
use crate::inbound::UserId;
use crate::proxy::ConnInfo;
use crate::state::{AppState, Runtime};
pub(crate) use error::ApiError;
pub(crate) use operation::Operation;

/// Largest request body accepted (a user token may be 128 KiB).
const MAX_BODY_BYTES: usize = 256 * 1024;
/// Longest a client may take to send its body.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One API call in progress: what operations read, and what they report for the audit line.
struct Call {
    request_id: String,
    state: AppState,
    runtime: Arc<Runtime>,
    workload: Option<String>,
    user: Option<UserId>,
    provider: Option<String>,
}

impl Call {
    /// The `[api]` section (present, or the call would not have been dispatched).
    fn api(&self) -> Result<&ApiConfig, ApiError> {
        self.runtime
            .config
            .api
            .as_ref()
            .ok_or_else(|| ApiError::Internal("no [api] section".into()))
    }

    /// The directory service (workload identities and credential providers).
    fn directory(&self) -> &crate::directory::Directory {
        self.state.directory()
    }

    /// The config's entries of the runtime this call holds, for the directory.
    fn configured(&self) -> crate::directory::Configured<'_> {
        crate::directory::Configured {
            config: &self.runtime.config,
            providers: &self.runtime.providers,
        }
    }

    /// The consent flow's view of the gateway for this call.
    fn consent(&self) -> crate::consent::Context<'_> {
        self.state.consent(&self.runtime)
    }

    /// `arn:aws:bedrock-agentcore:{region}:{account}:{resource}`.
    fn arn(&self, resource: &str) -> Result<String, ApiError> {
        let api = self.api()?;
        Ok(format!(
            "arn:aws:bedrock-agentcore:{}:{}:{resource}",
            api.region, api.account_id
        ))
    }
}

/// A successful answer: status and JSON body (`None` for an empty body).
struct Reply {
    status: StatusCode,
    body: Option<serde_json::Value>,
}

impl Reply {
    fn ok(body: serde_json::Value) -> Self {
        Reply {
            status: StatusCode::OK,
            body: Some(body),
        }
    }

    fn created(body: serde_json::Value) -> Self {
        Reply {
            status: StatusCode::CREATED,
            body: Some(body),
        }
    }

    fn no_content() -> Self {
        Reply {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }
}

/// Parses a request body (an empty one is `{}`); unknown fields are refused by the types.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
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
pub(crate) fn is_api_path(path: &str) -> bool {
    Operation::from_path(path).is_some()
}

/// Handles one identity API request; never fails (errors become AWS error responses).
pub(crate) async fn handle(
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
    let arriving = Arriving {
        state,
        operation,
        request_id: &request_id,
        source: conn.peer.ip(),
    };
    let body = match arriving.admit(request, &api).await {
        Ok(body) => body,
        Err(response) => return *response,
    };
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
    let result = execute(operation, call, body, slot, arriving.source).await;
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

/// A request on its way in, before it is authenticated.
struct Arriving<'a> {
    state: &'a AppState,
    operation: Operation,
    request_id: &'a str,
    source: IpAddr,
}

impl Arriving<'_> {
    /// Refusals before the signature is verified are audited best-effort: an unauthenticated
    /// client must not be able to hold audit slots (or fill the queue) for everyone else.
    fn refuse(&self, error: ApiError) -> Box<Response<Body>> {
        self.refuse_for(error.type_name(), error)
    }

    fn refuse_for(&self, reason: &str, error: ApiError) -> Box<Response<Body>> {
        let _ = self.state.audit().record(
            AuditEvent::new(self.operation.name(), self.request_id, Outcome::Denied)
                .reason(Some(reason))
                .source(self.source),
        );
        Box::new(error.into_response(self.request_id))
    }

    /// The body of a POST, read within bounds and signed by a configured credential, used
    /// once; else the response refusing it.
    async fn admit(
        &self,
        request: Request<Incoming>,
        api: &ApiConfig,
    ) -> Result<Bytes, Box<Response<Body>>> {
        if request.method() != http::Method::POST {
            return Err(self.refuse(ApiError::UnknownOperation(format!(
                "{} {}",
                request.method(),
                request.uri().path()
            ))));
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
                return Err(self.refuse(ApiError::Validation(format!(
                    "the request body is unreadable, slower than {} s, or larger than {} KiB",
                    BODY_READ_TIMEOUT.as_secs(),
                    MAX_BODY_BYTES / 1024
                ))));
            }
        };
        self.verify_signature(&parts, &body, api)?;
        self.refuse_replay(&parts.headers).await?;
        Ok(body)
    }

    fn verify_signature(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        api: &ApiConfig,
    ) -> Result<(), Box<Response<Body>>> {
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
            body,
        };
        if let Err(refusal) =
            sigv4::verify(&signed, &api.credentials, &api.region, SystemTime::now())
        {
            tracing::info!(request_id = self.request_id, operation = self.operation.name(), %refusal, "identity API call refused");
            return Err(self.refuse(ApiError::AccessDenied(refusal.public_message().to_string())));
        }
        Ok(())
    }

    /// A signed request is good for one use (see `replay`): a captured one resent within its
    /// 5 minutes changes nothing and mints nothing.
    async fn refuse_replay(&self, headers: &http::HeaderMap) -> Result<(), Box<Response<Body>>> {
        if !replay::tracked(self.operation) {
            return Ok(());
        }
        let Some(signature) = sigv4::signature_of(headers) else {
            return Err(self.refuse(ApiError::AccessDenied("unsigned request".into())));
        };
        match self
            .state
            .vault()
            .first_use(signature, sigv4::REPLAY_MEMORY_SECS)
            .await
        {
            Ok(first) if replay::is_replay(first, crate::vault::store::now_ms()) => {
                tracing::warn!(
                    request_id = self.request_id,
                    operation = self.operation.name(),
                    "replayed identity API request refused"
                );
                Err(self.refuse_for(
                    "replay",
                    ApiError::AccessDenied(
                        "this signed request was already used: sign every request anew".to_string(),
                    ),
                ))
            }
            Ok(_) => Ok(()),
            Err(error) => Err(Box::new(
                ApiError::from(&error).into_response(self.request_id),
            )),
        }
    }
}

/// Runs the operation and writes its audit line in their own task: a client that disconnects
/// cannot cut the call short between its effect and its audit line.
async fn execute(
    operation: Operation,
    mut call: Call,
    body: Bytes,
    slot: AuditSlot,
    source: IpAddr,
) -> Result<Reply, ApiError> {
    let task = tokio::spawn(async move {
        let result = operation::run(operation, &mut call, &body).await;
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
    match task.await {
        Ok(result) => result,
        Err(_) => Err(ApiError::Internal("the operation panicked".into())),
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
fn page<T: Clone>(
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
