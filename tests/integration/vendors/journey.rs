//! The consent + refresh journey through keygate that every vendor emulator is driven by:
//! proxy 401 → keygate's authorization URL → the vendor → keygate's callback →
//! `CompleteResourceTokenAuth` → the token at an echo upstream → refresh when the upstream
//! refuses it, and the metrics and vault entries the tests check along the way.

use std::collections::HashMap;

use http::{HeaderMap, StatusCode};
use keygate::consent::{self, ConsentError};
use keygate::inbound::UserId;
use keygate::vault::{Credential, OAuthTokens};
use url::Url;

use crate::common::*;

pub const RETURN_URL: &str = "http://127.0.0.1:1/app/callback";

/// keygate in front of an echo upstream, with one 3LO route (`/tool/`) for the provider
/// `vendor`, configured by `provider` (its TOML lines after `name` and `kind`).
pub struct Journey {
    pub gw: TestGateway,
    pub upstream: Upstream,
}

/// How one consent went.
pub struct Consent {
    /// Where keygate sent the browser: the vendor's authorization URL.
    pub at_vendor: Url,
    /// Where the browser ended (the app's return URL), if the vendor sent it back.
    pub back: Option<String>,
    /// `CompleteResourceTokenAuth`, if the browser came back.
    pub completed: Option<Result<(), ConsentError>>,
}

pub fn user(id: &str) -> UserId {
    UserId {
        issuer: None,
        id: id.to_string(),
    }
}

impl Journey {
    pub async fn start(provider: &str, scopes: &[&str]) -> Journey {
        let upstream = Upstream::start().await;
        let scopes: Vec<String> = scopes.iter().map(|s| format!("\"{s}\"")).collect();
        // A known port: keygate's public URL (its callback) is built from `listen`.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let toml = format!(
            r#"[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:0"
[audit]
path = "-"

[[workloads]]
name = "agent-one"
allowed_return_urls = ["{RETURN_URL}"]

[[providers]]
name = "vendor"
kind = "oauth2"
{provider}

[[routes]]
name = "tool"
path_prefix = "/tool/"
upstream = "{up}/"
workload = "agent-one"
[routes.credential]
provider = "vendor"
flow = "user_federation"
scopes = [{scopes}]
return_url = "{RETURN_URL}"
"#,
            up = upstream.url(),
            scopes = scopes.join(", "),
        );
        Journey {
            gw: TestGateway::start(&toml).await,
            upstream,
        }
    }

    /// Calls the 3LO route as `user_id`.
    pub async fn call(&self, user_id: &str) -> (StatusCode, HeaderMap, String) {
        let token = self
            .gw
            .state
            .workload_tokens()
            .issue("agent-one", Some(&user(user_id)))
            .unwrap();
        get_auth(&self.gw.url("/tool/data"), &token).await
    }

    /// The `Authorization` the upstream received for a call as `user_id` (which must succeed).
    pub async fn served(&self, user_id: &str) -> String {
        let (status, _, body) = self.call(user_id).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen(&body).header("authorization").unwrap().to_string()
    }

    /// Asserts that a call as `user_id` asks for consent; returns the challenge's
    /// authorization URL and session URI.
    pub async fn challenged(&self, user_id: &str) -> (String, String) {
        let (status, _, body) = self.call(user_id).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error"], "consent_required", "{body}");
        (
            json["authorizationUrl"].as_str().unwrap().to_string(),
            json["sessionUri"].as_str().unwrap().to_string(),
        )
    }

    /// Where keygate's authorization URL sends the browser (the vendor, with its parameters).
    pub async fn to_vendor(&self, authorization_url: &str) -> Url {
        let (status, headers, body) = get(authorization_url).await;
        assert_eq!(status, StatusCode::FOUND, "{body}");
        Url::parse(headers["location"].to_str().unwrap()).unwrap()
    }

    /// The whole consent as `user_id`: challenge, keygate's redirect, the vendor (which consents
    /// at once or refuses), keygate's callback, and `CompleteResourceTokenAuth`.
    pub async fn consent(&self, user_id: &str) -> Consent {
        let (authorization_url, session_uri) = self.challenged(user_id).await;
        let at_vendor = self.to_vendor(&authorization_url).await;
        let (status, headers, _) = get(at_vendor.as_str()).await;
        if status != StatusCode::FOUND {
            return Consent {
                at_vendor,
                back: None,
                completed: None,
            };
        }
        let callback = headers["location"].to_str().unwrap().to_string();
        let (status, headers, body) = get(&callback).await;
        assert_eq!(status, StatusCode::FOUND, "{body}");
        let back = headers["location"].to_str().unwrap().to_string();
        assert!(back.starts_with(RETURN_URL), "{back}");
        let completed = consent::complete(self.gw.state.vault(), &session_uri, &user(user_id))
            .await
            .map(|_| ());
        Consent {
            at_vendor,
            back: Some(back),
            completed: Some(completed),
        }
    }

    /// A consent that must succeed; returns the vendor's authorization URL keygate built.
    pub async fn consent_ok(&self, user_id: &str) -> Url {
        let consent = self.consent(user_id).await;
        let back = consent.back.as_deref().unwrap_or_else(|| {
            panic!(
                "the vendor refused the authorization request {}",
                consent.at_vendor
            )
        });
        assert!(!back.contains("error="), "{back}");
        consent.completed.unwrap().unwrap();
        consent.at_vendor
    }

    /// keygate's callback for a pending session of `user_id`, with a code the vendor never
    /// issued; returns the app's return URL (carrying the vendor's error code).
    pub async fn callback_with_bad_code(&self, user_id: &str) -> String {
        let (_, session_uri) = self.challenged(user_id).await;
        let state = consent::session_id(&session_uri).unwrap();
        let (status, headers, body) = get(&self.gw.url(&format!(
            "/identities/oauth2/callback?code=never-issued&state={state}"
        )))
        .await;
        assert_eq!(status, StatusCode::FOUND, "{body}");
        headers["location"].to_str().unwrap().to_string()
    }

    /// Consents whose grant the provider's answer showed smaller than asked for
    /// (`keygate_consent_sessions_total{result="scope_reduced"}`).
    pub async fn scope_reduced(&self) -> u64 {
        let metrics = self.gw.metrics().await;
        let name = r#"keygate_consent_sessions_total{result="scope_reduced"} "#;
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    /// `user_id`'s vaulted tokens.
    pub async fn vaulted(&self, user_id: &str) -> Option<OAuthTokens> {
        let owner = consent::user_owner("agent-one", &user(user_id), "vendor");
        match self.gw.state.vault().get(&owner).await.unwrap().as_deref() {
            Some(Credential::OAuth(tokens)) => Some(tokens.clone()),
            Some(_) => panic!("not an OAuth entry"),
            None => None,
        }
    }

    /// The upstream refuses `authorization` from now on (the resource server revoked it), so
    /// keygate's next use of it makes it refresh.
    pub fn upstream_refuses(&self, authorization: &str) {
        self.upstream
            .rejected
            .lock()
            .unwrap()
            .insert(authorization.to_string());
    }

    /// After the vendor stopped honouring the refresh token and the upstream refused the access
    /// token: the request asks for consent again and the dead entry is gone.
    pub async fn asks_for_consent_again(&self, user_id: &str) {
        // This request gets the upstream's refusal; the refresh failed for good.
        let (status, _, body) = self.call(user_id).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        self.challenged(user_id).await;
        assert!(
            self.vaulted(user_id).await.is_none(),
            "a refused refresh token was kept"
        );
    }
}

/// The query parameters of a URL, by name (each name once).
pub fn params(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}
