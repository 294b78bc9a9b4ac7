//! An OAuth 2.0 client for one credential provider: endpoints from a vendor preset, explicit
//! config or discovery (fetched once, on first need), client authentication by
//! `client_secret_basic` or `client_secret_post`, and token responses read as JSON (or
//! form-encoded, as GitHub answers unless asked for JSON), including Slack's nested user token.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{Request, header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;
use url::form_urlencoded;

use super::ProviderError;
use super::vendors::{self, Preset};
use crate::body;
use crate::config::{ClientAuth, OAuth2Provider};
use crate::fetch;
use crate::proxy::upstream::UpstreamClient;

/// A provider's endpoints.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorization: Option<Url>,
    pub token: Url,
}

/// A token endpoint's answer.
#[derive(Debug)]
pub struct TokenResponse {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_in: Option<u64>,
    /// Granted scopes, when the provider says (space-separated).
    pub scope: Option<String>,
}

pub struct OAuthClient {
    pub provider: String,
    config: OAuth2Provider,
    http: UpstreamClient,
    endpoints: OnceCell<Endpoints>,
    /// Recent failed token requests, per vault entry.
    pub cooldown: super::cooldown::Cooldown,
}

impl OAuthClient {
    pub fn new(provider: &str, config: OAuth2Provider, http: UpstreamClient) -> Self {
        OAuthClient {
            provider: provider.to_string(),
            config,
            http,
            endpoints: OnceCell::new(),
            cooldown: super::cooldown::Cooldown::default(),
        }
    }

    pub fn vendor(&self) -> &str {
        &self.config.vendor
    }

    pub fn client_id(&self) -> &str {
        &self.config.client_id
    }

