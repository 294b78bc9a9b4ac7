//! Full filesystems (issue 21): the SQLite vault on a tmpfs that fills up never acknowledges a
//! write it did not commit, keeps no connection stuck in a transaction, turns `/readyz` 503
//! while it cannot write and recovers by itself once space is free; an audit file on a full
//! filesystem makes requests 503 `audit_unavailable` (counted) instead of serving them
//! unaudited, until it can be written again.

use std::time::{Duration, Instant};

use http::StatusCode;
use keygate::vault::{Owner, Store};

use crate::common::*;
use crate::small_fs::SmallFs;
use crate::vault::{tokens, user};

/// Polls `ready` until it holds, failing the test after a generous bound.
async fn eventually<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn readyz(gw: &TestGateway) -> StatusCode {
    get(&format!("http://{}/readyz", gw.admin)).await.0
}

/// Every owner in `acknowledged` is visible through a separate connection pool at `url`.
async fn assert_all_committed(url: &str, acknowledged: &[Owner], when: &str) {
    let other = Store::open(url).await.unwrap();
    for owner in acknowledged {
        assert!(
            other.get(owner).await.unwrap().is_some(),
            "{when}: a write acknowledged for {} is not in the database",
            owner.user_id
        );
    }
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_acknowledges_only_committed_writes_and_recovers_by_itself() {
    let fs = SmallFs::mount(2);
    let url = format!("sqlite://{}/vault.db", fs.path().display());
    let toml = format!(
        "{}[vault]\nstore = \"{url}\"\nkey = \"file:{{dir}}/vault.key\"\n",
        server_block()
    );
    let gw = TestGateway::start(&toml).await;
    let vault = gw.state.vault().clone();
    let padding = "x".repeat(3000);
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let owner = user(&format!("before-{i}"));
        vault
            .put(&owner, &tokens(&format!("{padding}{i}")))
            .await
            .unwrap();
        acknowledged.push(owner);
    }
    assert_eq!(readyz(&gw).await, StatusCode::OK);

    fs.fill();
    let mut failed = 0;
    for i in 0..60 {
        let owner = user(&format!("full-{i}"));
        match vault.put(&owner, &tokens(&format!("{padding}{i}"))).await {
            Ok(()) => acknowledged.push(owner),
            Err(_) => failed += 1,
        }
    }
    assert!(failed > 0, "no write failed on a full filesystem");
    assert_all_committed(&url, &acknowledged, "disk full").await;
    assert_eq!(
        readyz(&gw).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz said ready while the vault cannot write"
    );

    fs.free();
    // Recovers by itself: a write succeeds again within a bounded number of tries.
    let deadline = Instant::now() + Duration::from_secs(30);
    for attempt in 0.. {
        let owner = user(&format!("after-{attempt}"));
        if vault
            .put(&owner, &tokens(&format!("{padding}{attempt}")))
            .await
            .is_ok()
        {
            acknowledged.push(owner);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes never recovered after space was freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..20 {
        let owner = user(&format!("recovered-{i}"));
        vault
            .put(&owner, &tokens(&format!("{padding}{i}")))
            .await
            .unwrap_or_else(|e| panic!("write {i} after recovery failed: {e}"));
        acknowledged.push(owner);
    }
    eventually("/readyz 200 after space was freed", || async {
        readyz(&gw).await == StatusCode::OK
    })
    .await;
    assert_all_committed(&url, &acknowledged, "after recovery").await;

    // Nothing acknowledged is lost across a restart.
    gw.shutdown().await;
    drop(vault);
    assert_all_committed(&url, &acknowledged, "after a restart").await;
    let reopened = Store::open(&url).await.unwrap();
    let stored = reopened.get(&acknowledged[0]).await.unwrap().unwrap();
    assert!(!stored.sealed.is_empty());
    reopened.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_file_on_a_full_disk_refuses_requests_instead_of_serving_them_unaudited() {
    let fs = SmallFs::mount(1);
    let upstream = Upstream::start().await;
    let path = fs.path().join("audit.jsonl");
    let toml = crate::audit::config(&upstream, &path.display().to_string());
    let gw = TestGateway::start(&toml).await;
    let mut served = Vec::new();
    let call = async |served: &mut Vec<String>| {
        let (status, headers, body) = gw.get("/weather/x").await;
        if status == StatusCode::OK {
            served.push(headers["x-request-id"].to_str().unwrap().to_string());
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert_eq!(error_code(&body), "audit_unavailable");
        }
        status
    };
    assert_eq!(call(&mut served).await, StatusCode::OK);

    fs.fill();
    let mut refused = 0;
    for _ in 0..100 {
        if call(&mut served).await == StatusCode::SERVICE_UNAVAILABLE {
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "every request was served with the audit file on a full disk"
    );
    let metrics = gw.metrics().await;
    let counted: u64 = metrics
        .lines()
        .find(|l| l.starts_with("keygate_audit_refused_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(counted >= refused, "refused {refused}, counted {counted}");

    // Writable again: requests are served again, and every request served has its line.
    fs.free();
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(&mut served).await != StatusCode::OK {
        assert!(Instant::now() < deadline, "the audit log never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.state.audit().flush(Duration::from_secs(5)).await;
    let audited: std::collections::HashSet<String> = crate::audit::lines(&path)
        .iter()
        .filter(|l| l["event"] == "ProxyCredentialUse")
        .filter_map(|l| l["requestId"].as_str().map(str::to_string))
        .collect();
    let unaudited: Vec<&String> = served.iter().filter(|id| !audited.contains(*id)).collect();
    assert!(
        unaudited.is_empty(),
        "{} of {} served requests have no audit line",
        unaudited.len(),
        served.len()
    );
}
