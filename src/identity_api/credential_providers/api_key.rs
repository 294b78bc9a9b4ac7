//! `Create`/`Get`/`UpdateApiKeyCredentialProvider`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    NameInput, api_key_arn, check_new_name, create, not_found, refuse_external, secret, secret_arn,
    update_record, with_times,
};
use crate::directory::{ProviderSpec, ProviderType};
use crate::identity_api::{ApiError, Call, Reply, parse, validate};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ApiKeyInput {
    name: String,
    api_key: Option<String>,
    api_key_secret_config: Option<Value>,
    api_key_secret_source: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

pub(super) fn api_key_value(input: &ApiKeyInput) -> Result<String, ApiError> {
    refuse_external(
        "apiKeySecretSource",
        input.api_key_secret_source.as_deref(),
        input.api_key_secret_config.as_ref(),
    )?;
    match secret("apiKey", input.api_key.clone())? {
        Some(key) => Ok(key),
        None => Err(ApiError::validation(
            "apiKey",
            "is required: keygate keeps the key sealed in its own vault",
        )),
    }
}

pub(super) fn describe_api_key(
    call: &Call,
    name: &str,
    times: Option<(f64, f64)>,
) -> Result<Value, ApiError> {
    let mut out = json!({
        "name": name,
        "credentialProviderArn": api_key_arn(call, name)?,
        "apiKeySecretArn": secret_arn(call, "apikey", name)?,
        "apiKeySecretJsonKey": "api_key_value",
        "apiKeySecretSource": "MANAGED",
    });
    with_times(&mut out, times);
    Ok(out)
}

pub(crate) async fn create_api_key(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: ApiKeyInput = parse(body)?;
    call.provider = Some(input.name.clone());
    check_new_name(call, &input.name)?;
    let tags = input.tags.clone().unwrap_or_default();
    validate::tags("tags", &tags)?;
    let api_key = api_key_value(&input)?;
    create(call, &input.name, tags, ProviderSpec::ApiKey { api_key }).await?;
    Ok(Reply::created(describe_api_key(call, &input.name, None)?))
}

pub(crate) async fn get_api_key(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: NameInput = parse(body)?;
    validate::provider_name("name", &input.name)?;
    call.provider = Some(input.name.clone());
    let found = call
        .directory()
        .get_provider(&call.configured(), &input.name, ProviderType::ApiKey)
        .await?;
    Ok(Reply::ok(describe_api_key(
        call,
        &input.name,
        Some(found.times()),
    )?))
}

pub(crate) async fn update_api_key(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: ApiKeyInput = parse(body)?;
    validate::provider_name("name", &input.name)?;
    call.provider = Some(input.name.clone());
    if input.tags.is_some() {
        return Err(ApiError::validation(
            "tags",
            "is not part of UpdateApiKeyCredentialProvider",
        ));
    }
    let api_key = api_key_value(&input)?;
    let record = update_record(call, &input.name, |record| match &record.spec {
        ProviderSpec::ApiKey { .. } => {
            record.spec = ProviderSpec::ApiKey {
                api_key: api_key.clone(),
            };
            Ok(())
        }
        ProviderSpec::OAuth2(_) => Err(not_found(ProviderType::ApiKey, &input.name)),
    })
    .await?;
    Ok(Reply::ok(describe_api_key(
        call,
        &input.name,
        Some((record.created_at, record.updated_at)),
    )?))
}
