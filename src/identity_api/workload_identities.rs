//! Control plane: workload identities, parse -> validate -> [`crate::directory`] -> JSON.
//! Config-defined ones are listed and readable but read-only (`ConflictException`);
//! API-created ones live in the vault, at most `[api].max_workload_identities` of them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use super::validate;
use super::{ApiError, Call, Reply, page, parse};
use crate::directory::{NewWorkload, Workload};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateInput {
    name: String,
    allowed_resource_oauth2_return_urls: Option<Vec<String>>,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NameInput {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateInput {
    name: String,
    allowed_resource_oauth2_return_urls: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ListInput {
    pub(crate) next_token: Option<String>,
    pub(crate) max_results: Option<i64>,
}

fn arn(call: &Call, name: &str) -> Result<String, ApiError> {
    call.arn(&format!(
        "workload-identity-directory/default/workload-identity/{name}"
    ))
}

fn return_urls(urls: &[String]) -> Result<(), ApiError> {
    if urls.len() > 100 {
        return Err(ApiError::validation(
            "allowedResourceOauth2ReturnUrls",
            "may hold at most 100 URLs",
        ));
    }
    for url in urls {
        validate::return_url("allowedResourceOauth2ReturnUrls member", url)?;
    }
    Ok(())
}

/// A workload by name, from the config or the API.
pub(crate) async fn find(call: &Call, name: &str) -> Result<Workload, ApiError> {
    Ok(call
        .directory()
        .get_workload(&call.configured(), name)
        .await?)
}

fn describe(call: &Call, w: &Workload) -> Result<serde_json::Value, ApiError> {
    Ok(json!({
        "name": w.name,
        "workloadIdentityArn": arn(call, &w.name)?,
        "allowedResourceOauth2ReturnUrls": w.allowed_return_urls,
        "createdTime": w.created_at,
        "lastUpdatedTime": w.updated_at,
    }))
}

pub(crate) async fn create(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: CreateInput = parse(body)?;
    validate::workload_name("name", &input.name)?;
    call.workload = Some(input.name.clone());
    let urls = input
        .allowed_resource_oauth2_return_urls
        .unwrap_or_default();
    return_urls(&urls)?;
    let tags = input.tags.unwrap_or_default();
    validate::tags("tags", &tags)?;
    let new = NewWorkload {
        name: input.name,
        allowed_return_urls: urls,
        tags,
    };
    let limit = call.api()?.max_workload_identities as usize;
    let record = call
        .directory()
        .create_workload(&call.configured(), new, limit)
        .await?;
    Ok(Reply::created(json!({
        "name": record.name,
        "workloadIdentityArn": arn(call, &record.name)?,
        "allowedResourceOauth2ReturnUrls": record.allowed_return_urls,
    })))
}

pub(crate) async fn get(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: NameInput = parse(body)?;
    validate::workload_name("name", &input.name)?;
    call.workload = Some(input.name.clone());
    let workload = find(call, &input.name).await?;
    Ok(Reply::ok(describe(call, &workload)?))
}

pub(crate) async fn update(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: UpdateInput = parse(body)?;
    validate::workload_name("name", &input.name)?;
    call.workload = Some(input.name.clone());
    if let Some(urls) = &input.allowed_resource_oauth2_return_urls {
        return_urls(urls)?;
    }
    let workload = call
        .directory()
        .update_workload(
            &call.configured(),
            &input.name,
            input.allowed_resource_oauth2_return_urls,
        )
        .await?;
    Ok(Reply::ok(describe(call, &workload)?))
}

pub(crate) async fn list(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: ListInput = parse(body)?;
    let names = call.directory().workload_names(&call.configured()).await?;
    let items: Vec<(String, String)> = names.iter().map(|n| (n.clone(), n.clone())).collect();
    let (names, next) = page(&items, input.next_token.as_deref(), input.max_results)?;
    let listed = names
        .iter()
        .map(|n| Ok(json!({ "name": n, "workloadIdentityArn": arn(call, n)? })))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let mut out = json!({ "workloadIdentities": listed });
    if let Some(next) = next {
        out["nextToken"] = json!(next);
    }
    Ok(Reply::ok(out))
}

pub(crate) async fn delete(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: NameInput = parse(body)?;
    validate::workload_name("name", &input.name)?;
    call.workload = Some(input.name.clone());
    let purged = call
        .directory()
        .delete_workload(&call.configured(), &input.name)
        .await?;
    tracing::info!(workload = %input.name, purged, "workload identity deleted with its vaulted tokens");
    Ok(Reply::no_content())
}
