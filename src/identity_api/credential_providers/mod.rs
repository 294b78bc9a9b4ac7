//! Control plane: OAuth2 and API-key credential providers. Config-defined providers are listed
//! and readable but read-only; API-created ones are kept in the vault with their secrets sealed,
//! and no response ever carries a secret. Provider names are one namespace across both kinds,
//! as the data plane looks them up by name alone. Settings keygate cannot honour (AWS Secrets
//! Manager sources, private endpoints, certificates, private-key-JWT client authentication,
//! token exchange) are refused with a `ValidationException` saying why, never dropped.
//!
//! - `shapes`: AgentCore's provider configuration shapes to keygate's and back.
//! - `oauth2`, `api_key`: the operations of each kind; listing and deletion are shared here.
//!
//! The handlers parse and validate; [`crate::directory`] keeps the entries (quota, config
//! entries read-only, compare-and-swap updates, tokens purged before a delete).

mod api_key;
mod oauth2;
mod shapes;

pub(crate) use api_key::{create_api_key, get_api_key, update_api_key};
pub(crate) use oauth2::{create_oauth2, get_oauth2, update_oauth2};

use serde::Deserialize;
use serde_json::{Value, json};

use super::validate;
use super::workload_identities::ListInput;
use super::{ApiError, Call, Reply, page, parse};
use crate::directory::{DirectoryError, ProviderRecord, ProviderSpec, ProviderType};
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

/// A provider of this type is not there (or is of the other type).
pub(super) fn not_found(kind: ProviderType, name: &str) -> ApiError {
    DirectoryError::NotFound(kind.entry(name)).into()
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
    Ok(call
        .directory()
        .check_new_provider(&call.configured(), name)?)
}

/// Stores a new API-created provider, within the quota; its name was checked by
/// [`check_new_name`].
pub(super) async fn create(
    call: &Call,
    name: &str,
    tags: std::collections::BTreeMap<String, String>,
    spec: ProviderSpec,
) -> Result<(), ApiError> {
    let limit = call.api()?.max_credential_providers as usize;
    call.directory()
        .create_provider(&call.configured(), name, tags, spec, limit)
        .await?;
    Ok(())
}

/// Read-modify-write of an API-created provider; `change` fails when the kind is wrong.
pub(super) async fn update_record(
    call: &Call,
    name: &str,
    change: impl FnMut(&mut ProviderRecord) -> Result<(), ApiError>,
) -> Result<ProviderRecord, ApiError> {
    call.directory()
        .update_provider(&call.configured(), name, change)
        .await
}

/// Every provider of one type, from both origins, sorted by name: (name, summary).
async fn listing(call: &Call, wanted: ProviderType) -> Result<Vec<(String, Value)>, ApiError> {
    let listed = call
        .directory()
        .list_providers(&call.configured(), wanted)
        .await?;
    let mut items = Vec::with_capacity(listed.len());
    for p in listed {
        let entry = match wanted {
            ProviderType::OAuth2 => json!({
                "name": p.name,
                "credentialProviderVendor": p.vendor.unwrap_or("CustomOauth2"),
                "credentialProviderArn": oauth2_arn(call, &p.name)?,
                "createdTime": p.created_at,
                "lastUpdatedTime": p.updated_at,
            }),
            ProviderType::ApiKey => json!({
                "name": p.name,
                "credentialProviderArn": api_key_arn(call, &p.name)?,
                "createdTime": p.created_at,
                "lastUpdatedTime": p.updated_at,
            }),
        };
        items.push((p.name, entry));
    }
    Ok(items)
}

async fn list(call: &Call, body: &[u8], wanted: ProviderType) -> Result<Reply, ApiError> {
    let input: ListInput = parse(body)?;
    let items = listing(call, wanted).await?;
    let (listed, next) = page(&items, input.next_token.as_deref(), input.max_results)?;
    let mut out = json!({ "credentialProviders": listed });
    if let Some(next) = next {
        out["nextToken"] = json!(next);
    }
    Ok(Reply::ok(out))
}

pub(crate) async fn list_oauth2(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    list(call, body, ProviderType::OAuth2).await
}

pub(crate) async fn list_api_key(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    list(call, body, ProviderType::ApiKey).await
}

async fn delete(call: &mut Call, body: &[u8], wanted: ProviderType) -> Result<Reply, ApiError> {
    let input: NameInput = parse(body)?;
    validate::provider_name("name", &input.name)?;
    call.provider = Some(input.name.clone());
    call.directory()
        .delete_provider(&call.configured(), &input.name, wanted)
        .await?;
    Ok(Reply::no_content())
}

pub(crate) async fn delete_oauth2(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    delete(call, body, ProviderType::OAuth2).await
}

pub(crate) async fn delete_api_key(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    delete(call, body, ProviderType::ApiKey).await
}
