//! The schema, as a table of versioned migrations in each dialect, and the step that applies
//! the ones a database has not seen when the store opens.

use sqlx::{Connection, Row};

use super::{Store, StoreError, now};

/// One schema change, in each dialect.
struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every schema change in order. Append only: a database records the versions it applied.
const MIGRATIONS: &[Migration] = &[
    // The sealed records, one row per owner.
    Migration {
        version: 1,
        sqlite: "CREATE TABLE vault_entries (
        kind TEXT NOT NULL, workload TEXT NOT NULL, user_issuer TEXT NOT NULL, user_id TEXT NOT NULL,
        provider TEXT NOT NULL, qualifier TEXT NOT NULL,
        sealed BLOB NOT NULL, kek_id TEXT NOT NULL, record_version BIGINT NOT NULL,
        expires_at BIGINT, scopes TEXT NOT NULL, updated_at BIGINT NOT NULL,
        PRIMARY KEY (kind, workload, user_issuer, user_id, provider, qualifier))",
        postgres: "CREATE TABLE vault_entries (
        kind TEXT NOT NULL, workload TEXT NOT NULL, user_issuer TEXT NOT NULL, user_id TEXT NOT NULL,
        provider TEXT NOT NULL, qualifier TEXT NOT NULL,
        sealed BYTEA NOT NULL, kek_id TEXT NOT NULL, record_version BIGINT NOT NULL,
        expires_at BIGINT, scopes TEXT NOT NULL, updated_at BIGINT NOT NULL,
        PRIMARY KEY (kind, workload, user_issuer, user_id, provider, qualifier))",
    },
    // Every write and delete is recorded here, so other processes (replicas, the CLI) can
    // invalidate their caches: readers poll for sequence numbers above the last they saw.
    Migration {
        version: 2,
        sqlite: "CREATE TABLE vault_changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, workload TEXT NOT NULL,
            user_issuer TEXT NOT NULL, user_id TEXT NOT NULL, provider TEXT NOT NULL, qualifier TEXT NOT NULL,
            changed_at BIGINT NOT NULL)",
        postgres: "CREATE TABLE vault_changes (
            seq BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, workload TEXT NOT NULL,
            user_issuer TEXT NOT NULL, user_id TEXT NOT NULL, provider TEXT NOT NULL, qualifier TEXT NOT NULL,
            changed_at BIGINT NOT NULL)",
    },
    // PostgreSQL tells every listening replica about each change as it commits (LISTEN
    // keygate_vault), so caches are invalidated in milliseconds; the change log stays the
    // durable record that polling and resyncs read.
    Migration {
        version: 3,
        sqlite: "SELECT 1",
        postgres: "CREATE OR REPLACE FUNCTION keygate_vault_notify() RETURNS trigger AS $$
            BEGIN PERFORM pg_notify('keygate_vault', NEW.seq::text); RETURN NEW; END;
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER keygate_vault_changed AFTER INSERT ON vault_changes
            FOR EACH ROW EXECUTE FUNCTION keygate_vault_notify();",
    },
    // Readers re-read recent changes by time (see `changes_since`).
    Migration {
        version: 4,
        sqlite: "CREATE INDEX vault_changes_changed_at ON vault_changes (changed_at)",
        postgres: "CREATE INDEX vault_changes_changed_at ON vault_changes (changed_at)",
    },
    // Signatures of identity API requests already served, so a captured request cannot be
    // replayed within its validity window (on any replica sharing the store).
    Migration {
        version: 5,
        sqlite: "CREATE TABLE used_signatures (signature TEXT PRIMARY KEY, first_used_ms BIGINT NOT NULL, expires_at BIGINT NOT NULL)",
        postgres: "CREATE TABLE used_signatures (signature TEXT PRIMARY KEY, first_used_ms BIGINT NOT NULL, expires_at BIGINT NOT NULL)",
    },
];

/// The advisory-lock key every replica takes before touching the schema.
const MIGRATION_LOCK: i64 = 7_316_520_001;

impl Store {
    /// Applies the migrations this database has not seen, all in one transaction. On
    /// PostgreSQL that transaction first takes an advisory lock, so every DDL statement (the
    /// schema table's own included) runs under it: replicas starting together on a fresh
    /// database migrate once, one after the other, and the later ones find the work done.
    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        const CREATE: &str = "CREATE TABLE IF NOT EXISTS keygate_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)";
        on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            if matches!(self, Store::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(CREATE).execute(&mut *tx).await?;
            for migration in MIGRATIONS {
                let applied: Option<i64> =
                    sqlx::query("SELECT version FROM keygate_schema WHERE version = $1")
                        .bind(migration.version)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|row| row.try_get(0))
                        .transpose()?;
                if applied.is_some() {
                    continue;
                }
                let sql = match self {
                    Store::Sqlite(_) => migration.sqlite,
                    Store::Postgres(_) => migration.postgres,
                };
                sqlx::raw_sql(sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO keygate_schema (version, applied_at) VALUES ($1, $2)")
                    .bind(migration.version)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                tracing::info!(version = migration.version, "vault schema migrated");
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The schema version the database is at (public for the store tests that check migrations).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        on_pool!(self, |pool| {
            let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM keygate_schema")
                .fetch_one(pool)
                .await?;
            Ok(row.try_get::<i64, _>(0)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn versions_count_up_from_one_without_gaps() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i64::try_from(i).unwrap() + 1);
        }
    }
}
