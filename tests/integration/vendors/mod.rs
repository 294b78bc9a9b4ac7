//! Vendor fidelity: one emulator per vendor family of its authorization and token endpoints,
//! each written from the vendor's public OAuth documentation (not from what keygate expects),
//! and the whole consent + refresh journey through keygate against it. This file is the shared
//! scaffold: a small HTTP server handing each request to a vendor's handler and the grant
//! book-keeping every emulator needs (codes, access and refresh tokens); the journey's steps are
//! in [`journey`].

mod answers;
mod atlassian;
mod dropbox;
mod github;
mod google;
mod journey;
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
use http::{HeaderMap, Request, Response};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use url::Url;

use crate::common::*;
pub use journey::*;

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

/// A `[[providers]]` body for `vendor` with its endpoints at the emulator (`base` + paths), as a
/// user overriding a preset's endpoints writes it.
pub(crate) fn provider_config(
    vendor: &str,
    (client_id, client_secret): (&str, &str),
    base: &str,
    authorize: &str,
    token: &str,
) -> String {
    format!(
        "vendor = \"{vendor}\"\nclient_id = \"{client_id}\"\nclient_secret = \"{client_secret}\"\n\
         authorization_endpoint = \"{base}{authorize}\"\ntoken_endpoint = \"{base}{token}\""
    )
}
