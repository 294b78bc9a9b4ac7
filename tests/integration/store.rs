//! The vault store, one suite run against both backends: SQLite in a temp folder and the real
//! PostgreSQL on 127.0.0.1:5432 (a fresh database per test; the test fails loudly without it).

use keygate::vault::{Entry, Kek, KeyRing, Owner, OwnerKind, Store, seal};

use crate::vault::fresh_postgres;

fn owner(workload: &str, issuer: &str, user: &str, provider: &str) -> Owner {
    Owner {
        kind: OwnerKind::OAuthUser,
        workload: workload.into(),
        user_issuer: issuer.into(),
        user_id: user.into(),
        provider: provider.into(),
        qualifier: String::new(),
    }
}

fn ring() -> KeyRing {
    KeyRing {
        current: Kek::from_bytes([9u8; 32]),
        previous: vec![],
    }
}

fn entry(ring: &KeyRing, owner: &Owner, secret: &str) -> Entry {
    Entry {
        owner: owner.clone(),
        sealed: seal::seal(ring, owner, 7, secret.as_bytes()).unwrap(),
        kek_id: ring.current.id.clone(),
        version: 7,
        expires_at: Some(seal_now() + 3600),
        scopes: "read write".into(),
        updated_at: seal_now(),
    }
}

fn seal_now() -> i64 {
    keygate::vault::store::now()
}

async fn suite(url: &str) {
    let store = Store::open(url).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 5);
    // Opening again (a restart, another replica) migrates nothing twice.
    let again = Store::open(url).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 5);
    again.close().await;
    let start = store.latest_change().await.unwrap();

    let r = ring();
    let alice = owner("agent", "https://idp", "alice", "docs");
    let variants = [
        owner("agent", "https://idp", "bob", "docs"),
        owner("other-agent", "https://idp", "alice", "docs"),
        owner("agent", "https://idp", "alice", "calendar"),
        owner("agent", "https://other-idp", "alice", "docs"),
        owner("agent", "", "alice", "docs"),
    ];
    store.put(&entry(&r, &alice, "token-alice")).await.unwrap();
    let got = store.get(&alice).await.unwrap().unwrap();
    assert_eq!(
        seal::open(&r, &alice, 7, &got.sealed).unwrap(),
        b"token-alice"
    );
    assert_eq!(got.scopes, "read write");
    for other in &variants {
        assert!(
            store.get(other).await.unwrap().is_none(),
            "{other:?} sees alice's record"
        );
    }

    // Overwrite in place.
    store
        .put(&entry(&r, &alice, "token-alice-2"))
        .await
        .unwrap();
    let got = store.get(&alice).await.unwrap().unwrap();
    assert_eq!(
        seal::open(&r, &alice, 7, &got.sealed).unwrap(),
        b"token-alice-2"
    );

    // Concurrent writers, each acknowledged write readable.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        let owner = owner("agent", "https://idp", &format!("user-{i}"), "docs");
        let e = entry(&r, &owner, &format!("token-{i}"));
        tasks.push(tokio::spawn(async move { store.put(&e).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for i in 0..40 {
        let o = owner("agent", "https://idp", &format!("user-{i}"), "docs");
        let got = store.get(&o).await.unwrap().unwrap();
        assert_eq!(
            seal::open(&r, &o, 7, &got.sealed).unwrap(),
            format!("token-{i}").as_bytes()
        );
    }
    assert_eq!(store.list().await.unwrap().len(), 41);

    // Swapping ciphertexts between two users' rows is an integrity error, never the other secret.
    let bob = &variants[0];
    store.put(&entry(&r, bob, "token-bob")).await.unwrap();
    let alice_row = store.get(&alice).await.unwrap().unwrap();
    let mut swapped = store.get(bob).await.unwrap().unwrap();
    swapped.sealed = alice_row.sealed.clone();
    store.put(&swapped).await.unwrap();
    let read = store.get(bob).await.unwrap().unwrap();
    assert!(seal::open(&r, bob, 7, &read.sealed).is_err());

    assert!(store.delete(&alice).await.unwrap());
    assert!(!store.delete(&alice).await.unwrap());
    assert!(store.get(&alice).await.unwrap().is_none());

    // Every write and delete was recorded for other processes' caches, in order.
    let changes = store.changes_since(start, i64::MAX).await.unwrap();
    let newest = changes.iter().map(|(seq, _)| *seq).max().unwrap();
    let changed: Vec<&Owner> = changes.iter().map(|(_, owner)| owner).collect();
    assert_eq!(newest, store.latest_change().await.unwrap());
    assert_eq!(changed.first(), Some(&&alice));
    assert_eq!(changed.last(), Some(&&alice));
    assert_eq!(changed.len(), 1 + 1 + 40 + 1 + 1 + 1);
    let none = store.changes_since(newest, i64::MAX).await.unwrap();
    assert!(none.is_empty());
    // Recent changes are read again (a PostgreSQL transaction may commit a lower sequence
    // number after a higher one was read).
    let recent = store.changes_since(newest, seal_now() - 10).await.unwrap();
    assert!(
        recent.iter().any(|(_, owner)| owner == &alice),
        "{recent:?}"
    );

    conditional_writes(&store, &r).await;
    every_kind_reads_back_as_itself(&store, &r).await;
    store.close().await;
}

/// Every kind keygate writes comes back from the store (listing, change log) as itself, so
/// the listed owner opens its record and invalidates the right cache entry.
async fn every_kind_reads_back_as_itself(store: &Store, r: &KeyRing) {
    let start = store.latest_change().await.unwrap();
    for kind in OwnerKind::ALL {
        let o = Owner {
            kind,
            ..owner("kinds", "https://idp", "carol", "docs")
        };
        store.put(&entry(r, &o, kind.as_str())).await.unwrap();
    }
    let listed: Vec<Entry> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.owner.workload == "kinds")
        .collect();
    assert_eq!(listed.len(), OwnerKind::ALL.len());
    for e in &listed {
        assert_eq!(
            seal::open(r, &e.owner, 7, &e.sealed).unwrap(),
            e.owner.kind.as_str().as_bytes()
        );
    }
    let changed: Vec<OwnerKind> = store
        .changes_since(start, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, o)| o.kind)
        .collect();
    assert_eq!(changed, OwnerKind::ALL);
}

