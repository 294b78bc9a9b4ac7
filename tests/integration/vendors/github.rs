//! GitHub, from "Authorizing OAuth apps" and "Refreshing user access tokens" (docs.github.com):
//! client credentials in the body; answers form-encoded unless the request says
//! `Accept: application/json`; granted scopes comma-separated; OAuth-app tokens never expire;
//! GitHub-App user tokens (expiring tokens enabled) come with `expires_in`, `refresh_token` and
//! `refresh_token_expires_in`, and each refresh spends the refresh token; errors are HTTP 200
//! with `error=...` (`bad_verification_code`, `bad_refresh_token`). Unknown scopes are ignored;
//! the user may untick requested scopes, and scopes granted before stay on the token (a broader
//! one stands for the narrower ones it includes).

use std::sync::Mutex;

use serde_json::json;

use super::*;

const CLIENT_ID: &str = "Iv1.8a61f9b3a7aba766";
const CLIENT_SECRET: &str = "gh-secret";
const KNOWN_SCOPES: &[&str] = &[
    "repo",
    "gist",
    "user",
    "read:user",
    "user:email",
    "read:org",
];

pub struct GitHub {
    pub grants: Grants,
    /// A GitHub App with expiring user tokens (else an OAuth app).
    pub app: bool,
    /// Scopes the user granted this app before.
    pub previously: Mutex<Vec<String>>,
    /// Requested scopes the user unticks on the consent page.
    pub withheld: Mutex<Vec<String>>,
}

/// Narrower scopes included in a broader one ("Scopes for OAuth apps").
const INCLUDED: &[(&str, &str)] = &[
    ("read:user", "user"),
    ("user:email", "user"),
    ("public_repo", "repo"),
    ("read:org", "admin:org"),
];

/// What the token shows: requested and earlier scopes, less the unticked ones, without those a
/// broader granted scope includes.
fn granted(requested: &[&str], previously: &[String], withheld: &[String]) -> Vec<String> {
    let mut all: Vec<String> = requested
        .iter()
        .filter(|s| !withheld.iter().any(|w| w == *s))
        .map(|s| s.to_string())
        .chain(previously.iter().cloned())
        .collect();
    all.dedup();
    let kept: Vec<String> = all
        .iter()
        .filter(|s| {
            !INCLUDED
                .iter()
                .any(|(narrow, broad)| narrow == s && all.iter().any(|a| a == broad))
        })
        .cloned()
        .collect();
    kept
}

impl GitHub {
    fn authorize(&self, request: &Captured) -> Reply {
        if request.param("client_id") != Some(CLIENT_ID) {
            return Reply::page(404, "Not Found");
        }
        // GitHub Apps have permissions, not scopes.
        let scopes = match self.app {
            true => Vec::new(),
            false => {
                let requested: Vec<&str> = request
                    .param("scope")
                    .unwrap_or("")
                    .split([' ', ','])
                    .filter(|s| KNOWN_SCOPES.contains(s))
                    .collect();
                granted(
                    &requested,
                    &self.previously.lock().unwrap(),
                    &self.withheld.lock().unwrap(),
                )
            }
        };
        let grant = Grant {
            scopes,
            redirect_uri: request.param("redirect_uri").unwrap_or("").to_string(),
            offline: self.app,
            code_challenge: request.param("code_challenge").map(str::to_string),
        };
        let code = self.grants.code(grant);
        back_to_client(request, &[("code", &code)])
    }

    fn token(&self, request: &Captured) -> Reply {
        let json = request
            .headers
            .get("accept")
            .is_some_and(|v| v.to_str().unwrap_or("").contains("application/json"));
        let answer = |pairs: Vec<(&str, String)>| match json {
            true => Reply::json(
                200,
                serde_json::Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), json!(v)))
                        .collect(),
                ),
            ),
            false => {
                let pairs: Vec<(&str, &str)> =
                    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                Reply::form(200, &pairs)
            }
        };
        let error = |code: &str| {
            answer(vec![
                ("error", code.to_string()),
                (
                    "error_description",
                    "The code passed is incorrect or expired.".into(),
                ),
                (
                    "error_uri",
                    "https://docs.github.com/apps/troubleshooting".into(),
                ),
            ])
        };
        if request.posted_client() != Some((CLIENT_ID.into(), CLIENT_SECRET.into())) {
            return error("incorrect_client_credentials");
        }
        let fields = request.fields();
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
        let grant = match field("grant_type") {
            "refresh_token" => match self.grants.use_refresh(field("refresh_token"), true) {
                Some(grant) => grant,
                None => return error("bad_refresh_token"),
            },
            // The code exchange sends no grant_type in GitHub's docs; keygate's is fine too.
            _ => match self.grants.redeem(
                field("code"),
                field("redirect_uri"),
                fields.get("code_verifier").map(String::as_str),
            ) {
                Some(grant) => grant,
                None => return error("bad_verification_code"),
            },
        };
        let mut pairs = vec![
            ("access_token", self.grants.access("gho_")),
            ("scope", grant.scopes.join(",")),
            ("token_type", "bearer".to_string()),
        ];
        if self.app {
            pairs[0].1 = self.grants.access("ghu_");
            pairs.push(("expires_in", "28800".into()));
            pairs.push(("refresh_token", self.grants.refresh_token("ghr_", &grant)));
            pairs.push(("refresh_token_expires_in", "15811200".into()));
        }
        answer(pairs)
    }
}

