//! Accounts, keys, limits and the credit ledger. Every function runs on a connection the caller
//! may have inside a transaction; debits are conditional UPDATEs, so concurrent nodes can never
//! take a balance below zero (and the table's CHECK backs that up).

use clipia_core::{AccountId, EntryKind, KeyId};
use clipia_store::{Account, Balance, KeyRecord, LimitOverrides, NewKey, StoreError, StoreResult};
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::rows::{self, db_err};

pub async fn create_account(conn: &mut PgConnection, name: &str, now: i64) -> StoreResult<Account> {
    let id = AccountId::generate();
    let result = sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
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

pub async fn create_key(conn: &mut PgConnection, key: NewKey, now: i64) -> StoreResult<KeyRecord> {
    let limits = limits_of(conn, &key.account).await?;
    sqlx::query(
        "INSERT INTO api_keys (id, account_id, mode, scopes, name, prefix, hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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

pub async fn revoke_key(conn: &mut PgConnection, account: Option<&AccountId>, key: &KeyId, now: i64) -> StoreResult<Option<KeyRecord>> {
    let account = account.map(AccountId::as_str);
    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL AND ($3::text IS NULL OR account_id = $3)")
        .bind(now)
        .bind(key.as_str())
        .bind(account)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let sql = format!("{} WHERE k.id = $1 AND ($2::text IS NULL OR k.account_id = $2)", rows::KEY_SELECT);
    let row = sqlx::query(AssertSqlSafe(sql)).bind(key.as_str()).bind(account).fetch_optional(&mut *conn).await.map_err(db_err)?;
    row.as_ref().map(rows::key).transpose()
}

pub async fn set_limits(conn: &mut PgConnection, account: &AccountId, l: LimitOverrides) -> StoreResult<LimitOverrides> {
    let row = sqlx::query(
        "UPDATE accounts SET rpm = coalesce($1, rpm), concurrency = coalesce($2, concurrency), \
         queued_max = coalesce($3, queued_max) WHERE id = $4 RETURNING rpm, concurrency, queued_max",
    )
    .bind(l.requests_per_minute.map(i64::from))
    .bind(l.concurrent_generations.map(i64::from))
    .bind(l.queued_jobs_max.map(i64::from))
    .bind(account.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?
    .ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
    rows::limits(&row)
}

pub async fn limits_of(conn: &mut PgConnection, account: &AccountId) -> StoreResult<LimitOverrides> {
    let row = sqlx::query("SELECT rpm, concurrency, queued_max FROM accounts WHERE id = $1")
        .bind(account.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
    rows::limits(&row)
}

pub async fn balance(conn: &mut PgConnection, account: &AccountId) -> StoreResult<Balance> {
    let row = sqlx::query("SELECT credits_available, credits_reserved FROM accounts WHERE id = $1")
        .bind(account.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
    Ok(Balance {
        available: row.try_get::<i64, _>(0).map_err(db_err)?.max(0) as u64,
        reserved: row.try_get::<i64, _>(1).map_err(db_err)?.max(0) as u64,
    })
}

/// How an entry moves (spendable, reserved); the same rules as `clipia_core::ledger::apply`.
pub fn deltas(kind: EntryKind, amount: i64) -> (i64, i64) {
    let a = amount.saturating_abs();
    match kind {
        EntryKind::Grant | EntryKind::Adjust => (amount, 0),
        EntryKind::Reserve => (-a, a),
        EntryKind::Capture => (0, -a),
        EntryKind::Release => (a, -a),
    }
}

/// Appends one ledger entry and moves the balance caches with it in one conditional UPDATE,
/// refusing (as a `Conflict`) an entry that would take either balance below zero.
pub async fn post_entry(
    conn: &mut PgConnection,
    account: &AccountId,
    kind: EntryKind,
    amount: i64,
    request_id: Option<&str>,
    reason: Option<&str>,
    now: i64,
) -> StoreResult<Balance> {
    let (d_avail, d_res) = deltas(kind, amount);
    let row = sqlx::query(
        "UPDATE accounts SET credits_available = credits_available + $2, credits_reserved = credits_reserved + $3 \
         WHERE id = $1 AND credits_available + $2 >= 0 AND credits_reserved + $3 >= 0 \
         RETURNING credits_available, credits_reserved",
    )
    .bind(account.as_str())
    .bind(d_avail)
    .bind(d_res)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    let Some(row) = row else {
        let before = balance(conn, account).await?; // NotFound when there is no such account
        return Err(StoreError::Conflict(format!(
            "{} of {amount} would take the balance below zero ({} available)",
            kind.as_str(),
            before.available
        )));
    };
    insert_entry(conn, account, kind, amount, request_id, reason, now).await?;
    Ok(Balance { available: row.get::<i64, _>(0).max(0) as u64, reserved: row.get::<i64, _>(1).max(0) as u64 })
}

/// The ledger row alone, for callers that already moved the balance caches.
pub async fn insert_entry(
    conn: &mut PgConnection,
    account: &AccountId,
    kind: EntryKind,
    amount: i64,
    request_id: Option<&str>,
    reason: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO ledger (account_id, kind, amount, request_id, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(account.as_str())
        .bind(kind.as_str())
        .bind(amount)
        .bind(request_id)
        .bind(reason)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}
