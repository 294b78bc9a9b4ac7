//! Data plane: workload access tokens. For the workload alone, for a user named by id, or for
//! a user proven by a JWT that the workload's authorizer validates (config workloads name
//! theirs; API-created ones use `[api].default_authorizer`). A JWT user is issuer + subject, so
//! they never share vault entries with a user named by id.

use serde::Deserialize;
use serde_json::json;

use super::validate;
use super::workload_identities;
use super::{ApiError, Call, Reply, parse};
use crate::directory::Workload;
use crate::inbound::UserId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WorkloadInput {
    workload_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JwtInput {
    workload_name: String,
    user_token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UserIdInput {
    workload_name: String,
    user_id: String,
}

fn issue(call: &Call, workload: &str, user: Option<&UserId>) -> Result<Reply, ApiError> {
    let token = call
        .state
        .workload_tokens()
        .issue(workload, user)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Reply::ok(json!({ "workloadAccessToken": token })))
}

/// The user a JWT proves, checked by the workload's authorizer.
pub(crate) async fn jwt_user(
    call: &Call,
    workload: &Workload,
    field: &str,
    token: &str,
) -> Result<UserId, ApiError> {
    let name = workload.authorizer.as_deref().ok_or_else(|| {
        ApiError::validation(
            field,
            format!(
                "cannot be checked: workload '{}' has no authorizer (set `authorizer` on the \
                 workload in the config, or [api].default_authorizer)",
                workload.name
            ),
        )
    })?;
    let authorizer = call
        .runtime
        .authorizers
        .get(name)
        .ok_or_else(|| ApiError::Internal(format!("authorizer {name} missing")))?;
    let verified = authorizer.verify(token).await?;
    Ok(UserId {
        issuer: Some(verified.issuer.clone()),
        id: verified.user.clone(),
    })
}

pub(crate) async fn for_workload(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: WorkloadInput = parse(body)?;
    validate::workload_name("workloadName", &input.workload_name)?;
    call.workload = Some(input.workload_name.clone());
    workload_identities::find(call, &input.workload_name).await?;
    issue(call, &input.workload_name, None)
}

pub(crate) async fn for_jwt(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: JwtInput = parse(body)?;
    validate::workload_name("workloadName", &input.workload_name)?;
    validate::user_token("userToken", &input.user_token)?;
    call.workload = Some(input.workload_name.clone());
    let workload = workload_identities::find(call, &input.workload_name).await?;
    let user = jwt_user(call, &workload, "userToken", &input.user_token).await?;
    call.user = Some(user.clone());
    issue(call, &input.workload_name, Some(&user))
}

pub(crate) async fn for_user_id(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: UserIdInput = parse(body)?;
    validate::workload_name("workloadName", &input.workload_name)?;
    validate::user_id("userId", &input.user_id)?;
    call.workload = Some(input.workload_name.clone());
    let user = UserId {
        issuer: None,
        id: input.user_id,
    };
    call.user = Some(user.clone());
    workload_identities::find(call, &input.workload_name).await?;
    issue(call, &input.workload_name, Some(&user))
}
