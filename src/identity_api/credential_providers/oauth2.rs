//! `Create`/`Get`/`UpdateOauth2CredentialProvider`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::shapes::{ConfigInput, config_output, oauth2_spec, spec_of_config};
use super::{
    NameInput, check_new_name, create, not_found, oauth2_arn, secret_arn, update_record, with_times,
};
use crate::config::ProviderKind;
use crate::consent;
use crate::directory::{OAuth2Spec, ProviderSpec, ProviderType, StoredProvider};
use crate::identity_api::{ApiError, Call, Reply, parse, validate};
use crate::providers::vendors;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct OAuth2Input {
    name: String,
    credential_provider_vendor: String,
    oauth2_provider_config_input: ConfigInput,
    tags: Option<BTreeMap<String, String>>,
}

/// An OAuth2 provider by name, from either origin: (spec, created, updated).
pub(super) async fn find_oauth2(
    call: &Call,
    name: &str,
) -> Result<(OAuth2Spec, f64, f64), ApiError> {
    let found = call
        .directory()
        .get_provider(&call.configured(), name, ProviderType::OAuth2)
        .await?;
    let (created, updated) = found.times();
    let spec = match found {
        StoredProvider::Config { config, .. } => match &config.kind {
            ProviderKind::OAuth2(c) => spec_of_config(c),
            ProviderKind::ApiKey { .. } => return Err(not_found(ProviderType::OAuth2, name)),
        },
        StoredProvider::Api(record) => match record.spec {
            ProviderSpec::OAuth2(spec) => spec,
            ProviderSpec::ApiKey { .. } => return Err(not_found(ProviderType::OAuth2, name)),
        },
    };
    Ok((spec, created, updated))
}

pub(super) fn describe_oauth2(
    call: &Call,
    name: &str,
    spec: &OAuth2Spec,
    times: Option<(f64, f64)>,
) -> Result<Value, ApiError> {
    let mut out = json!({
        "name": name,
        "credentialProviderVendor": vendors::agentcore_name(&spec.vendor).unwrap_or("CustomOauth2"),
        "credentialProviderArn": oauth2_arn(call, name)?,
        "clientSecretArn": secret_arn(call, "oauth2", name)?,
        "clientSecretJsonKey": "client_secret",
        "clientSecretSource": "MANAGED",
        "callbackUrl": consent::callback_url(&call.runtime.config.server.public_url),
        "oauth2ProviderConfigOutput": config_output(spec),
        "status": "READY",
    });
    with_times(&mut out, times);
    Ok(out)
}

pub(crate) async fn create_oauth2(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: OAuth2Input = parse(body)?;
    call.provider = Some(input.name.clone());
    check_new_name(call, &input.name)?;
    let tags = input.tags.unwrap_or_default();
    validate::tags("tags", &tags)?;
    let spec = oauth2_spec(
        &input.credential_provider_vendor,
        input.oauth2_provider_config_input,
    )?;
    spec.to_config()
        .map_err(|e| ApiError::validation("oauth2ProviderConfigInput", e))?;
    create(call, &input.name, tags, ProviderSpec::OAuth2(spec.clone())).await?;
    let mut out = describe_oauth2(call, &input.name, &spec, None)?;
    if let Some(o) = out.as_object_mut() {
        o.remove("credentialProviderVendor");
    }
    Ok(Reply::created(out))
}

pub(crate) async fn get_oauth2(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: NameInput = parse(body)?;
    validate::provider_name("name", &input.name)?;
    call.provider = Some(input.name.clone());
    let (spec, created, updated) = find_oauth2(call, &input.name).await?;
    Ok(Reply::ok(describe_oauth2(
        call,
        &input.name,
        &spec,
        Some((created, updated)),
    )?))
}

pub(crate) async fn update_oauth2(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct UpdateInput {
        name: String,
        credential_provider_vendor: String,
        oauth2_provider_config_input: ConfigInput,
    }
    let input: UpdateInput = parse(body)?;
    validate::provider_name("name", &input.name)?;
    call.provider = Some(input.name.clone());
    let mut spec = oauth2_spec(
        &input.credential_provider_vendor,
        input.oauth2_provider_config_input,
    )?;
    spec.to_config()
        .map_err(|e| ApiError::validation("oauth2ProviderConfigInput", e))?;
    let mut moved = false;
    let record = update_record(call, &input.name, |record| match &record.spec {
        ProviderSpec::OAuth2(old) => {
            moved = old.vendor != spec.vendor
                || old.client_id != spec.client_id
                || old.discovery_url != spec.discovery_url
                || old.issuer != spec.issuer
                || old.authorization_endpoint != spec.authorization_endpoint
                || old.token_endpoint != spec.token_endpoint
                || old.tenant != spec.tenant;
            if spec.client_secret.is_none() {
                // The stored secret only ever goes where it went before.
                if moved {
                    return Err(ApiError::validation(
                        "clientSecret",
                        "is required when the vendor, client id, endpoints or discovery URL change",
                    ));
                }
                spec.client_secret = old.client_secret.clone();
            }
            record.spec = ProviderSpec::OAuth2(spec.clone());
            Ok(())
        }
        ProviderSpec::ApiKey { .. } => Err(not_found(ProviderType::OAuth2, &input.name)),
    })
    .await?;
    if moved {
        // Tokens from the old authorization server are not sent to the new one's resources.
        let purged = call.directory().purge_provider_tokens(&input.name).await?;
        tracing::info!(provider = %input.name, purged, "provider moved; its vaulted tokens were deleted");
    }
    let ProviderSpec::OAuth2(stored) = &record.spec else {
        return Err(not_found(ProviderType::OAuth2, &input.name));
    };
    Ok(Reply::ok(describe_oauth2(
        call,
        &input.name,
        stored,
        Some((record.created_at, record.updated_at)),
    )?))
}
