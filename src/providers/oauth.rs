//! An OAuth 2.0 client for one credential provider: endpoints from a vendor preset, explicit
//! config or discovery (fetched once, on first need), the vendor's authorization parameters,
//! client authentication by `client_secret_basic` or `client_secret_post`, token requests as a
//! form (or JSON, for Notion), and answers read strictly in the vendor's dialect ([`answer`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{Request, header};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;
use url::form_urlencoded;

use super::ProviderError;
pub(crate) use super::answer::TokenResponse;
use super::answer::{self, AnswerError};
use super::vendors::{self, Dialect, Preset};
use crate::body;
use crate::config::{ClientAuth, OAuth2Provider};
use crate::fetch;
use crate::upstream::UpstreamClient;

/// A provider's endpoints.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub(crate) authorization: Option<Url>,
    token: Url,
    /// The authorization server's issuer, when known (discovery, or `issuer` in the config).
    issuer: Option<String>,
    /// The metadata says the authorization response carries `iss` (RFC 9207).
    iss_parameter_supported: bool,
}

impl Endpoints {
    /// Whether an authorization response's `iss` parameter is acceptable (RFC 9207 section
    /// 2.4): when present it must be the issuer (when the issuer is known), and it must be
    /// present when the metadata says the server sends it.
    pub(crate) fn accepts_response_issuer(&self, iss: Option<&str>) -> bool {
        match (iss, &self.issuer) {
            (Some(iss), Some(issuer)) => iss == issuer,
            (Some(_), None) => true,
            (None, _) => !self.iss_parameter_supported,
        }
    }
}

pub(crate) struct OAuthClient {
    pub(crate) provider: String,
    config: OAuth2Provider,
    http: UpstreamClient,
    endpoints: OnceCell<Endpoints>,
    /// Recent failed token requests, per vault entry.
    pub(crate) cooldown: super::cooldown::Cooldown,
}

impl OAuthClient {
    pub(crate) fn new(provider: &str, config: OAuth2Provider, http: UpstreamClient) -> Self {
        OAuthClient {
            provider: provider.to_string(),
            config,
            http,
            endpoints: OnceCell::new(),
            cooldown: super::cooldown::Cooldown::default(),
        }
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.config.client_id
    }

    fn dialect(&self) -> Dialect {
        vendors::dialect(&self.config.vendor)
    }

    /// The authorization URL's scope parameter, the vendor's own parameters for a consent to
    /// `scopes`, then the caller's `custom` ones (see [`vendors::authorization_parameters`]).
    pub(crate) fn authorization_parameters(
        &self,
        scopes: &[String],
        custom: &[(String, String)],
    ) -> Vec<(String, String)> {
        vendors::authorization_parameters(&self.config.vendor, scopes, custom)
    }

