//! Atlassian, from "OAuth 2.0 (3LO) apps" (developer.atlassian.com/cloud/jira/platform/
//! oauth-2-3lo-apps): the authorization URL needs `audience=api.atlassian.com` and
//! `prompt=consent`; scopes space-separated, `offline_access` for a refresh token; token
//! requests with the client in the body (JSON in the docs), JSON answers; refresh tokens rotate:
//! each refresh answers a new one and the one used stops working (403 `invalid_grant`).

use serde_json::json;

use super::*;

const CLIENT_ID: &str = "atl-client";
const CLIENT_SECRET: &str = "atl-secret";

#[derive(Default)]
pub struct Atlassian {
    pub grants: Grants,
}

impl Atlassian {
    fn authorize(&self, request: &Captured) -> Reply {
        if request.param("audience") != Some("api.atlassian.com") {
            return Reply::page(400, "Something went wrong: audience is missing or invalid");
        }
        if request.param("prompt") != Some("consent")
            || request.param("client_id") != Some(CLIENT_ID)
        {
            return Reply::page(400, "Something went wrong: invalid request");
        }
        let scopes: Vec<String> = request
            .param("scope")
            .unwrap_or("")
            .split(' ')
            .map(str::to_string)
            .collect();
        let grant = Grant {
            offline: scopes.iter().any(|s| s == "offline_access"),
            scopes,
            redirect_uri: request.param("redirect_uri").unwrap_or("").to_string(),
            code_challenge: None,
        };
        let code = self.grants.code(grant);
        back_to_client(request, &[("code", &code)])
    }

    fn token(&self, request: &Captured) -> Reply {
        let fields = request.fields();
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
        if (field("client_id"), field("client_secret")) != (CLIENT_ID, CLIENT_SECRET) {
            return Reply::json(
                401,
                json!({"error": "access_denied", "error_description": "Unauthorized"}),
            );
        }
        let grant = match field("grant_type") {
            "authorization_code" => self
                .grants
                .redeem(field("code"), field("redirect_uri"), None),
            "refresh_token" => self.grants.use_refresh(field("refresh_token"), true),
            _ => return Reply::json(400, json!({"error": "unsupported_grant_type"})),
        };
        let Some(grant) = grant else {
            return Reply::json(
                403,
                json!({"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}),
            );
        };
        let mut answer = json!({
            "access_token": self.grants.access("eyJraWQiOiJhdGwi."),
            "expires_in": 3600,
            "token_type": "Bearer",
            "scope": grant.scopes.join(" "),
        });
        if grant.offline {
            answer["refresh_token"] = json!(self.grants.refresh_token("atl-rt-", &grant));
        }
        Reply::json(200, answer)
    }
}

impl Vendor for Atlassian {
    fn handle(&self, request: &Captured) -> Reply {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/authorize") => self.authorize(request),
            ("POST", "/oauth/token") => self.token(request),
            _ => Reply::page(404, "Not Found"),
        }
    }
}

#[tokio::test]
async fn atlassian_needs_audience_and_consent_prompt_and_rotates_refresh_tokens() {
    let atlassian = Emulator::start(Atlassian::default()).await;
    let provider = provider_config(
        "atlassian",
        (CLIENT_ID, CLIENT_SECRET),
        &atlassian.url(),
        "/authorize",
        "/oauth/token",
    );
    let journey = Journey::start(&provider, &["read:jira-work", "offline_access"]).await;
    let at_atlassian = journey.consent_ok("alice").await;
    let sent = params(&at_atlassian);
    assert_eq!(sent["audience"], "api.atlassian.com");
    assert_eq!(sent["prompt"], "consent");
    assert_eq!(sent["scope"], "read:jira-work offline_access");
    let first = journey.served("alice").await;
    assert_eq!(
        first,
        format!("Bearer {}", atlassian.vendor.grants.last_access())
    );

    // Each refresh spends the refresh token: the second works only with the rotated one.
    journey.upstream_refuses(&first);
    let second = journey.served("alice").await;
    assert_ne!(second, first);
    journey.upstream_refuses(&second);
    let third = journey.served("alice").await;
    assert_ne!(third, second);
    assert_eq!(
        third,
        format!("Bearer {}", atlassian.vendor.grants.last_access())
    );

    // 403 invalid_grant: consent again.
    atlassian.vendor.grants.revoke_all();
    journey.upstream_refuses(&third);
    journey.asks_for_consent_again("alice").await;
}
