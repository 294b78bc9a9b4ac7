//! 3-legged OAuth against the real oidc-provider, consent driven headlessly through its login
//! and consent pages: 401 with an authorization URL, consent, session binding, the user's own
//! token at the upstream, reuse without new consent, and the binding attack refused.

use http::StatusCode;
use keygate::consent::{self, ConsentError};
use keygate::inbound::UserId;

use crate::common::*;
use crate::oidc::OidcProvider;

pub(crate) const RETURN_URL: &str = "http://127.0.0.1:1/app/callback";

pub(crate) struct Setup {
    pub(crate) gw: TestGateway,
    pub(crate) provider: OidcProvider,
    pub(crate) upstream: Upstream,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// A setup around a gateway the test configured itself.
    pub(crate) fn around(
        gw: TestGateway,
        provider: OidcProvider,
        upstream: Upstream,
        dir: tempfile::TempDir,
    ) -> Setup {
        Setup {
            gw,
            provider,
            upstream,
            _dir: dir,
        }
    }
}

async fn setup() -> Setup {
    setup_with(600, false).await.0
}

/// A gateway and provider; with `shim`, the token endpoint is reached through a counting shim.
pub(crate) async fn setup_with(access_ttl: u64, shim: bool) -> (Setup, Option<CountingShim>) {
    setup_scoped(access_ttl, shim, r#"["tools", "offline_access"]"#).await
}

/// As [`setup_with`], the `/docs/` routes asking for `scopes` (a TOML array).
pub(crate) async fn setup_scoped(
    access_ttl: u64,
    shim: bool,
    scopes: &str,
) -> (Setup, Option<CountingShim>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let callback = format!("http://127.0.0.1:{port}/identities/oauth2/callback");
    let provider = OidcProvider::start_with(dir.path(), &[&callback], access_ttl).await;
    let upstream = Upstream::start().await;
    let shim = match shim {
        true => Some(CountingShim::start(provider.issuer.clone()).await),
        false => None,
    };
    let endpoints = match &shim {
        Some(shim) => format!(
            "issuer = \"{0}\"\nauthorization_endpoint = \"{0}/auth\"\ntoken_endpoint = \"http://{1}/token\"",
            provider.issuer, shim.addr
        ),
        None => format!("discovery_url = \"{}\"", provider.discovery_url()),
    };
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
name = "docs"
kind = "oauth2"
vendor = "custom"
client_id = "web-app"
client_secret = "web-secret"
{endpoints}

[[routes]]
name = "docs"
path_prefix = "/docs/"
upstream = "{up}/"
workload = "agent-one"
[routes.credential]
provider = "docs"
flow = "user_federation"
scopes = {scopes}
return_url = "{RETURN_URL}"

[[routes]]
name = "docs-fresh"
path_prefix = "/docs-fresh/"
upstream = "{up}/"
workload = "agent-one"
[routes.credential]
provider = "docs"
flow = "user_federation"
scopes = {scopes}
return_url = "{RETURN_URL}"
force_authentication = true
"#,
        up = upstream.url()
    );
    let gw = TestGateway::start(&toml).await;
    (
        Setup {
            gw,
            provider,
            upstream,
            _dir: dir,
        },
        shim,
    )
}

/// Provider access tokens that keygate refreshes soon: a quarter of their lifetime (2 s) before
/// they expire, so they are due 6 s after they were issued.
pub(crate) const SHORT_TTL: u64 = 8;
/// How long after its issue a `SHORT_TTL` token is surely due for refresh.
pub(crate) const PAST_MARGIN: std::time::Duration = std::time::Duration::from_millis(6_500);

pub(crate) fn user(id: &str) -> UserId {
    UserId {
        issuer: None,
        id: id.to_string(),
    }
}

/// Calls the 3LO route as `user`; returns status and body.
pub(crate) async fn call(setup: &Setup, user_id: &str) -> (StatusCode, http::HeaderMap, String) {
    let token = setup
        .gw
        .state
        .workload_tokens()
        .issue("agent-one", Some(&user(user_id)))
        .unwrap();
    get_auth(&setup.gw.url("/docs/pages"), &token).await
}

