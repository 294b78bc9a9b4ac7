//! Salesforce, from "OAuth 2.0 Web Server Flow for Web App Integration" and "OAuth Tokens and
//! Scopes" (help.salesforce.com): scopes space-separated, `refresh_token` or its synonym
//! `offline_access` for a refresh token; the client in the body; answers carry no `expires_in`
//! (the session lasts as the org's policy says) but `instance_url`, `id`, `issued_at` and
//! `signature`; refreshes answer no refresh token; errors as 400 JSON.

use serde_json::json;

use super::*;

const CLIENT_ID: &str = "3MVG9lKcPoNINVBIPJjdw1J9LLM82Hn";
const CLIENT_SECRET: &str = "sf-secret";
const KNOWN_SCOPES: &[&str] = &[
    "api",
    "id",
    "web",
    "full",
    "openid",
    "refresh_token",
    "offline_access",
];

#[derive(Default)]
pub struct Salesforce {
    pub grants: Grants,
}

impl Salesforce {
    fn authorize(&self, request: &Captured) -> Reply {
        if request.param("client_id") != Some(CLIENT_ID) {
            return back_to_client(request, &[("error", "invalid_client_id")]);
        }
        let scopes: Vec<String> = request
            .param("scope")
            .unwrap_or("")
            .split(' ')
            .map(str::to_string)
            .collect();
        if !scopes.iter().all(|s| KNOWN_SCOPES.contains(&s.as_str())) {
            return back_to_client(request, &[("error", "invalid_scope")]);
        }
        let grant = Grant {
            offline: scopes
                .iter()
                .any(|s| s == "refresh_token" || s == "offline_access"),
            scopes,
            redirect_uri: request.param("redirect_uri").unwrap_or("").to_string(),
            code_challenge: request.param("code_challenge").map(str::to_string),
        };
        let code = self.grants.code(grant);
        back_to_client(request, &[("code", &code)])
    }

    fn token(&self, request: &Captured) -> Reply {
        let fields = request.fields();
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
        if (field("client_id"), field("client_secret")) != (CLIENT_ID, CLIENT_SECRET) {
            return Reply::json(
                400,
                json!({"error": "invalid_client_id", "error_description": "client identifier invalid"}),
            );
        }
        let (grant, first) = match field("grant_type") {
            "authorization_code" => (
                self.grants.redeem(
                    field("code"),
                    field("redirect_uri"),
                    fields.get("code_verifier").map(String::as_str),
                ),
                true,
            ),
            "refresh_token" => (
                self.grants.use_refresh(field("refresh_token"), false),
                false,
            ),
            _ => return Reply::json(400, json!({"error": "unsupported_grant_type"})),
        };
        let Some(grant) = grant else {
            return Reply::json(
                400,
                json!({"error": "invalid_grant", "error_description": "expired access/refresh token"}),
            );
        };
        let mut answer = json!({
            "access_token": self.grants.access("00D5e000000Xyz!AQ4AQ-"),
            "signature": "CMJ4l+CCaPQiKjoOEwEig9H4wqhpuLSk4J2urAe+fVg=",
            "scope": grant.scopes.join(" "),
            "instance_url": "https://mycompany.my.salesforce.com",
            "id": "https://login.salesforce.com/id/00D5e000000Xyz/0055e000001Abc",
            "token_type": "Bearer",
            "issued_at": "1733029200000",
        });
        if first && grant.offline {
            answer["refresh_token"] = json!(self.grants.refresh_token("5Aep861", &grant));
        }
        Reply::json(200, answer)
    }
}

impl Vendor for Salesforce {
    fn handle(&self, request: &Captured) -> Reply {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/services/oauth2/authorize") => self.authorize(request),
            ("POST", "/services/oauth2/token") => self.token(request),
            _ => Reply::page(404, "Not Found"),
        }
    }
}

#[tokio::test]
async fn salesforce_tokens_without_expires_in_are_refreshed_when_the_api_refuses_them() {
    let salesforce = Emulator::start(Salesforce::default()).await;
    let provider = provider_config(
        "salesforce",
        (CLIENT_ID, CLIENT_SECRET),
        &salesforce.url(),
        "/services/oauth2/authorize",
        "/services/oauth2/token",
    );
    let journey = Journey::start(&provider, &["api", "offline_access"]).await;
    let at_salesforce = journey.consent_ok("alice").await;
    assert_eq!(params(&at_salesforce)["scope"], "api offline_access");
    let first = journey.served("alice").await;
    assert_eq!(
        first,
        format!("Bearer {}", salesforce.vendor.grants.last_access())
    );
    let vaulted = journey.vaulted("alice").await.unwrap();
    assert_eq!(vaulted.expires_at, None, "Salesforce says no expiry");
    assert!(vaulted.refresh_token.is_some());

    let exchanges = salesforce.vendor.grants.token_requests();
    assert_eq!(journey.served("alice").await, first);
    assert_eq!(salesforce.vendor.grants.token_requests(), exchanges);

    // The session ended on Salesforce's side: the API answers 401, keygate refreshes, and the
    // refresh token (not repeated in the answer) is kept for the next time.
    journey.upstream_refuses(&first);
    let second = journey.served("alice").await;
    assert_ne!(second, first);
    journey.upstream_refuses(&second);
    let third = journey.served("alice").await;
    assert_ne!(third, second);

    salesforce.vendor.grants.revoke_all();
    journey.upstream_refuses(&third);
    journey.asks_for_consent_again("alice").await;
}
