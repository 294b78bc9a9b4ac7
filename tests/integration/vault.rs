//! The vault over both stores: cache, isolation, the 4 KB limit, tampering with the real
//! database rows, a lost key file, rotation under a read load, and invalidation across processes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use keygate::config::{SecretSource, VaultConfig};
use keygate::vault::{
    Credential, OAuthTokens, Owner, OwnerKind, Vault, VaultError, VaultMetrics, seal,
};
use secrecy::ExposeSecret;
use sqlx::Connection;

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh PostgreSQL database for one test; fails loudly without PostgreSQL. Dropped (with
/// any connection still open to it) when the value is.
pub async fn fresh_postgres() -> TestDatabase {
    let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is needed at {PG_ADMIN_URL} (tests/run starts it): {e}")
        });
    let name = format!("keygate_t_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    TestDatabase {
        url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
        name,
    }
}

/// A database that lives as long as its test.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl std::ops::Deref for TestDatabase {
    type Target = str;

    fn deref(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and may run inside a runtime: a thread of its own does it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

struct Backend {
    store: String,
    dir: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

impl Backend {
    async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        Backend {
            store: format!("sqlite://{}/keygate.db", dir.path().display()),
            dir,
            _database: None,
        }
    }

    async fn postgres() -> Backend {
        let database = fresh_postgres().await;
        Backend {
            store: database.url.clone(),
            dir: tempfile::tempdir().unwrap(),
            _database: Some(database),
        }
    }

    fn config(&self, key: &str, previous: &[&str], cache_capacity: u64) -> VaultConfig {
        VaultConfig {
            store: self.store.clone(),
            key: SecretSource::File(self.dir.path().join(key)),
            previous_keys: previous
                .iter()
                .map(|k| SecretSource::File(self.dir.path().join(k)))
                .collect(),
            cache_capacity,
        }
    }

    async fn vault(&self, key: &str, previous: &[&str]) -> (Arc<Vault>, keygate::metrics::Metrics) {
        let metrics = keygate::metrics::Metrics::new().unwrap();
        let vault = Vault::open(
            &self.config(key, previous, 1000),
            Some(VaultMetrics::from(&metrics)),
        )
        .await
        .unwrap();
        (vault, metrics)
    }

    /// Runs SQL against the store directly, as someone with database access would.
    async fn sql(&self, sql: &str, sealed: Option<Vec<u8>>) {
        if let Some(path) = self.store.strip_prefix("sqlite://") {
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
                .await
                .unwrap();
            let mut q = sqlx::query(sql);
            if let Some(bytes) = sealed {
                q = q.bind(bytes);
            }
            q.execute(&mut conn).await.unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(&self.store).await.unwrap();
            let mut q = sqlx::query(sql);
            if let Some(bytes) = sealed {
                q = q.bind(bytes);
            }
            q.execute(&mut conn).await.unwrap();
        }
    }
}

pub fn user(name: &str) -> Owner {
    Owner {
        kind: OwnerKind::OAuthUser,
        workload: "agent".into(),
        user_issuer: "https://idp".into(),
        user_id: name.into(),
        provider: "docs".into(),
        qualifier: String::new(),
    }
}

pub fn tokens(access: &str) -> Credential {
    Credential::OAuth(OAuthTokens {
        access_token: access.to_string().into(),
        refresh_token: Some(format!("refresh-{access}").into()),
        expires_at: Some(keygate::vault::store::now() + 3600),
        scopes: vec!["read".into(), "write".into()],
        requested: vec!["read".into(), "write".into()],
        lifetime_secs: None,
    })
}

fn access(credential: &Credential) -> String {
    match credential {
        Credential::OAuth(t) => t.access_token.expose_secret().to_string(),
        Credential::Secret(s) => s.expose_secret().to_string(),
    }
}

fn counter(metrics: &keygate::metrics::Metrics, needle: &str) -> u64 {
    let text = metrics.encode();
    text.lines()
        .find(|l| l.starts_with(needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn basics(backend: Backend) {
    let (vault, metrics) = backend.vault("vault.key", &[]).await;
    vault
        .put(&user("alice"), &tokens("at-alice"))
        .await
        .unwrap();
    vault.put(&user("bob"), &tokens("at-bob")).await.unwrap();
    assert_eq!(
        access(&vault.get(&user("alice")).await.unwrap().unwrap()),
        "at-alice"
    );
    assert_eq!(
        access(&vault.get(&user("alice")).await.unwrap().unwrap()),
        "at-alice"
    );
    assert_eq!(
        access(&vault.get(&user("bob")).await.unwrap().unwrap()),
        "at-bob"
    );
    assert!(vault.get(&user("carol")).await.unwrap().is_none());
    assert_eq!(
        counter(
            &metrics,
            r#"keygate_vault_lookups_total{result="cache_hit"}"#
        ),
        1
    );
    assert_eq!(
        counter(
            &metrics,
            r#"keygate_vault_lookups_total{result="store_hit"}"#
        ),
        2
    );
    assert_eq!(
        counter(&metrics, r#"keygate_vault_lookups_total{result="absent"}"#),
        1
    );

    // A write replaces the cached value at once.
    vault
        .put(&user("alice"), &tokens("at-alice-2"))
        .await
        .unwrap();
    assert_eq!(
        access(&vault.get(&user("alice")).await.unwrap().unwrap()),
        "at-alice-2"
    );

    // Over 4 KB: refused, nothing stored, the old value stays.
    let big = tokens(&"x".repeat(4097));
    assert!(matches!(
        vault.put(&user("alice"), &big).await,
        Err(VaultError::TooLarge)
    ));
    assert_eq!(
        access(&vault.get(&user("alice")).await.unwrap().unwrap()),
        "at-alice-2"
    );

    // Another process (a replica, the CLI) deletes: this one follows the change log.
    let (other, _) = backend.vault("vault.key", &[]).await;
    assert!(other.delete(&user("bob")).await.unwrap());
    assert!(
        vault.get(&user("bob")).await.unwrap().is_some(),
        "cached until the change log is read"
    );
    vault.sync_changes().await.unwrap();
    assert!(vault.get(&user("bob")).await.unwrap().is_none());
}

#[tokio::test]
async fn basics_on_sqlite() {
    basics(Backend::sqlite().await).await;
}

#[tokio::test]
async fn basics_on_postgres() {
    basics(Backend::postgres().await).await;
}

const ALICE_ROW: &str = "kind = 'oauth_user' AND workload = 'agent' AND user_id = 'alice'";

async fn tampering(backend: Backend) {
    let (vault, _) = backend.vault("vault.key", &[]).await;
    vault
        .put(&user("alice"), &tokens("at-alice"))
        .await
        .unwrap();
    vault.put(&user("bob"), &tokens("at-bob")).await.unwrap();
    let alice_row = vault.store().get(&user("alice")).await.unwrap().unwrap();
    let bob_row = vault.store().get(&user("bob")).await.unwrap().unwrap();

    // Alice's row is rewritten (new version); each case then changes it in the database, and a
    // fresh vault (no cache) must refuse it.
    vault
        .put(&user("alice"), &tokens("at-alice-newer"))
        .await
        .unwrap();
    let current = vault.store().get(&user("alice")).await.unwrap().unwrap();
    let mut flipped = current.sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x80;
    let truncated = current.sealed[..current.sealed.len() - 5].to_vec();
    let set_sealed = format!("UPDATE vault_entries SET sealed = $1 WHERE {ALICE_ROW}");
    let cases: Vec<(&str, String, Option<Vec<u8>>)> = vec![
        (
            "an older record replayed",
            set_sealed.clone(),
            Some(alice_row.sealed.clone()),
        ),
        ("flipped byte", set_sealed.clone(), Some(flipped)),
        ("truncated", set_sealed.clone(), Some(truncated)),
        (
            "bob's ciphertext and version copied in",
            format!(
                "UPDATE vault_entries SET sealed = $1, record_version = {} WHERE {ALICE_ROW}",
                bob_row.version
            ),
            Some(bob_row.sealed.clone()),
        ),
    ];
    for (what, sql, bytes) in cases {
        backend.sql(&sql, bytes).await;
        let metrics = keygate::metrics::Metrics::new().unwrap();
        let fresh = Vault::open(
            &backend.config("vault.key", &[], 100),
            Some(VaultMetrics::from(&metrics)),
        )
        .await
        .unwrap();
        let got = fresh.get(&user("alice")).await.unwrap();
        assert!(
            got.is_none(),
            "{what}: opened as {:?}",
            got.map(|c| access(&c))
        );
        assert_eq!(
            counter(&metrics, "keygate_vault_integrity_errors_total"),
            1,
            "{what}"
        );
        assert_eq!(
            access(&fresh.get(&user("bob")).await.unwrap().unwrap()),
            "at-bob",
            "{what}"
        );
    }

    // The key file is lost and a new key made: every record is an integrity error, not a panic.
    std::fs::remove_file(backend.dir.path().join("vault.key")).unwrap();
    let (fresh, metrics) = backend.vault("vault.key", &[]).await;
    assert!(fresh.get(&user("bob")).await.unwrap().is_none());
    assert_eq!(counter(&metrics, "keygate_vault_integrity_errors_total"), 1);
}

#[tokio::test]
async fn tampering_on_sqlite() {
    tampering(Backend::sqlite().await).await;
}

#[tokio::test]
async fn tampering_on_postgres() {
    tampering(Backend::postgres().await).await;
}

async fn rotation(backend: Backend) {
    let (old, _) = backend.vault("key-a", &[]).await;
    for i in 0..50 {
        old.put(&user(&format!("u{i}")), &tokens(&format!("at-{i}")))
            .await
            .unwrap();
    }
    let old_id = old.current_key_id();
    // The operator makes key-b current and keeps key-a as a previous key.
    std::fs::rename(
        backend.dir.path().join("key-a"),
        backend.dir.path().join("key-a.old"),
    )
    .unwrap();
    let (rotating, _) = backend.vault("key-b", &["key-a.old"]).await;
    assert_ne!(rotating.current_key_id(), old_id);

    // Readers without a cache hammer the store while the rotation runs.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for r in 0..4 {
        let reader = Vault::open(&backend.config("key-b", &["key-a.old"], 0), None)
            .await
            .unwrap();
        let (stop, reads) = (stop.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let mut i = r;
            while !stop.load(Ordering::SeqCst) {
                let n = i % 50;
                let got = reader.get(&user(&format!("u{n}"))).await.unwrap();
                assert_eq!(
                    access(&got.expect("a read failed during rotation")),
                    format!("at-{n}")
                );
                reads.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        }));
    }
    let report = rotating.rotate().await.unwrap();
    stop.store(true, Ordering::SeqCst);
    for r in readers {
        r.await.unwrap();
    }
    assert_eq!(report.resealed, 50, "{report:?}");
    assert!(reads.load(Ordering::SeqCst) > 0);
    for entry in rotating.store().list().await.unwrap() {
        assert_eq!(entry.kek_id, rotating.current_key_id());
        assert_eq!(
            seal::sealed_by(&entry.sealed).unwrap(),
            rotating.current_key_id()
        );
    }
    // The old key can go now.
    let (only_new, _) = backend.vault("key-b", &[]).await;
    assert_eq!(
        access(&only_new.get(&user("u7")).await.unwrap().unwrap()),
        "at-7"
    );
    assert_eq!(only_new.rotate().await.unwrap().already_current, 50);
}

#[tokio::test]
async fn rotation_under_load_on_sqlite() {
    rotation(Backend::sqlite().await).await;
}

#[tokio::test]
async fn rotation_under_load_on_postgres() {
    rotation(Backend::postgres().await).await;
}

async fn one_time_records(backend: Backend) {
    let (vault, _) = backend.vault("vault.key", &[]).await;
    let session = |id: &str| Owner {
        kind: OwnerKind::ConsentSession,
        workload: "agent".into(),
        user_issuer: String::new(),
        user_id: String::new(),
        provider: String::new(),
        qualifier: id.into(),
    };
    let now = keygate::vault::store::now();
    let value = Credential::Secret("pending-tokens".to_string().into());
    vault
        .put_until(&session("s1"), &value, Some(now + 600))
        .await
        .unwrap();
    vault
        .put_until(&session("s2"), &value, Some(now - 1))
        .await
        .unwrap();

    // Two takers race for s1: exactly one wins.
    let s1 = session("s1");
    let (a, b) = tokio::join!(vault.take(&s1), vault.take(&s1));
    let winners = [a.unwrap(), b.unwrap()].into_iter().flatten().count();
    assert_eq!(winners, 1);
    assert!(vault.take(&session("s1")).await.unwrap().is_none());
    // Expired: gone, and not handed out.
    assert!(vault.take(&session("s2")).await.unwrap().is_none());
    assert!(vault.store().get(&session("s2")).await.unwrap().is_none());
    assert!(vault.store().ping(std::time::Duration::from_secs(2)).await);
}

#[tokio::test]
async fn one_time_records_on_sqlite() {
    one_time_records(Backend::sqlite().await).await;
}

#[tokio::test]
async fn one_time_records_on_postgres() {
    one_time_records(Backend::postgres().await).await;
}

#[tokio::test]
async fn an_unreachable_store_is_unavailable_not_absent() {
    let dir = tempfile::tempdir().unwrap();
    let config = VaultConfig {
        store: "postgres://postgres@127.0.0.1:1/none".into(),
        key: SecretSource::File(dir.path().join("k")),
        previous_keys: vec![],
        cache_capacity: 10,
    };
    assert!(matches!(
        Vault::open(&config, None).await,
        Err(VaultError::Unavailable(_))
    ));
}

/// The helper that writes records until killed (built with the tests as an example).
fn vault_writer() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = dir.join("examples/vault-writer");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --examples` (tests/run does)",
        path.display()
    );
    path
}

async fn kill_during_writes(backend: Backend) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let key = backend.dir.path().join("vault.key");
    let mut child = tokio::process::Command::new(vault_writer())
        .arg(&backend.store)
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: Option<u64> = None;
    while acked.is_none_or(|n| n < 200) {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("the writer stopped acknowledging")
            .unwrap()
            .expect("the writer exited");
        acked = line.strip_prefix("acked ").and_then(|n| n.parse().ok());
    }
    // SIGKILL mid-burst: no chance to flush or close anything.
    child.start_kill().unwrap();
    // Acks printed before the kill landed may still be in the pipe; they count too.
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(n) = line.strip_prefix("acked ").and_then(|n| n.parse().ok()) {
            acked = Some(n);
        }
    }
    child.wait().await.unwrap();
    let last = acked.unwrap();
    let vault = Vault::open(&backend.config("vault.key", &[], 10), None)
        .await
        .unwrap();
    for i in 0..=last {
        let owner = Owner {
            kind: OwnerKind::OAuthM2m,
            workload: "writer".into(),
            user_issuer: String::new(),
            user_id: String::new(),
            provider: format!("w{i}"),
            qualifier: String::new(),
        };
        let got = vault
            .get(&owner)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged write w{i} lost (last ack {last})"));
        assert_eq!(access(&got), format!("secret-{i}"));
    }
}

#[tokio::test]
async fn kill_9_during_writes_loses_no_acknowledged_write_on_sqlite() {
    kill_during_writes(Backend::sqlite().await).await;
}

#[tokio::test]
async fn kill_9_during_writes_loses_no_acknowledged_write_on_postgres() {
    kill_during_writes(Backend::postgres().await).await;
}

#[tokio::test]
async fn readiness_follows_the_vault_store_and_recovers_by_itself() {
    let url = fresh_postgres().await;
    let db = url.rsplit('/').next().unwrap().to_string();
    let toml = format!(
        "{}[vault]\nstore = \"{}\"\n",
        crate::common::server_block(),
        url.url
    );
    let gw = crate::common::TestGateway::start(&toml).await;
    let readyz = format!("http://{}/readyz", gw.admin);
    assert_eq!(crate::common::get(&readyz).await.0, http::StatusCode::OK);

    let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let (status, _, body) = crate::common::get(&readyz).await;
    assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("vault store is unreachable"), "{body}");

    sqlx::query(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while crate::common::get(&readyz).await.0 != http::StatusCode::OK {
        assert!(
            std::time::Instant::now() < deadline,
            "readiness did not recover"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Two replicas on one PostgreSQL: a write on one reaches the other's cache through LISTEN/NOTIFY,
/// long before the change-log poll (set to a minute here) would. The poll remains the safety net.
#[tokio::test]
async fn postgres_notifications_invalidate_other_replicas_at_once() {
    let backend = Backend::postgres().await;
    let (a, _) = backend.vault("vault.key", &[]).await;
    let (b, _) = backend.vault("vault.key", &[]).await;
    b.spawn_change_watcher(std::time::Duration::from_secs(60));
    a.put(&user("alice"), &tokens("at-1")).await.unwrap();
    // b caches alice's token (after its listener is up: give it a moment to LISTEN).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        access(&b.get(&user("alice")).await.unwrap().unwrap()),
        "at-1"
    );

    a.put(&user("alice"), &tokens("at-2")).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let seen = access(&b.get(&user("alice")).await.unwrap().unwrap());
        if seen == "at-2" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "replica b still serves {seen}: no notification arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    a.delete(&user("alice")).await.unwrap();
    let started = std::time::Instant::now();
    while b.get(&user("alice")).await.unwrap().is_some() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "revoke not seen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The fleet-wide lock: two replicas asking for the same owner take turns; different owners do
/// not wait for each other.
#[tokio::test]
async fn postgres_locks_serialise_work_on_one_owner_across_replicas() {
    let backend = Backend::postgres().await;
    let (a, _) = backend.vault("vault.key", &[]).await;
    let (b, _) = backend.vault("vault.key", &[]).await;
    let held = a.lock(&user("alice")).await.unwrap();
    // Another owner is free.
    let other = tokio::time::timeout(std::time::Duration::from_secs(2), b.lock(&user("bob")))
        .await
        .expect("a lock on bob must not wait for alice's")
        .unwrap();
    other.release().await;
    let waiter = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let lock = b.lock(&user("alice")).await.unwrap();
        let waited = started.elapsed();
        lock.release().await;
        waited
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!waiter.is_finished(), "b got alice's lock while a held it");
    held.release().await;
    let waited = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .expect("b never got the lock after a released it")
        .unwrap();
    assert!(waited >= std::time::Duration::from_millis(500));
}

/// A replica that vanished while holding a lock (its connection stays open, idle in the lock's
/// transaction): another replica still gets the lock within its wait (issue 21.4), instead of
/// every request waiting and failing until TCP keepalive ends the dead session hours later.
#[tokio::test]
async fn a_vanished_keygate_lock_holder_is_ended_and_the_lock_taken_over() {
    let backend = Backend::postgres().await;
    let (a, _) = backend.vault("vault.key", &[]).await;
    let (b, _) = backend.vault("vault.key", &[]).await;
    let held = a.lock(&user("alice")).await.unwrap();
    // Its holder is gone; the connection (and its transaction) are not.
    std::mem::forget(held);
    let lock = b
        .lock(&user("alice"))
        .await
        .expect("the lock of a vanished holder was never released");
    lock.release().await;
}

/// As above, with the lock held by a session that sets no limit of its own (another tool, an
/// older keygate): waiters end it once it has sat idle longer than a refresh may take.
#[tokio::test]
async fn a_raw_session_idle_on_the_lock_is_ended_and_the_lock_taken_over() {
    let backend = Backend::postgres().await;
    let (b, _) = backend.vault("vault.key", &[]).await;
    let mut holder = sqlx::PgConnection::connect(&backend.store).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(keygate::vault::store::lock_key(&user("alice")))
        .execute(&mut holder)
        .await
        .unwrap();
    let lock = b
        .lock(&user("alice"))
        .await
        .expect("an idle session kept the lock past the waiter's wait");
    lock.release().await;
    drop(holder);
}

#[tokio::test]
async fn a_test_database_is_dropped_with_its_test() {
    let database = fresh_postgres().await;
    // A connection still open (as a replica's would be) does not keep it alive.
    let _open = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let name = database.url.rsplit('/').next().unwrap().to_string();
    let exists = |name: String| async move {
        let mut admin = sqlx::PgConnection::connect(PG_ADMIN_URL).await.unwrap();
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_one(&mut admin)
            .await
            .unwrap()
    };
    assert_eq!(exists(name.clone()).await, 1);
    drop(database);
    assert_eq!(exists(name).await, 0, "the test database outlived its test");
}
