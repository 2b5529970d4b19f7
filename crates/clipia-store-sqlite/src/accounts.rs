//! Accounts, keys, limits and the credit ledger: the write halves, run on the writer connection.

use clipia_core::ledger::apply;
use clipia_core::{AccountId, EntryKind, KeyId};
use clipia_store::{Account, Balance, KeyRecord, LimitOverrides, NewKey, StoreError, StoreResult};
use sqlx::sqlite::SqliteConnection;
use sqlx::Row;

use crate::rows::{self, db_err};

pub async fn create_account(conn: &mut SqliteConnection, name: &str, now: i64) -> StoreResult<Account> {
    let id = AccountId::generate();
    let result = sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)")
        .bind(id.as_str())
        .bind(name)
        .bind(now)
        .execute(&mut *conn)
        .await;
    match result {
        Ok(_) => Ok(Account { id, name: name.to_owned(), created_at: now }),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Conflict(format!("an account named {name:?} already exists")))
        }
        Err(e) => Err(db_err(e)),
    }
}

pub async fn create_key(conn: &mut SqliteConnection, key: NewKey, now: i64) -> StoreResult<KeyRecord> {
    let limits = crate::accounts::limits_of(conn, &key.account).await?;
    sqlx::query(
        "INSERT INTO api_keys (id, account_id, mode, scopes, name, prefix, hash, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(key.id.as_str())
    .bind(key.account.as_str())
    .bind(key.mode.as_str())
    .bind(key.scopes.to_list())
    .bind(key.name.as_deref())
    .bind(&key.prefix)
    .bind(key.hash.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(KeyRecord {
        id: key.id,
        account: key.account,
        mode: key.mode,
        scopes: key.scopes,
        name: key.name,
        prefix: key.prefix,
        hash: key.hash,
        created_at: now,
        revoked_at: None,
        running: 0,
        limits,
    })
}

pub async fn revoke_key(
    conn: &mut SqliteConnection,
    account: Option<AccountId>,
    key: KeyId,
    now: i64,
) -> StoreResult<Option<KeyRecord>> {
    sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL AND (? IS NULL OR account_id = ?)")
        .bind(now)
        .bind(key.as_str())
        .bind(account.as_ref().map(AccountId::as_str))
        .bind(account.as_ref().map(AccountId::as_str))
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let sql = format!("{} WHERE k.id = ? AND (? IS NULL OR k.account_id = ?)", rows::KEY_SELECT);
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key.as_str())
        .bind(account.as_ref().map(AccountId::as_str))
        .bind(account.as_ref().map(AccountId::as_str))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(rows::key).transpose()
}

pub async fn set_limits(conn: &mut SqliteConnection, account: AccountId, l: LimitOverrides) -> StoreResult<LimitOverrides> {
    let row = sqlx::query(
        "UPDATE accounts SET rpm = coalesce(?, rpm), concurrency = coalesce(?, concurrency), \
         queued_max = coalesce(?, queued_max) WHERE id = ? RETURNING rpm, concurrency, queued_max",
    )
    .bind(l.requests_per_minute.map(i64::from))
    .bind(l.concurrent_generations.map(i64::from))
    .bind(l.queued_jobs_max.map(i64::from))
    .bind(account.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?
    .ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
    limits_from_row(&row)
}

pub async fn limits_of(conn: &mut SqliteConnection, account: &AccountId) -> StoreResult<LimitOverrides> {
    let row = sqlx::query("SELECT rpm, concurrency, queued_max FROM accounts WHERE id = ?")
        .bind(account.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
    limits_from_row(&row)
}

pub fn limits_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<LimitOverrides> {
    let get = |c: &str| row.try_get::<Option<i64>, _>(c).map(|v| v.map(|v| v.clamp(0, u32::MAX as i64) as u32));
    Ok(LimitOverrides {
        requests_per_minute: get("rpm").map_err(db_err)?,
        concurrent_generations: get("concurrency").map_err(db_err)?,
        queued_jobs_max: get("queued_max").map_err(db_err)?,
    })
}

pub async fn balance(conn: &mut SqliteConnection, account: &AccountId) -> StoreResult<Balance> {
    let row = sqlx::query("SELECT credits_available, credits_reserved FROM accounts WHERE id = ?")
        .bind(account.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
    Ok(Balance {
        available: row.try_get::<i64, _>(0).map_err(db_err)? as u64,
        reserved: row.try_get::<i64, _>(1).map_err(db_err)? as u64,
    })
}

/// Appends one ledger entry and moves the balance caches with it, refusing (as a `Conflict`)
/// an entry that would take the spendable balance below zero.
pub async fn post_entry(
    conn: &mut SqliteConnection,
    account: &AccountId,
    kind: EntryKind,
    amount: i64,
    request_id: Option<&str>,
    reason: Option<&str>,
    now: i64,
) -> StoreResult<Balance> {
    let before = balance(conn, account).await?;
    let (available, reserved) = apply(before.available, before.reserved, kind, amount).ok_or_else(|| {
        StoreError::Conflict(format!(
            "{} of {amount} would take the balance below zero ({} available)",
            kind.as_str(),
            before.available
        ))
    })?;
    sqlx::query("INSERT INTO ledger (account_id, kind, amount, request_id, reason, created_at) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(account.as_str())
        .bind(kind.as_str())
        .bind(amount)
        .bind(request_id)
        .bind(reason)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    sqlx::query("UPDATE accounts SET credits_available = ?, credits_reserved = ? WHERE id = ?")
        .bind(available as i64)
        .bind(reserved as i64)
        .bind(account.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(Balance { available, reserved })
}
