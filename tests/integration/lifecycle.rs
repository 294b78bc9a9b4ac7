//! The gateway's life: admin endpoints, reload (in-process and by SIGHUP to the real binary) and
//! graceful drain on SIGTERM.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::common::*;

fn route(name: &str, prefix: &str, upstream: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"{upstream}/\"\n"
    )
}

#[tokio::test]
async fn admin_endpoints_answer() {
    let gw = TestGateway::start(server_block()).await;
    let (status, _, _) = get(&format!("http://{}/healthz", gw.admin)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(&format!("http://{}/readyz", gw.admin)).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("keygate_build_info{version=\""),
        "{metrics}"
    );
    let (status, _, _) = get(&format!("http://{}/nope", gw.admin)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The admin port never proxies, and the proxy port never serves admin paths.
    let (status, _, _) = gw.get("/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reload_swaps_good_config_and_keeps_old_one_on_bad() {
    let upstream = Upstream::start().await;
    let first = format!(
        "{}{}",
        server_block(),
        route("old", "/old/", &upstream.url())
    );
    let gw = TestGateway::start(&first).await;
    assert_eq!(gw.get("/old/x").await.0, StatusCode::OK);

    let second = format!(
        "{}{}",
        server_block(),
        route("new", "/new/", &upstream.url())
    );
    gw.reload_with(&second).await;
    assert_eq!(gw.get("/new/x").await.0, StatusCode::OK);
    assert_eq!(gw.get("/old/x").await.0, StatusCode::NOT_FOUND);

    gw.reload_with("[server]\nlisten = \"not an address\"\n")
        .await;
    assert_eq!(gw.get("/new/x").await.0, StatusCode::OK);
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("keygate_config_last_reload_success 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"keygate_config_reloads_total{result="failure"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"keygate_config_reloads_total{result="success"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn in_flight_requests_finish_on_the_config_they_started_with() {
    let upstream = Upstream::start().await;
    let first = format!(
        "{}{}",
        server_block(),
        route("slow", "/s/", &upstream.url())
    );
    let gw = TestGateway::start(&first).await;
    let url = gw.url("/s/slow/800");
    let token = gw.token.clone();
    let in_flight = tokio::spawn(async move { get_auth(&url, &token).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.reload_with(server_block()).await;
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "slow done");
    assert_eq!(gw.get("/s/slow/1").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let upstream = Upstream::start().await;
    let gw = TestGateway::start(&format!(
        "{}{}",
        server_block(),
        route("slow", "/s/", &upstream.url())
    ))
    .await;
    let url = gw.url("/s/slow/700");
    let token = gw.token.clone();
    let in_flight = tokio::spawn(async move { get_auth(&url, &token).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = gw.addr;
    gw.shutdown().await;
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "slow done"));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Process {
    child: tokio::process::Child,
    token: String,
    addr: String,
    admin: String,
}

impl Process {
    async fn start(dir: &Path, routes: &str) -> Process {
        Self::start_with(dir, routes, &[], false, &[]).await
    }

    /// Starts `keygate [global_args] serve` with `env` set; with `capture`, stderr is kept for
    /// the test to read.
    async fn start_with(
        dir: &Path,
        routes: &str,
        global_args: &[&str],
        capture: bool,
        env: &[(&str, &str)],
    ) -> Process {
        let (port, admin_port) = (free_port(), free_port());
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n[audit]\npath = \"-\"\n{routes}"
        );
        let path = dir.join("routes.toml");
        std::fs::write(&path, toml).unwrap();
        let child = tokio::process::Command::new(binary())
            .args(global_args)
            .envs(env.iter().copied())
            .stderr(if capture {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::inherit()
            })
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut process = Process {
            child,
            token: String::new(),
            addr: format!("127.0.0.1:{port}"),
            admin: format!("127.0.0.1:{admin_port}"),
        };
        wait_until_ok(&format!("http://{}/readyz", process.admin)).await;
        process.token = mint_token(&dir.join("routes.toml"), "test-agent");
        process
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-s", name, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn rewrite(&self, dir: &Path, routes: &str) {
        let path = dir.join("routes.toml");
        let old = std::fs::read_to_string(&path).unwrap();
        let server: String = old.split("[[routes]]").next().unwrap().to_string();
        std::fs::write(&path, format!("{server}{routes}")).unwrap();
    }
}

async fn wait_for_status(url: &str, token: &str, want: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if get_auth(url, token).await.0 == want {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn binary_reloads_on_sighup_and_rejects_a_bad_file() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start(dir.path(), &route("old", "/old/", &upstream.url())).await;
    assert_eq!(
        get_auth(&format!("http://{}/old/x", process.addr), &process.token)
            .await
            .0,
        StatusCode::OK
    );

    process.rewrite(dir.path(), &route("new", "/new/", &upstream.url()));
    process.signal("HUP");
    wait_for_status(
        &format!("http://{}/new/x", process.addr),
        &process.token,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        get_auth(&format!("http://{}/old/x", process.addr), &process.token)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    std::fs::write(dir.path().join("routes.toml"), "[server]\nlisten = 12\n").unwrap();
    process.signal("HUP");
    let metrics_url = format!("http://{}/metrics", process.admin);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(&metrics_url)
        .await
        .2
        .contains("keygate_config_last_reload_success 0")
    {
        assert!(Instant::now() < deadline, "bad reload was not recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        get_auth(&format!("http://{}/new/x", process.addr), &process.token)
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn binary_drains_on_sigterm_and_exits_zero() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut process = Process::start(dir.path(), &route("slow", "/s/", &upstream.url())).await;
    let url = format!("http://{}/s/slow/1000", process.addr);
    let token = process.token.clone();
    let in_flight = tokio::spawn(async move { get_auth(&url, &token).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    process.signal("TERM");
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "slow done"));
    let exit = tokio::time::timeout(Duration::from_secs(15), process.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn json_logs_have_one_access_line_per_request_and_no_header_values() {
    use tokio::io::AsyncReadExt;
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut process = Process::start_with(
        dir.path(),
        &route("logged", "/l/", &upstream.url()),
        &["--log-format", "json"],
        true,
        &[],
    )
    .await;
    let request = http::Request::get(format!("http://{}/l/x?secret-query=1", process.addr))
        .header("authorization", format!("Bearer {}", process.token))
        .header("x-api-key", "header-value-that-must-not-be-logged")
        .body(full(""))
        .unwrap();
    assert_eq!(send(&http_client(), request).await.0, StatusCode::OK);
    process.signal("TERM");
    let mut stderr = String::new();
    process
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    process.child.wait().await.unwrap();

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect();
    let access: Vec<_> = lines
        .iter()
        .filter(|l| l["target"] == "keygate::access")
        .collect();
    assert_eq!(access.len(), 1, "{stderr}");
    assert_eq!(access[0]["route"], "logged");
    assert_eq!(access[0]["status"], 200);
    assert_eq!(access[0]["path"], "/l/x");
    assert!(access[0]["duration_ms"].is_number());
    for secret in [
        process.token.as_str(),
        "header-value-that-must-not-be-logged",
        "secret-query",
    ] {
        assert!(!stderr.contains(secret), "logs contain {secret}");
    }
}

#[tokio::test]
async fn text_logs_escape_the_control_characters_a_client_sent() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let api = "[api]\nregion = \"us-west-2\"\naccount_id = \"123456789012\"\n[[api.credentials]]\naccess_key_id = \"AKIDKEYGATELOGTEST\"\nsecret_access_key = \"log-test-secret-0123456789\"\n";
    let mut process = Process::start_with(
        dir.path(),
        api,
        &["--log-format", "text"],
        true,
        &[("RUST_LOG", "keygate=debug")],
    )
    .await;
    // A field name with a newline: the refusal quotes it, and the debug line logs the refusal.
    let path = "/identities/GetWorkloadAccessToken";
    let body = br#"{"workloadName":"w","x\nFORGED-LINE admin=true":1}"#;
    let credential = keygate::config::ApiCredential {
        access_key_id: "AKIDKEYGATELOGTEST".to_string(),
        secret_access_key: secrecy::SecretString::from("log-test-secret-0123456789".to_string()),
    };
    let mut request = http::Request::post(format!("http://{}{path}", process.addr));
    for (name, value) in keygate::identity_api::sigv4::sign(
        &credential,
        "us-west-2",
        "POST",
        &process.addr,
        path,
        body,
        std::time::SystemTime::now(),
    ) {
        request = request.header(name, value);
    }
    let (status, _, answer) = send(&http_client(), request.body(full(&body[..])).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    process.signal("TERM");
    let mut stderr = String::new();
    process
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    process.child.wait().await.unwrap();
    assert!(
        !stderr.lines().any(|l| l.starts_with("FORGED-LINE")),
        "a client forged a log line: {stderr}"
    );
    assert!(
        stderr.contains(r"x\nFORGED-LINE admin=true"),
        "the refusal was not logged (escaped): {stderr}"
    );
}
