//! Who a vault record belongs to: [`Owner`] (a kind and five naming fields, bound into every
//! seal as associated data) and [`OwnerKind`], the kinds of record keygate keeps. Each kind has
//! a constructor here, so the fields a kind uses are named in one place.
//!
//! The kind is stored as text (`kind` column) and sealed as text: [`OwnerKind::as_str`] is
//! part of the on-disk format and must never change for an existing kind.

use std::fmt;

/// The kinds of record the vault keeps (the `kind` of an [`Owner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    /// A user's OAuth tokens for a provider ([`Owner::user_token`]).
    OAuthUser,
    /// A workload's client-credentials token for one grant ([`Owner::m2m_token`]).
    OAuthM2m,
    /// keygate's own signing keys for workload access tokens ([`Owner::signing_key`]).
    SigningKey,
    /// A consent session waiting for the user ([`Owner::consent_session`]).
    ConsentSession,
    /// The index of a user's pending consent sessions ([`Owner::consent_pending`]).
    ConsentPending,
    /// A workload identity created through the identity API ([`Owner::workload_identity`]).
    WorkloadIdentity,
    /// A credential provider created through the identity API ([`Owner::credential_provider`]).
    CredentialProvider,
    /// A kind read back from the store that this version does not know. Its records never
    /// open (the kind is part of every seal's associated data, and `"unknown"` is never
    /// written).
    Unknown,
}

impl OwnerKind {
    /// Every kind keygate writes.
    pub const ALL: [OwnerKind; 7] = [
        OwnerKind::OAuthUser,
        OwnerKind::OAuthM2m,
        OwnerKind::SigningKey,
        OwnerKind::ConsentSession,
        OwnerKind::ConsentPending,
        OwnerKind::WorkloadIdentity,
        OwnerKind::CredentialProvider,
    ];

    /// The kind's text in the store and in every seal (unchanged since the first release).
    pub const fn as_str(self) -> &'static str {
        match self {
            OwnerKind::OAuthUser => "oauth_user",
            OwnerKind::OAuthM2m => "oauth_m2m",
            OwnerKind::SigningKey => "signing_key",
            OwnerKind::ConsentSession => "consent_session",
            OwnerKind::ConsentPending => "consent_pending",
            OwnerKind::WorkloadIdentity => "workload_identity",
            OwnerKind::CredentialProvider => "credential_provider",
            OwnerKind::Unknown => "unknown",
        }
    }

    /// The kind stored as `text`; [`OwnerKind::Unknown`] for text no kind has.
    pub(crate) fn from_stored(text: &str) -> OwnerKind {
        OwnerKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .unwrap_or(OwnerKind::Unknown)
    }

    /// Records an operator revokes with `keygate vault revoke`: credentials, not keygate's
    /// signing keys nor the workloads and providers the identity API manages.
    pub fn is_revocable(self) -> bool {
        !matches!(
            self,
            OwnerKind::SigningKey | OwnerKind::WorkloadIdentity | OwnerKind::CredentialProvider
        )
    }
}

impl fmt::Display for OwnerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind named by its stored text (see [`OwnerKind::from_stored`]), for callers that still
/// hold kinds as strings.
impl From<&str> for OwnerKind {
    fn from(text: &str) -> Self {
        OwnerKind::from_stored(text)
    }
}

/// Who a record belongs to; bound into every seal as associated data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub kind: OwnerKind,
    pub workload: String,
    /// Issuer of a JWT user; empty for users named by id and for records without a user.
    pub user_issuer: String,
    pub user_id: String,
    pub provider: String,
    /// Scopes or another qualifier that is part of the record's identity (M2M tokens).
    pub qualifier: String,
}

impl Owner {
    /// An owner of `kind` with every naming field empty.
    fn of(kind: OwnerKind) -> Owner {
        Owner {
            kind,
            workload: String::new(),
            user_issuer: String::new(),
            user_id: String::new(),
            provider: String::new(),
            qualifier: String::new(),
        }
    }

    /// A user's tokens for `provider`, obtained through `workload` (`user_issuer` empty for a
    /// user named by id).
    pub(crate) fn user_token(
        workload: &str,
        user_issuer: &str,
        user_id: &str,
        provider: &str,
    ) -> Owner {
        Owner {
            workload: workload.to_string(),
            user_issuer: user_issuer.to_string(),
            user_id: user_id.to_string(),
            provider: provider.to_string(),
            ..Owner::of(OwnerKind::OAuthUser)
        }
    }

    /// A workload's client-credentials token from `provider` for the grant `qualifier` names.
    pub(crate) fn m2m_token(workload: &str, provider: &str, qualifier: String) -> Owner {
        Owner {
            workload: workload.to_string(),
            provider: provider.to_string(),
            qualifier,
            ..Owner::of(OwnerKind::OAuthM2m)
        }
    }

    /// keygate's signing keys named `name`.
    pub(crate) fn signing_key(name: &str) -> Owner {
        Owner {
            provider: name.to_string(),
            ..Owner::of(OwnerKind::SigningKey)
        }
    }

    /// The consent session with id `id`.
    pub(crate) fn consent_session(id: &str) -> Owner {
        Owner {
            qualifier: id.to_string(),
            ..Owner::of(OwnerKind::ConsentSession)
        }
    }

    /// The index entry of a pending consent session: one user's, through `workload`, for
    /// `provider`, keyed by `qualifier`.
    pub(crate) fn consent_pending(
        workload: &str,
        user_issuer: &str,
        user_id: &str,
        provider: &str,
        qualifier: String,
    ) -> Owner {
        Owner {
            qualifier,
            kind: OwnerKind::ConsentPending,
            ..Owner::user_token(workload, user_issuer, user_id, provider)
        }
    }

    /// A workload identity created through the identity API.
    pub(crate) fn workload_identity(name: &str) -> Owner {
        Owner {
            workload: name.to_string(),
            ..Owner::of(OwnerKind::WorkloadIdentity)
        }
    }

    /// A credential provider created through the identity API.
    pub(crate) fn credential_provider(name: &str) -> Owner {
        Owner {
            provider: name.to_string(),
            ..Owner::of(OwnerKind::CredentialProvider)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_kind_names_are_the_on_disk_format() {
        let stored: Vec<&str> = OwnerKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            stored,
            [
                "oauth_user",
                "oauth_m2m",
                "signing_key",
                "consent_session",
                "consent_pending",
                "workload_identity",
                "credential_provider",
            ]
        );
        for kind in OwnerKind::ALL {
            assert_eq!(OwnerKind::from_stored(kind.as_str()), kind);
        }
        assert_eq!(OwnerKind::from_stored("api_key"), OwnerKind::Unknown);
        assert_eq!(OwnerKind::from_stored("unknown"), OwnerKind::Unknown);
    }

    #[test]
    fn constructors_fill_the_fields_their_kind_uses() {
        let pending = Owner::consent_pending("w", "iss", "alice", "p", "q".into());
        assert_eq!(
            pending,
            Owner {
                kind: OwnerKind::ConsentPending,
                workload: "w".into(),
                user_issuer: "iss".into(),
                user_id: "alice".into(),
                provider: "p".into(),
                qualifier: "q".into(),
            }
        );
        assert_eq!(Owner::workload_identity("w").workload, "w");
        assert_eq!(Owner::credential_provider("p").provider, "p");
        assert_eq!(Owner::consent_session("id").qualifier, "id");
        assert_eq!(Owner::signing_key("k").provider, "k");
    }
}
