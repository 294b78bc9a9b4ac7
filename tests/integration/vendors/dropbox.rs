//! Dropbox, from the "OAuth Guide" (developers.dropbox.com/oauth-guide) and the `/oauth2/authorize`
//! and `/oauth2/token` reference: scopes space-separated (`files.content.read`, ...; an unknown
//! one is an error); `token_access_type=offline` for a refresh token; short-lived access tokens
//! with `expires_in`; refreshes answer no refresh token; the client by HTTP Basic or in the body;
//! errors as 400 JSON.

use serde_json::json;

use super::*;

const CLIENT_ID: &str = "dbx-app-key";
const CLIENT_SECRET: &str = "dbx-app-secret";
const KNOWN_SCOPES: &[&str] = &[
    "account_info.read",
    "files.metadata.read",
    "files.content.read",
];

#[derive(Default)]
pub struct Dropbox {
    pub grants: Grants,
}

impl Dropbox {
    fn authorize(&self, request: &Captured) -> Reply {
        if request.param("client_id") != Some(CLIENT_ID) {
            return Reply::page(400, "Invalid client_id");
        }
        let scopes: Vec<String> = request
            .param("scope")
            .unwrap_or("")
            .split(' ')
            .map(str::to_string)
            .collect();
        if let Some(unknown) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
            return Reply::page(400, &format!("Invalid scope: {unknown}"));
        }
        let grant = Grant {
            scopes,
            redirect_uri: request.param("redirect_uri").unwrap_or("").to_string(),
            offline: request.param("token_access_type") == Some("offline"),
            code_challenge: request.param("code_challenge").map(str::to_string),
        };
        let code = self.grants.code(grant);
        back_to_client(request, &[("code", &code)])
    }

    fn token(&self, request: &Captured) -> Reply {
        let client = request.basic().or_else(|| request.posted_client());
        if client != Some((CLIENT_ID.into(), CLIENT_SECRET.into())) {
            return Reply::json(400, json!({"error": "invalid_client"}));
        }
        let fields = request.fields();
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
        let invalid = || {
            Reply::json(
                400,
                json!({"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"}),
            )
        };
        match field("grant_type") {
            "authorization_code" => {
                let Some(grant) = self.grants.redeem(
                    field("code"),
                    field("redirect_uri"),
                    fields.get("code_verifier").map(String::as_str),
                ) else {
                    return invalid();
                };
                let mut answer = json!({
                    "access_token": self.grants.access("sl.u.AF-"),
                    "expires_in": 14400,
                    "token_type": "bearer",
                    "scope": grant.scopes.join(" "),
                    "account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
                    "uid": "12345",
                });
                if grant.offline {
                    answer["refresh_token"] = json!(self.grants.refresh_token("dbx-rt-", &grant));
                }
                Reply::json(200, answer)
            }
            "refresh_token" => match self.grants.use_refresh(field("refresh_token"), false) {
                Some(_) => Reply::json(
                    200,
                    json!({
                        "access_token": self.grants.access("sl.u.AF-"),
                        "expires_in": 14400,
                        "token_type": "bearer",
                    }),
                ),
                None => invalid(),
            },
            _ => Reply::json(400, json!({"error": "unsupported_grant_type"})),
        }
    }
}

impl Vendor for Dropbox {
    fn handle(&self, request: &Captured) -> Reply {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/oauth2/authorize") => self.authorize(request),
            ("POST", "/oauth2/token") => self.token(request),
            _ => Reply::page(404, "Not Found"),
        }
    }
}

#[tokio::test]
async fn dropbox_offline_access_becomes_token_access_type_offline() {
    let dropbox = Emulator::start(Dropbox::default()).await;
    let provider = provider_config(
        "dropbox",
        (CLIENT_ID, CLIENT_SECRET),
        &dropbox.url(),
        "/oauth2/authorize",
        "/oauth2/token",
    );
    let journey = Journey::start(&provider, &["files.content.read", "offline_access"]).await;
    let at_dropbox = journey.consent_ok("alice").await;
    let sent = params(&at_dropbox);
    assert_eq!(sent["scope"], "files.content.read");
    assert_eq!(sent["token_access_type"], "offline");
    let first = journey.served("alice").await;
    assert_eq!(
        first,
        format!("Bearer {}", dropbox.vendor.grants.last_access())
    );
    let vaulted = journey.vaulted("alice").await.unwrap();
    assert!(vaulted.refresh_token.is_some(), "no refresh token");
    assert!(
        vaulted
            .expires_at
            .is_some_and(|at| at > keygate::vault::store::now() + 14_000)
    );

    let exchanges = dropbox.vendor.grants.token_requests();
    assert_eq!(journey.served("alice").await, first);
    assert_eq!(dropbox.vendor.grants.token_requests(), exchanges);

    journey.upstream_refuses(&first);
    let second = journey.served("alice").await;
    assert_ne!(second, first);
    journey.upstream_refuses(&second);
    let third = journey.served("alice").await;
    assert_ne!(third, second);

    dropbox.vendor.grants.revoke_all();
    journey.upstream_refuses(&third);
    journey.asks_for_consent_again("alice").await;
}
