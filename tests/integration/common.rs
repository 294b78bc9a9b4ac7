//! Test harness: keygate booted in-process from TOML text on port 0, a real hyper upstream that
//! reports what it received, clients for HTTP/1.1, h2c and TLS, and a raw-socket client for
//! requests no well-behaved client would send.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keygate::{Control, Gateway, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

pub type TestBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A keygate running in this process.
pub struct TestGateway {
    /// A workload access token for `test-agent`, acting for no user.
    pub token: String,
    pub state: keygate::state::AppState,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    control: mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<()>,
}

/// The `[server]` block every test config starts with.
pub fn server_block() -> &'static str {
    "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n[audit]\npath = \"-\"\n\n"
}

impl TestGateway {
    /// Boots keygate from config text; `{dir}` in the text is replaced by the temp folder.
    pub async fn start(toml: &str) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, toml).await
    }

    pub async fn start_in(dir: tempfile::TempDir, toml: &str) -> TestGateway {
        let config_path = dir.path().join("routes.toml");
        std::fs::write(
            &config_path,
            toml.replace("{dir}", &dir.path().display().to_string()),
        )
        .unwrap();
        let loaded =
            config::load(&config_path).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let gateway = Gateway::bind(loaded.config).await.unwrap();
        let addr = gateway.proxy_addr().unwrap();
        let admin = gateway.admin_addr().unwrap();
        let token = gateway
            .state()
            .workload_tokens()
            .issue("test-agent", None)
            .unwrap();
        let state = gateway.state().clone();
        let (control, rx) = mpsc::channel(4);
        let task = tokio::spawn(gateway.run(rx));
        TestGateway {
            token,
            state,
            addr,
            admin,
            dir,
            config_path,
            control,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `Bearer <workload access token>`.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// A GET through the proxy with the test workload's token.
    pub async fn get(&self, path: &str) -> (StatusCode, http::HeaderMap, String) {
        let request = Request::get(self.url(path))
            .header("authorization", self.bearer())
            .body(full(""))
            .unwrap();
        send(&http_client(), request).await
    }

    /// A request builder for the proxy with the test workload's token set.
    pub fn request(&self, method: http::Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("authorization", self.bearer())
    }

    /// Rewrites the config file and asks for a reload, as SIGHUP would.
    pub async fn reload_with(&self, toml: &str) {
        std::fs::write(
            &self.config_path,
            toml.replace("{dir}", &self.dir.path().display().to_string()),
        )
        .unwrap();
        self.control.send(Control::Reload).await.unwrap();
        // The reload is handled in order; a request on the admin port after it is a barrier.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Waits until every authorizer has fetched its keys (the background refresher does at start).
    pub async fn wait_for_keys(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let (_, _, body) = get(&format!("http://{}/readyz", self.admin)).await;
            if !body.contains("without signing keys") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "keys never fetched: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A fresh workload access token from this gateway for `workload`.
    pub fn state_token(&self, workload: &str) -> String {
        self.state.workload_tokens().issue(workload, None).unwrap()
    }

    pub async fn shutdown(self) {
        self.control.send(Control::Shutdown).await.unwrap();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .unwrap()
            .unwrap();
    }

    pub async fn metrics(&self) -> String {
        let (status, _, body) = get(&format!("http://{}/metrics", self.admin)).await;
        assert_eq!(status, StatusCode::OK);
        body
    }
}

/// What the test upstream saw of one request.
#[derive(Debug, serde::Deserialize)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub version: String,
    pub headers: BTreeMap<String, Vec<String>>,
    /// Bytes of request body received.
    pub body_len: usize,
}

impl Seen {
    /// Path and query, whether the upstream saw origin form (HTTP/1.1) or a full URI (HTTP/2).
    pub fn path(&self) -> &str {
        match self.uri.find("://") {
            Some(i) => self.uri[i + 3..]
                .find('/')
                .map_or("/", |j| &self.uri[i + 3 + j..]),
            None => &self.uri,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

/// A real HTTP server standing in for a tool. Paths:
/// - `/slow/{ms}`: answers after that many milliseconds;
/// - `/sse`: sends one event, waits until `release_sse` is notified, sends a second;
/// - `/echo-stream`: streams the request body back as it arrives;
/// - a request whose `Authorization` is in `rejected`: 401;
/// - anything else: 200 with a JSON [`Seen`], plus a hop-by-hop header named in `Connection`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub release_sse: Arc<Notify>,
    /// Requests received so far.
    pub hits: Arc<std::sync::atomic::AtomicUsize>,
    /// Most `/slow/` requests ever in progress at once.
    pub max_concurrent: Arc<std::sync::atomic::AtomicUsize>,
    /// `Authorization` values answered with 401 (a token the resource server revoked).
    pub rejected: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        Self::start_with_tls(None).await
    }

    pub async fn start_with_tls(tls: Option<Arc<rustls::ServerConfig>>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release_sse = Arc::new(Notify::new());
        let release = release_sse.clone();
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let concurrency = Arc::new(Concurrency::default());
        let max_concurrent = concurrency.max.clone();
        let rejected: Arc<std::sync::Mutex<std::collections::HashSet<String>>> = Arc::default();
        let refusals = rejected.clone();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let release = release.clone();
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                let concurrency = concurrency.clone();
                let refusals = refusals.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let refused = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|v| refusals.lock().unwrap().contains(v));
                        upstream_handler(req, release.clone(), concurrency.clone(), refused)
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
        Upstream {
            addr,
            release_sse,
            hits,
            max_concurrent,
            rejected,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[derive(Default)]
struct Concurrency {
    now: std::sync::atomic::AtomicUsize,
    max: Arc<std::sync::atomic::AtomicUsize>,
}

async fn upstream_handler(
    req: Request<Incoming>,
    release_sse: Arc<Notify>,
    concurrency: Arc<Concurrency>,
    refused: bool,
) -> Result<Response<TestBody>, std::io::Error> {
    use std::sync::atomic::Ordering::SeqCst;
    if refused {
        let mut response = Response::new(full("token revoked"));
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    }
    let path = req.uri().path().to_string();
    if let Some(ms) = path.strip_prefix("/slow/") {
        let now = concurrency.now.fetch_add(1, SeqCst) + 1;
        concurrency.max.fetch_max(now, SeqCst);
        let ms: u64 = ms.parse().unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        concurrency.now.fetch_sub(1, SeqCst);
        return Ok(Response::new(full("slow done")));
    }
    if path == "/sse" {
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        tokio::spawn(async move {
            let _ = tx.send(Ok(Frame::data(Bytes::from("data: one\n\n")))).await;
            release_sse.notified().await;
            let _ = tx.send(Ok(Frame::data(Bytes::from("data: two\n\n")))).await;
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        response
            .headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        return Ok(response);
    }
    if path == "/echo-stream" {
        let body = req.into_body().map_err(std::io::Error::other);
        return Ok(Response::new(BodyExt::boxed(body)));
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        headers
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let version = format!("{:?}", req.version());
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let seen = serde_json::json!({
        "method": method, "uri": uri, "version": version, "headers": headers, "body_len": body.len(),
    });
    let mut response = Response::new(full(seen.to_string()));
    let h = response.headers_mut();
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("x-upstream-hop", "must-not-pass".parse().unwrap());
    h.insert("connection", "x-upstream-hop".parse().unwrap());
    h.insert("x-upstream", "yes".parse().unwrap());
    Ok(response)
}

pub fn full(body: impl Into<Bytes>) -> TestBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn http_client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2c_client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Sends a request; returns status, headers and the body as text.
pub async fn send(
    client: &Client<HttpConnector, TestBody>,
    request: Request<TestBody>,
) -> (StatusCode, http::HeaderMap, String) {
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// A GET with `Authorization: Bearer {token}`.
pub async fn get_auth(url: &str, token: &str) -> (StatusCode, http::HeaderMap, String) {
    let request = Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(full(""))
        .unwrap();
    send(&http_client(), request).await
}

pub async fn get(url: &str) -> (StatusCode, http::HeaderMap, String) {
    let request = Request::get(url).body(full("")).unwrap();
    send(&http_client(), request).await
}

pub fn seen(body: &str) -> Seen {
    serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("upstream answer is not JSON ({e}): {body}"))
}

/// Writes raw bytes and reads until the server closes; returns the status and the whole text.
pub async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buffer)).await;
    let text = String::from_utf8_lossy(&buffer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

/// The (unverified) claims of a JWT, for asserting what an upstream received.
pub fn jwt_claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("not a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// The JSON error body keygate answers with.
pub fn error_code(body: &str) -> String {
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert!(
        value["error_description"].is_string(),
        "no error_description in {body}"
    );
    value["error"].as_str().unwrap().to_string()
}

/// Development certificates for 127.0.0.1 and localhost, written into `dir`.
pub fn dev_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    keygate::tls::write_dev_certificates(dir, &hosts).unwrap();
    (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

/// A workload access token from `keygate token issue`, signed with the key in the vault of the
/// config at `config_path`.
pub fn mint_token(config_path: &Path, workload: &str) -> String {
    let output = std::process::Command::new(binary())
        .args(["token", "issue", "--workload", workload, "--config"])
        .arg(config_path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "token issue failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Waits until `GET {url}` answers 200 (connection errors while a process starts are retried).
pub async fn wait_until_ok(url: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let request = Request::get(url).body(full("")).unwrap();
        if let Ok(Ok(response)) =
            tokio::time::timeout(Duration::from_secs(1), http_client().request(request)).await
            && response.status() == StatusCode::OK
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} never answered 200"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The path of the built `keygate` binary.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_keygate")
}

/// Forwards everything to `target`, counting `POST /token`.
pub struct CountingShim {
    pub addr: std::net::SocketAddr,
    token_requests: Arc<AtomicUsize>,
}

impl CountingShim {
    pub async fn start(target: String) -> CountingShim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token_requests = Arc::new(AtomicUsize::new(0));
        let counter = token_requests.clone();
        tokio::spawn(async move {
            let client = http_client();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (client, counter, target) = (client.clone(), counter.clone(), target.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (client, counter, target) =
                            (client.clone(), counter.clone(), target.clone());
                        async move {
                            if req.uri().path() == "/token" {
                                counter.fetch_add(1, Ordering::SeqCst);
                            }
                            let (mut parts, body) = req.into_parts();
                            let bytes = body.collect().await.unwrap().to_bytes();
                            parts.uri = format!("{target}{}", parts.uri.path()).parse().unwrap();
                            parts.headers.remove("host");
                            let answer = client
                                .request(Request::from_parts(parts, full(bytes)))
                                .await
                                .unwrap();
                            let (parts, body) = answer.into_parts();
                            let bytes: Bytes = body.collect().await.unwrap().to_bytes();
                            Ok::<_, std::convert::Infallible>(Response::from_parts(
                                parts,
                                full(bytes),
                            ))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        CountingShim {
            addr,
            token_requests,
        }
    }

    pub fn count(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }
}
