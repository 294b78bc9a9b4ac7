//! Several keygate replicas over one PostgreSQL (issue 8): three `keygate serve` processes on
//! their own loopback ports, one fresh database, one shared key-encryption key, the real
//! oidc-provider. A consent journey that crosses all three replicas, revocations seen by the
//! other replicas within a second, one refresh for the whole fleet across an access token's
//! expiry, and a PostgreSQL outage (through a TCP forwarder the test controls) with recovery.
//!
//! Every process is killed when its test ends, failed or not; a failed test prints the
//! replicas' logs (each replica's stdout and stderr go to a file in the test's temp folder).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keygate::config::{ApiCredential, SecretSource, VaultConfig};
use keygate::vault::{Credential, Vault};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::common::*;
use crate::consent::{RETURN_URL, challenge};
use crate::oidc::OidcProvider;
use crate::vault::fresh_postgres;

const REGION: &str = "us-west-2";
const ACCESS_KEY_ID: &str = "AKIDKEYGATEREPLICAS";
const API_SECRET: &str = "replicas-sigv4-secret-0123456789";
const WORKLOAD: &str = "agent-one";
const NAMES: [&str; 5] = ["A", "B", "C", "D", "E"];
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// The replica tests run one at a time: each starts three keygate processes, a Node process
/// and a burst of requests, and the timing requirements (1 s) are about keygate, not about
/// how many other fleets share the two cores.
pub(crate) static ONE_FLEET_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unix_now() -> i64 {
    keygate::vault::store::now()
}

// --- The fleet -----------------------------------------------------------------------------------

/// Ports chosen before anything starts (the provider must know B's callback URL).
pub(crate) struct Ports {
    listen: Vec<u16>,
    admin: Vec<u16>,
}

impl Ports {
    fn pick() -> Ports {
        Ports::pick_n(3)
    }

    /// Ports for `n` replicas (at most five).
    pub(crate) fn pick_n(n: usize) -> Ports {
        Ports {
            listen: (0..n).map(|_| free_port()).collect(),
            admin: (0..n).map(|_| free_port()).collect(),
        }
    }

    /// All replicas sit "behind one load balancer" whose address is replica B's.
    pub(crate) fn public_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.listen[B])
    }

    pub(crate) fn callback(&self) -> String {
        format!("{}/identities/oauth2/callback", self.public_url())
    }
}

#[derive(Clone)]
pub(crate) struct Replica {
    pub(crate) name: &'static str,
    /// `127.0.0.1:PORT` of the proxy and identity API.
    pub(crate) addr: String,
    admin: String,
    config: PathBuf,
    log: PathBuf,
}

impl Replica {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn readyz(&self) -> String {
        format!("http://{}/readyz", self.admin)
    }
}

/// Three `keygate serve` processes over one store. Dropping it kills them; when the test is
/// failing, their logs are printed first.
pub(crate) struct Fleet {
    pub(crate) replicas: Vec<Replica>,
    children: Vec<Option<std::process::Child>>,
    store: String,
    key_file: PathBuf,
    dir: tempfile::TempDir,
}

impl Fleet {
    /// Writes one config per replica (`body` holds workloads, providers and routes) and starts
    /// A first (it creates the key file, runs the migrations and makes the signing key), then
    /// B and C together.
    async fn start(ports: &Ports, store: &str, body: &str) -> Fleet {
        let mut fleet = Fleet::prepare(ports, store, body);
        fleet.spawn(A);
        fleet.wait_ready(A).await;
        assert!(
            fleet.key_file.exists(),
            "replica A did not create the key file"
        );
        fleet.spawn(B);
        fleet.spawn(C);
        fleet.wait_ready(B).await;
        fleet.wait_ready(C).await;
        fleet
    }

    /// Starts every replica at the same instant, as Kubernetes does with a new deployment: no
    /// key file, no schema, no signing key yet. Waits until all are ready.
    /// `Err` (with the replica's log) when a replica exited before it was ready, so a caller
    /// can tell a lost port race from a real failure.
    pub(crate) async fn try_start_together(
        ports: &Ports,
        store: &str,
        body: &str,
    ) -> Result<Fleet, String> {
        let mut fleet = Fleet::prepare(ports, store, body);
        for i in 0..fleet.replicas.len() {
            fleet.spawn(i);
        }
        for i in 0..fleet.replicas.len() {
            if let Err(exited) = fleet.try_wait_ready(i).await {
                let log = std::fs::read_to_string(&fleet.replicas[i].log).unwrap_or_default();
                return Err(format!("{exited}\n{log}"));
            }
        }
        Ok(fleet)
    }