/// Create-if-absent (API names), compare-and-swap by record version (one-time consent
/// completion, API updates) and listing one kind's owners.
async fn conditional_writes(store: &Store, r: &KeyRing) {
    let named = |name: &str| Owner {
        kind: OwnerKind::WorkloadIdentity,
        workload: name.into(),
        user_issuer: String::new(),
        user_id: String::new(),
        provider: String::new(),
        qualifier: String::new(),
    };
    let first = entry(r, &named("agent-b"), "one");
    assert!(store.insert_new(&first).await.unwrap());
    assert!(
        !store
            .insert_new(&entry(r, &named("agent-b"), "two"))
            .await
            .unwrap()
    );
    let kept = store.get(&named("agent-b")).await.unwrap().unwrap();
    assert_eq!(
        seal::open(r, &named("agent-b"), 7, &kept.sealed).unwrap(),
        b"one"
    );
    assert!(
        store
            .insert_new(&entry(r, &named("agent-a"), "a"))
            .await
            .unwrap()
    );

    // Only a writer holding the current version replaces the record.
    let mut next = entry(r, &named("agent-b"), "three");
    next.version = 8;
    next.sealed = seal::seal(r, &named("agent-b"), 8, b"three").unwrap();
    assert!(!store.replace_version(&next, 6).await.unwrap());
    assert!(store.replace_version(&next, 7).await.unwrap());
    assert!(
        !store.replace_version(&next, 7).await.unwrap(),
        "a second writer at 7 loses"
    );
    let now = store.get(&named("agent-b")).await.unwrap().unwrap();
    assert_eq!(now.version, 8);
    assert_eq!(
        seal::open(r, &named("agent-b"), 8, &now.sealed).unwrap(),
        b"three"
    );

    let owners = store
        .owners_of_kind(OwnerKind::WorkloadIdentity)
        .await
        .unwrap();
    assert_eq!(owners, vec![named("agent-a"), named("agent-b")]);
    assert!(
        store
            .owners_of_kind(OwnerKind::CredentialProvider)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    suite(&format!(
        "sqlite://{}/nested/keygate.db",
        dir.path().display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_store() {
    suite(&fresh_postgres().await).await;
}

#[tokio::test]
async fn an_unreachable_store_is_an_error_not_an_empty_vault() {
    let err = Store::open("postgres://postgres@127.0.0.1:1/nothing")
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, keygate::vault::StoreError::Unreachable(_)),
        "{err}"
    );
}
