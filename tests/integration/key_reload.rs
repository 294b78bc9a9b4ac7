//! Vault key changes by SIGHUP (issue 21.3): a new `vault.key` with the old one in
//! `previous_keys` applies at once (new records sealed by the new key, old ones still open), a
//! reload leaving out the key in use is refused, and `keygate vault rotate-key` needs none of the
//! config's unrelated `env:` secrets.

use keygate::vault::{Credential, Kek};
use secrecy::ExposeSecret;

use crate::common::*;
use crate::vault::{tokens, user};

fn config(key: &str, previous: &[&str]) -> String {
    let previous: Vec<String> = previous
        .iter()
        .map(|k| format!("\"file:{{dir}}/{k}\""))
        .collect();
    format!(
        "{}[vault]\nkey = \"file:{{dir}}/{key}\"\nprevious_keys = [{}]\n\n\
         [[providers]]\nname = \"elsewhere\"\nkind = \"api_key\"\napi_key = \"env:KEYGATE_TEST_UNSET_SECRET\"\n",
        server_block(),
        previous.join(", ")
    )
}

fn write_key(gw_dir: &std::path::Path, name: &str) -> String {
    let key = Kek::generate().unwrap();
    std::fs::write(gw_dir.join(name), format!("{}\n", key.to_base64())).unwrap();
    key.id.clone()
}

fn access(credential: &Credential) -> String {
    match credential {
        Credential::OAuth(t) => t.access_token.expose_secret().to_string(),
        Credential::Secret(s) => s.expose_secret().to_string(),
    }
}

fn failed_reloads(metrics: &str) -> bool {
    metrics.contains("keygate_config_last_reload_success 0")
}

#[tokio::test]
async fn a_new_vault_key_applies_on_reload_and_rotation_needs_no_unrelated_secret() {
    let dir = tempfile::tempdir().unwrap();
    let old_id = write_key(dir.path(), "k1");
    // The gateway itself needs its provider secret; only the CLI run below goes without it.
    let toml = config("k1", &[]).replace("env:KEYGATE_TEST_UNSET_SECRET", "inline-secret");
    let gw = TestGateway::start_in(dir, &toml).await;
    let vault = gw.state.vault().clone();
    assert_eq!(vault.current_key_id(), old_id);
    vault.put(&user("old"), &tokens("at-old")).await.unwrap();

    // Step 2 of the rollout: the new key becomes current, the old one previous.
    let new_id = write_key(gw.dir.path(), "k2");
    let reloaded = config("k2", &["k1"]).replace("env:KEYGATE_TEST_UNSET_SECRET", "inline-secret");
    gw.reload_with(&reloaded).await;
    assert!(!failed_reloads(&gw.metrics().await));
    assert_eq!(
        vault.current_key_id(),
        new_id,
        "the reload kept the old key"
    );
    vault.put(&user("new"), &tokens("at-new")).await.unwrap();
    let sealed = vault.store().get(&user("new")).await.unwrap().unwrap();
    assert_eq!(
        sealed.kek_id, new_id,
        "a record written after the reload used the old key"
    );
    let old = vault.get_fresh(&user("old")).await.unwrap().unwrap();
    assert_eq!(access(&old), "at-old");

    // Step 3: re-seal everything under the new key, with a config whose provider secret is an
    // `env:` variable that is not set (rotate-key must not need it).
    let cli_config = gw.dir.path().join("cli.toml");
    std::fs::write(
        &cli_config,
        config("k2", &["k1"]).replace("{dir}", &gw.dir.path().display().to_string()),
    )
    .unwrap();
    let output = std::process::Command::new(binary())
        .args(["vault", "rotate-key", "--config"])
        .arg(&cli_config)
        .env_remove("KEYGATE_TEST_UNSET_SECRET")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "rotate-key failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for entry in vault.store().list().await.unwrap() {
        assert_eq!(entry.kek_id, new_id, "{:?} not re-sealed", entry.owner);
    }
    // The running gateway opens what the rotation re-sealed.
    let old = vault.get_fresh(&user("old")).await.unwrap().unwrap();
    assert_eq!(access(&old), "at-old");

    // A reload that leaves out the key in use is refused loudly, and the keys stay.
    write_key(gw.dir.path(), "k3");
    let dropped = config("k3", &[]).replace("env:KEYGATE_TEST_UNSET_SECRET", "inline-secret");
    gw.reload_with(&dropped).await;
    assert!(
        failed_reloads(&gw.metrics().await),
        "a reload dropping the key in use succeeded"
    );
    assert_eq!(vault.current_key_id(), new_id);
    let new = vault.get_fresh(&user("new")).await.unwrap().unwrap();
    assert_eq!(access(&new), "at-new");
}
