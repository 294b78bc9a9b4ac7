//! The real OpenID provider (`oidc-provider` from npm, in `tests/oidc/`), run by the tests on a
//! loopback port. Fails loudly when Node or the npm packages are missing (`tests/run` installs them).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use http::{Request, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::*;

pub struct OidcProvider {
    pub port: u16,
    pub issuer: String,
    keys_file: PathBuf,
    redirect_uris: String,
    access_ttl: u64,
    child: Option<tokio::process::Child>,
}

fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

impl OidcProvider {
    /// Starts a provider whose signing keys live in `dir`.
    pub async fn start(dir: &Path) -> OidcProvider {
        Self::start_with_redirects(dir, &[]).await
    }

    /// A provider whose web client (`web-app` / `web-secret`) accepts these redirect URIs.
    pub async fn start_with_redirects(dir: &Path, redirect_uris: &[&str]) -> OidcProvider {
        Self::start_with(dir, redirect_uris, 600).await
    }

    /// As [`OidcProvider::start_with_redirects`], with access tokens living `access_ttl` seconds.
    pub async fn start_with(dir: &Path, redirect_uris: &[&str], access_ttl: u64) -> OidcProvider {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut provider = OidcProvider {
            port,
            issuer: format!("http://127.0.0.1:{port}"),
            keys_file: dir.join("oidc-keys.json"),
            redirect_uris: redirect_uris.join(","),
            access_ttl,
            child: None,
        };
        provider.spawn(false).await;
        provider
    }

    async fn spawn(&mut self, rotate: bool) {
        assert!(
            provider_dir().join("node_modules/oidc-provider").is_dir(),
            "oidc-provider is not installed: run `npm ci` in tests/oidc (tests/run does)"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(provider_dir().join("provider.mjs"))
            .env("OIDC_PORT", self.port.to_string())
            .env("OIDC_KEYS", &self.keys_file)
            .env("OIDC_ROTATE", if rotate { "1" } else { "0" })
            .env("OIDC_ACCESS_TTL", self.access_ttl.to_string())
            .env(
                "OIDC_REDIRECT_URIS",
                if self.redirect_uris.is_empty() {
                    "http://127.0.0.1:1/cb"
                } else {
                    &self.redirect_uris
                },
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node for the OpenID provider: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.starts_with("ready ") {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(ready, Ok(true)),
            "the OpenID provider did not start"
        );
        // Keep draining its stdout: it logs notices there, and dies of EPIPE if nobody reads.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// Restarts on the same port (its in-memory store forgets every code and refresh token).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn(false).await;
    }

    /// Restarts on the same port with a new signing key first and the old ones after it.
    pub async fn rotate_keys(&mut self) {
        self.stop().await;
        self.spawn(true).await;
    }

    /// Plays the user's browser through the provider's login and consent pages (devInteractions),
    /// starting at `url` (the provider's authorization request); returns the URL the provider
    /// finally redirects to (the client's redirect URI with `code` and `state`).
    pub async fn drive_consent(&self, url: &str, login: &str) -> String {
        // A fresh connection per step: Node may close a kept-alive one between the steps.
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http();
        let mut cookies: std::collections::BTreeMap<String, String> =
            std::collections::BTreeMap::new();
        let mut url = url.to_string();
        let mut form: Option<String> = None;
        for _ in 0..30 {
            if !url.starts_with(&self.issuer) {
                return url;
            }
            let cookie = cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let request = match form.take() {
                Some(body) => Request::post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("cookie", cookie)
                    .body(full(body)),
                None => Request::get(&url).header("cookie", cookie).body(full("")),
            }
            .unwrap();
            let (status, headers, body) = send(&client, request).await;
            for value in headers.get_all("set-cookie") {
                let pair = value.to_str().unwrap().split(';').next().unwrap();
                if let Some((k, v)) = pair.split_once('=') {
                    cookies.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
            if status.is_redirection() {
                let location = headers["location"].to_str().unwrap();
                url = url::Url::parse(&url)
                    .unwrap()
                    .join(location)
                    .unwrap()
                    .to_string();
                continue;
            }
            assert_eq!(status, StatusCode::OK, "unexpected page at {url}: {body}");
            form = Some(if body.contains("name=\"login\"") {
                format!("prompt=login&login={login}&password=any")
            } else {
                "prompt=consent".to_string()
            });
        }
        panic!("the consent dance did not end");
    }

    /// An access token (an RS256 JWT) from the client-credentials grant.
    pub async fn client_credentials(&self, client_id: &str, secret: &str, scope: &str) -> String {
        use base64::Engine;
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
        let request = Request::post(format!("{}/token", self.issuer))
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(full(format!("grant_type=client_credentials&scope={scope}")))
            .unwrap();
        let (status, _, body) = send(&http_client(), request).await;
        assert_eq!(status, StatusCode::OK, "token request failed: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        json["access_token"].as_str().unwrap().to_string()
    }
}
