//! Control plane: OAuth2 and API-key credential providers. Config-defined providers are listed
//! and readable but read-only; API-created ones are kept in the vault with their secrets sealed,
//! and no response ever carries a secret. Provider names are one namespace across both kinds,
//! as the data plane looks them up by name alone. Settings keygate cannot honour (AWS Secrets
//! Manager sources, private endpoints, certificates, private-key-JWT client authentication,
//! token exchange) are refused with a `ValidationException` saying why, never dropped.
//!
//! - [`shapes`]: AgentCore's provider configuration shapes to keygate's and back.
//! - [`oauth2`], [`api_key`]: the operations of each kind; listing and deletion are shared here.

mod api_key;
mod oauth2;
mod shapes;

pub use api_key::{create_api_key, get_api_key, update_api_key};
pub use oauth2::{create_oauth2, get_oauth2, update_oauth2};

use serde::Deserialize;
use serde_json::{Value, json};

use super::validate;
use super::workload_identities::ListInput;
use super::{ApiError, Call, Reply, page, parse};
use crate::config::ProviderKind;
use crate::directory::{self, Directory, ProviderRecord, ProviderSpec, provider_owner};
use crate::providers::vendors;

const UPDATE_ATTEMPTS: usize = 3;
/// The vault's limit on one secret.
const MAX_SECRET_BYTES: usize = crate::vault::credential::MAX_TOKEN_BYTES;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct NameInput {
    name: String,
}

pub(super) fn oauth2_arn(call: &Call, name: &str) -> Result<String, ApiError> {
    call.arn(&format!(
        "token-vault/default/oauth2credentialprovider/{name}"
    ))
}

pub(super) fn api_key_arn(call: &Call, name: &str) -> Result<String, ApiError> {
    call.arn(&format!(
        "token-vault/default/apikeycredentialprovider/{name}"
    ))
}

/// Where AgentCore would keep the secret; keygate keeps it sealed in its own vault and
/// reports this name for tools that expect the field.
pub(super) fn secret_arn(call: &Call, kind: &str, name: &str) -> Result<Value, ApiError> {
    let api = call.api()?;
    Ok(json!({
        "secretArn": format!(
            "arn:aws:secretsmanager:{}:{}:secret:bedrock-agentcore-identity!default/{kind}/{name}",
            api.region, api.account_id
        )
    }))
}

/// Adds `createdTime` and `lastUpdatedTime` (Get and Update answers carry them; Create's do not).
pub(super) fn with_times(out: &mut Value, times: Option<(f64, f64)>) {
    if let Some((created, updated)) = times {
        out["createdTime"] = json!(created);
        out["lastUpdatedTime"] = json!(updated);
    }
}

pub(super) fn not_found(kind: &str, name: &str) -> ApiError {
    ApiError::NotFound(format!("{kind} credential provider '{name}' not found"))
}

pub(super) fn read_only(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "credential provider '{name}' is defined in keygate's config file and is read-only here"
    ))
}

pub(super) fn refuse_external(
    field: &str,
    source: Option<&str>,
    config: Option<&Value>,
) -> Result<(), ApiError> {
    match source {
        None | Some("MANAGED") => {}
        Some("EXTERNAL") => {
            return Err(ApiError::validation(
                field,
                "EXTERNAL is not supported: keygate keeps secrets sealed in its own vault, not in \
                 AWS Secrets Manager; give the secret itself",
            ));
        }
        Some(other) => {
            return Err(ApiError::validation(
                field,
                format!("must be MANAGED or EXTERNAL (is '{other}')"),
            ));
        }
    }
    if config.is_some() {
        return Err(ApiError::validation(
            field.replace("Source", "Config"),
            "is not supported: keygate does not read AWS Secrets Manager; give the secret itself",
        ));
    }
    Ok(())
}

pub(super) fn refuse_present(
    field: &str,
    value: Option<&Value>,
    why: &str,
) -> Result<(), ApiError> {
    match value {
        Some(_) => Err(ApiError::validation(
            field,
            format!("is not supported: {why}"),
        )),
        None => Ok(()),
    }
}

pub(super) fn secret(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(s) if s.len() > MAX_SECRET_BYTES => Err(ApiError::validation(
            field,
            "is larger than 4 KB, the vault's limit for one secret",
        )),
        Some(s) if s.is_empty() => Ok(None),
        other => Ok(other),
    }
}

pub(super) fn check_new_name(call: &Call, name: &str) -> Result<(), ApiError> {
    validate::provider_name("name", name)?;
    if directory::config_provider(&call.runtime, name).is_some() {
        return Err(ApiError::Conflict(format!(
            "credential provider '{name}' already exists (in keygate's config file)"
        )));
    }
    Ok(())
}

/// Stores a new API-created provider, within the quota; its name was checked by
/// [`check_new_name`].
pub(super) async fn create(
    call: &Call,
    name: &str,
    tags: std::collections::BTreeMap<String, String>,
    spec: ProviderSpec,
) -> Result<(), ApiError> {
    let now = directory::now();
    let record = ProviderRecord {
        name: name.to_string(),
        created_at: now,
        updated_at: now,
        tags,
        spec,
    };
    let max = call.api()?.max_credential_providers as usize;
    if Directory::names(call.state.vault(), directory::PROVIDER_KIND)
        .await?
        .len()
        >= max
    {
        return Err(ApiError::QuotaExceeded(format!(
            "the limit of {max} credential providers created through the API is reached \
             ([api].max_credential_providers)"
        )));
    }
    if !Directory::create(call.state.vault(), &provider_owner(name), &record).await? {
        return Err(ApiError::Conflict(format!(
            "credential provider '{name}' already exists"
        )));
    }
    Ok(())
}

