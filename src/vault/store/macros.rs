//! The SQL both backends share, as macros over either pool: the owner and record columns bound
//! and read in one order everywhere, and the change-log row every write appends.

/// Runs the same statement on whichever pool the store has.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::vault::store::Store::Sqlite($pool) => $body,
            $crate::vault::store::Store::Postgres($pool) => $body,
        }
    };
}

/// Binds the six owner columns, in `OWNER_MATCH` order ($1..$6).
macro_rules! bind_owner {
    ($query:expr, $owner:expr) => {
        $query
            .bind($owner.kind.as_str())
            .bind(&$owner.workload)
            .bind(&$owner.user_issuer)
            .bind(&$owner.user_id)
            .bind(&$owner.provider)
            .bind(&$owner.qualifier)
    };
}

/// Binds an entry's record columns after the owner's ($7..$12, in the order of `put`).
macro_rules! bind_record {
    ($query:expr, $entry:expr) => {
        $query
            .bind(&$entry.sealed)
            .bind(&$entry.kek_id)
            .bind($entry.expires_at)
            .bind(&$entry.scopes)
            .bind($entry.updated_at)
            .bind($entry.version)
    };
}

/// An `Owner` from a row holding the six owner columns.
macro_rules! owner_from_row {
    ($row:expr) => {
        $crate::vault::owner::Owner {
            kind: $crate::vault::owner::OwnerKind::from_stored(&$row.try_get::<String, _>("kind")?),
            workload: $row.try_get("workload")?,
            user_issuer: $row.try_get("user_issuer")?,
            user_id: $row.try_get("user_id")?,
            provider: $row.try_get("provider")?,
            qualifier: $row.try_get("qualifier")?,
        }
    };
}

/// An `Entry` from a row holding the record columns, for `owner`.
macro_rules! entry_from_row {
    ($row:expr, $owner:expr) => {
        $crate::vault::store::Entry {
            owner: $owner,
            sealed: $row.try_get("sealed")?,
            kek_id: $row.try_get("kek_id")?,
            version: $row.try_get("record_version")?,
            expires_at: $row.try_get("expires_at")?,
            scopes: $row.try_get("scopes")?,
            updated_at: $row.try_get("updated_at")?,
        }
    };
}

pub(super) const RECORD_CHANGE: &str = "INSERT INTO vault_changes (kind, workload, user_issuer, user_id, provider, qualifier, changed_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Appends a change row for `owner` inside transaction `tx`.
macro_rules! record_change {
    ($tx:ident, $owner:expr) => {
        bind_owner!(
            sqlx::query($crate::vault::store::macros::RECORD_CHANGE),
            $owner
        )
        .bind($crate::vault::store::now())
        .execute(&mut *$tx)
        .await?
    };
}
