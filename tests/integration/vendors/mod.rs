//! Vendor fidelity: one emulator per vendor family of its authorization and token endpoints,
//! each written from the vendor's public OAuth documentation (not from what keygate expects),
//! and the whole consent + refresh journey through keygate against it. This file is the shared
//! scaffold: a small HTTP server handing each request to a vendor's handler, the grant book-keeping
//! every emulator needs (codes, access and refresh tokens), and the journey's steps (proxy 401 →
//! keygate's authorization URL → the vendor → keygate's callback → `CompleteResourceTokenAuth` →
//! the token at an echo upstream → refresh when the upstream refuses it).

mod answers;
mod atlassian;
mod dropbox;
mod github;
mod google;
mod microsoft;
mod notion;
mod salesforce;
mod slack;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keygate::consent::{self, ConsentError};
use keygate::inbound::UserId;
use keygate::vault::{Credential, OAuthTokens};
use url::Url;

use crate::common::*;

pub const RETURN_URL: &str = "http://127.0.0.1:1/app/callback";

/// One request as an emulator received it.
pub struct Captured {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Captured {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .unwrap_or("")
    }

    /// The body's fields: a form, or a JSON object when sent as JSON.
    pub fn fields(&self) -> HashMap<String, String> {
        if self.content_type() == "application/json" {
            let json: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&self.body).unwrap_or_default();
            return json
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_string())))
                .collect();
        }
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    /// `client_id` and `client_secret` from HTTP Basic (RFC 6749 2.3.1: form-encoded parts).
    pub fn basic(&self) -> Option<(String, String)> {
        let value = self.headers.get("authorization")?.to_str().ok()?;
        let decoded = STANDARD.decode(value.strip_prefix("Basic ")?).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        Some((decode(id)?, decode(secret)?))
    }

    /// `client_id` and `client_secret` from the body.
    pub fn posted_client(&self) -> Option<(String, String)> {
        let fields = self.fields();
        Some((
            fields.get("client_id")?.clone(),
            fields.get("client_secret")?.clone(),
        ))
    }
}

/// An emulator's answer.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub location: Option<String>,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json; charset=utf-8",
            body: body.to_string(),
            location: None,
        }
    }

    pub fn form(status: u16, pairs: &[(&str, &str)]) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        Reply {
            status,
            content_type: "application/x-www-form-urlencoded; charset=utf-8",
            body,
            location: None,
        }
    }

    /// The error page a vendor shows the user instead of redirecting back.
    pub fn page(status: u16, text: &str) -> Reply {
        Reply {
            status,
            content_type: "text/html; charset=utf-8",
            body: format!("<html><body>{text}</body></html>"),
            location: None,
        }
    }

    pub fn redirect(location: Url) -> Reply {
        Reply {
            status: 302,
            content_type: "text/plain",
            body: String::new(),
            location: Some(location.to_string()),
        }
    }
}

/// A vendor's endpoints.
pub trait Vendor: Send + Sync + 'static {
    fn handle(&self, request: &Captured) -> Reply;
}

/// A vendor emulator on a loopback port.
pub struct Emulator<V: Vendor> {
    pub addr: SocketAddr,
    pub vendor: Arc<V>,
}

impl<V: Vendor> Emulator<V> {
    pub async fn start(vendor: V) -> Emulator<V> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let vendor = Arc::new(vendor);
        let serving = vendor.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let vendor = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let vendor = vendor.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let captured = Captured {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_string(),
                                query: url::form_urlencoded::parse(
                                    parts.uri.query().unwrap_or("").as_bytes(),
                                )
                                .into_owned()
                                .collect(),
                                headers: parts.headers,
                                body: body.collect().await.unwrap().to_bytes(),
                            };
                            let reply = vendor.handle(&captured);
                            let mut response = Response::builder()
                                .status(reply.status)
                                .header("content-type", reply.content_type);
                            if let Some(location) = reply.location {
                                response = response.header("location", location);
                            }
                            Ok::<_, std::convert::Infallible>(
                                response.body(full(reply.body)).unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Emulator { addr, vendor }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// What one authorization granted.
#[derive(Debug, Clone)]
pub struct Grant {
    pub scopes: Vec<String>,
    pub redirect_uri: String,
    /// Whether a refresh token comes with it.
    pub offline: bool,
    pub code_challenge: Option<String>,
}

/// The codes and tokens an emulator issued.
#[derive(Default)]
pub struct Grants {
    inner: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    serial: u64,
    codes: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
    access: Vec<String>,
    token_requests: usize,
}

impl Grants {
    fn next(book: &mut Book, prefix: &str) -> String {
        book.serial += 1;
        format!("{prefix}{}", book.serial)
    }

    /// A one-time authorization code for `grant`.
    pub fn code(&self, grant: Grant) -> String {
        let mut book = self.inner.lock().unwrap();
        let code = Self::next(&mut book, "code-");
        book.codes.insert(code.clone(), grant);
        code
    }

    /// Redeems a code (once), checking `redirect_uri` and the PKCE verifier when one was bound.
    pub fn redeem(&self, code: &str, redirect_uri: &str, verifier: Option<&str>) -> Option<Grant> {
        let mut book = self.inner.lock().unwrap();
        book.token_requests += 1;
        let grant = book.codes.remove(code)?;
        let pkce_ok = match (&grant.code_challenge, verifier) {
            (None, _) => true,
            (Some(challenge), Some(verifier)) => *challenge == s256(verifier),
            (Some(_), None) => false,
        };
        (grant.redirect_uri == redirect_uri && pkce_ok).then_some(grant)
    }

    /// A new access token.
    pub fn access(&self, prefix: &str) -> String {
        let mut book = self.inner.lock().unwrap();
        let token = Self::next(&mut book, prefix);
        book.access.push(token.clone());
        token
    }

    /// A new refresh token for `grant`.
    pub fn refresh_token(&self, prefix: &str, grant: &Grant) -> String {
        let mut book = self.inner.lock().unwrap();
        let token = Self::next(&mut book, prefix);
        book.refresh.insert(token.clone(), grant.clone());
        token
    }

    /// The grant behind a refresh token; with `rotate`, the token is spent by this use.
    pub fn use_refresh(&self, token: &str, rotate: bool) -> Option<Grant> {
        let mut book = self.inner.lock().unwrap();
        book.token_requests += 1;
        match rotate {
            true => book.refresh.remove(token),
            false => book.refresh.get(token).cloned(),
        }
    }

    /// The user removes the app's access: every refresh token stops working.
    pub fn revoke_all(&self) {
        self.inner.lock().unwrap().refresh.clear();
    }

    pub fn last_access(&self) -> String {
        self.inner.lock().unwrap().access.last().cloned().unwrap()
    }

    pub fn token_requests(&self) -> usize {
        self.inner.lock().unwrap().token_requests
    }
}

/// The PKCE S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// `redirect_uri` with the code (or error) and state, as a vendor sends the browser back.
pub fn back_to_client(request: &Captured, pairs: &[(&str, &str)]) -> Reply {
    let mut url = Url::parse(request.param("redirect_uri").unwrap_or("http://invalid/")).unwrap();
    {
        let mut query = url.query_pairs_mut();
        query.extend_pairs(pairs);
        if let Some(state) = request.param("state") {
            query.append_pair("state", state);
        }
    }
    Reply::redirect(url)
}

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
