//! Load-test helper: vaults an OAuth token for one user as if that user had consented, so a
//! `user_federation` route can be loaded without a browser. Valid for an hour.
//! `vault-seed CONFIG WORKLOAD USER PROVIDER ACCESS_TOKEN`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keygate::inbound::UserId;
use keygate::vault::{Credential, OAuthTokens, Vault};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, workload, user, provider, token] = &args[..] else {
        panic!("usage: vault-seed CONFIG WORKLOAD USER PROVIDER ACCESS_TOKEN");
    };
    let loaded = keygate::config::load(std::path::Path::new(config)).unwrap();
    let vault = Vault::open(&loaded.config.vault, None).await.unwrap();
    let user = UserId {
        issuer: None,
        id: user.clone(),
    };
    let owner = keygate::consent::user_owner(workload, &user, provider);
    let tokens = Credential::OAuth(OAuthTokens {
        access_token: token.clone().into(),
        refresh_token: None,
        expires_at: Some(keygate::vault::store::now() + 3600),
        scopes: vec!["read".into()],
    });
    vault.put(&owner, &tokens).await.unwrap();
}
