//! Slack, from "Installing with OAuth" (api.slack.com/authentication/oauth-v2), `oauth.v2.access`
//! and "Token rotation": `scope` names bot scopes and `user_scope` user scopes, both
//! comma-separated; the user token is under `authed_user` (`token_type: "user"`); with token
//! rotation on, tokens expire (`expires_in`) and come with a refresh token, and a refresh answers
//! the user token at the top level; every answer is HTTP 200, errors as `"ok": false`.

use serde_json::json;

use super::*;

const CLIENT_ID: &str = "3336676.569200954261";
const CLIENT_SECRET: &str = "slack-secret";
const KNOWN_SCOPES: &[&str] = &[
    "chat:write",
    "users:read",
    "channels:history",
    "search:read",
];

#[derive(Default)]
pub struct Slack {
    pub grants: Grants,
}

/// Comma-separated scopes, each one Slack knows (a space inside makes an unknown scope).
fn scopes(list: Option<&str>) -> Option<Vec<String>> {
    list.unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| KNOWN_SCOPES.contains(&s).then(|| s.to_string()))
        .collect()
}

impl Slack {
    fn authorize(&self, request: &Captured) -> Reply {
        if request.param("client_id") != Some(CLIENT_ID) {
            return Reply::page(400, "invalid_client_id");
        }
        let (Some(bot), Some(user)) = (
            scopes(request.param("scope")),
            scopes(request.param("user_scope")),
        ) else {
            return Reply::page(400, "Invalid permissions requested");
        };
        if bot.is_empty() && user.is_empty() {
            return Reply::page(400, "No scopes requested");
        }
        // This emulator installs user tokens only; bot scopes would get a bot token.
        if !bot.is_empty() {
            return Reply::page(400, "This app has no bot user");
        }
        let grant = Grant {
            scopes: user,
            redirect_uri: request.param("redirect_uri").unwrap_or("").to_string(),
            offline: true,
            code_challenge: None,
        };
        let code = self.grants.code(grant);
        back_to_client(request, &[("code", &code)])
    }

    fn token(&self, request: &Captured) -> Reply {
        let client = request.basic().or_else(|| request.posted_client());
        if client != Some((CLIENT_ID.into(), CLIENT_SECRET.into())) {
            return Reply::json(200, json!({"ok": false, "error": "invalid_client_id"}));
        }
        let fields = request.fields();
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
        if field("grant_type") == "refresh_token" {
            let Some(grant) = self.grants.use_refresh(field("refresh_token"), false) else {
                return Reply::json(200, json!({"ok": false, "error": "invalid_refresh_token"}));
            };
            return Reply::json(
                200,
                json!({
                    "ok": true, "app_id": "A0KRD7HC3",
                    "access_token": self.grants.access("xoxe.xoxp-1-"),
                    "expires_in": 43200,
                    "refresh_token": self.grants.refresh_token("xoxe-1-", &grant),
                    "token_type": "user", "scope": grant.scopes.join(","),
                    "user_id": "U1234", "team": {"id": "T9TK3CUKW"}, "enterprise": null,
                }),
            );
        }
        let Some(grant) = self
            .grants
            .redeem(field("code"), field("redirect_uri"), None)
        else {
            return Reply::json(200, json!({"ok": false, "error": "invalid_code"}));
        };
        Reply::json(
            200,
            json!({
                "ok": true, "app_id": "A0KRD7HC3",
                "authed_user": {
                    "id": "U1234", "scope": grant.scopes.join(","),
                    "access_token": self.grants.access("xoxe.xoxp-1-"),
                    "token_type": "user", "expires_in": 43200,
                    "refresh_token": self.grants.refresh_token("xoxe-1-", &grant),
                },
                "team": {"name": "Slack Softball Team", "id": "T9TK3CUKW"},
                "enterprise": null, "is_enterprise_install": false,
            }),
        )
    }
}

impl Vendor for Slack {
    fn handle(&self, request: &Captured) -> Reply {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/oauth/v2/authorize") => self.authorize(request),
            ("POST", "/api/oauth.v2.access") => self.token(request),
            _ => Reply::page(404, "Not Found"),
        }
    }
}

#[tokio::test]
async fn slack_user_scopes_go_in_user_scope_and_the_user_token_comes_from_authed_user() {
    let slack = Emulator::start(Slack::default()).await;
    let provider = provider_config(
        "slack",
        (CLIENT_ID, CLIENT_SECRET),
        &slack.url(),
        "/oauth/v2/authorize",
        "/api/oauth.v2.access",
    );
    let journey = Journey::start(&provider, &["chat:write", "users:read"]).await;
    let at_slack = journey.consent_ok("alice").await;
    let sent = params(&at_slack);
    assert_eq!(sent["user_scope"], "chat:write,users:read", "{at_slack}");
    assert!(
        !sent.contains_key("scope"),
        "bot scopes asked for: {at_slack}"
    );
    let first = journey.served("alice").await;
    assert!(first.starts_with("Bearer xoxe.xoxp-"), "{first}");
    assert_eq!(
        first,
        format!("Bearer {}", slack.vendor.grants.last_access())
    );
    assert!(journey.vaulted("alice").await.unwrap().expires_at.is_some());

    // The comma-separated echo is the same grant: no new consent.
    assert_eq!(
        journey.scope_reduced().await,
        0,
        "a vendor's spelling is no reduced grant"
    );
    let exchanges = slack.vendor.grants.token_requests();
    assert_eq!(journey.served("alice").await, first);
    assert_eq!(slack.vendor.grants.token_requests(), exchanges);

    // Token rotation: the refresh answers the user token at the top level, `token_type: user`.
    journey.upstream_refuses(&first);
    let second = journey.served("alice").await;
    assert_ne!(second, first);
    assert_eq!(
        second,
        format!("Bearer {}", slack.vendor.grants.last_access())
    );

    // HTTP 200 with `"ok": false`: a refused code reaches the app, a dead refresh token means
    // consent again.
    let back = journey.callback_with_bad_code("bob").await;
    assert!(back.contains("error=invalid_code"), "{back}");
    slack.vendor.grants.revoke_all();
    journey.upstream_refuses(&second);
    journey.asks_for_consent_again("alice").await;
}
