//! Notion, from "Authorization" for public integrations (developers.notion.com/docs/authorization)
//! and the "Create a token" / "Refresh a token" reference: the authorization URL needs
//! `owner=user`; Notion has no scopes; the token request authenticates the client by HTTP
//! Basic and carries a JSON body (`{"grant_type":"authorization_code","code":...,
//! "redirect_uri":...}`); the answer has `access_token`, `bot_id`, `workspace_id`, `owner` and
//! (newer API) a `refresh_token`, renewed by each refresh; errors as 400 JSON.

use serde_json::json;

use super::*;

const CLIENT_ID: &str = "463558a3-725e-4f37-b6d3-0889894f68de";
const CLIENT_SECRET: &str = "secret_notion";

#[derive(Default)]
pub struct Notion {
    pub grants: Grants,
}

impl Notion {
    fn authorize(&self, request: &Captured) -> Reply {
        if request.param("client_id") != Some(CLIENT_ID) || request.param("owner") != Some("user") {
            return Reply::page(400, "Missing or invalid owner, client_id");
        }
        let grant = Grant {
            scopes: Vec::new(),
            redirect_uri: request.param("redirect_uri").unwrap_or("").to_string(),
            offline: true,
            code_challenge: None,
        };
        let code = self.grants.code(grant);
        back_to_client(request, &[("code", &code)])
    }

    fn token(&self, request: &Captured) -> Reply {
        if request.basic() != Some((CLIENT_ID.into(), CLIENT_SECRET.into())) {
            return Reply::json(401, json!({"error": "invalid_client"}));
        }
        if request.content_type() != "application/json" {
            return Reply::json(
                400,
                json!({"error": "invalid_request", "error_description": "body must be JSON"}),
            );
        }
        let fields = request.fields();
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
        let grant = match field("grant_type") {
            "authorization_code" => self
                .grants
                .redeem(field("code"), field("redirect_uri"), None),
            "refresh_token" => self.grants.use_refresh(field("refresh_token"), true),
            _ => return Reply::json(400, json!({"error": "unsupported_grant_type"})),
        };
        let Some(grant) = grant else {
            return Reply::json(
                400,
                json!({"error": "invalid_grant", "error_description": "Invalid code or refresh token."}),
            );
        };
        Reply::json(
            200,
            json!({
                "access_token": self.grants.access("ntn_"),
                "refresh_token": self.grants.refresh_token("nrt_", &grant),
                "token_type": "bearer",
                "bot_id": "b3414d65-1224-5ty7-6ffr-cc9d8773drt601288f",
                "workspace_name": "Acme",
                "workspace_icon": null,
                "workspace_id": "j565j4d7x3-9882-61bs-564a-jj9d9ui-c36hxfr7x",
                "owner": {"type": "user", "user": {"object": "user", "id": "4b9e5f0c"}},
                "duplicated_template_id": null,
                "request_id": "f0a3a1b2-0c1d-4e5f-8a9b-0c1d2e3f4a5b",
            }),
        )
    }
}

impl Vendor for Notion {
    fn handle(&self, request: &Captured) -> Reply {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/v1/oauth/authorize") => self.authorize(request),
            ("POST", "/v1/oauth/token") => self.token(request),
            _ => Reply::page(404, "Not Found"),
        }
    }
}

#[tokio::test]
async fn notion_gets_owner_user_basic_auth_and_a_json_token_request() {
    let notion = Emulator::start(Notion::default()).await;
    let provider = provider_config(
        "notion",
        (CLIENT_ID, CLIENT_SECRET),
        &notion.url(),
        "/v1/oauth/authorize",
        "/v1/oauth/token",
    );
    let journey = Journey::start(&provider, &[]).await;
    let at_notion = journey.consent_ok("alice").await;
    assert_eq!(params(&at_notion)["owner"], "user");
    let first = journey.served("alice").await;
    assert_eq!(
        first,
        format!("Bearer {}", notion.vendor.grants.last_access())
    );

    let exchanges = notion.vendor.grants.token_requests();
    assert_eq!(journey.served("alice").await, first);
    assert_eq!(notion.vendor.grants.token_requests(), exchanges);

    // Refreshes are JSON too, and renew the refresh token.
    journey.upstream_refuses(&first);
    let second = journey.served("alice").await;
    assert_ne!(second, first);
    journey.upstream_refuses(&second);
    let third = journey.served("alice").await;
    assert_ne!(third, second);

    notion.vendor.grants.revoke_all();
    journey.upstream_refuses(&third);
    journey.asks_for_consent_again("alice").await;
}
