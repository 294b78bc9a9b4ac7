//! The vault on the hot path: sealing and opening one record, a lookup served by the cache, and
//! lookups that miss the cache and read SQLite or PostgreSQL (the PostgreSQL case needs the
//! server on 127.0.0.1:5432, as the tests do).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use keygate::config::{SecretSource, VaultConfig};
use keygate::vault::{Credential, Kek, KeyRing, OAuthTokens, Owner, OwnerKind, Vault, seal};
use sqlx::Connection;

fn owner() -> Owner {
    Owner {
        kind: OwnerKind::OAuthUser,
        workload: "agent".into(),
        user_issuer: "https://idp.example.com".into(),
        user_id: "alice".into(),
        provider: "docs".into(),
        qualifier: String::new(),
    }
}

fn credential() -> Credential {
    Credential::OAuth(OAuthTokens {
        access_token: "a".repeat(1200).into(),
        refresh_token: Some("r".repeat(300).into()),
        expires_at: Some(keygate::vault::store::now() + 3600),
        scopes: vec!["read".into(), "write".into()],
        requested: vec!["read".into(), "write".into()],
        lifetime_secs: None,
    })
}

fn sealing(c: &mut Criterion) {
    let ring = KeyRing {
        current: Kek::from_bytes([5u8; 32]),
        previous: vec![],
    };
    let plaintext = credential().to_wire().unwrap();
    let sealed = seal::seal(&ring, &owner(), 1, &plaintext).unwrap();
    c.bench_function("vault/seal", |b| {
        b.iter(|| seal::seal(&ring, &owner(), 1, black_box(&plaintext)).unwrap())
    });
    c.bench_function("vault/open", |b| {
        b.iter(|| seal::open(&ring, &owner(), 1, black_box(&sealed)).unwrap())
    });
}

fn config(store: String, dir: &std::path::Path, cache_capacity: u64) -> VaultConfig {
    VaultConfig {
        store,
        key: SecretSource::File(dir.join("vault.key")),
        previous_keys: vec![],
        cache_capacity,
    }
}

fn lookups(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/bench.db", dir.path().display());
    let postgres = rt.block_on(async {
        let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/test")
            .await
            .ok()?;
        let name = format!("keygate_bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .ok()?;
        Some(format!("postgres://postgres@127.0.0.1:5432/{name}"))
    });
    let mut stores = vec![("sqlite", sqlite)];
    match postgres {
        Some(url) => stores.push(("postgres", url)),
        None => {
            eprintln!("PostgreSQL not reachable on 127.0.0.1:5432: skipping the PostgreSQL lookups")
        }
    }
    for (name, url) in stores {
        let cached = rt
            .block_on(Vault::open(&config(url.clone(), dir.path(), 1000), None))
            .unwrap();
        let uncached = rt
            .block_on(Vault::open(&config(url, dir.path(), 0), None))
            .unwrap();
        rt.block_on(cached.put(&owner(), &credential())).unwrap();
        rt.block_on(cached.get(&owner())).unwrap().unwrap();
        c.bench_function(&format!("vault/get/cache-hit/{name}"), |b| {
            b.iter(|| {
                rt.block_on(cached.get(black_box(&owner())))
                    .unwrap()
                    .unwrap()
            })
        });
        c.bench_function(&format!("vault/get/store-hit/{name}"), |b| {
            b.iter(|| {
                rt.block_on(uncached.get(black_box(&owner())))
                    .unwrap()
                    .unwrap()
            })
        });
    }
}

criterion_group!(benches, sealing, lookups);
criterion_main!(benches);