    /// The authorization-code grant with PKCE (RFC 6749 section 4.1, RFC 7636).
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<TokenResponse, ProviderError> {
        self.token_request(vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", redirect_uri.to_string()),
            ("code_verifier", verifier.to_string()),
        ])
        .await
    }

    /// The refresh-token grant.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, ProviderError> {
        self.token_request(vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.to_string()),
        ])
        .await
    }

    /// The endpoints, resolved on first use (discovery is fetched once, then kept).
    pub async fn endpoints(&self) -> Result<&Endpoints, ProviderError> {
        self.endpoints
            .get_or_try_init(|| self.resolve_endpoints())
            .await
    }

    async fn resolve_endpoints(&self) -> Result<Endpoints, ProviderError> {
        let c = &self.config;
        if let Some(token) = &c.token_endpoint {
            return Ok(Endpoints {
                authorization: c.authorization_endpoint.clone(),
                token: token.clone(),
            });
        }
        let discovery = match (&c.discovery_url, vendors::preset(&c.vendor)) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(Preset::DomainDiscovery)) => Some(self.url(&format!(
                "https://{}/.well-known/openid-configuration",
                self.domain()?
            ))?),
            _ => None,
        };
        if let Some(url) = discovery {
            let doc = fetch::get_json(&self.http, &url)
                .await
                .map_err(|e| self.unreachable(e))?;
            let field = |name: &str| {
                doc.json
                    .get(name)
                    .and_then(Value::as_str)
                    .and_then(|u| Url::parse(u).ok())
            };
            let token = field("token_endpoint")
                .ok_or_else(|| self.config_error("discovery has no token_endpoint"))?;
            return Ok(Endpoints {
                authorization: field("authorization_endpoint"),
                token,
            });
        }
        match vendors::preset(&c.vendor) {
            Some(Preset::Fixed(authorization, token)) => {
                let tenant = c.tenant.as_deref().unwrap_or("common");
                Ok(Endpoints {
                    authorization: Some(self.url(&authorization.replace("{tenant}", tenant))?),
                    token: self.url(&token.replace("{tenant}", tenant))?,
                })
            }
            Some(Preset::Domain(authorization, token)) => {
                let domain = self.domain()?;
                Ok(Endpoints {
                    authorization: Some(self.url(&authorization.replace("{domain}", domain))?),
                    token: self.url(&token.replace("{domain}", domain))?,
                })
            }
            _ => Err(self.config_error("no token endpoint: set token_endpoint or discovery_url")),
        }
    }

    fn domain(&self) -> Result<&str, ProviderError> {
        self.config
            .domain
            .as_deref()
            .ok_or_else(|| self.config_error("this vendor needs `domain`"))
    }

    fn url(&self, text: &str) -> Result<Url, ProviderError> {
        Url::parse(text).map_err(|_| self.config_error("bad endpoint URL"))
    }

    fn config_error(&self, message: &str) -> ProviderError {
        ProviderError::Config {
            provider: self.provider.clone(),
            message: message.to_string(),
        }
    }

    fn unreachable(&self, source: fetch::FetchError) -> ProviderError {
        ProviderError::Unreachable {
            provider: self.provider.clone(),
            source,
        }
    }

    /// The client-credentials grant (RFC 6749 section 4.4).
    pub async fn client_credentials(
        &self,
        scopes: &[String],
    ) -> Result<TokenResponse, ProviderError> {
        self.client_credentials_for(scopes, &[], &[]).await
    }

    /// The client-credentials grant with RFC 8707 `resource` indicators and `audience`
    /// parameters (one form field per value).
    pub async fn client_credentials_for(
        &self,
        scopes: &[String],
        resources: &[String],
        audiences: &[String],
    ) -> Result<TokenResponse, ProviderError> {
        let mut form = vec![("grant_type", "client_credentials".to_string())];
        if !scopes.is_empty() {
            form.push(("scope", scopes.join(" ")));
        }
        form.extend(resources.iter().map(|r| ("resource", r.clone())));
        form.extend(audiences.iter().map(|a| ("audience", a.clone())));
        self.token_request(form).await
    }

    /// Posts a token request with client authentication and reads the answer.
    pub async fn token_request(
        &self,
        mut form: Vec<(&str, String)>,
    ) -> Result<TokenResponse, ProviderError> {
        let endpoints = self.endpoints().await?;
        let mut request = Request::post(endpoints.token.as_str())
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        let secret = self
            .config
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret().to_string())
            .unwrap_or_default();
        match self.config.client_auth {
            ClientAuth::ClientSecretBasic => {
                // RFC 6749 section 2.3.1: both parts form-encoded before base64.
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let credentials = format!("{}:{}", encode(&self.config.client_id), encode(&secret));
                request = request.header(
                    header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(credentials)),
                );
            }
            ClientAuth::ClientSecretPost => {
                form.push(("client_id", self.config.client_id.clone()));
                form.push(("client_secret", secret));
            }
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = request
            .body(body::full(body))
            .map_err(|_| self.config_error("bad token request"))?;
        let answer = fetch::send(&self.http, &endpoints.token, request)
            .await
            .map_err(|e| self.unreachable(e))?;
        let fields = parse_fields(&answer.headers, &answer.body);
        if !answer.status.is_success() || fields.get("error").is_some_and(|e| !e.is_null()) {
            let code = fields
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown_error");
            return Err(ProviderError::Refused {
                provider: self.provider.clone(),
                status: answer.status.as_u16(),
                error: sanitize_code(code),
            });
        }
        self.token_response(&fields)
    }

    fn token_response(
        &self,
        fields: &serde_json::Map<String, Value>,
    ) -> Result<TokenResponse, ProviderError> {
        // Slack puts a user token under `authed_user` when only user scopes were asked for.
        let fields = match (fields.get("access_token"), fields.get("authed_user")) {
            (None, Some(Value::Object(user))) if self.config.vendor == "slack" => user,
            _ => fields,
        };
        let string = |name: &str| {
            fields
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let access_token = string("access_token").ok_or(ProviderError::NoToken {
            provider: self.provider.clone(),
        })?;
        let expires_in = match fields.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok(TokenResponse {
            access_token: access_token.to_string().into(),
            refresh_token: string("refresh_token").map(|r| r.to_string().into()),
            expires_in,
            scope: string("scope").map(str::to_string),
        })
    }
}

/// Fields of a token response: JSON, or form-encoded when the provider answers that way.
fn parse_fields(headers: &http::HeaderMap, body: &[u8]) -> serde_json::Map<String, Value> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/x-www-form-urlencoded") || v.starts_with("text/plain")
        });
    if !form && let Ok(Value::Object(map)) = serde_json::from_slice(body) {
        return map;
    }
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect()
}

/// An OAuth error code is a short token; anything else is not echoed anywhere.
fn sanitize_code(code: &str) -> String {
    if code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        code.to_string()
    } else {
        "unknown_error".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_and_github_style_form_answers() {
        let mut headers = http::HeaderMap::new();
        let json = parse_fields(&headers, br#"{"access_token":"a","expires_in":60}"#);
        assert_eq!(json["access_token"], "a");
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        let form = parse_fields(
            &headers,
            b"access_token=gho_x&scope=repo%2Cuser&token_type=bearer",
        );
        assert_eq!(form["access_token"], "gho_x");
        assert_eq!(form["scope"], "repo,user");
    }

    #[test]
    fn error_codes_are_never_echoed_raw() {
        assert_eq!(sanitize_code("invalid_grant"), "invalid_grant");
        assert_eq!(sanitize_code("<script>secret=abc"), "unknown_error");
    }
}