    /// The authorization-code grant with PKCE (RFC 6749 section 4.1, RFC 7636).
    pub(crate) async fn exchange_code(
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
    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
    ) -> Result<TokenResponse, ProviderError> {
        self.token_request(vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.to_string()),
        ])
        .await
    }

    /// The endpoints, resolved on first use (discovery is fetched once, then kept). Discovery
    /// and token endpoints must pass the [`crate::egress`] rules.
    pub(crate) async fn endpoints(&self) -> Result<&Endpoints, ProviderError> {
        self.endpoints
            .get_or_try_init(|| self.resolve_endpoints())
            .await
    }

    async fn resolve_endpoints(&self) -> Result<Endpoints, ProviderError> {
        let c = &self.config;
        if let Some(token) = &c.token_endpoint {
            self.egress(token, None)?;
            return Ok(Endpoints {
                authorization: c.authorization_endpoint.clone(),
                token: token.clone(),
                issuer: c.issuer.clone(),
                iss_parameter_supported: false,
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
            self.egress(&url, None)?;
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
            self.egress(&token, Some(&url))?;
            return Ok(Endpoints {
                authorization: field("authorization_endpoint"),
                token,
                issuer: doc
                    .json
                    .get("issuer")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                iss_parameter_supported: doc
                    .json
                    .get("authorization_response_iss_parameter_supported")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            });
        }
        match vendors::preset(&c.vendor) {
            Some(Preset::Fixed(authorization, token)) => {
                let tenant = c.tenant.as_deref().unwrap_or("common");
                Ok(Endpoints {
                    authorization: Some(self.url(&authorization.replace("{tenant}", tenant))?),
                    token: self.url(&token.replace("{tenant}", tenant))?,
                    issuer: c.issuer.clone(),
                    iss_parameter_supported: false,
                })
            }
            Some(Preset::Domain(authorization, token)) => {
                let domain = self.domain()?;
                Ok(Endpoints {
                    authorization: Some(self.url(&authorization.replace("{domain}", domain))?),
                    token: self.url(&token.replace("{domain}", domain))?,
                    issuer: c.issuer.clone(),
                    iss_parameter_supported: false,
                })
            }
            _ => Err(self.config_error("no token endpoint: set token_endpoint or discovery_url")),
        }
    }

    fn egress(&self, url: &Url, found_in: Option<&Url>) -> Result<(), ProviderError> {
        crate::egress::check(url, found_in, self.config.allow_insecure_http).map_err(|e| {
            self.config_error(&format!(
                "{} refused: {e}",
                url.host_str().unwrap_or_default()
            ))
        })
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

    /// The client-credentials grant with RFC 8707 `resource` indicators and `audience`
    /// parameters (one form field per value).
    pub(crate) async fn client_credentials_for(
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
    async fn token_request(
        &self,
        mut form: Vec<(&str, String)>,
    ) -> Result<TokenResponse, ProviderError> {
        let endpoints = self.endpoints().await?;
        let mut request =
            Request::post(endpoints.token.as_str()).header(header::ACCEPT, "application/json");
        let secret = self
            .config
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret().to_string())
            .unwrap_or_default();
        match super::vendors::client_auth(&self.config) {
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
        let dialect = self.dialect();
        let (content_type, body) = match dialect.json_requests {
            true => {
                let object: serde_json::Map<String, Value> = form
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v)))
                    .collect();
                ("application/json", Value::Object(object).to_string())
            }
            false => (
                "application/x-www-form-urlencoded",
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            ),
        };
        let request = request
            .header(header::CONTENT_TYPE, content_type)
            .body(body::full(body))
            .map_err(|_| self.config_error("bad token request"))?;
        let answer = fetch::send(&self.http, &endpoints.token, request)
            .await
            .map_err(|e| self.unreachable(e))?;
        answer::read(&dialect, answer.status, &answer.headers, &answer.body).map_err(|e| {
            let provider = self.provider.clone();
            match e {
                AnswerError::Refused { status, error } => ProviderError::Refused {
                    provider,
                    status,
                    error,
                },
                AnswerError::Malformed(reason) => ProviderError::BadAnswer { provider, reason },
                AnswerError::NoToken => ProviderError::NoToken { provider },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(vendor: &str, tenant: Option<&str>) -> OAuthClient {
        let config = OAuth2Provider {
            vendor: vendor.to_string(),
            client_id: "id".to_string(),
            client_secret: None,
            discovery_url: None,
            issuer: None,
            authorization_endpoint: None,
            token_endpoint: None,
            client_auth: Some(ClientAuth::ClientSecretBasic),
            tenant: tenant.map(str::to_string),
            domain: None,
            allow_insecure_http: false,
        };
        let http = crate::upstream::client(None).unwrap();
        OAuthClient::new("p", config, http)
    }

    #[tokio::test]
    async fn microsoft_endpoints_live_under_the_tenant() {
        let contoso = client("microsoft", Some("contoso.onmicrosoft.com"));
        let endpoints = contoso.endpoints().await.unwrap();
        assert_eq!(
            endpoints.token.as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(
            endpoints.authorization.as_ref().unwrap().as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
        );
        let common = client("microsoft", None);
        assert!(
            common
                .endpoints()
                .await
                .unwrap()
                .token
                .path()
                .starts_with("/common/oauth2/v2.0/")
        );
    }
}
