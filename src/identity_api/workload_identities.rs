//! Control plane: workload identities. Config-defined ones are listed and readable but
//! read-only (`ConflictException`); API-created ones live in the vault, at most
//! `[api].max_workload_identities` of them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use super::validate;
use super::{ApiError, Call, Reply, page, parse};
use crate::directory::{self, Directory, Origin, Workload, WorkloadRecord, workload_owner};

/// Retries of a read-modify-write that lost a race.
const UPDATE_ATTEMPTS: usize = 3;

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
pub struct ListInput {
    pub next_token: Option<String>,
    pub max_results: Option<i64>,
}

pub fn arn(call: &Call, name: &str) -> Result<String, ApiError> {
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

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("Workload identity '{name}' not found"))
}

fn read_only(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "workload identity '{name}' is defined in keygate's config file and is read-only here"
    ))
}

/// A workload by name, from the config or the API.
pub async fn find(call: &Call, name: &str) -> Result<Workload, ApiError> {
    call.state
        .directory()
        .workload(&call.runtime, call.state.vault(), name)
        .await?
        .ok_or_else(|| not_found(name))
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

pub async fn create(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: CreateInput = parse(body)?;
    validate::workload_name("name", &input.name)?;
    call.workload = Some(input.name.clone());
    let urls = input
        .allowed_resource_oauth2_return_urls
        .unwrap_or_default();
    return_urls(&urls)?;
    let tags = input.tags.unwrap_or_default();
    validate::tags("tags", &tags)?;
    let config = &call.runtime.config;
    if config.workloads.iter().any(|w| w.name == input.name) {
        return Err(ApiError::Conflict(format!(
            "workload identity '{}' already exists (in keygate's config file)",
            input.name
        )));
    }
    let vault = call.state.vault();
    // The quota is on what the API creates; the config's workloads are the operator's.
    let existing = Directory::names(vault, directory::WORKLOAD_KIND).await?;
    let max = call.api()?.max_workload_identities as usize;
    if existing.len() >= max {
        return Err(ApiError::QuotaExceeded(format!(
            "the limit of {max} workload identities created through the API is reached \
             ([api].max_workload_identities)"
        )));
    }
    let now = directory::now();
    let record = WorkloadRecord {
        name: input.name.clone(),
        allowed_return_urls: urls.clone(),
        created_at: now,
        updated_at: now,
        tags,
    };
    if !Directory::create(vault, &workload_owner(&input.name), &record).await? {
        return Err(ApiError::Conflict(format!(
            "workload identity '{}' already exists",
            input.name
        )));
    }
    Ok(Reply::created(json!({
        "name": input.name,
        "workloadIdentityArn": arn(call, &input.name)?,
        "allowedResourceOauth2ReturnUrls": urls,
    })))
}

pub async fn get(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: NameInput = parse(body)?;
    validate::workload_name("name", &input.name)?;
    call.workload = Some(input.name.clone());
    let workload = find(call, &input.name).await?;
    Ok(Reply::ok(describe(call, &workload)?))
}

pub async fn update(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: UpdateInput = parse(body)?;
    validate::workload_name("name", &input.name)?;
    call.workload = Some(input.name.clone());
    if let Some(urls) = &input.allowed_resource_oauth2_return_urls {
        return_urls(urls)?;
    }
    if find(call, &input.name).await?.origin == Origin::Config {
        return Err(read_only(&input.name));
    }
    let vault = call.state.vault();
    let owner = workload_owner(&input.name);
    for _ in 0..UPDATE_ATTEMPTS {
        let Some(mut current) = Directory::versioned::<WorkloadRecord>(vault, &owner).await? else {
            return Err(not_found(&input.name));
        };
        if let Some(urls) = &input.allowed_resource_oauth2_return_urls {
            current.record.allowed_return_urls = urls.clone();
        }
        current.record.updated_at = directory::now().max(current.record.created_at);
        if Directory::replace(vault, &owner, current.version, &current.record).await? {
            let workload = find(call, &input.name).await?;
            return Ok(Reply::ok(describe(call, &workload)?));
        }
    }
    Err(ApiError::Conflict(format!(
        "workload identity '{}' is being changed concurrently; retry",
        input.name
    )))
}

pub async fn list(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: ListInput = parse(body)?;
    let mut names: Vec<String> = call
        .runtime
        .config
        .workloads
        .iter()
        .map(|w| w.name.clone())
        .collect();
    names.extend(Directory::names(call.state.vault(), directory::WORKLOAD_KIND).await?);
    names.sort();
    names.dedup();
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

pub async fn delete(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: NameInput = parse(body)?;
    validate::workload_name("name", &input.name)?;
    call.workload = Some(input.name.clone());
    if call
        .runtime
        .config
        .workloads
        .iter()
        .any(|w| w.name == input.name)
    {
        return Err(read_only(&input.name));
    }
    let vault = call.state.vault();
    if call
        .state
        .directory()
        .workload_record(vault, &input.name)
        .await?
        .is_none()
    {
        return Err(not_found(&input.name));
    }
    // Its tokens first: if that fails the identity is still there, and deleting it again
    // finishes the job. A workload created later under this name starts with nothing.
    let purged = Directory::purge_workload_tokens(vault, &input.name).await?;
    if !vault.delete(&workload_owner(&input.name)).await? {
        return Err(not_found(&input.name));
    }
    tracing::info!(workload = %input.name, purged, "workload identity deleted with its vaulted tokens");
    Ok(Reply::no_content())
}