impl Vendor for GitHub {
    fn handle(&self, request: &Captured) -> Reply {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/login/oauth/authorize") => self.authorize(request),
            ("POST", "/login/oauth/access_token") => self.token(request),
            _ => Reply::page(404, "Not Found"),
        }
    }
}

async fn github_journey(app: bool, scopes: &[&str]) -> (Journey, Emulator<GitHub>) {
    let github = Emulator::start(GitHub {
        grants: Grants::default(),
        app,
        previously: Mutex::default(),
        withheld: Mutex::default(),
    })
    .await;
    let provider = provider_config(
        "github",
        (CLIENT_ID, CLIENT_SECRET),
        &github.url(),
        "/login/oauth/authorize",
        "/login/oauth/access_token",
    );
    (Journey::start(&provider, scopes).await, github)
}

#[tokio::test]
async fn github_oauth_app_tokens_never_expire_and_scopes_come_back_comma_separated() {
    let (journey, github) = github_journey(false, &["repo", "read:user"]).await;
    let at_github = journey.consent_ok("alice").await;
    assert_eq!(params(&at_github)["scope"], "repo read:user");
    let token = journey.served("alice").await;
    assert_eq!(
        token,
        format!("Bearer {}", github.vendor.grants.last_access())
    );
    let vaulted = journey.vaulted("alice").await.unwrap();
    assert_eq!(vaulted.expires_at, None, "OAuth-app tokens do not expire");
    assert!(vaulted.refresh_token.is_none());

    // "repo,read:user" is the same grant: no new consent, no new token request.
    let exchanges = github.vendor.grants.token_requests();
    assert_eq!(journey.served("alice").await, token);
    assert_eq!(github.vendor.grants.token_requests(), exchanges);

    // bob granted `user` before: his token shows "repo,user", which includes read:user.
    *github.vendor.previously.lock().unwrap() = vec!["user".to_string()];
    journey.consent_ok("bob").await;
    journey.served("bob").await;
    assert_eq!(journey.scope_reduced().await, 0);
    // carol unticks `repo`: served all the same, and counted as a reduced grant.
    github.vendor.previously.lock().unwrap().clear();
    *github.vendor.withheld.lock().unwrap() = vec!["repo".to_string()];
    journey.consent_ok("carol").await;
    journey.served("carol").await;
    assert_eq!(journey.scope_reduced().await, 1);

    // GitHub's errors are HTTP 200 with `error`: the app is told GitHub's code.
    let back = journey.callback_with_bad_code("dave").await;
    assert!(back.contains("error=bad_verification_code"), "{back}");
}

#[tokio::test]
async fn github_app_user_tokens_expire_and_each_refresh_spends_the_refresh_token() {
    let (journey, github) = github_journey(true, &[]).await;
    journey.consent_ok("alice").await;
    let first = journey.served("alice").await;
    assert!(first.starts_with("Bearer ghu_"), "{first}");
    let vaulted = journey.vaulted("alice").await.unwrap();
    let expires_at = vaulted.expires_at.expect("expires_in was not read");
    assert!(expires_at > keygate::vault::store::now() + 28_000);
    assert!(vaulted.refresh_token.is_some());

    // Two refreshes in a row: the second works only if the rotated refresh token was stored.
    journey.upstream_refuses(&first);
    let second = journey.served("alice").await;
    assert_ne!(second, first);
    journey.upstream_refuses(&second);
    let third = journey.served("alice").await;
    assert_ne!(third, second);
    assert_eq!(
        third,
        format!("Bearer {}", github.vendor.grants.last_access())
    );

    // The refresh token expired (refresh_token_expires_in): 200 `error=bad_refresh_token`
    // means consent again.
    github.vendor.grants.revoke_all();
    journey.upstream_refuses(&third);
    journey.asks_for_consent_again("alice").await;
}