/// Runs the browser part: keygate's authorization URL → provider login as `login` → callback.
/// Returns keygate's final redirect (to the app's return URL).
pub(crate) async fn consent_as(setup: &Setup, authorization_url: &str, login: &str) -> String {
    let (status, headers, body) = get(authorization_url).await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    let to_provider = headers["location"].to_str().unwrap().to_string();
    assert!(
        to_provider.starts_with(&setup.provider.issuer),
        "{to_provider}"
    );
    assert!(
        to_provider.contains("code_challenge_method=S256") && to_provider.contains("state="),
        "{to_provider}"
    );
    let callback = setup.provider.drive_consent(&to_provider, login).await;
    assert!(
        callback.contains("/identities/oauth2/callback?"),
        "{callback}"
    );
    let (status, headers, body) = get(&callback).await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    headers["location"].to_str().unwrap().to_string()
}

/// The callback's answers (redirects and error pages) hold a code, a state or a session
/// reference: no `Referer` may carry their URL on, no cache may keep them.
fn assert_private(headers: &http::HeaderMap) {
    assert_eq!(
        headers.get("referrer-policy").map(|v| v.to_str().unwrap()),
        Some("no-referrer"),
        "{headers:?}"
    );
    assert_eq!(
        headers.get("cache-control").map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "{headers:?}"
    );
}

