//! Control plane: the token vault. keygate has one vault, `default`, sealed with its own
//! key-encryption key (`vault.key`), which AgentCore calls a service-managed key. AWS KMS keys
//! cannot be used, so asking for a customer-managed key is refused with the reason.

use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Call, Reply, parse};

const VAULT_ID: &str = "default";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GetInput {
    token_vault_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SetInput {
    token_vault_id: Option<String>,
    kms_configuration: KmsConfiguration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KmsConfiguration {
    key_type: String,
    kms_key_arn: Option<String>,
}

fn check_id(id: Option<&str>) -> Result<(), ApiError> {
    match id {
        None | Some(VAULT_ID) => Ok(()),
        Some(other) => Err(ApiError::NotFound(format!(
            "Token vault '{other}' not found; keygate has one token vault, 'default'"
        ))),
    }
}

fn describe(call: &Call) -> serde_json::Value {
    json!({
        "tokenVaultId": VAULT_ID,
        "kmsConfiguration": { "keyType": "ServiceManagedKey" },
        "lastModifiedDate": call.directory().started_at(),
    })
}

pub(crate) async fn get(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: GetInput = parse(body)?;
    check_id(input.token_vault_id.as_deref())?;
    Ok(Reply::ok(describe(call)))
}

pub(crate) async fn set_cmk(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: SetInput = parse(body)?;
    check_id(input.token_vault_id.as_deref())?;
    match input.kms_configuration.key_type.as_str() {
        "ServiceManagedKey" if input.kms_configuration.kms_key_arn.is_none() => {
            Ok(Reply::ok(describe(call)))
        }
        "ServiceManagedKey" => Err(ApiError::validation(
            "kmsConfiguration.kmsKeyArn",
            "must be absent for a ServiceManagedKey",
        )),
        "CustomerManagedKey" => Err(ApiError::validation(
            "kmsConfiguration.keyType",
            "CustomerManagedKey is not supported: keygate seals its vault with its own \
             key-encryption key (vault.key in routes.toml), not AWS KMS; rotate it with \
             `keygate vault rotate-key`",
        )),
        other => Err(ApiError::validation(
            "kmsConfiguration.keyType",
            format!("must be ServiceManagedKey or CustomerManagedKey (is '{other}')"),
        )),
    }
}
