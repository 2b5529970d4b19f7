//! Webhooks in PostgreSQL: tenants' signing secrets, the delivery outbox (claimed with
//! `FOR UPDATE SKIP LOCKED` and a lease in `next_attempt_at`, so one node at a time attempts a
//! delivery) and the attempt log. Writes run inside the caller's transaction.

use std::collections::HashMap;

use clipia_core::webhook::destination_host;
use clipia_core::{Mode, RequestId};
use clipia_store::{
    DeliveryLog, DeliveryNext, DeliveryState, ResendOutcome, StoreError, StoreResult, Tenant, WebhookAttempt,
    WebhookClaim, WebhookDelivery, WebhookSecretRecord,
};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::rows::{self, db_err};

const DELIVERY_COLUMNS: &str = "id, request_id, account_id, mode, url, host, state, attempts, round_start, \
    next_attempt_at, created_at, completed_at, last_error";

/// Due rows read per claim, before the per-host limits pick among them; bounds one claim's work.
const CLAIM_SCAN_ROWS_MAX: i64 = 1_000;

/// Inserts the outbox row of a job that just became terminal. Called inside the transaction
/// that writes the terminal status, so the two commit (or vanish) together.
pub async fn enqueue(conn: &mut PgConnection, request_id: &str, account: &str, mode: &str, url: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, request_id, account_id, mode, url, host, state, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7)",
    )
    .bind(uuid::Uuid::new_v4().hyphenated().to_string())
    .bind(request_id)
    .bind(account)
    .bind(mode)
    .bind(url)
    .bind(destination_host(url))
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

fn delivery(row: &PgRow) -> StoreResult<WebhookDelivery> {
    let get_s = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
    let (mode, state) = (get_s("mode")?, get_s("state")?);
    let count = |c: &str| row.try_get::<i64, _>(c).map_err(db_err).map(|n| n.clamp(0, u32::MAX as i64) as u32);
    Ok(WebhookDelivery {
        id: get_s("id")?,
        request_id: rows::request_id(&get_s("request_id")?)?,
        tenant: Tenant {
            account: rows::account_id(&get_s("account_id")?)?,
            mode: Mode::parse(&mode).ok_or_else(|| StoreError::Backend(format!("stored mode is invalid: {mode:?}")))?,
        },
        url: get_s("url")?,
        host: get_s("host")?,
        state: DeliveryState::parse(&state).ok_or_else(|| StoreError::Backend(format!("stored delivery state is invalid: {state:?}")))?,
        attempts: count("attempts")?,
        round_start: count("round_start")?,
        next_attempt_at: row.try_get("next_attempt_at").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        completed_at: row.try_get("completed_at").map_err(db_err)?,
        last_error: row.try_get("last_error").map_err(db_err)?,
    })
}

pub async fn secrets(conn: &mut PgConnection, tenant: &Tenant, now: i64) -> StoreResult<Vec<WebhookSecretRecord>> {
    let rows = sqlx::query(
        "SELECT secret, created_at, expires_at FROM webhook_secrets \
         WHERE account_id = $1 AND mode = $2 AND (expires_at IS NULL OR expires_at > $3) \
         ORDER BY expires_at IS NULL, created_at, seq",
    )
    .bind(tenant.account.as_str())
    .bind(tenant.mode.as_str())
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(rows.iter().map(|r| WebhookSecretRecord { secret: r.get(0), created_at: r.get(1), expires_at: r.get(2) }).collect())
}

