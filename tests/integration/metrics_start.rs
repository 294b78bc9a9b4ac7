//! Metrics as a platform team scrapes them: every family the contract names is on `/metrics`
//! from the first scrape, its known series at 0, so alerts and dashboards never see "no data";
//! and a code exchange refused for keygate's own client credentials is counted as a refused
//! token request, not only as a user who said no.

use http::StatusCode;

use crate::common::*;
use crate::consent::{RETURN_URL, call, challenge};
use crate::consent_scopes::metric_value;
use crate::oidc::OidcProvider;

const CONTRACT_FAMILIES: &[&str] = &[
    "keygate_requests_total",
    "keygate_request_duration_seconds",
    "keygate_inbound_auth_failures_total",
    "keygate_vault_lookups_total",
    "keygate_token_requests_total",
    "keygate_consent_sessions_total",
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_first_scrape_of_the_example_config_shows_every_contract_family() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port(), free_port());
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/routes.toml"))
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{listen}"))
        .replace("127.0.0.1:9090", &format!("127.0.0.1:{admin}"));
    let config = dir.path().join("routes.toml");
    std::fs::write(&config, example).unwrap();
    let _keygate = Killed(
        std::process::Command::new(binary())
            .args(["serve", "--config"])
            .arg(&config)
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_ok(&format!("http://127.0.0.1:{admin}/healthz")).await;
    let (status, _, metrics) = get(&format!("http://127.0.0.1:{admin}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    for family in CONTRACT_FAMILIES {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "{family} missing from the first scrape:\n{metrics}"
        );
    }
    for series in [
        r#"keygate_inbound_auth_failures_total{reason="bad_signature"} 0"#,
        r#"keygate_inbound_auth_failures_total{reason="expired"} 0"#,
        r#"keygate_vault_lookups_total{result="unavailable"} 0"#,
        r#"keygate_consent_sessions_total{result="started"} 0"#,
        r#"keygate_consent_sessions_total{result="scope_reduced"} 0"#,
        r#"keygate_token_requests_total{grant="refresh_token",provider="docs",result="refused"} 0"#,
        r#"keygate_requests_total{route="weather",status="502"} 0"#,
        r#"keygate_request_duration_seconds_count{route="docs"} 0"#,
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
}

#[tokio::test]
async fn a_code_exchange_refused_for_keygates_client_secret_is_a_refused_token_request() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let callback = format!("http://127.0.0.1:{port}/identities/oauth2/callback");
    let provider = OidcProvider::start_with(dir.path(), &[&callback], 600).await;
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&format!(
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
client_secret = "not-the-secret"
discovery_url = "{discovery}"

[[routes]]
name = "docs"
path_prefix = "/docs/"
upstream = "{up}/"
workload = "agent-one"
[routes.credential]
provider = "docs"
flow = "user_federation"
scopes = ["tools"]
return_url = "{RETURN_URL}"
"#,
        discovery = provider.discovery_url(),
        up = upstream.url()
    ))
    .await;
    let setup = crate::consent::Setup::around(gw, provider, upstream, dir);
    let (_, _, body) = call(&setup, "alice").await;
    let (authorization_url, _) = challenge(&body);
    let (_, headers, _) = get(&authorization_url).await;
    let to_provider = headers["location"].to_str().unwrap().to_string();
    let back = setup.provider.drive_consent(&to_provider, "alice").await;
    let (status, headers, _) = get(&back).await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .contains("error=invalid_client"),
        "{headers:?}"
    );
    let metrics = setup.gw.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"keygate_token_requests_total{grant="authorization_code",provider="docs",result="refused"}"#
        ),
        1.0,
        "{metrics}"
    );
}
