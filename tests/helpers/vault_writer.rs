//! Test helper for the kill -9 durability test: writes vault records `w0`, `w1`, ... as fast as
//! it can and prints `acked N` after each write returned. Never returns on its own.
//! `vault-writer STORE_URL KEY_FILE`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use keygate::config::{SecretSource, VaultConfig};
use keygate::vault::{Credential, Owner, OwnerKind, Vault};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let store = args.next().expect("store URL");
    let key = args.next().expect("key file");
    let config = VaultConfig {
        store,
        key: SecretSource::File(key.into()),
        previous_keys: vec![],
        cache_capacity: 10,
    };
    let vault = Vault::open(&config, None).await.unwrap();
    let mut stdout = std::io::stdout();
    for i in 0u64.. {
        let owner = Owner {
            kind: OwnerKind::OAuthM2m,
            workload: "writer".into(),
            user_issuer: String::new(),
            user_id: String::new(),
            provider: format!("w{i}"),
            qualifier: String::new(),
        };
        vault
            .put(&owner, &Credential::Secret(format!("secret-{i}").into()))
            .await
            .unwrap();
        writeln!(stdout, "acked {i}").unwrap();
        stdout.flush().unwrap();
    }
}
