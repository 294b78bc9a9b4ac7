//! Google, from "Using OAuth 2.0 for Web Server Applications"
//! (developers.google.com/identity/protocols/oauth2/web-server) and Google's OpenID Connect
//! page: scopes space-delimited, `email`/`profile` echoed in URL form; `offline_access` is not a
//! Google scope (an error page); a refresh token only with `access_type=offline` and
//! `prompt=consent`; refresh answers carry no new refresh token; errors as 400 JSON.

use serde_json::json;

use super::*;

const CLIENT_ID: &str = "1234-abc.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "GOCSPX-secret";

#[derive(Default)]
pub struct Google {
    pub grants: Grants,
}

/// A scope Google knows, in the form it echoes.
fn echoed(scope: &str) -> Option<String> {
    match scope {
        "openid" => Some("openid".into()),
        "email" => Some("https://www.googleapis.com/auth/userinfo.email".into()),
        "profile" => Some("https://www.googleapis.com/auth/userinfo.profile".into()),
        s if s.starts_with("https://www.googleapis.com/auth/") => Some(s.into()),
        _ => None,
    }
}

impl Google {
    fn authorize(&self, request: &Captured) -> Reply {
        if request.param("client_id") != Some(CLIENT_ID) {
            return Reply::page(400, "Error 401: invalid_client");
        }
        if request.param("response_type") != Some("code") {
            return Reply::page(400, "Error 400: unsupported_response_type");
        }
        let requested: Vec<&str> = request.param("scope").unwrap_or("").split(' ').collect();
        let Some(scopes) = requested
            .iter()
            .map(|s| echoed(s))
            .collect::<Option<Vec<_>>>()
        else {
            return Reply::page(400, "Error 400: invalid_scope");
        };
        let prompts: Vec<&str> = request.param("prompt").unwrap_or("").split(' ').collect();
        let echo = scopes.join(" ");
        let grant = Grant {
            scopes,
            redirect_uri: request.param("redirect_uri").unwrap_or("").to_string(),
            offline: request.param("access_type") == Some("offline")
                && prompts.contains(&"consent"),
            code_challenge: request.param("code_challenge").map(str::to_string),
        };
        let code = self.grants.code(grant);
        back_to_client(request, &[("code", &code), ("scope", &echo)])
    }

    fn token(&self, request: &Captured) -> Reply {
        let client = request.posted_client().or_else(|| request.basic());
        if client != Some((CLIENT_ID.into(), CLIENT_SECRET.into())) {
            return Reply::json(401, json!({"error": "invalid_client"}));
        }
        let fields = request.fields();
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
        match field("grant_type") {
            "authorization_code" => {
                let Some(grant) = self.grants.redeem(
                    field("code"),
                    field("redirect_uri"),
                    fields.get("code_verifier").map(String::as_str),
                ) else {
                    return Reply::json(
                        400,
                        json!({"error": "invalid_grant", "error_description": "Bad Request"}),
                    );
                };
                let mut answer = json!({
                    "access_token": self.grants.access("ya29.a0-"),
                    "expires_in": 3599,
                    "scope": grant.scopes.join(" "),
                    "token_type": "Bearer",
                    "id_token": "eyJhbGciOiJSUzI1NiJ9.e30.sig",
                });
                if grant.offline {
                    answer["refresh_token"] = json!(self.grants.refresh_token("1//0g-", &grant));
                }
                Reply::json(200, answer)
            }
            "refresh_token" => match self.grants.use_refresh(field("refresh_token"), false) {
                Some(grant) => Reply::json(
                    200,
                    json!({
                        "access_token": self.grants.access("ya29.a0-"),
                        "expires_in": 3599,
                        "scope": grant.scopes.join(" "),
                        "token_type": "Bearer",
                    }),
                ),
                None => Reply::json(
                    400,
                    json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
                ),
            },
            _ => Reply::json(400, json!({"error": "unsupported_grant_type"})),
        }
    }
}

impl Vendor for Google {
    fn handle(&self, request: &Captured) -> Reply {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/o/oauth2/v2/auth") => self.authorize(request),
            ("POST", "/token") => self.token(request),
            _ => Reply::page(404, "Not Found"),
        }
    }
}

async fn google_journey(scopes: &[&str]) -> (Journey, Emulator<Google>) {
    let google = Emulator::start(Google::default()).await;
    let provider = provider_config(
        "google",
        (CLIENT_ID, CLIENT_SECRET),
        &google.url(),
        "/o/oauth2/v2/auth",
        "/token",
    );
    (Journey::start(&provider, scopes).await, google)
}

#[tokio::test]
async fn google_offline_access_becomes_access_type_offline_and_the_refresh_token_is_kept() {
    let (journey, google) = google_journey(&["openid", "email", "profile", "offline_access"]).await;
    let at_google = journey.consent_ok("alice").await;
    let sent = params(&at_google);
    assert_eq!(sent["scope"], "openid email profile", "{at_google}");
    assert_eq!(sent["access_type"], "offline");
    assert_eq!(sent["prompt"], "consent");
    let first = journey.served("alice").await;
    assert_eq!(
        first,
        format!("Bearer {}", google.vendor.grants.last_access())
    );
    let refresh_token = journey.vaulted("alice").await.unwrap().refresh_token;
    assert!(refresh_token.is_some(), "Google gave no refresh token");

    // Google echoed the scopes in URL form: the consent just given still serves.
    assert_eq!(
        journey.scope_reduced().await,
        0,
        "a vendor's spelling is no reduced grant"
    );
    let exchanges = google.vendor.grants.token_requests();
    assert_eq!(journey.served("alice").await, first);
    assert_eq!(google.vendor.grants.token_requests(), exchanges);

    // Refreshes answer no refresh token: the first one is kept and keeps working.
    journey.upstream_refuses(&first);
    let second = journey.served("alice").await;
    assert_eq!(
        second,
        format!("Bearer {}", google.vendor.grants.last_access())
    );
    assert_ne!(second, first);
    journey.upstream_refuses(&second);
    let third = journey.served("alice").await;
    assert_ne!(third, second);
    use secrecy::ExposeSecret;
    assert_eq!(
        journey
            .vaulted("alice")
            .await
            .unwrap()
            .refresh_token
            .map(|r| r.expose_secret().to_string()),
        refresh_token.map(|r| r.expose_secret().to_string())
    );

    // The user removes the app's access: Google's 400 invalid_grant ends in a new consent.
    google.vendor.grants.revoke_all();
    journey.upstream_refuses(&third);
    journey.asks_for_consent_again("alice").await;
}

#[tokio::test]
async fn google_without_offline_access_is_asked_for_no_refresh_token() {
    let (journey, google) = google_journey(&["email"]).await;
    let at_google = journey.consent_ok("bob").await;
    let sent = params(&at_google);
    assert_eq!(sent["scope"], "email");
    assert!(!sent.contains_key("access_type") && !sent.contains_key("prompt"));
    let token = journey.served("bob").await;
    assert_eq!(
        token,
        format!("Bearer {}", google.vendor.grants.last_access())
    );
    assert!(
        journey
            .vaulted("bob")
            .await
            .unwrap()
            .refresh_token
            .is_none()
    );
    // A code Google never issued: its 400 invalid_grant reaches the app.
    let back = journey.callback_with_bad_code("carol").await;
    assert!(back.contains("error=invalid_grant"), "{back}");
}
