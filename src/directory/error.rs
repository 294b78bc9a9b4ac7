//! What a directory operation can fail with, naming the entry it was about. The identity API
//! turns these into AWS error shapes in one place (`identity_api::error`).

use std::fmt;

use crate::vault::VaultError;

/// The kind of entry an error is about, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Workload,
    /// A credential provider of either kind.
    Provider,
    OAuth2Provider,
    ApiKeyProvider,
}

/// An entry by kind and name: "workload identity 'w'", "OAuth2 credential provider 'p'".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) kind: EntryKind,
    name: String,
}

impl Entry {
    pub(crate) fn new(kind: EntryKind, name: &str) -> Self {
        Entry {
            kind,
            name: name.to_string(),
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            EntryKind::Workload => "workload identity",
            EntryKind::Provider => "credential provider",
            EntryKind::OAuth2Provider => "OAuth2 credential provider",
            EntryKind::ApiKeyProvider => "API key credential provider",
        };
        write!(f, "{kind} '{}'", self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DirectoryError {
    #[error("{0} not found")]
    NotFound(Entry),
    /// The entry is defined in the config file: readable, never changed through the API.
    #[error("{0} is defined in keygate's config file and is read-only here")]
    ReadOnly(Entry),
    /// A create named an entry the config file defines.
    #[error("{0} already exists (in keygate's config file)")]
    InConfig(Entry),
    /// A create named an entry the API created before.
    #[error("{0} already exists")]
    Exists(Entry),
    /// Every compare-and-swap attempt of an update lost a race.
    #[error("{0} is being changed concurrently; retry")]
    Contended(Entry),
    #[error(
        "the limit of {max} {what} created through the API is reached ([api].{setting})",
        what = quota_noun(*.kind),
        setting = quota_setting(*.kind)
    )]
    QuotaExceeded { kind: EntryKind, max: usize },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

fn quota_noun(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Workload => "workload identities",
        _ => "credential providers",
    }
}

fn quota_setting(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Workload => "max_workload_identities",
        _ => "max_credential_providers",
    }
}
