//! Checks of `[[providers]]`: OAuth 2.0 clients (vendor presets, endpoints, client
//! authentication) and API keys.

use super::super::raw::*;
use super::super::*;

use super::*;

impl Checker {
    pub(super) fn provider(&mut self, key: &str, raw: &RawProvider) -> Option<ProviderConfig> {
        self.name(
            &format!("{key}.name"),
            &raw.name,
            &crate::rules::PROVIDER_NAME,
        );
        let kind = match raw.kind.as_str() {
            "oauth2" => ProviderKind::OAuth2(Box::new(self.oauth2_provider(key, raw)?)),
            "api_key" => {
                let oauth_fields = [
                    ("vendor", raw.vendor.is_some()),
                    ("client_id", raw.client_id.is_some()),
                    ("client_secret", raw.client_secret.is_some()),
                    ("discovery_url", raw.discovery_url.is_some()),
                    ("token_endpoint", raw.token_endpoint.is_some()),
                    (
                        "authorization_endpoint",
                        raw.authorization_endpoint.is_some(),
                    ),
                ];
                for (field, present) in oauth_fields {
                    if present {
                        self.error(
                            format!("{key}.{field}"),
                            format!("`{field}` does not apply to kind = \"api_key\""),
                        );
                    }
                }
                let Some(api_key) = &raw.api_key else {
                    self.error(format!("{key}.kind"), "kind = \"api_key\" needs `api_key`");
                    return None;
                };
                ProviderKind::ApiKey {
                    api_key: self.secret(&format!("{key}.api_key"), api_key)?,
                }
            }
            other => {
                self.error(
                    format!("{key}.kind"),
                    format!("unknown kind `{other}`; expected oauth2 or api_key"),
                );
                return None;
            }
        };
        Some(ProviderConfig {
            name: raw.name.clone(),
            kind,
        })
    }

    pub(super) fn oauth2_provider(
        &mut self,
        key: &str,
        raw: &RawProvider,
    ) -> Option<OAuth2Provider> {
        if raw.api_key.is_some() {
            self.error(
                format!("{key}.api_key"),
                "`api_key` does not apply to kind = \"oauth2\"",
            );
        }
        let vendor = raw.vendor.clone().unwrap_or_else(|| "custom".to_string());
        if !crate::rules::vendor_names().any(|known| known == vendor) {
            let known: Vec<&str> = crate::rules::vendor_names().collect();
            self.error(
                format!("{key}.vendor"),
                format!(
                    "unknown vendor `{vendor}`; expected one of {}",
                    known.join(", ")
                ),
            );
        }
        let Some(client_id) = raw.client_id.clone().filter(|c| !c.is_empty()) else {
            self.error(format!("{key}.kind"), "kind = \"oauth2\" needs `client_id`");
            return None;
        };
        let client_secret = match &raw.client_secret {
            Some(s) => Some(self.secret(&format!("{key}.client_secret"), s)?),
            None => None,
        };
        let discovery_url = raw
            .discovery_url
            .as_deref()
            .and_then(|u| self.url(&format!("{key}.discovery_url"), u));
        let authorization_endpoint = raw
            .authorization_endpoint
            .as_deref()
            .and_then(|u| self.url(&format!("{key}.authorization_endpoint"), u));
        let token_endpoint = raw
            .token_endpoint
            .as_deref()
            .and_then(|u| self.url(&format!("{key}.token_endpoint"), u));
        let allow_insecure_http = raw.allow_insecure_http.unwrap_or(false);
        for (field, url) in [
            ("discovery_url", &discovery_url),
            ("token_endpoint", &token_endpoint),
        ] {
            if let Some(url) = url {
                self.fetched_url(&format!("{key}.{field}"), url, allow_insecure_http);
            }
        }
        self.vendor_endpoints(key, raw, &vendor);
        let client_auth = self.client_auth(key, raw.client_auth.as_deref());
        Some(OAuth2Provider {
            vendor,
            client_id,
            client_secret,
            discovery_url,
            issuer: raw.issuer.clone(),
            authorization_endpoint,
            token_endpoint,
            client_auth,
            tenant: raw.tenant.clone(),
            domain: raw.domain.clone(),
            allow_insecure_http,
        })
    }

    /// Where a vendor's endpoints come from: a custom provider names them, a tenant vendor needs
    /// its domain (or explicit endpoints).
    fn vendor_endpoints(&mut self, key: &str, raw: &RawProvider, vendor: &str) {
        let tenant_domain_vendor = matches!(
            vendor,
            "okta" | "auth0" | "cognito" | "onelogin" | "pingone" | "cyberark" | "fusionauth"
        );
        if vendor == "custom" && raw.discovery_url.is_none() && raw.token_endpoint.is_none() {
            self.error(
                format!("{key}.vendor"),
                "a custom provider needs `discovery_url`, or `issuer` + `authorization_endpoint` + `token_endpoint`",
            );
        }
        if tenant_domain_vendor
            && raw.domain.is_none()
            && raw.discovery_url.is_none()
            && raw.token_endpoint.is_none()
        {
            self.error(
                format!("{key}.vendor"),
                format!(
                    "vendor `{vendor}` needs `domain` (your tenant's host name) or `discovery_url`"
                ),
            );
        }
    }

    /// `None` when unset: the vendor's documented way, decided where the client is built.
    fn client_auth(&mut self, key: &str, client_auth: Option<&str>) -> Option<ClientAuth> {
        match client_auth {
            None => None,
            Some("client_secret_basic") => Some(ClientAuth::ClientSecretBasic),
            Some("client_secret_post") => Some(ClientAuth::ClientSecretPost),
            Some(other) => {
                self.error(
                    format!("{key}.client_auth"),
                    format!("unknown client_auth `{other}`; expected client_secret_basic or client_secret_post"),
                );
                None
            }
        }
    }
}