    /// Writes one config per replica without starting any.
    fn prepare(ports: &Ports, store: &str, body: &str) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("vault.key");
        let secret_file = dir.path().join("api-secret");
        std::fs::write(&secret_file, API_SECRET).unwrap();
        // The provider's client secret (oidc-provider's web client), for `{fleet}` in `body`.
        std::fs::write(dir.path().join("web-secret"), "web-secret").unwrap();
        let mut fleet = Fleet {
            replicas: Vec::new(),
            children: Vec::new(),
            store: store.to_string(),
            key_file: key_file.clone(),
            dir,
        };
        for (i, name) in NAMES.iter().take(ports.listen.len()).enumerate() {
            let folder = fleet.dir.path();
            let config = folder.join(format!("replica-{name}.toml"));
            let toml = format!(
                r#"[server]
listen = "127.0.0.1:{listen}"
admin_listen = "127.0.0.1:{admin}"
public_url = "{public_url}"

[vault]
store = "{store}"
key = "file:{key}"

[audit]
path = "{audit}"

[api]
region = "{REGION}"
account_id = "123456789012"
[[api.credentials]]
access_key_id = "{ACCESS_KEY_ID}"
secret_access_key = "file:{secret}"

{body}"#,
                body = body.replace("{fleet}", &folder.display().to_string()),
                listen = ports.listen[i],
                admin = ports.admin[i],
                public_url = ports.public_url(),
                key = key_file.display(),
                audit = folder.join(format!("audit-{name}.jsonl")).display(),
                secret = secret_file.display(),
            );
            std::fs::write(&config, toml).unwrap();
            fleet.replicas.push(Replica {
                name,
                addr: format!("127.0.0.1:{}", ports.listen[i]),
                admin: format!("127.0.0.1:{}", ports.admin[i]),
                config,
                log: folder.join(format!("replica-{name}.log")),
            });
            fleet.children.push(None);
        }
        fleet
    }

    fn spawn(&mut self, i: usize) {
        let replica = &self.replicas[i];
        let log = std::fs::File::create(&replica.log).unwrap();
        let child = std::process::Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&replica.config)
            .env_remove("KEYGATE_CONFIG")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    /// Waits (at most 30 s) until the replica's /readyz answers 200; fails early if it exited.
    async fn wait_ready(&mut self, i: usize) {
        if let Err(exited) = self.try_wait_ready(i).await {
            panic!("{exited}");
        }
    }

    /// As [`Fleet::wait_ready`], with `Err` when the replica exited before it was ready.
    async fn try_wait_ready(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = self.replicas[i].readyz();
        loop {
            if let Some(child) = self.children[i].as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "replica {} exited ({status}) before it was ready",
                    self.replicas[i].name
                ));
            }
            let request = Request::get(&url).body(full("")).unwrap();
            if let Ok(Ok(response)) =
                tokio::time::timeout(Duration::from_secs(1), http_client().request(request)).await
                && response.status() == StatusCode::OK
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "replica {} never became ready",
                self.replicas[i].name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn r(&self, i: usize) -> &Replica {
        &self.replicas[i]
    }

    /// The last 150 lines of every replica's log.
    fn logs(&self) -> String {
        let mut out = String::new();
        for replica in &self.replicas {
            let text = std::fs::read_to_string(&replica.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(150)..];
            out.push_str(&format!(
                "----- replica {} ({}, log {}; last {} of {} lines) -----\n{}\n",
                replica.name,
                replica.addr,
                replica.log.display(),
                tail.len(),
                lines.len(),
                tail.join("\n")
            ));
        }
        out
    }

    /// The test's own view of the shared vault (same store, same key).
    pub(crate) async fn open_vault(&self) -> Arc<Vault> {
        Vault::open(
            &VaultConfig {
                store: self.store.clone(),
                key: SecretSource::File(self.key_file.clone()),
                previous_keys: Vec::new(),
                cache_capacity: 100,
            },
            None,
        )
        .await
        .unwrap()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // KEYGATE_REPLICA_LOGS=1 prints them for a passing test too.
        if std::thread::panicking() || std::env::var_os("KEYGATE_REPLICA_LOGS").is_some() {
            eprintln!(
                "\n===== replica logs (folder {}) =====\n{}",
                self.dir.path().display(),
                self.logs()
            );
        }
    }
}

// --- Config ------------------------------------------------------------------------------------

/// Workload `agent-one`, the OAuth provider `docs` (the oidc-provider's web client) reached
/// through `endpoints`, and the 3LO route `/docs/` to `upstream`.
pub(crate) fn oauth_body(upstream: &str, endpoints: &str) -> String {
    format!(
        r#"[[workloads]]
name = "{WORKLOAD}"
allowed_return_urls = ["{RETURN_URL}"]

[[providers]]
name = "docs"
kind = "oauth2"
vendor = "custom"
client_id = "web-app"
client_secret = "file:{{fleet}}/web-secret"
{endpoints}

[[routes]]
name = "docs"
path_prefix = "/docs/"
upstream = "{upstream}/"
workload = "{WORKLOAD}"
[routes.credential]
provider = "docs"
flow = "user_federation"
scopes = ["tools", "offline_access"]
return_url = "{RETURN_URL}"
"#
    )
}

/// A fleet over a fresh database (or `store`), the provider (accepting B's callback) and an
/// upstream; the provider is found by discovery.
struct Env {
    fleet: Fleet,
    provider: OidcProvider,
    upstream: Upstream,
    _provider_dir: tempfile::TempDir,
    /// Dropped last, once the replicas are gone.
    _database: Option<crate::vault::TestDatabase>,
}

impl Env {
    async fn start(store: Option<String>) -> Env {
        let ports = Ports::pick();
        let provider_dir = tempfile::tempdir().unwrap();
        let provider =
            OidcProvider::start_with(provider_dir.path(), &[&ports.callback()], 600).await;
        let upstream = Upstream::start().await;
        let (store, database) = match store {
            Some(store) => (store, None),
            None => {
                let database = fresh_postgres().await;
                (database.url.clone(), Some(database))
            }
        };
        let endpoints = format!("discovery_url = \"{}\"", provider.discovery_url());
        let fleet = Fleet::start(&ports, &store, &oauth_body(&upstream.url(), &endpoints)).await;
        Env {
            fleet,
            provider,
            upstream,
            _provider_dir: provider_dir,
            _database: database,
        }
    }
}

// --- Requests ----------------------------------------------------------------------------------