/// Read-modify-write of an API-created provider; `change` fails when the kind is wrong.
pub(super) async fn update_record(
    call: &Call,
    name: &str,
    mut change: impl FnMut(&mut ProviderRecord) -> Result<(), ApiError>,
) -> Result<ProviderRecord, ApiError> {
    if directory::config_provider(&call.runtime, name).is_some() {
        return Err(read_only(name));
    }
    let vault = call.state.vault();
    let owner = provider_owner(name);
    for _ in 0..UPDATE_ATTEMPTS {
        let Some(mut current) = Directory::versioned::<ProviderRecord>(vault, &owner).await? else {
            return Err(ApiError::NotFound(format!(
                "credential provider '{name}' not found"
            )));
        };
        change(&mut current.record)?;
        current.record.updated_at = directory::now().max(current.record.created_at);
        if Directory::replace(vault, &owner, current.version, &current.record).await? {
            return Ok(current.record);
        }
    }
    Err(ApiError::Conflict(format!(
        "credential provider '{name}' is being changed concurrently; retry"
    )))
}

/// Every provider of one kind, from both origins, sorted by name: (name, summary).
pub(super) async fn listing(call: &Call, oauth2: bool) -> Result<Vec<(String, Value)>, ApiError> {
    let started = call.state.directory().started_at();
    let mut items = Vec::new();
    for p in &call.runtime.config.providers {
        let entry = match (&p.kind, oauth2) {
            (ProviderKind::OAuth2(_), true) => json!({
                "name": p.name,
                "credentialProviderVendor": directory::config_vendor(&p.kind).unwrap_or("CustomOauth2"),
                "credentialProviderArn": oauth2_arn(call, &p.name)?,
                "createdTime": started,
                "lastUpdatedTime": started,
            }),
            (ProviderKind::ApiKey { .. }, false) => json!({
                "name": p.name,
                "credentialProviderArn": api_key_arn(call, &p.name)?,
                "createdTime": started,
                "lastUpdatedTime": started,
            }),
            _ => continue,
        };
        items.push((p.name.clone(), entry));
    }
    let vault = call.state.vault();
    for name in Directory::names(vault, directory::PROVIDER_KIND).await? {
        let Some(record) = call.state.directory().provider_record(vault, &name).await? else {
            continue;
        };
        let entry = match (&record.spec, oauth2) {
            (ProviderSpec::OAuth2(spec), true) => json!({
                "name": name,
                "credentialProviderVendor": vendors::agentcore_name(&spec.vendor).unwrap_or("CustomOauth2"),
                "credentialProviderArn": oauth2_arn(call, &name)?,
                "createdTime": record.created_at,
                "lastUpdatedTime": record.updated_at,
            }),
            (ProviderSpec::ApiKey { .. }, false) => json!({
                "name": name,
                "credentialProviderArn": api_key_arn(call, &name)?,
                "createdTime": record.created_at,
                "lastUpdatedTime": record.updated_at,
            }),
            _ => continue,
        };
        items.push((name, entry));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(items)
}

pub(super) async fn list(call: &Call, body: &[u8], oauth2: bool) -> Result<Reply, ApiError> {
    let input: ListInput = parse(body)?;
    let items = listing(call, oauth2).await?;
    let (listed, next) = page(&items, input.next_token.as_deref(), input.max_results)?;
    let mut out = json!({ "credentialProviders": listed });
    if let Some(next) = next {
        out["nextToken"] = json!(next);
    }
    Ok(Reply::ok(out))
}

pub async fn list_oauth2(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    list(call, body, true).await
}

pub async fn list_api_key(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    list(call, body, false).await
}

pub(super) async fn delete(call: &mut Call, body: &[u8], oauth2: bool) -> Result<Reply, ApiError> {
    let input: NameInput = parse(body)?;
    validate::provider_name("name", &input.name)?;
    call.provider = Some(input.name.clone());
    let kind = if oauth2 { "OAuth2" } else { "API key" };
    if directory::config_provider(&call.runtime, &input.name).is_some() {
        return Err(read_only(&input.name));
    }
    let vault = call.state.vault();
    let record = call
        .state
        .directory()
        .provider_record(vault, &input.name)
        .await?;
    let matches = match record.as_ref().map(|r| &r.spec) {
        Some(ProviderSpec::OAuth2(_)) => oauth2,
        Some(ProviderSpec::ApiKey { .. }) => !oauth2,
        None => false,
    };
    if !matches {
        return Err(not_found(kind, &input.name));
    }
    // Its tokens first (a failure leaves the provider to delete again); a provider created
    // later under this name starts with nothing.
    Directory::purge_provider_tokens(vault, &input.name).await?;
    if !vault.delete(&provider_owner(&input.name)).await? {
        return Err(not_found(kind, &input.name));
    }
    Ok(Reply::no_content())
}

pub async fn delete_oauth2(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    delete(call, body, true).await
}

pub async fn delete_api_key(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    delete(call, body, false).await
}
