//! What the vault holds, as typed values: OAuth token sets and single secrets (API keys, client
//! secrets). Secrets are `SecretString` (redacted `Debug`); the JSON wire form exists only
//! between sealing and opening.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Most bytes a single vaulted token may have (AgentCore's limit).
pub(crate) const MAX_TOKEN_BYTES: usize = 4096;

/// Longest token lifetime believed (ten years): a provider's absurd `expires_in` cannot overflow
/// the arithmetic or keep a token forever.
const MAX_LIFETIME_SECS: i64 = 10 * 365 * 24 * 3600;

/// Seconds a provider's `expires_in` stands for, within [`MAX_LIFETIME_SECS`].
pub(crate) fn lifetime_secs(expires_in: u64) -> i64 {
    i64::try_from(expires_in)
        .unwrap_or(MAX_LIFETIME_SECS)
        .min(MAX_LIFETIME_SECS)
}

/// An OAuth token set for one owner.
#[derive(Debug, Clone)]
pub struct OAuthTokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Unix seconds the access token expires at, when the provider said.
    pub expires_at: Option<i64>,
    /// Scopes the provider said it granted, as it spelled them (informational).
    pub scopes: Vec<String>,
    /// Scopes the consent that produced these tokens asked for (kept across refreshes). Empty
    /// for records written before keygate recorded them.
    pub requested: Vec<String>,
    /// Seconds the access token was issued for (`expires_in`), when known: the refresh margin
    /// is a share of it. `None` for records written before keygate kept it.
    pub lifetime_secs: Option<i64>,
}

/// Seconds before expiry at which a token is replaced: a minute, or a quarter of a short life
/// (a token living 30 s is used for 23 s, not refreshed on every request).
pub const fn refresh_margin(lifetime: i64) -> i64 {
    let quarter = lifetime / 4;
    if quarter < 0 {
        0
    } else if quarter > 60 {
        60
    } else {
        quarter
    }
}

impl OAuthTokens {
    /// Whether the access token is due for refresh at `now`: within [`refresh_margin`] of its
    /// expiry (a minute when its lifetime is unknown).
    pub(crate) fn due_for_refresh(&self, now: i64) -> bool {
        let margin = self.lifetime_secs.map_or(60, refresh_margin);
        self.expires_at.is_some_and(|at| at <= now + margin)
    }

    /// Whether this token set serves a request for `wanted` scopes: each one was asked for by
    /// the consent that produced the tokens, or the provider granted it under that very name.
    /// Never decided by how a provider spells its grant alone, so a completed consent always
    /// serves the request that started it. (Records without `requested`, from before it was
    /// kept, fall back to the granted scopes, with `offline_access` met by a refresh token.)
    pub(crate) fn covers(&self, wanted: &[String]) -> bool {
        wanted.iter().all(|w| {
            self.requested.contains(w)
                || self.scopes.contains(w)
                || (self.requested.is_empty()
                    && w == "offline_access"
                    && self.refresh_token.is_some())
        })
    }
}

/// A vaulted value.
#[derive(Debug, Clone)]
pub enum Credential {
    OAuth(OAuthTokens),
    Secret(SecretString),
}

impl Credential {
    /// Checks the size limit on every secret it carries.
    pub(crate) fn within_limits(&self) -> bool {
        match self {
            Credential::OAuth(t) => {
                t.access_token.expose_secret().len() <= MAX_TOKEN_BYTES
                    && t.refresh_token
                        .as_ref()
                        .is_none_or(|r| r.expose_secret().len() <= MAX_TOKEN_BYTES)
            }
            Credential::Secret(s) => s.expose_secret().len() <= MAX_TOKEN_BYTES * 16,
        }
    }

    pub fn expires_at(&self) -> Option<i64> {
        match self {
            Credential::OAuth(t) => t.expires_at,
            Credential::Secret(_) => None,
        }
    }

    pub fn scopes(&self) -> String {
        match self {
            Credential::OAuth(t) => t.scopes.join(" "),
            Credential::Secret(_) => String::new(),
        }
    }

    /// The plaintext that gets sealed.
    pub fn to_wire(&self) -> Result<Vec<u8>, serde_json::Error> {
        let wire = match self {
            Credential::OAuth(t) => Wire::OAuth {
                access_token: t.access_token.expose_secret().to_string(),
                refresh_token: t
                    .refresh_token
                    .as_ref()
                    .map(|r| r.expose_secret().to_string()),
                expires_at: t.expires_at,
                scopes: t.scopes.clone(),
                requested: t.requested.clone(),
                lifetime_secs: t.lifetime_secs,
            },
            Credential::Secret(s) => Wire::Secret {
                value: s.expose_secret().to_string(),
            },
        };
        serde_json::to_vec(&wire)
    }

