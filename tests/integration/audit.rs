//! The audit log through the real gateway: one `ProxyCredentialUse` line per proxied request that
//! used a credential, with the contract's fields, never a secret, and complete across SIGTERM.

use std::time::{Duration, Instant};

use http::StatusCode;

use crate::common::*;

pub(crate) fn config(upstream: &Upstream, audit_path: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[audit]
path = "{audit_path}"

[[providers]]
name = "weather"
kind = "api_key"
api_key = "weather-secret-value"

[[routes]]
name = "weather"
path_prefix = "/weather/"
upstream = "{up}/"
[routes.credential]
provider = "weather"
flow = "api_key"
header = "X-API-Key"
format = "{{token}}"

[[routes]]
name = "plain"
path_prefix = "/plain/"
upstream = "{up}/"
"#,
        up = upstream.url()
    )
}

pub(crate) fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}"))
        })
        .collect()
}

#[tokio::test]
async fn every_credential_use_is_audited_with_the_contract_fields_and_no_secret() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let gw = TestGateway::start_in(dir, &config(&upstream, &path.display().to_string())).await;
    let mut request_ids = Vec::new();
    for _ in 0..30 {
        let (status, headers, _) = gw.get("/weather/today").await;
        assert_eq!(status, StatusCode::OK);
        request_ids.push(headers["x-request-id"].to_str().unwrap().to_string());
    }
    // Requests without a credential are not credential uses.
    assert_eq!(gw.get("/plain/x").await.0, StatusCode::OK);

    let deadline = Instant::now() + Duration::from_secs(5);
    while lines(&path).len() < 30 {
        assert!(
            Instant::now() < deadline,
            "audit lines missing: {}",
            lines(&path).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = lines(&path);
    assert_eq!(events.len(), 30);
    for (event, request_id) in events.iter().zip(&request_ids) {
        assert_eq!(event["event"], "ProxyCredentialUse");
        assert_eq!(event["requestId"], request_id.as_str());
        assert_eq!(event["workload"], "test-agent");
        assert_eq!(event["provider"], "weather");
        assert_eq!(event["outcome"], "success");
        assert_eq!(event["sourceIp"], "127.0.0.1");
        assert!(humantime::parse_rfc3339(event["time"].as_str().unwrap()).is_ok());
    }
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in ["weather-secret-value", gw.token.as_str()] {
        assert!(!text.contains(secret), "the audit log holds a secret");
    }
}

/// SIGTERM, then the exit status (within 15 s).
async fn terminate(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-s", "TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap()
}

/// Starts the binary on this module's config; returns the process, its port and a token.
async fn start_binary(
    upstream: &Upstream,
    dir: &tempfile::TempDir,
    path: &std::path::Path,
) -> (tokio::process::Child, u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = config(upstream, &path.display().to_string()).replace(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\""),
    );
    let config_path = dir.path().join("routes.toml");
    std::fs::write(&config_path, toml).unwrap();
    let child = tokio::process::Command::new(binary())
        .args(["serve", "--config"])
        .arg(&config_path)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_until_ok(&format!("http://127.0.0.1:{admin}/readyz")).await;
    let token = mint_token(&config_path, "agent-one");
    (child, port, token)
}

