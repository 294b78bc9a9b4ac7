//! Microsoft identity platform v2, from "OAuth 2.0 authorization code flow"
//! (learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow) and "Scopes and
//! permissions": endpoints under a tenant path (`/{tenant}/oauth2/v2.0/authorize|token`);
//! bare scopes mean Microsoft Graph and are echoed resource-prefixed
//! (`https://graph.microsoft.com/User.Read`); `{resource}/.default` grants the app's configured
//! permissions; `offline_access` gives a refresh token, `openid`/`offline_access` are not echoed;
//! refreshes answer a new refresh token; errors as 400 JSON with `error_codes`.

use serde_json::json;

use super::*;

const TENANT: &str = "contoso.onmicrosoft.com";
const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
const CLIENT_SECRET: &str = "ms-secret";
const GRAPH: &str = "https://graph.microsoft.com/";
/// The permissions configured on the app registration (what `.default` grants).
const CONFIGURED: &[&str] = &["User.Read", "Mail.Read"];

#[derive(Default)]
pub struct Microsoft {
    pub grants: Grants,
}

/// The resource-prefixed permissions a requested scope grants (none for OIDC scopes).
fn granted(scope: &str) -> Vec<String> {
    match scope {
        "openid" | "profile" | "email" | "offline_access" => vec![],
        s if s == format!("{GRAPH}.default") => {
            CONFIGURED.iter().map(|p| format!("{GRAPH}{p}")).collect()
        }
        s if s.starts_with(GRAPH) => vec![s.to_string()],
        s => vec![format!("{GRAPH}{s}")],
    }
}

fn error(code: &str, aadsts: u32) -> Reply {
    Reply::json(
        400,
        json!({
            "error": code,
            "error_description": format!("AADSTS{aadsts}: the request failed."),
            "error_codes": [aadsts],
            "timestamp": "2026-12-01 05:00:00Z",
            "trace_id": "0000aaaa-11bb-cccc-dd22-eeeeee333333",
            "correlation_id": "aaaa0000-bb11-2222-33cc-444444dddddd",
        }),
    )
}

impl Microsoft {
    fn authorize(&self, request: &Captured) -> Reply {
        if request.param("client_id") != Some(CLIENT_ID) {
            return Reply::page(400, "AADSTS700016: application not found");
        }
        let requested: Vec<&str> = request.param("scope").unwrap_or("").split(' ').collect();
        let grant = Grant {
            scopes: requested.iter().flat_map(|s| granted(s)).collect(),
            redirect_uri: request.param("redirect_uri").unwrap_or("").to_string(),
            offline: requested.contains(&"offline_access"),
            code_challenge: request.param("code_challenge").map(str::to_string),
        };
        let code = self.grants.code(grant);
        back_to_client(request, &[("code", &code), ("session_state", "fe1540c3")])
    }

    fn token(&self, request: &Captured) -> Reply {
        let client = request.posted_client().or_else(|| request.basic());
        if client != Some((CLIENT_ID.into(), CLIENT_SECRET.into())) {
            return error("invalid_client", 7000215);
        }
        let fields = request.fields();
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
        let grant = match field("grant_type") {
            "authorization_code" => match self.grants.redeem(
                field("code"),
                field("redirect_uri"),
                fields.get("code_verifier").map(String::as_str),
            ) {
                Some(grant) => grant,
                None => return error("invalid_grant", 70000),
            },
            "refresh_token" => match self.grants.use_refresh(field("refresh_token"), false) {
                Some(grant) => grant,
                None => return error("invalid_grant", 700082),
            },
            _ => return error("unsupported_grant_type", 70003),
        };
        let mut answer = json!({
            "token_type": "Bearer",
            "scope": grant.scopes.join(" "),
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": self.grants.access("eyJ0eXAiOiJKV1Qi."),
        });
        if grant.offline {
            answer["refresh_token"] = json!(self.grants.refresh_token("1.AXkA-", &grant));
        }
        Reply::json(200, answer)
    }
}

impl Vendor for Microsoft {
    fn handle(&self, request: &Captured) -> Reply {
        let Some(rest) = request
            .path
            .strip_prefix(&format!("/{TENANT}/oauth2/v2.0/"))
        else {
            return Reply::page(400, "AADSTS90002: Tenant not found");
        };
        match (request.method.as_str(), rest) {
            ("GET", "authorize") => self.authorize(request),
            ("POST", "token") => self.token(request),
            _ => Reply::page(404, "Not Found"),
        }
    }
}

async fn microsoft_journey(scopes: &[&str]) -> (Journey, Emulator<Microsoft>) {
    let microsoft = Emulator::start(Microsoft::default()).await;
    let provider = format!(
        r#"vendor = "microsoft"
tenant = "{TENANT}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
authorization_endpoint = "{0}/{TENANT}/oauth2/v2.0/authorize"
token_endpoint = "{0}/{TENANT}/oauth2/v2.0/token""#,
        microsoft.url()
    );
    (Journey::start(&provider, scopes).await, microsoft)
}

#[tokio::test]
async fn microsoft_scopes_come_back_resource_prefixed_and_refresh_tokens_need_offline_access() {
    let (journey, microsoft) =
        microsoft_journey(&["openid", "User.Read", "Mail.Read", "offline_access"]).await;
    let at_microsoft = journey.consent_ok("alice").await;
    assert_eq!(
        params(&at_microsoft)["scope"],
        "openid User.Read Mail.Read offline_access",
        "Microsoft knows offline_access: it stays a scope"
    );
    assert!(!params(&at_microsoft).contains_key("access_type"));
    let first = journey.served("alice").await;
    assert_eq!(
        first,
        format!("Bearer {}", microsoft.vendor.grants.last_access())
    );
    assert!(
        journey
            .vaulted("alice")
            .await
            .unwrap()
            .refresh_token
            .is_some()
    );

    // The echo `https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read`
    assert_eq!(
        journey.scope_reduced().await,
        0,
        "a vendor's spelling is no reduced grant"
    );
    // is the grant asked for: no new consent.
    let exchanges = microsoft.vendor.grants.token_requests();
    assert_eq!(journey.served("alice").await, first);
    assert_eq!(microsoft.vendor.grants.token_requests(), exchanges);

    journey.upstream_refuses(&first);
    let second = journey.served("alice").await;
    assert_eq!(
        second,
        format!("Bearer {}", microsoft.vendor.grants.last_access())
    );

    // 400 with AADSTS codes: `invalid_grant` means consent again.
    microsoft.vendor.grants.revoke_all();
    journey.upstream_refuses(&second);
    journey.asks_for_consent_again("alice").await;
}

#[tokio::test]
async fn microsoft_dot_default_is_served_by_the_configured_permissions() {
    let (journey, microsoft) =
        microsoft_journey(&["https://graph.microsoft.com/.default", "offline_access"]).await;
    journey.consent_ok("alice").await;
    let token = journey.served("alice").await;
    assert_eq!(
        token,
        format!("Bearer {}", microsoft.vendor.grants.last_access())
    );
    let exchanges = microsoft.vendor.grants.token_requests();
    assert_eq!(journey.served("alice").await, token);
    assert_eq!(microsoft.vendor.grants.token_requests(), exchanges);
    // `.default` echoed as the configured permissions is the whole grant.
    assert_eq!(journey.scope_reduced().await, 0);
}