pub(crate) fn challenge(body: &str) -> (String, String) {
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"], "consent_required");
    assert_eq!(json["provider"], "docs");
    // A fresh session has 600 s; one handed out again has what is left (at least 120 s).
    let expires_in = json["expiresIn"].as_i64().unwrap();
    assert!((120..=600).contains(&expires_in), "{json}");
    (
        json["authorizationUrl"].as_str().unwrap().to_string(),
        json["sessionUri"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn consent_then_the_users_own_token_reaches_the_upstream() {
    let setup = setup().await;
    let (status, headers, body) = call(&setup, "alice").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (authorization_url, session_uri) = challenge(&body);
    let www = headers["www-authenticate"].to_str().unwrap();
    assert!(
        www.contains(r#"error="consent_required""#) && www.contains(&authorization_url),
        "{www}"
    );
    assert!(session_uri.starts_with(consent::SESSION_URI_PREFIX));

    let back = consent_as(&setup, &authorization_url, "alice").await;
    assert!(back.starts_with(RETURN_URL), "{back}");
    assert!(
        back.contains("session_id=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3A"),
        "{back}"
    );
    consent::complete(setup.gw.state.vault(), &session_uri, &user("alice"))
        .await
        .unwrap();

    let (status, _, body) = call(&setup, "alice").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bearer = seen(&body).header("authorization").unwrap().to_string();
    let jwt = bearer.strip_prefix("Bearer ").unwrap();
    let claims = jwt_claims(jwt);
    assert_eq!(
        claims["sub"], "alice",
        "the upstream got someone else's token"
    );

    // The next call uses the vault: same token, no new consent.
    let (status, _, body) = call(&setup, "alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen(&body).header("authorization"), Some(bearer.as_str()));

    // Bob has not consented: he gets his own challenge, never alice's token.
    let (status, _, _) = call(&setup, "bob").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_leaked_authorization_url_completed_by_someone_else_is_refused() {
    let setup = setup().await;
    let (_, _, body) = call(&setup, "carol").await;
    let (authorization_url, session_uri) = challenge(&body);
    // Mallory opens carol's URL and consents with her own account.
    consent_as(&setup, &authorization_url, "mallory").await;
    let vault = setup.gw.state.vault();
    let refused = consent::complete(vault, &session_uri, &user("mallory")).await;
    assert!(
        matches!(refused, Err(ConsentError::UserMismatch)),
        "{refused:?}"
    );
    // The tokens are gone: nothing for carol, nothing for mallory, and the session is spent.
    for who in ["carol", "mallory"] {
        let owner = consent::user_owner("agent-one", &user(who), "docs");
        assert!(
            vault.get(&owner).await.unwrap().is_none(),
            "{who} got tokens"
        );
    }
    assert!(
        consent::complete(vault, &session_uri, &user("carol"))
            .await
            .is_err()
    );
    assert_eq!(call(&setup, "carol").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn callbacks_that_are_replayed_forged_or_denied_end_cleanly() {
    let setup = setup().await;
    let (_, _, body) = call(&setup, "dave").await;
    let (authorization_url, _) = challenge(&body);
    let (_, headers, _) = get(&authorization_url).await;
    let to_provider = headers["location"].to_str().unwrap().to_string();
    let callback = setup.provider.drive_consent(&to_provider, "dave").await;
    let (status, headers, _) = get(&callback).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_private(&headers);
    // The same callback again: the session is no longer pending.
    let (status, headers, body) = get(&callback).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_private(&headers);
    // A state nobody issued.
    let (status, headers, _) = get(&setup
        .gw
        .url("/identities/oauth2/callback?code=x&state=forged"))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_private(&headers);
    // The provider says access_denied: the session fails and the app is told.
    let (_, _, body) = call(&setup, "erin").await;
    let (_, erin_session) = challenge(&body);
    let id = consent::session_id(&erin_session).unwrap();
    // The provider's error response names it (RFC 9207), as oidc-provider's do.
    let iss: String =
        url::form_urlencoded::byte_serialize(setup.provider.issuer.as_bytes()).collect();
    let (status, headers, _) = get(&setup.gw.url(&format!(
        "/identities/oauth2/callback?error=access_denied&state={id}&iss={iss}"
    )))
    .await;
    assert_eq!(status, StatusCode::FOUND);
    assert_private(&headers);
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .contains("error=access_denied")
    );
    let failed = consent::complete(setup.gw.state.vault(), &erin_session, &user("erin")).await;
    assert!(matches!(failed, Err(ConsentError::Failed(_))), "{failed:?}");
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_once_for_a_burst_and_a_revoked_refresh_asks_for_consent() {
    // Short-lived access tokens: due for refresh after PAST_MARGIN.
    let (mut setup, shim) = setup_with(SHORT_TTL, true).await;
    let shim = shim.unwrap();
    let (_, _, body) = call(&setup, "alice").await;
    let (authorization_url, session_uri) = challenge(&body);
    consent_as(&setup, &authorization_url, "alice").await;
    consent::complete(setup.gw.state.vault(), &session_uri, &user("alice"))
        .await
        .unwrap();
    let owner = consent::user_owner("agent-one", &user("alice"), "docs");
    let first_refresh = match &*setup.gw.state.vault().get(&owner).await.unwrap().unwrap() {
        keygate::vault::Credential::OAuth(t) => t
            .refresh_token
            .clone()
            .expect("no refresh token was issued"),
        _ => panic!("not an OAuth entry"),
    };
    let exchanges = shim.count();
    tokio::time::sleep(PAST_MARGIN).await;

    let mut tasks = Vec::new();
    for _ in 0..50 {
        let token = setup
            .gw
            .state
            .workload_tokens()
            .issue("agent-one", Some(&user("alice")))
            .unwrap();
        let url = setup.gw.url("/docs/pages");
        tasks.push(tokio::spawn(async move { get_auth(&url, &token).await }));
    }
    let mut injected = std::collections::HashSet::new();
    for task in tasks {
        let (status, _, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        injected.insert(seen(&body).header("authorization").unwrap().to_string());
    }
    assert_eq!(
        shim.count() - exchanges,
        1,
        "50 requests across expiry made {} refreshes",
        shim.count() - exchanges
    );
    assert_eq!(injected.len(), 1, "requests got different tokens");
    use secrecy::ExposeSecret;
    let stored_refresh = match &*setup.gw.state.vault().get(&owner).await.unwrap().unwrap() {
        keygate::vault::Credential::OAuth(t) => t.refresh_token.clone().unwrap(),
        _ => panic!("not an OAuth entry"),
    };
    assert_ne!(
        stored_refresh.expose_secret(),
        first_refresh.expose_secret(),
        "the rotated refresh token was not stored"
    );

    // The provider forgets its grants (its store is in memory): the next refresh is refused.
    setup.provider.restart().await;
    tokio::time::sleep(PAST_MARGIN).await;
    let (status, _, body) = call(&setup, "alice").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    challenge(&body);
    assert!(
        setup.gw.state.vault().get(&owner).await.unwrap().is_none(),
        "a refused refresh token was kept"
    );
}
