//! Workload identities: config-defined ones are readable but read-only; API-created ones live
//! in the vault, at most `[api].max_workload_identities` of them. Deleting one deletes the
//! tokens vaulted for it first, so a workload created later under the same name starts with
//! nothing.

use std::collections::BTreeMap;

use super::records::{self, WORKLOAD_KIND, WorkloadRecord, now, workload_owner};
use super::{
    Configured, Directory, DirectoryError, Entry, EntryKind, Origin, UPDATE_ATTEMPTS, Workload,
};
use crate::vault::VaultError;

/// A workload identity to create (already validated by the caller).
pub(crate) struct NewWorkload {
    pub(crate) name: String,
    pub(crate) allowed_return_urls: Vec<String>,
    pub(crate) tags: BTreeMap<String, String>,
}

fn entry(name: &str) -> Entry {
    Entry::new(EntryKind::Workload, name)
}

impl Directory {
    /// A workload by name, from the config or the API; `None` when there is none.
    pub(crate) async fn workload(
        &self,
        configured: &Configured<'_>,
        name: &str,
    ) -> Result<Option<Workload>, VaultError> {
        if let Some(w) = configured.workload(name) {
            return Ok(Some(Workload {
                name: w.name.clone(),
                authorizer: w.authorizer.clone(),
                allowed_return_urls: w.allowed_return_urls.clone(),
                origin: Origin::Config,
                created_at: self.started_at,
                updated_at: self.started_at,
            }));
        }
        let record: Option<WorkloadRecord> =
            records::read(&self.vault, &workload_owner(name)).await?;
        Ok(record.map(|r| Workload {
            name: r.name,
            authorizer: configured.default_authorizer(),
            allowed_return_urls: r.allowed_return_urls,
            origin: Origin::Api,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }))
    }

    /// A workload by name, or [`DirectoryError::NotFound`].
    pub(crate) async fn get_workload(
        &self,
        configured: &Configured<'_>,
        name: &str,
    ) -> Result<Workload, DirectoryError> {
        self.workload(configured, name)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(entry(name)))
    }

    /// Stores a new API-created workload, within `limit` (the config's workloads are the
    /// operator's and do not count).
    pub(crate) async fn create_workload(
        &self,
        configured: &Configured<'_>,
        new: NewWorkload,
        limit: usize,
    ) -> Result<WorkloadRecord, DirectoryError> {
        if configured.workload(&new.name).is_some() {
            return Err(DirectoryError::InConfig(entry(&new.name)));
        }
        if records::names(&self.vault, WORKLOAD_KIND).await?.len() >= limit {
            return Err(DirectoryError::QuotaExceeded {
                kind: EntryKind::Workload,
                max: limit,
            });
        }
        let now = now();
        let record = WorkloadRecord {
            name: new.name,
            allowed_return_urls: new.allowed_return_urls,
            created_at: now,
            updated_at: now,
            tags: new.tags,
        };
        if !records::put_new(&self.vault, &workload_owner(&record.name), &record).await? {
            return Err(DirectoryError::Exists(entry(&record.name)));
        }
        Ok(record)
    }

    /// Changes an API-created workload's return URLs (when given), by compare-and-swap.
    pub(crate) async fn update_workload(
        &self,
        configured: &Configured<'_>,
        name: &str,
        allowed_return_urls: Option<Vec<String>>,
    ) -> Result<Workload, DirectoryError> {
        if self.get_workload(configured, name).await?.origin == Origin::Config {
            return Err(DirectoryError::ReadOnly(entry(name)));
        }
        let owner = workload_owner(name);
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(mut current) =
                records::versioned::<WorkloadRecord>(&self.vault, &owner).await?
            else {
                return Err(DirectoryError::NotFound(entry(name)));
            };
            if let Some(urls) = &allowed_return_urls {
                current.record.allowed_return_urls = urls.clone();
            }
            current.record.updated_at = now().max(current.record.created_at);
            if records::replace(&self.vault, &owner, current.version, &current.record).await? {
                return self.get_workload(configured, name).await;
            }
        }
        Err(DirectoryError::Contended(entry(name)))
    }

    /// Every workload's name, from both origins, sorted.
    pub(crate) async fn workload_names(
        &self,
        configured: &Configured<'_>,
    ) -> Result<Vec<String>, VaultError> {
        let mut names: Vec<String> = configured
            .config
            .workloads
            .iter()
            .map(|w| w.name.clone())
            .collect();
        names.extend(records::names(&self.vault, WORKLOAD_KIND).await?);
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Deletes an API-created workload and, first, every token vaulted for it (if that fails
    /// the identity is still there, and deleting it again finishes the job). Returns how many
    /// tokens were deleted.
    pub(crate) async fn delete_workload(
        &self,
        configured: &Configured<'_>,
        name: &str,
    ) -> Result<usize, DirectoryError> {
        if configured.workload(name).is_some() {
            return Err(DirectoryError::ReadOnly(entry(name)));
        }
        let owner = workload_owner(name);
        if records::read::<WorkloadRecord>(&self.vault, &owner)
            .await?
            .is_none()
        {
            return Err(DirectoryError::NotFound(entry(name)));
        }
        let purged = records::purge_tokens(&self.vault, |o| o.workload == name).await?;
        if !self.vault.delete(&owner).await? {
            return Err(DirectoryError::NotFound(entry(name)));
        }
        Ok(purged)
    }
}