    pub(crate) fn from_wire(bytes: &[u8]) -> Result<Credential, serde_json::Error> {
        Ok(match serde_json::from_slice(bytes)? {
            Wire::OAuth {
                access_token,
                refresh_token,
                expires_at,
                scopes,
                requested,
                lifetime_secs,
            } => Credential::OAuth(OAuthTokens {
                access_token: access_token.into(),
                refresh_token: refresh_token.map(Into::into),
                expires_at,
                scopes,
                requested,
                lifetime_secs,
            }),
            Wire::Secret { value } => Credential::Secret(value.into()),
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    OAuth {
        access_token: String,
        refresh_token: Option<String>,
        expires_at: Option<i64>,
        scopes: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        requested: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lifetime_secs: Option<i64>,
    },
    Secret {
        value: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_redacted_debug() {
        let c = Credential::OAuth(OAuthTokens {
            access_token: "at-123".to_string().into(),
            refresh_token: Some("rt-456".to_string().into()),
            expires_at: Some(42),
            scopes: vec!["read".into()],
            requested: vec!["read".into(), "openid".into()],
            lifetime_secs: None,
        });
        let back = Credential::from_wire(&c.to_wire().unwrap()).unwrap();
        let Credential::OAuth(t) = back else {
            panic!("kind changed")
        };
        assert_eq!(t.access_token.expose_secret(), "at-123");
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "rt-456");
        assert_eq!(t.requested, ["read", "openid"]);
        assert!(!format!("{c:?}").contains("at-123"));
    }

    #[test]
    fn absurd_lifetimes_are_capped() {
        assert_eq!(lifetime_secs(3600), 3600);
        assert_eq!(lifetime_secs(u64::MAX), MAX_LIFETIME_SECS);
        assert_eq!(lifetime_secs(i64::MAX as u64), MAX_LIFETIME_SECS);
    }

    #[test]
    fn scope_coverage_and_size_limit() {
        let t = OAuthTokens {
            access_token: "x".repeat(MAX_TOKEN_BYTES + 1).into(),
            refresh_token: None,
            expires_at: None,
            scopes: vec!["a".into(), "b".into()],
            requested: vec![],
            lifetime_secs: None,
        };
        assert!(t.covers(&["a".into()]));
        assert!(!t.covers(&["a".into(), "c".into()]));
        assert!(
            !t.covers(&["a".into(), "offline_access".into()]),
            "no refresh token"
        );
        assert!(!Credential::OAuth(t).within_limits());
    }

    #[test]
    fn what_was_requested_is_covered_whatever_the_provider_echoed() {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let t = OAuthTokens {
            access_token: "x".to_string().into(),
            refresh_token: None,
            expires_at: None,
            // oidc-provider with resource indicators echoes only the resource's scopes.
            scopes: strings(&["api:read"]),
            requested: strings(&["openid", "offline_access", "api:read"]),
            lifetime_secs: None,
        };
        assert!(t.covers(&strings(&["openid", "offline_access", "api:read"])));
        assert!(t.covers(&strings(&["api:read"])), "a subset of the consent");
        assert!(
            !t.covers(&strings(&["api:read", "api:write"])),
            "asks for more"
        );
        let records_before_requested = OAuthTokens {
            requested: vec![],
            lifetime_secs: None,
            ..t.clone()
        };
        assert!(!records_before_requested.covers(&strings(&["openid"])));
    }

    #[test]
    fn records_without_requested_scopes_still_open() {
        let old = br#"{"type":"o_auth","access_token":"a","refresh_token":null,"expires_at":null,"scopes":["s"]}"#;
        let Credential::OAuth(t) = Credential::from_wire(old).unwrap() else {
            panic!("kind changed")
        };
        assert!(t.requested.is_empty());
        assert!(t.covers(&["s".to_string()]));
    }

    #[test]
    fn short_lived_tokens_are_refreshed_a_quarter_before_expiry() {
        let t = |lifetime: Option<i64>| OAuthTokens {
            access_token: "a".to_string().into(),
            refresh_token: None,
            expires_at: Some(1000 + 30),
            scopes: vec![],
            requested: vec![],
            lifetime_secs: lifetime,
        };
        // 30 s left of a 30 s token: used until 7 s before expiry.
        assert!(!t(Some(30)).due_for_refresh(1000));
        assert!(!t(Some(30)).due_for_refresh(1022));
        assert!(t(Some(30)).due_for_refresh(1023));
        // Unknown lifetime (older records): a minute.
        assert!(t(None).due_for_refresh(1000));
        // Long-lived: a minute.
        assert!(t(Some(3600)).due_for_refresh(1000));
        assert_eq!(refresh_margin(120), 30);
    }
}
