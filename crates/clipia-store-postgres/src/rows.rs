//! Mapping between PostgreSQL rows and store records, and between driver errors and store errors.

use clipia_core::{AccountId, JobError, KeyHash, KeyId, Mode, RequestId, Scopes, Status};
use clipia_store::{JobRecord, KeyRecord, LimitOverrides, StoreError, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::Row;

/// Marks a backend error after which the whole transaction may simply run again.
pub const RETRYABLE: &str = "retryable: ";

pub fn db_err(e: sqlx::Error) -> StoreError {
    if retryable(&e) {
        StoreError::Backend(format!("{RETRYABLE}{e}"))
    } else {
        StoreError::Backend(e.to_string())
    }
}

/// Deadlocks, serialization failures and lost connections (a restarted database, a terminated
/// backend): nothing was committed, so the transaction can run again on a fresh connection.
fn retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("40P01" | "40001" | "57P01" | "57P02" | "57P03" | "08006" | "08003")),
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

pub fn is_retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(m) if m.starts_with(RETRYABLE))
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Backend(format!("stored {what} is invalid: {value:?}"))
}

pub fn account_id(text: &str) -> StoreResult<AccountId> {
    AccountId::parse(text).ok_or_else(|| corrupt("account id", text))
}

pub fn request_id(text: &str) -> StoreResult<RequestId> {
    RequestId::parse(text).ok_or_else(|| corrupt("request id", text))
}

fn json(text: Option<String>) -> StoreResult<Option<serde_json::Value>> {
    text.map(|t| serde_json::from_str(&t).map_err(|_| corrupt("json", &t))).transpose()
}

pub const KEY_SELECT: &str = "SELECT k.id, k.account_id, k.mode, k.scopes, k.name, k.prefix, k.hash, k.created_at, \
    k.revoked_at, k.jobs_running, a.rpm, a.concurrency, a.queued_max FROM api_keys k JOIN accounts a ON a.id = k.account_id";

pub fn limits(row: &PgRow) -> StoreResult<LimitOverrides> {
    let get = |c: &str| row.try_get::<Option<i64>, _>(c).map(|v| v.map(|v| v.clamp(0, u32::MAX as i64) as u32));
    Ok(LimitOverrides {
        requests_per_minute: get("rpm").map_err(db_err)?,
        concurrent_generations: get("concurrency").map_err(db_err)?,
        queued_jobs_max: get("queued_max").map_err(db_err)?,
    })
}

pub fn key(row: &PgRow) -> StoreResult<KeyRecord> {
    let id: String = row.try_get("id").map_err(db_err)?;
    let mode: String = row.try_get("mode").map_err(db_err)?;
    let scopes: String = row.try_get("scopes").map_err(db_err)?;
    Ok(KeyRecord {
        id: KeyId::parse(&id).ok_or_else(|| corrupt("key id", &id))?,
        account: account_id(&row.try_get::<String, _>("account_id").map_err(db_err)?)?,
        mode: Mode::parse(&mode).ok_or_else(|| corrupt("mode", &mode))?,
        scopes: Scopes::parse_list(&scopes).map_err(|_| corrupt("scopes", &scopes))?,
        name: row.try_get("name").map_err(db_err)?,
        prefix: row.try_get("prefix").map_err(db_err)?,
        hash: KeyHash::from_stored(row.try_get("hash").map_err(db_err)?),
        created_at: row.try_get("created_at").map_err(db_err)?,
        revoked_at: row.try_get("revoked_at").map_err(db_err)?,
        running: row.try_get::<i64, _>("jobs_running").map_err(db_err)?.max(0) as u32,
        limits: limits(row)?,
    })
}

pub const JOB_COLUMNS: &str = "seq, id, account_id, mode, key_id, model, lane, status, input, metadata, \
    webhook_url, cost_reserved, cost_charged, output, error_code, error_message, progress, attempt, \
    cancel_requested, created_at, started_at, completed_at";

pub fn job(row: &PgRow) -> StoreResult<JobRecord> {
    let get_s = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
    let status = get_s("status")?;
    let mode = get_s("mode")?;
    let key_id = get_s("key_id")?;
    let error_code: Option<String> = row.try_get("error_code").map_err(db_err)?;
    let error_message: Option<String> = row.try_get("error_message").map_err(db_err)?;
    let input = get_s("input")?;
    Ok(JobRecord {
        id: request_id(&get_s("id")?)?,
        seq: row.try_get("seq").map_err(db_err)?,
        account: account_id(&get_s("account_id")?)?,
        mode: Mode::parse(&mode).ok_or_else(|| corrupt("mode", &mode))?,
        key: KeyId::parse(&key_id).ok_or_else(|| corrupt("key id", &key_id))?,
        model: get_s("model")?,
        lane: get_s("lane")?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        input: serde_json::from_str(&input).map_err(|_| corrupt("input", &input))?,
        metadata: json(row.try_get("metadata").map_err(db_err)?)?,
        webhook_url: row.try_get("webhook_url").map_err(db_err)?,
        cost_reserved: row.try_get::<i64, _>("cost_reserved").map_err(db_err)?.max(0) as u64,
        cost_charged: row.try_get::<Option<i64>, _>("cost_charged").map_err(db_err)?.map(|c| c.max(0) as u64),
        output: json(row.try_get("output").map_err(db_err)?)?,
        error: error_code.map(|code| JobError { code, message: error_message.unwrap_or_default() }),
        progress: row.try_get::<i64, _>("progress").map_err(db_err)?.clamp(0, 100) as u8,
        attempt: row.try_get("attempt").map_err(db_err)?,
        cancel_requested: row.try_get("cancel_requested").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        started_at: row.try_get("started_at").map_err(db_err)?,
        completed_at: row.try_get("completed_at").map_err(db_err)?,
    })
}