fn credential() -> ApiCredential {
    ApiCredential {
        access_key_id: ACCESS_KEY_ID.to_string(),
        secret_access_key: SecretString::from(API_SECRET.to_string()),
    }
}

/// An identity API call to `replica`, signed with SigV4 for the host:port it is sent to.
/// Bounded by 20 s: a call that hangs fails the test.
pub(crate) async fn api(
    replica: &Replica,
    path: &str,
    body: &Value,
) -> (StatusCode, HeaderMap, String) {
    let bytes = body.to_string().into_bytes();
    let mut request = Request::post(replica.url(path)).header("content-type", "application/json");
    for (name, value) in keygate::identity_api::sigv4::sign(
        &credential(),
        REGION,
        "POST",
        &replica.addr,
        path,
        &bytes,
        SystemTime::now(),
    ) {
        request = request.header(name, value);
    }
    let request = request.body(full(bytes)).unwrap();
    match tokio::time::timeout(Duration::from_secs(20), send(&http_client(), request)).await {
        Ok(answer) => answer,
        Err(_) => panic!("{path} on replica {} did not answer in 20 s", replica.name),
    }
}

/// The AWS error type of an identity API answer.
fn aws_error_type(headers: &HeaderMap, body: &str) -> String {
    let value: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert!(
        value["message"].as_str().is_some_and(|m| !m.is_empty()),
        "AWS error without a message: {body}"
    );
    headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap()
        .to_string()
}

