//! The change log (`vault_changes`) other processes follow to invalidate their caches, and the
//! used request signatures (`used_signatures`) that refuse a replayed identity API request.

use sqlx::Row;

use super::{Store, StoreError, now, now_ms};
use crate::vault::owner::Owner;

impl Store {
    /// The newest change sequence number (0 when there is none).
    pub async fn latest_change(&self) -> Result<i64, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM vault_changes")
                .fetch_one(pool)
                .await?;
            Ok(row.try_get::<i64, _>(0)?)
        })
    }

    /// Owners changed after `seq`, with the newest sequence number seen.
    ///
    /// Rows changed at or after `recheck_from` (unix seconds) are returned again even below
    /// `seq`: on PostgreSQL sequence numbers are taken at insert, not at commit, so a slow
    /// transaction can commit a lower number after a higher one was already read.
    pub async fn changes_since(
        &self,
        seq: i64,
        recheck_from: i64,
    ) -> Result<Vec<(i64, Owner)>, StoreError> {
        const SQL: &str = "SELECT seq, kind, workload, user_issuer, user_id, provider, qualifier
            FROM vault_changes WHERE seq > $1 OR changed_at >= $2 ORDER BY seq LIMIT 10000";
        on_pool!(self, |pool| {
            let rows = sqlx::query(SQL)
                .bind(seq)
                .bind(recheck_from)
                .fetch_all(pool)
                .await?;
            let mut changes = Vec::with_capacity(rows.len());
            for row in &rows {
                changes.push((row.try_get::<i64, _>("seq")?, owner_from_row!(row)));
            }
            Ok(changes)
        })
    }

    /// Forgets change rows older than `age_secs` (readers that far behind resync fully).
    pub(crate) async fn prune_changes(&self, age_secs: i64) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM vault_changes WHERE changed_at < $1")
                .bind(now() - age_secs)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Records `signature` as used (now) until `expires_at`. `None` for its first use, else
    /// when it was first used (unix milliseconds). Concurrent first uses on any number of
    /// replicas: one of them inserts, the others read its row.
    pub(crate) async fn first_use(
        &self,
        signature: &str,
        expires_at: i64,
    ) -> Result<Option<i64>, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM used_signatures WHERE signature = $1 AND expires_at <= $2")
                .bind(signature)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO used_signatures (signature, first_used_ms, expires_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (signature) DO NOTHING",
            )
            .bind(signature)
            .bind(now_ms())
            .bind(expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let first = if inserted == 1 {
                None
            } else {
                let row =
                    sqlx::query("SELECT first_used_ms FROM used_signatures WHERE signature = $1")
                        .bind(signature)
                        .fetch_one(&mut *tx)
                        .await?;
                Some(row.try_get::<i64, _>(0)?)
            };
            tx.commit().await?;
            Ok(first)
        })
    }

    /// Forgets used signatures whose window has passed.
    pub(crate) async fn prune_used_signatures(&self) -> Result<u64, StoreError> {
        on_pool!(self, |pool| {
            Ok(
                sqlx::query("DELETE FROM used_signatures WHERE expires_at <= $1")
                    .bind(now())
                    .execute(pool)
                    .await?
                    .rows_affected(),
            )
        })
    }
}