#[tokio::test]
async fn audit_is_complete_across_sigterm() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (mut child, port, token) = start_binary(&upstream, &dir, &path).await;
    let client = http_client();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let request = http::Request::get(format!("http://127.0.0.1:{port}/weather/x"))
            .header("authorization", format!("Bearer {token}"))
            .body(full(""))
            .unwrap();
        let client = client.clone();
        tasks.push(tokio::spawn(async move { send(&client, request).await.0 }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let exit = terminate(&mut child).await;
    assert!(exit.success());
    assert_eq!(
        lines(&path).len(),
        100,
        "every served request is in the audit log after SIGTERM"
    );
}

/// Under continuous load, SIGTERM lands while requests are in flight: every request that was
/// answered 200 is in the audit log (by its request id) once the process has exited.
#[tokio::test]
async fn under_load_every_served_request_is_audited_across_sigterm() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (mut child, port, token) = start_binary(&upstream, &dir, &path).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (stop, token) = (stop.clone(), token.clone());
        workers.push(tokio::spawn(async move {
            let client = http_client();
            let mut served = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let request = http::Request::get(format!("http://127.0.0.1:{port}/weather/x"))
                    .header("authorization", format!("Bearer {token}"))
                    .body(full(""))
                    .unwrap();
                match client.request(request).await {
                    Ok(response) if response.status() == StatusCode::OK => {
                        served.push(
                            response.headers()["x-request-id"]
                                .to_str()
                                .unwrap()
                                .to_string(),
                        );
                    }
                    Ok(_) => {}
                    // Draining: new connections are refused.
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
            served
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let exit = terminate(&mut child).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(exit.success());
    let mut served = Vec::new();
    for worker in workers {
        served.extend(worker.await.unwrap());
    }
    assert!(
        served.len() >= 200,
        "only {} requests served: not a load",
        served.len()
    );
    let audited: std::collections::HashSet<String> = lines(&path)
        .iter()
        .map(|l| l["requestId"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<&String> = served.iter().filter(|id| !audited.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} served requests are not in the audit log",
        missing.len(),
        served.len()
    );
}

/// With traffic stopped (and no shutdown), the last lines reach the file within the contract's
/// flush interval: the writer does not wait for more events to fill a batch.
#[tokio::test]
async fn a_quiet_log_is_on_disk_within_the_flush_interval() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let gw = TestGateway::start_in(dir, &config(&upstream, &path.display().to_string())).await;
    for _ in 0..3 {
        assert_eq!(gw.get("/weather/today").await.0, StatusCode::OK);
    }
    let answered = Instant::now();
    while lines(&path).len() < 3 {
        // 200 ms in the contract; the margin is for a loaded test machine.
        assert!(
            answered.elapsed() < Duration::from_secs(1),
            "audit lines still not on disk after the traffic stopped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The audit file is a pipe nobody reads: once the pipe buffer and the queue are full, requests
/// that need an audit line are refused with 503 `audit_unavailable` (counted), requests that
/// need none are still served, and once the reader drains the pipe every request that was
/// answered 200 is in the log and requests are served again.
#[tokio::test]
async fn a_full_audit_queue_refuses_with_503_and_recovers() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("audit.pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // The reader opens the pipe (which waits for keygate to open it for writing), then holds it
    // unread until told to drain.
    let (drain, drain_rx) = std::sync::mpsc::channel::<()>();
    let read = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let reader = {
        let (fifo, read) = (fifo.clone(), read.clone());
        std::thread::spawn(move || {
            use std::io::Read;
            let mut pipe = std::fs::File::open(&fifo).unwrap();
            drain_rx.recv().unwrap();
            let mut chunk = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                read.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        })
    };
    let toml = config(&upstream, &fifo.display().to_string())
        .replace("[audit]\n", "[audit]\nqueue_capacity = 8\n");
    let gw = TestGateway::start_in(dir, &toml).await;

    let mut served = Vec::new();
    let refused = loop {
        let (status, headers, body) = gw.get("/weather/x").await;
        match status {
            StatusCode::OK => served.push(headers["x-request-id"].to_str().unwrap().to_string()),
            StatusCode::SERVICE_UNAVAILABLE => break body,
            other => panic!("unexpected {other}: {body}"),
        }
        assert!(served.len() < 20_000, "the audit queue never filled");
    };
    let refused: serde_json::Value = serde_json::from_str(&refused).unwrap();
    assert_eq!(refused["error"], "audit_unavailable");
    assert_eq!(gw.get("/plain/x").await.0, StatusCode::OK);
    let metrics = gw.metrics().await;
    assert!(
        crate::consent_scopes::metric_value(&metrics, "keygate_audit_refused_total") >= 1.0,
        "refusal not counted"
    );

    drain.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, headers, _) = gw.get("/weather/x").await;
        if status == StatusCode::OK {
            served.push(headers["x-request-id"].to_str().unwrap().to_string());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused after the reader drained the pipe"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let audited = || -> std::collections::HashSet<String> {
        String::from_utf8_lossy(&read.lock().unwrap())
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["requestId"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    while served.iter().any(|id| !audited().contains(id)) {
        assert!(
            Instant::now() < deadline,
            "served requests missing from the audit log"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.shutdown().await;
    reader.join().unwrap();
}
