//! What the vault holds, as typed values: OAuth token sets and single secrets (API keys, client
//! secrets). Secrets are `SecretString` (redacted `Debug`); the JSON wire form exists only
//! between sealing and opening.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Most bytes a single vaulted token may have (AgentCore's limit).
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Longest token lifetime believed (ten years): a provider's absurd `expires_in` cannot overflow
/// the arithmetic or keep a token forever.
pub const MAX_LIFETIME_SECS: i64 = 10 * 365 * 24 * 3600;

/// Seconds a provider's `expires_in` stands for, within [`MAX_LIFETIME_SECS`].
pub fn lifetime_secs(expires_in: u64) -> i64 {
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
    /// Scopes the tokens were granted.
    pub scopes: Vec<String>,
}

impl OAuthTokens {
    /// Whether this token set serves a request for `requested` scopes: every scope granted,
    /// except `offline_access`, which providers do not echo in the access token's scopes and
    /// which is satisfied by holding a refresh token.
    pub fn covers(&self, requested: &[String]) -> bool {
        requested.iter().all(|r| {
            if r == "offline_access" {
                self.refresh_token.is_some() || self.scopes.iter().any(|s| s == r)
            } else {
                self.scopes.iter().any(|s| s == r)
            }
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
    pub fn within_limits(&self) -> bool {
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
            },
            Credential::Secret(s) => Wire::Secret {
                value: s.expose_secret().to_string(),
            },
        };
        serde_json::to_vec(&wire)
    }

    pub fn from_wire(bytes: &[u8]) -> Result<Credential, serde_json::Error> {
        Ok(match serde_json::from_slice(bytes)? {
            Wire::OAuth {
                access_token,
                refresh_token,
                expires_at,
                scopes,
            } => Credential::OAuth(OAuthTokens {
                access_token: access_token.into(),
                refresh_token: refresh_token.map(Into::into),
                expires_at,
                scopes,
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
        });
        let back = Credential::from_wire(&c.to_wire().unwrap()).unwrap();
        let Credential::OAuth(t) = back else {
            panic!("kind changed")
        };
        assert_eq!(t.access_token.expose_secret(), "at-123");
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "rt-456");
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
        };
        assert!(t.covers(&["a".into()]));
        assert!(!t.covers(&["a".into(), "c".into()]));
        assert!(
            !t.covers(&["a".into(), "offline_access".into()]),
            "no refresh token"
        );
        assert!(!Credential::OAuth(t).within_limits());
    }
}
