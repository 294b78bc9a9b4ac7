//! Memory footprint of keygate's state on the embedded defaults (SQLite vault, moka cache):
//! resident memory once the state is up and idle, then with N vaulted user credentials read
//! through the vault (so all N sit decrypted in its cache). The credentials are written straight
//! into the store in one transaction (sealed exactly as keygate seals them), which keeps the
//! setup fast; the reads go through keygate's own vault code.
//!   cargo run --release --example footprint -- [count=100000]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keygate::config;
use keygate::vault::{Credential, OAuthTokens, Owner, OwnerKind, seal};
use secrecy::SecretString;
use sqlx::Connection;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn owner(i: usize) -> Owner {
    Owner {
        kind: OwnerKind::OAuthUser,
        workload: "agent".into(),
        user_issuer: "https://idp.example.com".into(),
        user_id: format!("user-{i:06}"),
        provider: "docs".into(),
        qualifier: String::new(),
    }
}

fn credential(i: usize) -> Credential {
    // About the size of a real provider JWT access token and an opaque refresh token.
    let access = format!("eyJhbGciOiJSUzI1NiJ9.{}.{i:06}", "x".repeat(700));
    Credential::OAuth(OAuthTokens {
        access_token: SecretString::from(access),
        refresh_token: Some(SecretString::from(format!("rt-{i:06}-{}", "y".repeat(60)))),
        expires_at: Some(keygate::vault::store::now() + 3600),
        scopes: vec!["read".into(), "write".into()],
        requested: vec!["read".into(), "write".into()],
        lifetime_secs: None,
    })
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().unwrap())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:1\"\n[vault]\ncache_capacity = 200000\n",
    )
    .unwrap();
    let loaded = config::load(&path).unwrap();
    let vault_config = loaded.config.vault.clone();
    let state = keygate::state::AppState::new(loaded.config).await.unwrap();
    let idle = rss_kib();

    let ring = keygate::vault::KeyRing::load(&vault_config.key, &[]).unwrap();
    let url = vault_config.store.clone();
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    for i in 0..count {
        let o = owner(i);
        let c = credential(i);
        let version = seal::new_version().unwrap();
        let sealed = seal::seal(&ring, &o, version, &c.to_wire().unwrap()).unwrap();
        sqlx::query(
            "INSERT INTO vault_entries (kind, workload, user_issuer, user_id, provider, qualifier,
             sealed, kek_id, expires_at, scopes, updated_at, record_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(o.kind.as_str())
        .bind(&o.workload)
        .bind(&o.user_issuer)
        .bind(&o.user_id)
        .bind(&o.provider)
        .bind(&o.qualifier)
        .bind(sealed)
        .bind(&ring.current.id)
        .bind(c.expires_at())
        .bind(c.scopes())
        .bind(keygate::vault::store::now())
        .bind(version)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    drop(db);

    let started = std::time::Instant::now();
    for i in 0..count {
        assert!(state.vault().get(&owner(i)).await.unwrap().is_some());
    }
    let loading = started.elapsed();
    // Every one of them is now a cache hit.
    let started = std::time::Instant::now();
    for i in 0..count {
        assert!(state.vault().get(&owner(i)).await.unwrap().is_some());
    }
    let hits = started.elapsed();
    let loaded_rss = rss_kib();
    println!("credentials                 {count}");
    println!(
        "idle RSS                    {:.1} MiB",
        idle as f64 / 1024.0
    );
    println!(
        "RSS with all cached         {:.1} MiB (+{:.0} bytes per credential)",
        loaded_rss as f64 / 1024.0,
        (loaded_rss.saturating_sub(idle) * 1024) as f64 / count as f64
    );
    println!(
        "first read (store + open)   {:.1} µs each",
        loading.as_secs_f64() * 1e6 / count as f64
    );
    println!(
        "cache hit                   {:.2} µs each",
        hits.as_secs_f64() * 1e6 / count as f64
    );
}
