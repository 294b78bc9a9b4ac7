//! An in-process OpenID provider for faults the real one cannot show on cue: it publishes a
//! discovery document and a JWKS (counting fetches), signs whatever header and claims a test
//! asks for, rotates keys, and can go dark. Its discovery document can lie (another issuer,
//! a `jwks_uri` or `token_endpoint` elsewhere), and it can serve over TLS.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

use crate::common::{TestBody, full};

pub struct SigningKey {
    pub kid: String,
    pair: EcdsaKeyPair,
}

impl SigningKey {
    pub fn generate(kid: &str) -> SigningKey {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        SigningKey {
            kid: kid.to_string(),
            pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap(),
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    /// Signs exactly this header and payload (any JSON text, even malformed on purpose).
    pub fn sign_raw(&self, header: &str, payload: &str) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .unwrap();
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}

/// What the discovery document says instead of the truth, field by field.
#[derive(Clone, Default)]
pub struct Document {
    pub issuer: Option<String>,
    pub jwks_uri: Option<String>,
    pub token_endpoint: Option<String>,
}

pub struct FakeIdp {
    pub issuer: String,
    pub jwks_fetches: Arc<AtomicUsize>,
    /// Every path requested, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    document: Arc<Mutex<Document>>,
    keys: Arc<Mutex<Vec<Value>>>,
    down: Arc<AtomicBool>,
    jwks_mode: Arc<AtomicU8>,
}

/// What `/jwks` answers.
#[derive(Clone, Copy)]
#[repr(u8)]
pub enum JwksMode {
    Keys = 0,
    Garbage = 1,
    Oversized = 2,
}

impl FakeIdp {
    pub async fn start(keys: &[&SigningKey]) -> FakeIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, keys)
    }

    /// Serves over TLS with this server config (issuer `https://127.0.0.1:PORT`).
    pub async fn start_tls(keys: &[&SigningKey], tls: Arc<rustls::ServerConfig>) -> FakeIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve_with(listener, keys, Some(tls))
    }

    /// Serves on an already bound listener (so a test can know the address before it serves).
    pub fn serve(listener: tokio::net::TcpListener, keys: &[&SigningKey]) -> FakeIdp {
        Self::serve_with(listener, keys, None)
    }

    fn serve_with(
        listener: tokio::net::TcpListener,
        keys: &[&SigningKey],
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> FakeIdp {
        let addr = listener.local_addr().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer = format!("{scheme}://{addr}");
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let idp = FakeIdp {
            issuer: issuer.clone(),
            jwks_fetches: Arc::new(AtomicUsize::new(0)),
            requests: Arc::default(),
            document: Arc::default(),
            keys: Arc::new(Mutex::new(keys.iter().map(|k| k.jwk()).collect())),
            down: Arc::new(AtomicBool::new(false)),
            jwks_mode: Arc::new(AtomicU8::new(JwksMode::Keys as u8)),
        };
        let (fetches, jwks, down, mode) = (
            idp.jwks_fetches.clone(),
            idp.keys.clone(),
            idp.down.clone(),
            idp.jwks_mode.clone(),
        );
        let (requests, document) = (idp.requests.clone(), idp.document.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (fetches, jwks, down, issuer, mode) = (
                    fetches.clone(),
                    jwks.clone(),
                    down.clone(),
                    issuer.clone(),
                    mode.clone(),
                );
                let (requests, document, acceptor) =
                    (requests.clone(), document.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        requests.lock().unwrap().push(req.uri().path().to_string());
                        let answer = if down.load(Ordering::SeqCst) {
                            (StatusCode::SERVICE_UNAVAILABLE, "down".to_string())
                        } else {
                            match req.uri().path() {
                                "/.well-known/openid-configuration"
                                | "/.well-known/oauth-authorization-server" => {
                                    let lie = document.lock().unwrap().clone();
                                    let mut doc = json!({
                                        "issuer": lie.issuer.unwrap_or(issuer.clone()),
                                        "jwks_uri": lie.jwks_uri.unwrap_or(format!("{issuer}/jwks")),
                                    });
                                    if let Some(token) = lie.token_endpoint {
                                        doc["token_endpoint"] = json!(token);
                                    }
                                    (StatusCode::OK, doc.to_string())
                                }
                                "/jwks" => {
                                    fetches.fetch_add(1, Ordering::SeqCst);
                                    let keys = json!(*jwks.lock().unwrap());
                                    let body = match mode.load(Ordering::SeqCst) {
                                        1 => "{\"keys\": [ this is not JSON".to_string(),
                                        2 => json!({"keys": keys, "pad": "x".repeat(300 * 1024)})
                                            .to_string(),
                                        _ => json!({ "keys": keys }).to_string(),
                                    };
                                    (StatusCode::OK, body)
                                }
                                _ => (StatusCode::NOT_FOUND, String::new()),
                            }
                        };
                        async move {
                            let mut response: Response<TestBody> = Response::new(full(answer.1));
                            *response.status_mut() = answer.0;
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        idp
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// Makes the discovery document say `document` from now on.
    pub fn lie(&self, document: Document) {
        *self.document.lock().unwrap() = document;
    }

    /// How many requests asked for `path`.
    pub fn requests_for(&self, path: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }

    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk()).collect();
    }

    pub fn set_jwks_mode(&self, mode: JwksMode) {
        self.jwks_mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
