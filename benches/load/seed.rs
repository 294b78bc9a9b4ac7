//! Load-test helper: vaults an OAuth token valid for an hour, so routes can be loaded without a
//! browser or a token endpoint: a user's token as if that user had consented (`user`), or a
//! workload's machine-to-machine token as if it had been fetched (`m2m`, scopes `read`).
//! `vault-seed CONFIG user WORKLOAD USER PROVIDER ACCESS_TOKEN`
//! `vault-seed CONFIG m2m WORKLOAD PROVIDER ACCESS_TOKEN`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keygate::inbound::UserId;
use keygate::providers::m2m::M2mTokens;
use keygate::vault::{Credential, OAuthTokens, Vault};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, owner, token) = match &args[..] {
        [config, kind, workload, user, provider, token] if kind == "user" => {
            let user = UserId {
                issuer: None,
                id: user.clone(),
            };
            (
                config,
                keygate::consent::user_owner(workload, &user, provider),
                token,
            )
        }
        [config, kind, workload, provider, token] if kind == "m2m" => (
            config,
            M2mTokens::owner(workload, provider, &["read".to_string()]),
            token,
        ),
        _ => panic!(
            "usage: vault-seed CONFIG user WORKLOAD USER PROVIDER TOKEN | vault-seed CONFIG m2m WORKLOAD PROVIDER TOKEN"
        ),
    };
    let loaded = keygate::config::load(std::path::Path::new(config)).unwrap();
    let vault = Vault::open(&loaded.config.vault, None).await.unwrap();
    let tokens = Credential::OAuth(OAuthTokens {
        access_token: token.clone().into(),
        refresh_token: None,
        expires_at: Some(keygate::vault::store::now() + 3600),
        scopes: vec!["read".into()],
        requested: vec!["read".into()],
        lifetime_secs: None,
    });
    vault.put(&owner, &tokens).await.unwrap();
}
