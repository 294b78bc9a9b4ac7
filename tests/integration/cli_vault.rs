//! `keygate vault list | revoke | rotate-key` against the vault of a running gateway.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::vault::{tokens, user};

fn keygate(args: &[&str], config: &std::path::Path) -> (bool, String, String) {
    let output = Command::new(binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn list_revoke_and_rotate_from_the_command_line() {
    let gw = TestGateway::start(server_block()).await;
    let vault = gw.state.vault().clone();
    vault
        .put(&user("alice"), &tokens("at-alice"))
        .await
        .unwrap();
    vault.put(&user("bob"), &tokens("at-bob")).await.unwrap();

    let (ok, out, err) = keygate(&["vault", "list"], &gw.config_path);
    assert!(ok, "{err}");
    assert!(
        out.contains("https://idp#alice") && out.contains("https://idp#bob"),
        "{out}"
    );
    assert!(
        !out.contains("at-alice") && !out.contains("refresh-"),
        "secrets in the listing: {out}"
    );
    let (_, out, _) = keygate(&["vault", "list", "--user", "alice"], &gw.config_path);
    assert!(out.contains("alice") && !out.contains("bob"), "{out}");

    let (ok, _, err) = keygate(&["vault", "revoke"], &gw.config_path);
    assert!(!ok && err.contains("--all"), "{err}");

    // The gateway has alice cached; a revoke from another process reaches it within a second.
    assert!(vault.get(&user("alice")).await.unwrap().is_some());
    let (ok, out, err) = keygate(
        &["vault", "revoke", "--user", "https://idp#alice"],
        &gw.config_path,
    );
    assert!(ok, "{err}");
    assert!(out.contains("revoked 1 entries"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while vault.get(&user("alice")).await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the running gateway kept using a revoked token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(vault.get(&user("bob")).await.unwrap().is_some());

    // Rotation: a new current key, the old one kept as previous; everything is re-sealed.
    let data = gw.dir.path().join("data");
    std::fs::rename(data.join("vault.key"), data.join("vault.key.1")).unwrap();
    let rotated_config = gw.dir.path().join("rotated.toml");
    std::fs::write(
        &rotated_config,
        format!("{}[vault]\nkey = \"file:data/vault.key\"\nprevious_keys = [\"file:data/vault.key.1\"]\n", server_block().replace("[audit]\npath = \"-\"\n\n", "")),
    )
    .unwrap();
    let (ok, out, err) = keygate(&["vault", "rotate-key"], &rotated_config);
    assert!(ok, "{err}");
    assert!(out.contains("re-sealed 2 records"), "{out}");
    let (_, listing, _) = keygate(&["vault", "list"], &rotated_config);
    let old_id = keygate::vault::KeyRing::load(
        &keygate::config::SecretSource::File(data.join("vault.key.1")),
        &[],
    )
    .unwrap()
    .current
    .id;
    assert!(
        !listing.contains(&old_id),
        "records still sealed by the old key:\n{listing}"
    );

    // `revoke --all` revokes credentials; the workloads and providers the identity API manages
    // (and keygate's signing keys) stay.
    use keygate::directory::{WorkloadRecord, put_new, workload_owner};
    let record = WorkloadRecord {
        name: "api-made".into(),
        allowed_return_urls: vec![],
        created_at: 0.0,
        updated_at: 0.0,
        tags: Default::default(),
    };
    assert!(
        put_new(&vault, &workload_owner("api-made"), &record)
            .await
            .unwrap()
    );
    let (ok, out, err) = keygate(&["vault", "revoke", "--all"], &rotated_config);
    assert!(ok, "{err}");
    assert!(out.contains("revoked 1 entries"), "only bob's token: {out}");
    assert!(
        vault
            .store()
            .get(&workload_owner("api-made"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(vault.store().get(&user("bob")).await.unwrap().is_none());
}