/// GetWorkloadAccessTokenForUserId on `replica`.
pub(crate) async fn workload_token(replica: &Replica, user: &str) -> String {
    let (status, _, body) = api(
        replica,
        "/identities/GetWorkloadAccessTokenForUserId",
        &json!({ "workloadName": WORKLOAD, "userId": user }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "GetWorkloadAccessTokenForUserId on {}: {body}",
        replica.name
    );
    let value: Value = serde_json::from_str(&body).unwrap();
    value["workloadAccessToken"].as_str().unwrap().to_string()
}

/// GET /docs/pages through `replica`'s proxy with a workload access token (bounded by 20 s).
pub(crate) async fn docs(replica: &Replica, token: &str) -> (StatusCode, HeaderMap, String) {
    match tokio::time::timeout(
        Duration::from_secs(20),
        get_auth(&replica.url("/docs/pages"), token),
    )
    .await
    {
        Ok(answer) => answer,
        Err(_) => panic!(
            "/docs/pages on replica {} did not answer in 20 s",
            replica.name
        ),
    }
}

/// The `Authorization` the upstream received, after checking it is `user`'s own token.
pub(crate) fn upstream_bearer(body: &str, user: &str) -> String {
    let bearer = seen(body)
        .header("authorization")
        .unwrap_or_else(|| panic!("the upstream got no Authorization: {body}"))
        .to_string();
    let jwt = bearer
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a bearer: {bearer}"));
    assert_eq!(
        jwt_claims(jwt)["sub"],
        user,
        "the upstream got someone else's token"
    );
    bearer
}

/// The 3LO journey across the fleet: the agent calls `start`'s proxy as `user` and gets a
/// consent challenge whose authorization URL points at the public URL (replica B); the browser
/// goes to B, through the provider's login and consent, back to B's callback and on to the
/// return URL; the app completes the session on `complete`'s identity API.
async fn consent_journey(env: &Env, user: &str, start: usize, complete: usize) {
    let fleet = &env.fleet;
    let token = workload_token(fleet.r(start), user).await;
    let (status, headers, body) = docs(fleet.r(start), &token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{user} on {}: {body}",
        fleet.r(start).name
    );
    let (authorization_url, session_uri) = challenge(&body);
    let www = headers["www-authenticate"].to_str().unwrap();
    assert!(www.contains(r#"error="consent_required""#), "{www}");
    let public = format!("{}/identities/oauth2/authorize?", fleet.r(B).url(""));
    assert!(
        authorization_url.starts_with(&public),
        "the authorization URL must point at the public URL (replica B): {authorization_url}"
    );

    // The browser, at B.
    let (status, headers, body) = get(&authorization_url).await;
    assert_eq!(status, StatusCode::FOUND, "authorize on B: {body}");
    let to_provider = headers["location"].to_str().unwrap().to_string();
    assert!(
        to_provider.starts_with(&env.provider.issuer),
        "{to_provider}"
    );
    let callback = env.provider.drive_consent(&to_provider, user).await;
    assert!(
        callback.starts_with(&format!(
            "{}?",
            fleet.r(B).url("/identities/oauth2/callback")
        )),
        "the provider must send the browser back to B's callback: {callback}"
    );
    let (status, headers, body) = get(&callback).await;
    assert_eq!(status, StatusCode::FOUND, "callback on B: {body}");
    let back = headers["location"].to_str().unwrap().to_string();
    assert!(back.starts_with(RETURN_URL), "{back}");
    let session_id = url::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "session_id")
        .map(|(_, v)| v.into_owned());
    assert_eq!(session_id.as_deref(), Some(session_uri.as_str()), "{back}");

    // The app completes it on C.
    let (status, _, body) = api(
        fleet.r(complete),
        "/identities/CompleteResourceTokenAuth",
        &json!({ "sessionUri": session_uri, "userIdentifier": { "userId": user } }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "CompleteResourceTokenAuth on {}: {body}",
        fleet.r(complete).name
    );
}

/// Polls `probe` every 50 ms for at most `limit` until it says done; returns how long it took
/// (from `since`), or the last observation when it never did.
async fn poll_until<F, Fut>(
    since: Instant,
    limit: Duration,
    mut probe: F,
) -> Result<Duration, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, String)>,
{
    let mut last = String::new();
    while since.elapsed() < limit {
        let (done, observed) = probe().await;
        if done {
            return Ok(since.elapsed());
        }
        last = observed;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last)
}

// --- 1. The consent journey across replicas -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_replica_consent_journey() {
    let _one = ONE_FLEET_AT_A_TIME.lock().await;
    let env = Env::start(None).await;
    let fleet = &env.fleet;

    consent_journey(&env, "alice", A, C).await;

    // alice's token now serves her on every replica, with workload access tokens issued by
    // any replica (the signing keys are shared).
    let tokens = [
        workload_token(fleet.r(A), "alice").await,
        workload_token(fleet.r(B), "alice").await,
        workload_token(fleet.r(C), "alice").await,
    ];
    let mut bearers = BTreeMap::new();
    for (i, replica) in fleet.replicas.iter().enumerate() {
        // The token of the next replica: issued elsewhere, accepted here.
        let token = &tokens[(i + 1) % 3];
        let (status, _, body) = docs(replica, token).await;
        assert_eq!(status, StatusCode::OK, "alice on {}: {body}", replica.name);
        bearers.insert(replica.name, upstream_bearer(&body, "alice"));
    }
    let distinct: HashSet<&String> = bearers.values().collect();
    assert_eq!(
        distinct.len(),
        1,
        "the replicas used different tokens for alice: {bearers:?}"
    );

    // bob has not consented: his own challenge on every replica, never alice's token.
    let bob = workload_token(fleet.r(C), "bob").await;
    for replica in &fleet.replicas {
        let (status, _, body) = docs(replica, &bob).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "bob on {}: {body}",
            replica.name
        );
        challenge(&body);
    }
    assert!(env.upstream.hits.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}

// --- 2. Revocation reaches every replica within a second -------------------------------------

/// The product requirement: a change on one replica reaches the others within a second.
const PROPAGATION: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_on_one_replica_is_seen_by_the_others_within_a_second() {
    let _one = ONE_FLEET_AT_A_TIME.lock().await;
    let env = Env::start(None).await;
    let fleet = &env.fleet;
    let mut problems = Vec::new();

    // An API-key provider made on A, read (and so cached) on B and C.
    let key = "weather-key-f3a9c1";
    let (status, _, body) = api(
        fleet.r(A),
        "/identities/CreateApiKeyCredentialProvider",
        &json!({ "name": "weather", "apiKey": key }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = workload_token(fleet.r(B), "alice").await;
    let get_key = |i: usize| {
        let token = token.clone();
        let replica = fleet.r(i);
        async move {
            api(
                replica,
                "/identities/api-key",
                &json!({ "workloadIdentityToken": token, "resourceCredentialProviderName": "weather" }),
            )
            .await
        }
    };
    for i in [B, C] {
        for _ in 0..2 {
            let (status, _, body) = get_key(i).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "GetResourceApiKey on {}: {body}",
                NAMES[i]
            );
            let value: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(value["apiKey"], key);
        }
    }

    let (status, _, body) = api(
        fleet.r(A),
        "/identities/DeleteApiKeyCredentialProvider",
        &json!({ "name": "weather" }),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let deleted = Instant::now();
    let gone = |i: usize| {
        let get_key = &get_key;
        poll_until(deleted, Duration::from_secs(5), move || async move {
            let (status, headers, body) = get_key(i).await;
            let done = status == StatusCode::NOT_FOUND
                && aws_error_type(&headers, &body) == "ResourceNotFoundException";
            (done, format!("{status} {body}"))
        })
    };
    let (on_b, on_c) = tokio::join!(gone(B), gone(C));
    for (name, seen) in [("B", on_b), ("C", on_c)] {
        match seen {
            Ok(after) if after <= PROPAGATION => {
                eprintln!("the deleted API-key provider was gone on {name} after {after:?}")
            }
            Ok(after) => problems.push(format!(
                "replica {name} still served the deleted API-key provider for {after:?} (limit {PROPAGATION:?})"
            )),
            Err(last) => problems.push(format!(
                "replica {name} still served the deleted API-key provider 5 s later; last answer: {last}"
            )),
        }
    }

    // A user token vaulted by the consent flow, used (and cached) on B and C, then revoked
    // with the CLI against A's config.
    consent_journey(&env, "alice", A, C).await;
    let alice = workload_token(fleet.r(A), "alice").await;
    for i in [B, C] {
        for _ in 0..2 {
            let (status, _, body) = docs(fleet.r(i), &alice).await;
            assert_eq!(status, StatusCode::OK, "alice on {}: {body}", NAMES[i]);
            upstream_bearer(&body, "alice");
        }
    }
    let output = tokio::process::Command::new(binary())
        .args(["vault", "revoke", "--config"])
        .arg(&fleet.r(A).config)
        .args([
            "--workload",
            WORKLOAD,
            "--user",
            "alice",
            "--provider",
            "docs",
        ])
        .output()
        .await
        .unwrap();
    let revoked = Instant::now();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "vault revoke failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("revoked 1 entries"), "{stdout}");
    let refused = |i: usize| {
        let alice = alice.clone();
        let replica = fleet.r(i);
        poll_until(revoked, Duration::from_secs(5), move || {
            let alice = alice.clone();
            async move {
                let (status, _, body) = docs(replica, &alice).await;
                let done = status == StatusCode::UNAUTHORIZED && body.contains("consent_required");
                (done, format!("{status} {}", &body[..body.len().min(300)]))
            }
        })
    };
    let (on_b, on_c) = tokio::join!(refused(B), refused(C));
    for (name, seen) in [("B", on_b), ("C", on_c)] {
        match seen {
            Ok(after) if after <= PROPAGATION => {
                eprintln!("the revoked user token was refused on {name} after {after:?}")
            }
            Ok(after) => problems.push(format!(
                "replica {name} kept using alice's revoked token for {after:?} (limit {PROPAGATION:?})"
            )),
            Err(last) => problems.push(format!(
                "replica {name} still used alice's revoked token 5 s later; last answer: {last}"
            )),
        }
    }
    // A, where nothing was cached since, asks for consent too.
    let (status, _, body) = docs(fleet.r(A), &alice).await;
    if status != StatusCode::UNAUTHORIZED {
        problems.push(format!(
            "replica A answered {status} after the revoke: {body}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// --- 3. One refresh for the whole fleet ------------------------------------------------------

/// One call to the provider's token endpoint, as the shim saw it.
#[derive(Debug, Clone)]
struct TokenCall {
    grant_type: String,
    /// The refresh token presented (refresh_token grant).
    presented: Option<String>,
    status: u16,
    /// The refresh and access tokens the provider answered with.
    issued_refresh: Option<String>,
    issued_access: Option<String>,
}

/// Forwards everything to the provider and records every `POST /token` with its answer.
struct TokenShim {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<TokenCall>>>,
}

impl TokenShim {
    async fn start(target: String) -> TokenShim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls: Arc<Mutex<Vec<TokenCall>>> = Arc::default();
        let record = calls.clone();
        tokio::spawn(async move {
            let client = http_client();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (client, record, target) = (client.clone(), record.clone(), target.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (client, record, target) =
                            (client.clone(), record.clone(), target.clone());
                        async move {
                            let (mut parts, body) = req.into_parts();
                            let bytes = body.collect().await.unwrap().to_bytes();
                            let is_token = parts.uri.path() == "/token";
                            let form: BTreeMap<String, String> =
                                url::form_urlencoded::parse(&bytes).into_owned().collect();
                            parts.uri = format!(
                                "{target}{}",
                                parts.uri.path_and_query().map_or("/", |p| p.as_str())
                            )
                            .parse()
                            .unwrap();
                            parts.headers.remove("host");
                            let answer = client
                                .request(Request::from_parts(parts, full(bytes)))
                                .await
                                .unwrap();
                            let (parts, body) = answer.into_parts();
                            let bytes: Bytes = body.collect().await.unwrap().to_bytes();
                            if is_token {
                                let json: Value =
                                    serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                                let text = |v: &Value| v.as_str().map(str::to_string);
                                record.lock().unwrap().push(TokenCall {
                                    grant_type: form.get("grant_type").cloned().unwrap_or_default(),
                                    presented: form.get("refresh_token").cloned(),
                                    status: parts.status.as_u16(),
                                    issued_refresh: text(&json["refresh_token"]),
                                    issued_access: text(&json["access_token"]),
                                });
                            }
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
        TokenShim { addr, calls }
    }

    fn calls(&self) -> Vec<TokenCall> {
        self.calls.lock().unwrap().clone()
    }

    fn refreshes_since(&self, from: usize) -> Vec<TokenCall> {
        self.calls()
            .into_iter()
            .skip(from)
            .filter(|c| c.grant_type == "refresh_token")
            .collect()
    }
}

/// Provider access tokens live this long. keygate replaces a token a quarter of its lifetime
/// (3 s) before its expiry, so the token is "fresh" for 9 s: the burst starts once the consented
/// token has crossed that line, and the refreshed token must stay fresh for the rest of the
/// burst (a burst outlasting that would rightly refresh again).
const ACCESS_TTL: u64 = 12;
const MARGIN: i64 = keygate::vault::credential::refresh_margin(ACCESS_TTL as i64);

/// alice's vaulted tokens as the store has them: (access, refresh, expires_at).
async fn stored_tokens(vault: &Vault) -> Option<(String, Option<String>, Option<i64>)> {
    let owner = keygate::consent::user_owner(
        WORKLOAD,
        &keygate::inbound::UserId {
            issuer: None,
            id: "alice".to_string(),
        },
        "docs",
    );
    match vault.get_fresh(&owner).await.unwrap().as_deref() {
        Some(Credential::OAuth(t)) => Some((
            t.access_token.expose_secret().to_string(),
            t.refresh_token
                .as_ref()
                .map(|r| r.expose_secret().to_string()),
            t.expires_at,
        )),
        Some(_) => panic!("alice's entry is not an OAuth entry"),
        None => None,
    }
}

/// Sleeps until keygate considers the vaulted access token due for refresh (bounded).
async fn wait_until_due(vault: &Vault) -> String {
    let (access, _, expires_at) = stored_tokens(vault)
        .await
        .expect("alice has no vaulted token");
    let expires_at = expires_at.expect("the provider sent no expires_in");
    let due = expires_at - MARGIN;
    let wait = (due - unix_now()).max(0);
    assert!(
        wait <= ACCESS_TTL as i64,
        "the token is due in {wait} s, longer than it lives"
    );
    while unix_now() < due {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A little past the second boundary, so every replica agrees.
    tokio::time::sleep(Duration::from_millis(200)).await;
    format!("Bearer {access}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_across_the_fleet() {
    let _one = ONE_FLEET_AT_A_TIME.lock().await;
    let ports = Ports::pick();
    let provider_dir = tempfile::tempdir().unwrap();
    let provider =
        OidcProvider::start_with(provider_dir.path(), &[&ports.callback()], ACCESS_TTL).await;
    let shim = TokenShim::start(provider.issuer.clone()).await;
    let upstream = Upstream::start().await;
    let endpoints = format!(
        "issuer = \"{0}\"\nauthorization_endpoint = \"{0}/auth\"\ntoken_endpoint = \"http://{1}/token\"",
        provider.issuer, shim.addr
    );
    let store = fresh_postgres().await;
    let fleet = Fleet::start(&ports, &store, &oauth_body(&upstream.url(), &endpoints)).await;
    let env = Env {
        fleet,
        provider,
        upstream,
        _provider_dir: provider_dir,
        _database: Some(store),
    };
    let fleet = &env.fleet;

    consent_journey(&env, "alice", A, A).await;
    let exchanges = shim.calls();
    assert_eq!(
        exchanges
            .iter()
            .filter(|c| c.grant_type == "authorization_code")
            .count(),
        1,
        "the consent exchanged one code: {exchanges:?}"
    );
    let after_consent = exchanges.len();
    let vault = fleet.open_vault().await;
    let (_, consented_refresh, _) = stored_tokens(&vault).await.unwrap();
    assert!(consented_refresh.is_some(), "no refresh token was issued");

    // Workload access tokens from each replica, and one client per replica, ready before
    // the token is due.
    let tokens = [
        workload_token(fleet.r(A), "alice").await,
        workload_token(fleet.r(B), "alice").await,
        workload_token(fleet.r(C), "alice").await,
    ];
    let before = wait_until_due(&vault).await;
    assert_eq!(
        shim.calls().len(),
        after_consent,
        "a token request happened before the burst"
    );

    // 3 replicas x 100 requests at once.
    let started = Instant::now();
    let barrier = Arc::new(tokio::sync::Barrier::new(300));
    let mut burst = tokio::task::JoinSet::new();
    for n in 0..300 {
        let i = n % 3;
        let url = fleet.r(i).url("/docs/pages");
        let token = tokens[(n / 3) % 3].clone();
        let barrier = barrier.clone();
        burst.spawn(async move {
            barrier.wait().await;
            let answer =
                tokio::time::timeout(Duration::from_secs(30), get_auth(&url, &token)).await;
            (i, answer)
        });
    }
    let mut statuses: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    let mut injected: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    while let Some(done) = burst.join_next().await {
        let (i, answer) = done.unwrap();
        match answer {
            Err(_) => failures.push(format!("{}: no answer in 30 s", NAMES[i])),
            Ok((status, _, body)) => {
                *statuses.entry((NAMES[i], status.as_u16())).or_default() += 1;
                if status == StatusCode::OK {
                    *injected.entry(upstream_bearer(&body, "alice")).or_default() += 1;
                } else if failures.len() < 5 {
                    failures.push(format!("{}: {status} {body}", NAMES[i]));
                }
            }
        }
    }
    let burst_took = started.elapsed();
    eprintln!("burst of 300 took {burst_took:?}; statuses by replica: {statuses:?}");

    let mut problems = Vec::new();
    let ok: usize = statuses
        .iter()
        .filter(|((_, s), _)| *s == 200)
        .map(|(_, n)| n)
        .sum();
    if ok != 300 {
        problems.push(format!(
            "{ok} of 300 requests got 200 (by replica and status: {statuses:?}); first failures:\n  {}",
            failures.join("\n  ")
        ));
    }
    let refreshes = shim.refreshes_since(after_consent);
    if refreshes.len() != 1 {
        let reused = refreshes
            .iter()
            .filter(|c| c.presented == consented_refresh)
            .count();
        problems.push(format!(
            "the provider saw {} refresh calls for one expiring token (want exactly 1); {reused} \
             presented the same refresh token; answers: {:?}",
            refreshes.len(),
            refreshes.iter().map(|c| c.status).collect::<Vec<_>>()
        ));
    }
    if injected.len() != 1 {
        problems.push(format!(
            "the upstream saw {} different access tokens (counts {:?})",
            injected.len(),
            injected.values().collect::<Vec<_>>()
        ));
    }
    if injected.contains_key(&before) {
        problems.push("some requests used the expiring token instead of the refreshed one".into());
    }
    // The vault holds the newest refresh token the provider issued, and the access token
    // that came with it is what the upstream saw.
    let newest = shim
        .calls()
        .iter()
        .rev()
        .find(|c| c.status == 200 && c.issued_refresh.is_some())
        .cloned();
    let stored = stored_tokens(&vault).await;
    match (&stored, &newest) {
        (None, _) => problems.push("alice's entry is gone from the vault after the burst".into()),
        (Some((access, refresh, _)), Some(newest)) => {
            if refresh != &newest.issued_refresh {
                problems.push(
                    "the vault's refresh token is not the newest one the provider issued".into(),
                );
            }
            if newest.issued_access.as_ref() != Some(access) {
                problems.push("the vault's access token is not the newest one issued".into());
            }
            if injected.len() == 1 && !injected.contains_key(&format!("Bearer {access}")) {
                problems.push("the upstream saw another token than the vault holds".into());
            }
        }
        (Some(_), None) => problems.push("the provider issued no token at all".into()),
    }

    // One more round: when the refreshed token is due, one request refreshes it with the stored
    // refresh token. Had an already used one been stored, the provider (which revokes the
    // grant when a rotated refresh token is reused) would refuse it and keygate would ask for
    // consent.
    if stored.is_some() {
        let due = wait_until_due(&vault).await;
        let calls_before = shim.calls().len();
        let (status, _, body) = docs(fleet.r(B), &tokens[B]).await;
        if status == StatusCode::OK {
            let bearer = upstream_bearer(&body, "alice");
            if bearer == due {
                problems.push("the second round used the due token without refreshing".into());
            }
        } else {
            problems.push(format!(
                "the refresh after the burst failed ({status}: {body}); refresh calls in that round: {:?}",
                shim.refreshes_since(calls_before)
                    .iter()
                    .map(|c| c.status)
                    .collect::<Vec<_>>()
            ));
        }
        let round = shim.refreshes_since(calls_before);
        if round.len() != 1 {
            problems.push(format!(
                "the second round made {} refresh calls, want 1",
                round.len()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "one refresh across the fleet:\n- {}",
        problems.join("\n- ")
    );
}

// --- 4. PostgreSQL outage ----------------------------------------------------------------------

/// A TCP forwarder between keygate and PostgreSQL that the test switches off (stop accepting,
/// drop every open connection) and on again (accept on the same port).
struct Forwarder {
    port: u16,
    target: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Forwarder {
    async fn start(target: SocketAddr) -> Forwarder {
        let listener = Self::bind(0);
        let port = listener.local_addr().unwrap().port();
        let mut forwarder = Forwarder {
            port,
            target,
            task: None,
        };
        forwarder.serve(listener);
        forwarder
    }

    fn bind(port: u16) -> tokio::net::TcpListener {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap();
        socket.listen(128).unwrap()
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            // Dropped with this task: every connection task is aborted, its sockets closed.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        connections.spawn(async move {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        }));
    }

    /// The database is gone: the port refuses connections and open ones are cut.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn resume(&mut self) {
        assert!(self.task.is_none());
        let listener = Self::bind(self.port);
        self.serve(listener);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What the load loop saw: replica, what it asked, status, how long it took.
type Observed = Vec<(&'static str, &'static str, u16, Duration)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage() {
    let _one = ONE_FLEET_AT_A_TIME.lock().await;
    let mut forwarder = Forwarder::start(SocketAddr::from(([127, 0, 0, 1], 5432))).await;
    let direct = fresh_postgres().await;
    let store = direct.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", forwarder.port));
    assert_ne!(store, direct.url);
    let env = Env::start(Some(store)).await;
    let fleet = &env.fleet;

    // Before the outage: an API-created key read on every replica, and alice's consented token
    // used on every replica, so both are cached everywhere.
    let (status, _, body) = api(
        fleet.r(A),
        "/identities/CreateApiKeyCredentialProvider",
        &json!({ "name": "weather", "apiKey": "weather-key-77" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    consent_journey(&env, "alice", A, C).await;
    let alice = workload_token(fleet.r(A), "alice").await;
    let bob = workload_token(fleet.r(A), "bob").await;
    let key_request =
        json!({ "workloadIdentityToken": alice, "resourceCredentialProviderName": "weather" });
    // carol too: her entry is revoked while the replicas cannot see the database.
    consent_journey(&env, "carol", B, A).await;
    let carol = workload_token(fleet.r(B), "carol").await;
    for replica in &fleet.replicas {
        let (status, _, body) = api(replica, "/identities/api-key", &key_request).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", replica.name);
        let (status, _, body) = docs(replica, &alice).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", replica.name);
        let (status, _, body) = docs(replica, &carol).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", replica.name);
    }

    // A light load of cached lookups on every replica, for the whole outage.
    let stop_load = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observed: Arc<Mutex<Observed>> = Arc::default();
    let load = {
        let replicas = fleet.replicas.clone();
        let (stop_load, observed, alice, key_request) = (
            stop_load.clone(),
            observed.clone(),
            alice.clone(),
            key_request.clone(),
        );
        tokio::spawn(async move {
            while !stop_load.load(std::sync::atomic::Ordering::SeqCst) {
                for replica in &replicas {
                    let name = replica.name;
                    let t = Instant::now();
                    let (status, _, _) = api(replica, "/identities/api-key", &key_request).await;
                    observed.lock().unwrap().push((
                        name,
                        "GetResourceApiKey",
                        status.as_u16(),
                        t.elapsed(),
                    ));
                    let t = Instant::now();
                    let (status, _, _) = docs(replica, &alice).await;
                    observed.lock().unwrap().push((
                        name,
                        "proxy alice",
                        status.as_u16(),
                        t.elapsed(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    forwarder.stop().await;
    let outage = Instant::now();
    let mut problems = Vec::new();

    // /readyz says so on every replica.
    for replica in &fleet.replicas {
        let t = Instant::now();
        let (status, _, body) =
            tokio::time::timeout(Duration::from_secs(10), get(&replica.readyz()))
                .await
                .unwrap_or_else(|_| panic!("/readyz on {} hung during the outage", replica.name));
        if status != StatusCode::SERVICE_UNAVAILABLE || !body.contains("store is unreachable") {
            problems.push(format!(
                "/readyz on {} during the outage: {status} {body:?} after {:?}",
                replica.name,
                t.elapsed()
            ));
        }
    }
    // Requests that need the database fail fast, with the contract's error shapes.
    let limit = Duration::from_secs(10);
    let t = Instant::now();
    let (status, headers, body) = api(
        fleet.r(B),
        "/identities/CreateWorkloadIdentity",
        &json!({ "name": "made-during-outage" }),
    )
    .await;
    let took = t.elapsed();
    eprintln!("CreateWorkloadIdentity during the outage: {status} after {took:?}: {body}");
    if status != StatusCode::SERVICE_UNAVAILABLE
        || aws_error_type(&headers, &body) != "ServiceUnavailableException"
        || took >= limit
    {
        problems.push(format!(
            "CreateWorkloadIdentity on B during the outage: {status} {body} after {took:?} \
             (want 503 ServiceUnavailableException within {limit:?})"
        ));
    }
    let t = Instant::now();
    let (status, _, body) = docs(fleet.r(C), &bob).await;
    let took = t.elapsed();
    eprintln!("bob's 3LO request during the outage: {status} after {took:?}: {body}");
    let shaped = serde_json::from_str::<Value>(&body)
        .ok()
        .is_some_and(|v| v["error"] == "vault_unavailable" && v["error_description"].is_string());
    if status != StatusCode::SERVICE_UNAVAILABLE || !shaped || took >= limit {
        problems.push(format!(
            "bob's first 3LO request on C during the outage: {status} {body} after {took:?} \
             (want 503 vault_unavailable within {limit:?})"
        ));
    }
    // Meanwhile someone with a working database connection revokes carol's token: no replica
    // can be notified now; each must catch up when it reconnects.
    let direct_config = env.fleet.dir.path().join("direct.toml");
    let a_config = std::fs::read_to_string(&fleet.r(A).config).unwrap();
    std::fs::write(&direct_config, a_config.replace(&env.fleet.store, &direct)).unwrap();
    let output = tokio::process::Command::new(binary())
        .args(["vault", "revoke", "--config"])
        .arg(&direct_config)
        .args([
            "--workload",
            WORKLOAD,
            "--user",
            "carol",
            "--provider",
            "docs",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("revoked 1 entries"),
        "vault revoke against the database itself failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Keep the outage up for a few seconds of load.
    while outage.elapsed() < Duration::from_secs(4) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during: Observed = observed.lock().unwrap().drain(..).collect();

    forwarder.resume().await;
    let resumed = Instant::now();
    stop_load.store(true, std::sync::atomic::Ordering::SeqCst);
    load.await.unwrap();
    let after_stop: Observed = observed.lock().unwrap().drain(..).collect();

    let bad: Vec<_> = during
        .iter()
        .chain(after_stop.iter())
        .filter(|(_, _, status, took)| *status != 200 || *took >= limit)
        .collect();
    let slowest = during.iter().map(|o| o.3).max().unwrap_or_default();
    eprintln!(
        "{} cached lookups during the outage, slowest {slowest:?}",
        during.len()
    );
    if during.len() < 6 {
        problems.push(format!(
            "the load loop made only {} requests during the outage",
            during.len()
        ));
    }
    if !bad.is_empty() {
        problems.push(format!(
            "{} of {} cached lookups failed or were slow during the outage, e.g. {:?}",
            bad.len(),
            during.len() + after_stop.len(),
            &bad[..bad.len().min(6)]
        ));
    }

    // Recovery without a restart: every replica ready, and what needs the database works.
    let recovered = poll_until(resumed, Duration::from_secs(15), || async {
        for replica in &fleet.replicas {
            let (status, _, body) = get(&replica.readyz()).await;
            if status != StatusCode::OK {
                return (
                    false,
                    format!("/readyz on {}: {status} {body}", replica.name),
                );
            }
        }
        (true, String::new())
    })
    .await;
    match recovered {
        Ok(after) => eprintln!("all replicas ready again {after:?} after the database came back"),
        Err(last) => problems.push(format!(
            "not ready 15 s after the database came back: {last}"
        )),
    }
    let recovered = poll_until(resumed, Duration::from_secs(15), || async {
        let (status, _, body) = api(
            fleet.r(B),
            "/identities/CreateWorkloadIdentity",
            &json!({ "name": "made-after-outage" }),
        )
        .await;
        (status == StatusCode::CREATED, format!("{status} {body}"))
    })
    .await;
    if let Err(last) = recovered {
        problems.push(format!(
            "CreateWorkloadIdentity never succeeded after the outage: {last}"
        ));
    }
    // carol's token was revoked while the replicas were cut off: once they are back, none may
    // still use it (within a few seconds of the database's return).
    let caught_up = poll_until(resumed, Duration::from_secs(5), || async {
        for replica in &fleet.replicas {
            let (status, _, body) = docs(replica, &carol).await;
            if status != StatusCode::UNAUTHORIZED || !body.contains("consent_required") {
                return (false, format!("carol on {}: {status} {body}", replica.name));
            }
        }
        (true, String::new())
    })
    .await;
    match caught_up {
        Ok(after) => eprintln!(
            "carol's token, revoked during the outage, was refused everywhere {after:?} after the database came back"
        ),
        Err(last) => problems.push(format!(
            "5 s after the database came back a replica still used carol's token, revoked during \
             the outage; last answer: {last}"
        )),
    }
    for replica in &fleet.replicas {
        let (status, _, body) = api(replica, "/identities/api-key", &key_request).await;
        if status != StatusCode::OK {
            problems.push(format!(
                "GetResourceApiKey on {} after the outage: {status} {body}",
                replica.name
            ));
        }
        let (status, _, body) = docs(replica, &alice).await;
        if status != StatusCode::OK {
            problems.push(format!(
                "alice on {} after the outage: {status} {body}",
                replica.name
            ));
        }
        // bob needs a new session written: the ordinary consent challenge again.
        let (status, _, body) = docs(replica, &bob).await;
        if status != StatusCode::UNAUTHORIZED || !body.contains("consent_required") {
            problems.push(format!(
                "bob on {} after the outage: {status} {body}",
                replica.name
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "PostgreSQL outage:\n- {}",
        problems.join("\n- ")
    );
}
