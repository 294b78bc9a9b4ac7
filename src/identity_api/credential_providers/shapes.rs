//! AgentCore's OAuth2 provider shapes (`oauth2ProviderConfigInput`/`Output`, one member per
//! vendor) translated to keygate's provider spec, and keygate's back to AgentCore's output.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{refuse_external, refuse_present, secret};
use crate::config::{ClientAuth, OAuth2Provider};
use crate::directory::OAuth2Spec;
use crate::identity_api::ApiError;
use crate::providers::vendors::{self, Preset};

/// `oauth2ProviderConfigInput`: one member, named after the vendor (see [`config_key`]).
pub(super) type ConfigInput = std::collections::BTreeMap<String, Value>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct VendorInput {
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
pub(super) struct CustomInput {
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
pub(super) struct DiscoveryInput {
    discovery_url: Option<String>,
    authorization_server_metadata: Option<MetadataInput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct MetadataInput {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    response_types: Option<Vec<String>>,
    token_endpoint_auth_methods: Option<Vec<String>>,
}

/// The member of `oauth2ProviderConfigInput`/`Output` that belongs to a vendor.
pub(super) fn config_key(vendor: &str) -> &'static str {
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

/// An authorization server's URL: https, or plain http to this machine only (development), so
/// client secrets and refresh tokens never cross a network in clear.
pub(super) fn http_url(field: &str, value: &str) -> Result<String, ApiError> {
    let loopback = |u: &url::Url| match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => Ok(value.to_string()),
        Ok(u) if u.scheme() == "http" && loopback(&u) => Ok(value.to_string()),
        _ => Err(ApiError::validation(
            field,
            "must be an https URL (plain http only to localhost)",
        )),
    }
}

/// The stored spec for an OAuth2 provider from its API input.
pub(super) fn oauth2_spec(
    agentcore_vendor: &str,
    input: ConfigInput,
) -> Result<OAuth2Spec, ApiError> {
    let vendor = vendor_of(agentcore_vendor)?;
    let expected = config_key(vendor);
    let mut members = input.into_iter();
    let (key, value) = match (members.next(), members.next()) {
        (Some(member), None) if member.0 == expected => member,
        _ => {
            return Err(ApiError::validation(
                "oauth2ProviderConfigInput",
                format!("must hold exactly {expected} for {agentcore_vendor}"),
            ));
        }
    };
    let field = format!("oauth2ProviderConfigInput.{key}");
    if key == "customOauth2ProviderConfig" {
        let custom = serde_json::from_value(value).map_err(|e| ApiError::validation(&field, e))?;
        return custom_spec(&field, custom);
    }
    let v: VendorInput =
        serde_json::from_value(value).map_err(|e| ApiError::validation(&field, e))?;
    vendor_spec(&field, vendor, agentcore_vendor, v)
}

/// keygate's vendor name for AgentCore's `credentialProviderVendor`.
fn vendor_of(agentcore_vendor: &str) -> Result<&'static str, ApiError> {
    vendors::from_agentcore(agentcore_vendor).ok_or_else(|| {
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
    })
}

/// The spec for a named vendor (every one but `custom`) from its member of the input.
fn vendor_spec(
    field: &str,
    vendor: &'static str,
    agentcore_vendor: &str,
    v: VendorInput,
) -> Result<OAuth2Spec, ApiError> {
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
        // The way the vendor's documentation authenticates clients.
        client_secret_post: vendors::dialect(vendor).client_auth == ClientAuth::ClientSecretPost,
        tenant: v.tenant_id,
    })
}

pub(super) fn custom_spec(field: &str, c: CustomInput) -> Result<OAuth2Spec, ApiError> {
    refuse_unsupported(field, &c)?;
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
    let (discovery_url, issuer, authorization_endpoint, token_endpoint) =
        custom_endpoints(field, c.oauth_discovery)?;
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

/// Refuses the settings keygate cannot honour, saying why (never drops them).
fn refuse_unsupported(field: &str, c: &CustomInput) -> Result<(), ApiError> {
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
    Ok(())
}

/// (discovery URL, issuer, authorization endpoint, token endpoint).
type EndpointUrls = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The endpoint URLs of a custom provider: a
/// discovery URL, or the authorization server's metadata, never both.
fn custom_endpoints(field: &str, discovery: DiscoveryInput) -> Result<EndpointUrls, ApiError> {
    Ok(
        match (
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
        },
    )
}

/// The spec view of a config-defined provider (no secret).
pub(super) fn spec_of_config(c: &OAuth2Provider) -> OAuth2Spec {
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
        client_secret_post: vendors::client_auth(c) == ClientAuth::ClientSecretPost,
        tenant: c.tenant.clone(),
    }
}

/// `oauth2ProviderConfigOutput` for a spec: its discovery URL, or its endpoints as metadata.
pub(super) fn config_output(spec: &OAuth2Spec) -> Value {
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