pub async fn ensure_secret(conn: &mut PgConnection, tenant: &Tenant, candidate: &str, now: i64) -> StoreResult<Vec<WebhookSecretRecord>> {
    // The partial unique index allows one current secret; a racing creator (on any node) loses.
    sqlx::query("INSERT INTO webhook_secrets (account_id, mode, secret, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
        .bind(tenant.account.as_str())
        .bind(tenant.mode.as_str())
        .bind(candidate)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    secrets(conn, tenant, now).await
}

pub async fn rotate_secret(conn: &mut PgConnection, tenant: &Tenant, new_secret: &str, overlap_ms: i64, now: i64) -> StoreResult<Vec<WebhookSecretRecord>> {
    sqlx::query("UPDATE webhook_secrets SET expires_at = $1 WHERE account_id = $2 AND mode = $3 AND expires_at IS NULL")
        .bind(now + overlap_ms)
        .bind(tenant.account.as_str())
        .bind(tenant.mode.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    // Secrets rotated out earlier stop now: only the newest two ever sign together.
    sqlx::query("UPDATE webhook_secrets SET expires_at = $1 WHERE account_id = $2 AND mode = $3 AND expires_at > $1 AND expires_at < $4")
        .bind(now)
        .bind(tenant.account.as_str())
        .bind(tenant.mode.as_str())
        .bind(now + overlap_ms)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    sqlx::query("INSERT INTO webhook_secrets (account_id, mode, secret, created_at) VALUES ($1, $2, $3, $4)")
        .bind(tenant.account.as_str())
        .bind(tenant.mode.as_str())
        .bind(new_secret)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    secrets(conn, tenant, now).await
}

pub async fn claim(conn: &mut PgConnection, c: &WebhookClaim<'_>) -> StoreResult<Vec<WebhookDelivery>> {
    if c.limit == 0 {
        return Ok(Vec::new());
    }
    let due = sqlx::query(
        "SELECT id, host FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
         ORDER BY next_attempt_at, created_at LIMIT $2",
    )
    .bind(c.now_ms)
    .bind(CLAIM_SCAN_ROWS_MAX)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let mut taken: HashMap<String, u32> = HashMap::new();
    let mut picked = Vec::new();
    for row in &due {
        let (id, host): (String, String) = (row.get(0), row.get(1));
        let busy = c.in_flight.get(&host).copied().unwrap_or(0) + taken.get(&host).copied().unwrap_or(0);
        if busy >= c.per_host_max {
            continue; // a slow destination never takes the slots of the others
        }
        *taken.entry(host).or_default() += 1;
        picked.push(id);
        if picked.len() >= c.limit as usize {
            break;
        }
    }
    if picked.is_empty() {
        return Ok(Vec::new());
    }
    // Rows another node is claiming right now are skipped, and the due check is repeated under
    // the lock, so a delivery is leased to one node at a time.
    let sql = format!(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $1 \
         WHERE id IN (SELECT id FROM webhook_deliveries WHERE id = ANY($2) AND state = 'pending' \
                      AND next_attempt_at <= $3 FOR UPDATE SKIP LOCKED) \
         RETURNING {DELIVERY_COLUMNS}"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(c.now_ms + c.lease_ms)
        .bind(&picked)
        .bind(c.now_ms)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    let mut claimed = rows.iter().map(delivery).collect::<StoreResult<Vec<_>>>()?;
    claimed.sort_by_key(|d| (d.next_attempt_at, d.created_at));
    Ok(claimed)
}

pub async fn record_attempt(conn: &mut PgConnection, a: &WebhookAttempt, next: &DeliveryNext, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO webhook_attempts (webhook_id, n, started_at, duration_ms, status_code, error) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (webhook_id, n) DO NOTHING",
    )
    .bind(&a.webhook_id)
    .bind(i64::from(a.number))
    .bind(a.started_at)
    .bind(a.duration_ms)
    .bind(a.status_code.map(i64::from))
    .bind(a.error.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    let last_error = a.error.clone().or_else(|| a.status_code.filter(|s| !(200..300).contains(s)).map(|s| format!("HTTP {s}")));
    let (state, next_at, completed_at, last_error) = match next {
        DeliveryNext::Delivered => ("delivered", None, Some(now), None),
        DeliveryNext::Retry { at_ms } => ("pending", Some(*at_ms), None, last_error),
        DeliveryNext::Failed { reason } => ("failed", None, Some(now), Some(reason.clone())),
    };
    // Fenced by the attempt number: after a resend re-claimed the row, this older attempt's
    // verdict must not overwrite the newer round.
    sqlx::query(
        "UPDATE webhook_deliveries SET state = $1, next_attempt_at = coalesce($2, next_attempt_at), completed_at = $3, \
         last_error = $4 WHERE id = $5 AND attempts = $6",
    )
    .bind(state)
    .bind(next_at)
    .bind(completed_at)
    .bind(last_error)
    .bind(&a.webhook_id)
    .bind(i64::from(a.number))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub async fn deliveries(conn: &mut PgConnection, tenant: &Tenant, request: &RequestId) -> StoreResult<Vec<DeliveryLog>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE request_id = $1 AND account_id = $2 AND mode = $3 \
         ORDER BY created_at, seq"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(request.to_string())
        .bind(tenant.account.as_str())
        .bind(tenant.mode.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let delivery = delivery(row)?;
        let attempts = sqlx::query(
            "SELECT n, started_at, duration_ms, status_code, error FROM webhook_attempts WHERE webhook_id = $1 ORDER BY n",
        )
        .bind(&delivery.id)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| WebhookAttempt {
            webhook_id: delivery.id.clone(),
            number: r.get::<i64, _>(0).clamp(0, u32::MAX as i64) as u32,
            started_at: r.get(1),
            duration_ms: r.get(2),
            status_code: r.get::<Option<i64>, _>(3).and_then(|s| u16::try_from(s).ok()),
            error: r.get(4),
        })
        .collect();
        out.push(DeliveryLog { delivery, attempts });
    }
    Ok(out)
}

pub async fn resend(conn: &mut PgConnection, tenant: &Tenant, request: &RequestId, now: i64) -> StoreResult<ResendOutcome> {
    let id = request.to_string();
    let Some(job) = crate::jobs::by_id(conn, &id, true).await? else { return Ok(ResendOutcome::NotFound) };
    if job.account != tenant.account || job.mode != tenant.mode {
        return Ok(ResendOutcome::NotFound);
    }
    let Some(url) = job.webhook_url.as_deref() else { return Ok(ResendOutcome::NoWebhookUrl) };
    if !job.status.is_terminal() {
        return Ok(ResendOutcome::NotTerminal);
    }
    let latest: Option<String> =
        sqlx::query_scalar("SELECT id FROM webhook_deliveries WHERE request_id = $1 ORDER BY created_at DESC, seq DESC LIMIT 1")
            .bind(&id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
    let webhook_id = match latest {
        Some(w) => w,
        None => {
            enqueue(conn, &id, tenant.account.as_str(), tenant.mode.as_str(), url, now).await?;
            return deliveries(conn, tenant, request)
                .await?
                .pop()
                .map(|log| ResendOutcome::Armed(log.delivery))
                .ok_or_else(|| StoreError::Backend("the new delivery vanished".into()));
        }
    };
    // Due now. A delivery mid-attempt may then be sent twice (at-least-once); the attempt fence
    // keeps the older attempt's verdict from overwriting the new round.
    let sql = format!(
        "UPDATE webhook_deliveries SET state = 'pending', round_start = attempts, next_attempt_at = least(next_attempt_at, $1), \
         completed_at = NULL WHERE id = $2 RETURNING {DELIVERY_COLUMNS}"
    );
    let row = sqlx::query(AssertSqlSafe(sql)).bind(now).bind(&webhook_id).fetch_one(&mut *conn).await.map_err(db_err)?;
    Ok(ResendOutcome::Armed(delivery(&row)?))
}
