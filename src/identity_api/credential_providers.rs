//! Control plane: OAuth2 and API-key credential providers. Config-defined providers are listed
//! and readable but read-only; API-created ones are kept in the vault with their secrets sealed,
//! and no response ever carries a secret. Provider names are one namespace across both kinds,
//! as the data plane looks them up by name alone. Settings keygate cannot honour (AWS Secrets
//! Manager sources, private endpoints, certificates, private-key-JWT client authentication,
//! token exchange) are refused with a `ValidationException` saying why, never dropped.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::validate;
use super::workload_identities::ListInput;
use super::{ApiError, Call, Reply, page, parse};
use crate::config::{ClientAuth, OAuth2Provider, ProviderKind};
use crate::consent;
use crate::directory::{self, Directory, OAuth2Spec, ProviderRecord, ProviderSpec, provider_owner};
use crate::providers::vendors::{self, Preset};

const UPDATE_ATTEMPTS: usize = 3;
/// The vault's limit on one secret.
const MAX_SECRET_BYTES: usize = crate::vault::credential::MAX_TOKEN_BYTES;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OAuth2Input {
    name: String,
    credential_provider_vendor: String,
    oauth2_provider_config_input: ConfigInput,
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigInput {
    custom_oauth2_provider_config: Option<CustomInput>,
    google_oauth2_provider_config: Option<VendorInput>,
    github_oauth2_provider_config: Option<VendorInput>,
    slack_oauth2_provider_config: Option<VendorInput>,
    salesforce_oauth2_provider_config: Option<VendorInput>,
    microsoft_oauth2_provider_config: Option<VendorInput>,
    atlassian_oauth2_provider_config: Option<VendorInput>,
    linkedin_oauth2_provider_config: Option<VendorInput>,
    included_oauth2_provider_config: Option<VendorInput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VendorInput {
    client_id: String,
    client_secret: Option<String>,
    client_secret_config: Option<Value>,
    client_secret_source: Option<String>,
    tenant_id: Option<String>,
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CustomInput {
    oauth_discovery: DiscoveryInput,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_config: Option<Value>,
    client_secret_source: Option<String>,
    client_authentication_method: Option<String>,
    on_behalf_of_token_exchange_config: Option<Value>,
    private_key_jwt_config: Option<Value>,
    private_endpoint: Option<Value>,
    private_endpoint_overrides: Option<Value>,
    certificate_configurations: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DiscoveryInput {
    discovery_url: Option<String>,
    authorization_server_metadata: Option<MetadataInput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetadataInput {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    response_types: Option<Vec<String>>,
    token_endpoint_auth_methods: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NameInput {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ApiKeyInput {
    name: String,
    api_key: Option<String>,
    api_key_secret_config: Option<Value>,
    api_key_secret_source: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

/// The member of `oauth2ProviderConfigInput`/`Output` that belongs to a vendor.
fn config_key(vendor: &str) -> &'static str {
    match vendor {
        "custom" => "customOauth2ProviderConfig",
        "google" => "googleOauth2ProviderConfig",
        "github" => "githubOauth2ProviderConfig",
        "slack" => "slackOauth2ProviderConfig",
        "salesforce" => "salesforceOauth2ProviderConfig",
        "microsoft" => "microsoftOauth2ProviderConfig",
        "atlassian" => "atlassianOauth2ProviderConfig",
        "linkedin" => "linkedinOauth2ProviderConfig",
        _ => "includedOauth2ProviderConfig",
    }
}

fn oauth2_arn(call: &Call, name: &str) -> Result<String, ApiError> {
    call.arn(&format!(
        "token-vault/default/oauth2credentialprovider/{name}"
    ))
}

fn api_key_arn(call: &Call, name: &str) -> Result<String, ApiError> {
    call.arn(&format!(
        "token-vault/default/apikeycredentialprovider/{name}"
    ))
}

/// Where AgentCore would keep the secret; keygate keeps it sealed in its own vault and
/// reports this name for tools that expect the field.
fn secret_arn(call: &Call, kind: &str, name: &str) -> Result<Value, ApiError> {
    let api = call.api()?;
    Ok(json!({
        "secretArn": format!(
            "arn:aws:secretsmanager:{}:{}:secret:bedrock-agentcore-identity!default/{kind}/{name}",
            api.region, api.account_id
        )
    }))
}

fn not_found(kind: &str, name: &str) -> ApiError {
    ApiError::NotFound(format!("{kind} credential provider '{name}' not found"))
}

fn read_only(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "credential provider '{name}' is defined in keygate's config file and is read-only here"
    ))
}

fn refuse_external(
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

fn refuse_present(field: &str, value: Option<&Value>, why: &str) -> Result<(), ApiError> {
    match value {
        Some(_) => Err(ApiError::validation(
            field,
            format!("is not supported: {why}"),
        )),
        None => Ok(()),
    }
}

fn http_url(field: &str, value: &str) -> Result<String, ApiError> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {
            Ok(value.to_string())
        }
        _ => Err(ApiError::validation(field, "must be an http(s) URL")),
    }
}

fn secret(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(s) if s.len() > MAX_SECRET_BYTES => Err(ApiError::validation(
            field,
            "is larger than 4 KB, the vault's limit for one secret",
        )),
        Some(s) if s.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// The stored spec for an OAuth2 provider from its API input.
fn oauth2_spec(agentcore_vendor: &str, input: ConfigInput) -> Result<OAuth2Spec, ApiError> {
    let vendor = vendors::from_agentcore(agentcore_vendor).ok_or_else(|| {
        ApiError::validation(
            "credentialProviderVendor",
            format!(
                "must be one of {}",
                vendors::AGENTCORE_VENDORS
                    .iter()
                    .map(|(a, _)| *a)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let expected = config_key(vendor);
    let given: Vec<&str> = [
        (
            "customOauth2ProviderConfig",
            input.custom_oauth2_provider_config.is_some(),
        ),
        (
            "googleOauth2ProviderConfig",
            input.google_oauth2_provider_config.is_some(),
        ),
        (
            "githubOauth2ProviderConfig",
            input.github_oauth2_provider_config.is_some(),
        ),
        (
            "slackOauth2ProviderConfig",
            input.slack_oauth2_provider_config.is_some(),
        ),
        (
            "salesforceOauth2ProviderConfig",
            input.salesforce_oauth2_provider_config.is_some(),
        ),
        (
            "microsoftOauth2ProviderConfig",
            input.microsoft_oauth2_provider_config.is_some(),
        ),
        (
            "atlassianOauth2ProviderConfig",
            input.atlassian_oauth2_provider_config.is_some(),
        ),
        (
            "linkedinOauth2ProviderConfig",
            input.linkedin_oauth2_provider_config.is_some(),
        ),
        (
            "includedOauth2ProviderConfig",
            input.included_oauth2_provider_config.is_some(),
        ),
    ]
    .into_iter()
    .filter_map(|(k, present)| present.then_some(k))
    .collect();
    if given != [expected] {
        return Err(ApiError::validation(
            "oauth2ProviderConfigInput",
            format!("must hold exactly {expected} for {agentcore_vendor}"),
        ));
    }
    let field = format!("oauth2ProviderConfigInput.{expected}");
    if let Some(custom) = input.custom_oauth2_provider_config {
        return custom_spec(&field, custom);
    }
    let v = [
        input.google_oauth2_provider_config,
        input.github_oauth2_provider_config,
        input.slack_oauth2_provider_config,
        input.salesforce_oauth2_provider_config,
        input.microsoft_oauth2_provider_config,
        input.atlassian_oauth2_provider_config,
        input.linkedin_oauth2_provider_config,
        input.included_oauth2_provider_config,
    ]
    .into_iter()
    .flatten()
    .next()
    .ok_or_else(|| ApiError::validation("oauth2ProviderConfigInput", "is empty"))?;
    refuse_external(
        &format!("{field}.clientSecretSource"),
        v.client_secret_source.as_deref(),
        v.client_secret_config.as_ref(),
    )?;
    if v.client_id.is_empty() || v.client_id.len() > 256 {
        return Err(ApiError::validation(
            format!("{field}.clientId"),
            "must have length between 1 and 256",
        ));
    }
    if v.tenant_id.is_some() && vendor != "microsoft" {
        return Err(ApiError::validation(
            format!("{field}.tenantId"),
            "applies to MicrosoftOauth2 only",
        ));
    }
    let endpoint = |name: &str, value: Option<String>| {
        value
            .map(|u| http_url(&format!("{field}.{name}"), &u))
            .transpose()
    };
    let issuer = endpoint("issuer", v.issuer)?;
    let authorization_endpoint = endpoint("authorizationEndpoint", v.authorization_endpoint)?;
    let token_endpoint = endpoint("tokenEndpoint", v.token_endpoint)?;
    let tenant_domain = matches!(
        vendors::preset(vendor),
        Some(Preset::Domain(..) | Preset::DomainDiscovery)
    );
    let discovery_url = match (&issuer, &token_endpoint) {
        // A tenant's issuer is all it takes: endpoints come from its discovery document.
        (Some(issuer), None) => Some(format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        )),
        _ => None,
    };
    if tenant_domain && discovery_url.is_none() && token_endpoint.is_none() {
        return Err(ApiError::validation(
            format!("{field}.issuer"),
            format!(
                "is required for {agentcore_vendor} (your tenant's issuer URL), or give authorizationEndpoint and tokenEndpoint"
            ),
        ));
    }
    Ok(OAuth2Spec {
        vendor: vendor.to_string(),
        client_id: v.client_id,
        client_secret: secret(&format!("{field}.clientSecret"), v.client_secret)?,
        discovery_url,
        issuer,
        authorization_endpoint,
        token_endpoint,
        client_secret_post: false,
        tenant: v.tenant_id,
    })
}

fn custom_spec(field: &str, c: CustomInput) -> Result<OAuth2Spec, ApiError> {
    refuse_external(
        &format!("{field}.clientSecretSource"),
        c.client_secret_source.as_deref(),
        c.client_secret_config.as_ref(),
    )?;
    refuse_present(
        &format!("{field}.onBehalfOfTokenExchangeConfig"),
        c.on_behalf_of_token_exchange_config.as_ref(),
        "keygate does not do token exchange",
    )?;
    refuse_present(
        &format!("{field}.privateKeyJwtConfig"),
        c.private_key_jwt_config.as_ref(),
        "keygate authenticates to providers with client secrets only",
    )?;
    for (name, value) in [
        ("privateEndpoint", &c.private_endpoint),
        ("privateEndpointOverrides", &c.private_endpoint_overrides),
    ] {
        refuse_present(
            &format!("{field}.{name}"),
            value.as_ref(),
            "keygate reaches providers over the network it runs in (no AWS PrivateLink)",
        )?;
    }
    refuse_present(
        &format!("{field}.certificateConfigurations"),
        c.certificate_configurations.as_ref(),
        "set a private CA for upstreams in keygate's config instead",
    )?;
    let client_secret_post = match c.client_authentication_method.as_deref() {
        None | Some("CLIENT_SECRET_BASIC") => false,
        Some("CLIENT_SECRET_POST") => true,
        Some(other) => {
            return Err(ApiError::validation(
                format!("{field}.clientAuthenticationMethod"),
                format!("{other} is not supported: use CLIENT_SECRET_BASIC or CLIENT_SECRET_POST"),
            ));
        }
    };
    let client_id = c
        .client_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::validation(format!("{field}.clientId"), "is required"))?;
    if client_id.len() > 256 {
        return Err(ApiError::validation(
            format!("{field}.clientId"),
            "must have length between 1 and 256",
        ));
    }
    let discovery = c.oauth_discovery;
    let (discovery_url, issuer, authorization_endpoint, token_endpoint) = match (
        discovery.discovery_url,
        discovery.authorization_server_metadata,
    ) {
        (Some(url), None) => {
            let well_known = url.contains("/.well-known/openid-configuration")
                || url.contains("/.well-known/oauth-authorization-server");
            if !well_known || url.contains(['?', '#']) {
                return Err(ApiError::validation(
                    format!("{field}.oauthDiscovery.discoveryUrl"),
                    "must end in /.well-known/openid-configuration or /.well-known/oauth-authorization-server",
                ));
            }
            (
                Some(http_url(
                    &format!("{field}.oauthDiscovery.discoveryUrl"),
                    &url,
                )?),
                None,
                None,
                None,
            )
        }
        (None, Some(m)) => {
            let f = |name: &str, v: &str| {
                http_url(
                    &format!("{field}.oauthDiscovery.authorizationServerMetadata.{name}"),
                    v,
                )
            };
            let _ = (&m.response_types, &m.token_endpoint_auth_methods);
            (
                None,
                Some(f("issuer", &m.issuer)?),
                Some(f("authorizationEndpoint", &m.authorization_endpoint)?),
                Some(f("tokenEndpoint", &m.token_endpoint)?),
            )
        }
        _ => {
            return Err(ApiError::validation(
                format!("{field}.oauthDiscovery"),
                "must hold exactly one of discoveryUrl and authorizationServerMetadata",
            ));
        }
    };
    Ok(OAuth2Spec {
        vendor: "custom".to_string(),
        client_id,
        client_secret: secret(&format!("{field}.clientSecret"), c.client_secret)?,
        discovery_url,
        issuer,
        authorization_endpoint,
        token_endpoint,
        client_secret_post,
        tenant: None,
    })
}

/// The spec view of a config-defined provider (no secret).
fn spec_of_config(c: &OAuth2Provider) -> OAuth2Spec {
    let preset_endpoints = match (&c.domain, vendors::preset(&c.vendor)) {
        (Some(domain), Some(Preset::Domain(a, t))) => {
            Some((a.replace("{domain}", domain), t.replace("{domain}", domain)))
        }
        _ => None,
    };
    let discovery_url = c.discovery_url.as_ref().map(|u| u.to_string()).or_else(|| {
        match (&c.domain, vendors::preset(&c.vendor)) {
            (Some(domain), Some(Preset::DomainDiscovery)) => {
                Some(format!("https://{domain}/.well-known/openid-configuration"))
            }
            _ => None,
        }
    });
    OAuth2Spec {
        vendor: c.vendor.clone(),
        client_id: c.client_id.clone(),
        client_secret: None,
        discovery_url,
        issuer: c.issuer.clone(),
        authorization_endpoint: c
            .authorization_endpoint
            .as_ref()
            .map(|u| u.to_string())
            .or_else(|| preset_endpoints.as_ref().map(|(a, _)| a.clone())),
        token_endpoint: c
            .token_endpoint
            .as_ref()
            .map(|u| u.to_string())
            .or_else(|| preset_endpoints.as_ref().map(|(_, t)| t.clone())),
        client_secret_post: c.client_auth == ClientAuth::ClientSecretPost,
        tenant: c.tenant.clone(),
    }
}

/// `oauth2ProviderConfigOutput` for a spec: its discovery URL, or its endpoints as metadata.
fn config_output(spec: &OAuth2Spec) -> Value {
    let discovery = match &spec.discovery_url {
        Some(url) => json!({ "discoveryUrl": url }),
        None => {
            let (authorization, token) = match (&spec.authorization_endpoint, &spec.token_endpoint)
            {
                (a, Some(t)) => (a.clone().unwrap_or_default(), t.clone()),
                _ => match vendors::preset(&spec.vendor) {
                    Some(Preset::Fixed(a, t)) => {
                        let tenant = spec.tenant.as_deref().unwrap_or("common");
                        (a.replace("{tenant}", tenant), t.replace("{tenant}", tenant))
                    }
                    _ => (String::new(), String::new()),
                },
            };
            let issuer = spec.issuer.clone().unwrap_or_else(|| {
                url::Url::parse(&authorization)
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_default()
            });
            json!({ "authorizationServerMetadata": {
                "issuer": issuer,
                "authorizationEndpoint": authorization,
                "tokenEndpoint": token,
                "responseTypes": ["code"],
            }})
        }
    };
    let mut inner = json!({ "oauthDiscovery": discovery, "clientId": spec.client_id });
    if spec.vendor == "custom" {
        inner["clientAuthenticationMethod"] = json!(if spec.client_secret_post {
            "CLIENT_SECRET_POST"
        } else {
            "CLIENT_SECRET_BASIC"
        });
    }
    json!({ config_key(&spec.vendor): inner })
}

/// An OAuth2 provider by name, from either origin: (spec, created, updated).
async fn find_oauth2(call: &Call, name: &str) -> Result<(OAuth2Spec, f64, f64, bool), ApiError> {
    let started = call.state.directory().started_at();
    if let Some(p) = directory::config_provider(&call.runtime, name) {
        return match &p.kind {
            ProviderKind::OAuth2(c) => Ok((spec_of_config(c), started, started, true)),
            ProviderKind::ApiKey { .. } => Err(not_found("OAuth2", name)),
        };
    }
    match call
        .state
        .directory()
        .provider_record(call.state.vault(), name)
        .await?
    {
        Some(ProviderRecord {
            spec: ProviderSpec::OAuth2(spec),
            created_at,
            updated_at,
            ..
        }) => Ok((spec, created_at, updated_at, false)),
        _ => Err(not_found("OAuth2", name)),
    }
}

fn describe_oauth2(
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
    if let Some((created, updated)) = times {
        out["createdTime"] = json!(created);
        out["lastUpdatedTime"] = json!(updated);
    }
    Ok(out)
}

fn check_new_name(call: &Call, name: &str) -> Result<(), ApiError> {
    validate::provider_name("name", name)?;
    if directory::config_provider(&call.runtime, name).is_some() {
        return Err(ApiError::Conflict(format!(
            "credential provider '{name}' already exists (in keygate's config file)"
        )));
    }
    Ok(())
}

async fn create(call: &Call, name: &str, record: &ProviderRecord) -> Result<(), ApiError> {
    if !Directory::create(call.state.vault(), &provider_owner(name), record).await? {
        return Err(ApiError::Conflict(format!(
            "credential provider '{name}' already exists"
        )));
    }
    Ok(())
}

/// Read-modify-write of an API-created provider; `change` fails when the kind is wrong.
async fn update_record(
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

pub async fn create_oauth2(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
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
    let now = directory::now();
    let record = ProviderRecord {
        name: input.name.clone(),
        created_at: now,
        updated_at: now,
        tags,
        spec: ProviderSpec::OAuth2(spec.clone()),
    };
    create(call, &input.name, &record).await?;
    let mut out = describe_oauth2(call, &input.name, &spec, None)?;
    if let Some(o) = out.as_object_mut() {
        o.remove("credentialProviderVendor");
    }
    Ok(Reply::created(out))
}

pub async fn get_oauth2(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: NameInput = parse(body)?;
    validate::provider_name("name", &input.name)?;
    call.provider = Some(input.name.clone());
    let (spec, created, updated, _) = find_oauth2(call, &input.name).await?;
    Ok(Reply::ok(describe_oauth2(
        call,
        &input.name,
        &spec,
        Some((created, updated)),
    )?))
}

pub async fn update_oauth2(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
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
    let record = update_record(call, &input.name, |record| match &record.spec {
        ProviderSpec::OAuth2(old) => {
            // A secret left out keeps the one stored.
            if spec.client_secret.is_none() {
                spec.client_secret = old.client_secret.clone();
            }
            record.spec = ProviderSpec::OAuth2(spec.clone());
            Ok(())
        }
        ProviderSpec::ApiKey { .. } => Err(not_found("OAuth2", &input.name)),
    })
    .await?;
    let ProviderSpec::OAuth2(stored) = &record.spec else {
        return Err(not_found("OAuth2", &input.name));
    };
    Ok(Reply::ok(describe_oauth2(
        call,
        &input.name,
        stored,
        Some((record.created_at, record.updated_at)),
    )?))
}

/// Every provider of one kind, from both origins, sorted by name: (name, summary).
async fn listing(call: &Call, oauth2: bool) -> Result<Vec<(String, Value)>, ApiError> {
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

async fn list(call: &Call, body: &[u8], oauth2: bool) -> Result<Reply, ApiError> {
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

async fn delete(call: &mut Call, body: &[u8], oauth2: bool) -> Result<Reply, ApiError> {
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
    if !matches || !vault.delete(&provider_owner(&input.name)).await? {
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

fn api_key_value(input: &ApiKeyInput) -> Result<String, ApiError> {
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

fn describe_api_key(call: &Call, name: &str, times: Option<(f64, f64)>) -> Result<Value, ApiError> {
    let mut out = json!({
        "name": name,
        "credentialProviderArn": api_key_arn(call, name)?,
        "apiKeySecretArn": secret_arn(call, "apikey", name)?,
        "apiKeySecretJsonKey": "api_key_value",
        "apiKeySecretSource": "MANAGED",
    });
    if let Some((created, updated)) = times {
        out["createdTime"] = json!(created);
        out["lastUpdatedTime"] = json!(updated);
    }
    Ok(out)
}

pub async fn create_api_key(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: ApiKeyInput = parse(body)?;
    call.provider = Some(input.name.clone());
    check_new_name(call, &input.name)?;
    let tags = input.tags.clone().unwrap_or_default();
    validate::tags("tags", &tags)?;
    let api_key = api_key_value(&input)?;
    let now = directory::now();
    let record = ProviderRecord {
        name: input.name.clone(),
        created_at: now,
        updated_at: now,
        tags,
        spec: ProviderSpec::ApiKey { api_key },
    };
    create(call, &input.name, &record).await?;
    Ok(Reply::created(describe_api_key(call, &input.name, None)?))
}

pub async fn get_api_key(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
    let input: NameInput = parse(body)?;
    validate::provider_name("name", &input.name)?;
    call.provider = Some(input.name.clone());
    if let Some(p) = directory::config_provider(&call.runtime, &input.name) {
        let started = call.state.directory().started_at();
        return match p.kind {
            ProviderKind::ApiKey { .. } => Ok(Reply::ok(describe_api_key(
                call,
                &input.name,
                Some((started, started)),
            )?)),
            ProviderKind::OAuth2(_) => Err(not_found("API key", &input.name)),
        };
    }
    match call
        .state
        .directory()
        .provider_record(call.state.vault(), &input.name)
        .await?
    {
        Some(
            record @ ProviderRecord {
                spec: ProviderSpec::ApiKey { .. },
                ..
            },
        ) => Ok(Reply::ok(describe_api_key(
            call,
            &input.name,
            Some((record.created_at, record.updated_at)),
        )?)),
        _ => Err(not_found("API key", &input.name)),
    }
}

pub async fn update_api_key(call: &mut Call, body: &[u8]) -> Result<Reply, ApiError> {
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
        ProviderSpec::OAuth2(_) => Err(not_found("API key", &input.name)),
    })
    .await?;
    Ok(Reply::ok(describe_api_key(
        call,
        &input.name,
        Some((record.created_at, record.updated_at)),
    )?))
}
