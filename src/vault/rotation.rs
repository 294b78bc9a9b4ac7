//! Vault keys over time: loading a new set on SIGHUP (refusing one that drops the current
//! key) and re-sealing every record under the current key (`keygate vault rotate-key`).

use std::sync::Arc;

use super::keys::{KeyError, KeyRing};
use super::seal;
use super::store::Entry;
use super::{Vault, VaultError};
use crate::config::VaultConfig;

/// What a key rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    pub resealed: usize,
    pub already_current: usize,
    /// Records that failed to open (left as they are, counted as integrity errors).
    pub unreadable: usize,
    /// Records changed by someone else while rotating (they were written under the current key).
    pub raced: usize,
}

impl Vault {
    /// Loads the keys of `config` (a SIGHUP reload): records are sealed by its current key from
    /// now on, and those sealed by any of its keys open. Refused, keeping the keys in use, when
    /// the new keys leave out the current one (records it sealed would no longer open).
    pub(crate) fn reload_keys(&self, config: &VaultConfig) -> Result<(), KeyError> {
        let ring = KeyRing::load(&config.key, &config.previous_keys)?;
        let current = self.ring.load();
        if !ring.knows(&current.current.id) {
            return Err(KeyError::CurrentKeyDropped(current.current.id.clone()));
        }
        if ring.current.id != current.current.id {
            tracing::info!(
                from = %current.current.id,
                to = %ring.current.id,
                "vault key changed: new records are sealed by the new key"
            );
        }
        self.ring.store(Arc::new(ring));
        Ok(())
    }

    pub fn current_key_id(&self) -> String {
        self.ring.load().current.id.clone()
    }

    /// Re-seals every record not sealed by the current key (compare-and-swap per record, so
    /// writes made meanwhile are kept).
    pub async fn rotate(&self) -> Result<Rotation, VaultError> {
        let ring = self.ring.load();
        let mut report = Rotation::default();
        for entry in self.store.list().await? {
            if entry.kek_id == ring.current.id
                && seal::sealed_by(&entry.sealed).ok() == Some(ring.current.id.as_str())
            {
                report.already_current += 1;
                continue;
            }
            let resealed = match seal::reseal(&ring, &entry.owner, entry.version, &entry.sealed) {
                Ok(bytes) => bytes,
                Err(error) => {
                    self.integrity_error(&entry.owner, error);
                    report.unreadable += 1;
                    continue;
                }
            };
            let replacement = Entry {
                sealed: resealed,
                kek_id: ring.current.id.clone(),
                ..entry.clone()
            };
            if self
                .store
                .replace_if_unchanged(&replacement, &entry.sealed)
                .await?
            {
                report.resealed += 1;
            } else {
                report.raced += 1;
            }
        }
        Ok(report)
    }
}
