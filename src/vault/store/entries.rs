//! The records themselves (`vault_entries`): read, write, compare-and-swap, take and list,
//! the same SQL on either backend. Every write appends to the change log in its transaction.

use sqlx::Row;

use super::{BeginWrite, Entry, Store, StoreError, now};
use crate::vault::owner::{Owner, OwnerKind};

const OWNER_MATCH: &str = "kind = $1 AND workload = $2 AND user_issuer = $3 AND user_id = $4 AND provider = $5 AND qualifier = $6";

impl Store {
    /// Inserts or replaces the record for `entry.owner`; returns once committed.
    pub async fn put(&self, entry: &Entry) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO vault_entries
            (kind, workload, user_issuer, user_id, provider, qualifier, sealed, kek_id, expires_at, scopes, updated_at, record_version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (kind, workload, user_issuer, user_id, provider, qualifier) DO UPDATE SET
            sealed = excluded.sealed, kek_id = excluded.kek_id, expires_at = excluded.expires_at,
            record_version = excluded.record_version,
            scopes = excluded.scopes, updated_at = excluded.updated_at";
        let o = &entry.owner;
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            bind_record!(bind_owner!(sqlx::query(SQL), o), entry)
                .execute(&mut *tx)
                .await?;
            record_change!(tx, o);
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn get(&self, owner: &Owner) -> Result<Option<Entry>, StoreError> {
        let sql = format!(
            "SELECT sealed, kek_id, record_version, expires_at, scopes, updated_at FROM vault_entries WHERE {OWNER_MATCH}"
        );
        on_pool!(self, |pool| {
            let row = bind_owner!(sqlx::query(&sql), owner)
                .fetch_optional(pool)
                .await?;
            match row {
                None => Ok(None),
                Some(row) => Ok(Some(entry_from_row!(row, owner.clone()))),
            }
        })
    }

    /// Inserts the record only if `entry.owner` has none yet; true when inserted (names created
    /// through the API: of two concurrent creators exactly one wins).
    pub async fn insert_new(&self, entry: &Entry) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO vault_entries
            (kind, workload, user_issuer, user_id, provider, qualifier, sealed, kek_id, expires_at, scopes, updated_at, record_version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (kind, workload, user_issuer, user_id, provider, qualifier) DO NOTHING";
        let o = &entry.owner;
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = bind_record!(bind_owner!(sqlx::query(SQL), o), entry)
                .execute(&mut *tx)
                .await?;
            let inserted = done.rows_affected() > 0;
            if inserted {
                record_change!(tx, o);
            }
            tx.commit().await?;
            Ok(inserted)
        })
    }

    /// Replaces the record only if it still has record version `expected` (compare-and-swap
    /// for read-modify-write: one-time consent completion, API updates). True when replaced.
    pub async fn replace_version(&self, entry: &Entry, expected: i64) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE vault_entries SET sealed = $7, kek_id = $8, expires_at = $9, scopes = $10,
             updated_at = $11, record_version = $12 WHERE {OWNER_MATCH} AND record_version = $13"
        );
        let o = &entry.owner;
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = bind_record!(bind_owner!(sqlx::query(&sql), o), entry)
                .bind(expected)
                .execute(&mut *tx)
                .await?;
            let replaced = done.rows_affected() > 0;
            if replaced {
                record_change!(tx, o);
            }
            tx.commit().await?;
            Ok(replaced)
        })
    }

    /// Replaces a record only if it still holds `expected` (compare-and-swap), so a key
    /// rotation never overwrites a newer write. True when replaced.
    pub(crate) async fn replace_if_unchanged(
        &self,
        entry: &Entry,
        expected: &[u8],
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE vault_entries SET sealed = $7, kek_id = $8 WHERE {OWNER_MATCH} AND sealed = $9"
        );
        let o = &entry.owner;
        on_pool!(self, |pool| {
            let done = bind_owner!(sqlx::query(&sql), o)
                .bind(&entry.sealed)
                .bind(&entry.kek_id)
                .bind(expected)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// The owners of every record of one kind, in owner order (no sealed bytes read).
    pub async fn owners_of_kind(&self, kind: OwnerKind) -> Result<Vec<Owner>, StoreError> {
        const SQL: &str = "SELECT kind, workload, user_issuer, user_id, provider, qualifier
            FROM vault_entries WHERE kind = $1 ORDER BY workload, user_issuer, user_id, provider, qualifier";
        on_pool!(self, |pool| {
            let rows = sqlx::query(SQL).bind(kind.as_str()).fetch_all(pool).await?;
            rows.iter()
                .map(|row| Ok(owner_from_row!(row)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// How many unexpired records of `kind` belong to one user (across workloads).
    pub(crate) async fn count_live_for_user(
        &self,
        kind: OwnerKind,
        user_issuer: &str,
        user_id: &str,
    ) -> Result<i64, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT COUNT(*) FROM vault_entries WHERE kind = $1 AND user_issuer = $2 \
                 AND user_id = $3 AND (expires_at IS NULL OR expires_at > $4)",
            )
            .bind(kind.as_str())
            .bind(user_issuer)
            .bind(user_id)
            .bind(now())
            .fetch_one(pool)
            .await?;
            Ok(row.try_get::<i64, _>(0)?)
        })
    }

    /// Deletes the record; true when there was one.
    pub async fn delete(&self, owner: &Owner) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM vault_entries WHERE {OWNER_MATCH}");
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let done = bind_owner!(sqlx::query(&sql), owner)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() > 0 {
                record_change!(tx, owner);
            }
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Every record (sealed bytes included, for rotation), in owner order.
    pub async fn list(&self) -> Result<Vec<Entry>, StoreError> {
        const SQL: &str = "SELECT kind, workload, user_issuer, user_id, provider, qualifier, sealed, kek_id, record_version, expires_at, scopes, updated_at
            FROM vault_entries ORDER BY kind, workload, user_issuer, user_id, provider, qualifier";
        on_pool!(self, |pool| {
            let rows = sqlx::query(SQL).fetch_all(pool).await?;
            rows.iter()
                .map(|row| Ok(entry_from_row!(row, owner_from_row!(row))))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// Takes the record out: reads and deletes it in one statement, so of two concurrent takers
    /// only one gets it (one-time records such as consent sessions).
    pub(crate) async fn take(&self, owner: &Owner) -> Result<Option<Entry>, StoreError> {
        let sql = format!(
            "DELETE FROM vault_entries WHERE {OWNER_MATCH} RETURNING sealed, kek_id, record_version, expires_at, scopes, updated_at"
        );
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let row = bind_owner!(sqlx::query(&sql), owner)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            record_change!(tx, owner);
            tx.commit().await?;
            Ok(Some(entry_from_row!(row, owner.clone())))
        })
    }

    /// Deletes records of `kind` past their expiry (consent sessions: nothing reads them once
    /// expired). Not for OAuth tokens, whose refresh tokens outlive the access token's expiry.
    pub(crate) async fn prune_expired(&self, kind: OwnerKind) -> Result<u64, StoreError> {
        on_pool!(self, |pool| {
            let done = sqlx::query(
                "DELETE FROM vault_entries WHERE kind = $1 AND expires_at IS NOT NULL AND expires_at < $2",
            )
            .bind(kind.as_str())
            .bind(now())
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        })
    }
}
