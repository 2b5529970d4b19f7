//! Jobs and the queue: submit, claim, heartbeat, finish, cancel, lease expiry. Every function
//! here runs inside one transaction that the caller opened.
//!
//! Row locks are always taken in one order — jobs, then accounts, then api_keys — so that
//! transactions of different nodes never wait on each other in a cycle. Claims skip rows other
//! nodes hold (`FOR UPDATE SKIP LOCKED`); every later write about a claimed job is fenced by its
//! `attempt`, so a node that lost its lease can never overwrite the attempt that took over.

use clipia_core::job::ERROR_WORKER_LOST;
use clipia_core::limits::{JOB_ATTEMPTS_MAX, JOB_LOG_LINES_MAX};
use clipia_core::{EntryKind, JobError, RequestId, Settlement, Status};
use clipia_store::{
    ClaimRequest, Claimed, InitialState, JobEnd, JobRecord, Lease, LeaseState, LogLevel, NewJob, StoreError,
    StoreResult, SubmitOutcome, SubmitSnapshot,
};
use serde_json::json;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::accounts::insert_entry;
use crate::rows::{self, db_err};

/// Keys at their concurrency limit one claim steps over before it gives up until the next try.
const CLAIM_SKIPPED_KEYS_MAX: usize = 8;
/// Expired leases handled by one reaper transaction.
const EXPIRED_PER_PASS_MAX: i64 = 100;

pub async fn by_id(conn: &mut PgConnection, id: &str, lock: bool) -> StoreResult<Option<JobRecord>> {
    let sql = format!("SELECT {} FROM jobs WHERE id = $1{}", rows::JOB_COLUMNS, if lock { " FOR UPDATE" } else { "" });
    let row = sqlx::query(AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *conn).await.map_err(db_err)?;
    row.as_ref().map(rows::job).transpose()
}

pub async fn queue_position(conn: &mut PgConnection, id: &str) -> StoreResult<u64> {
    // The job's own lane and virtual time first (one index lookup), then a range count on the
    // partial queue index; written so that no generic plan can turn it into a join.
    let me: Option<(String, i64)> = sqlx::query_as("SELECT lane, vtime FROM jobs WHERE id = $1 AND status = 'IN_QUEUE'")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    let Some((lane, vtime)) = me else { return Ok(0) };
    lane_position(conn, &lane, vtime).await
}

/// Queued jobs of `lane` ahead of virtual time `vtime`.
async fn lane_position(conn: &mut PgConnection, lane: &str, vtime: i64) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'IN_QUEUE' AND lane = $1 AND vtime < $2")
        .bind(lane)
        .bind(vtime)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(n.max(0) as u64)
}

fn snapshot_json(s: &SubmitSnapshot) -> String {
    json!({
        "request_id": s.request_id.to_string(),
        "status": s.status.as_str(),
        "queue_position": s.queue_position,
        "cost": s.cost,
        "warnings": s.warnings,
    })
    .to_string()
}

fn snapshot_from_json(text: &str) -> StoreResult<SubmitSnapshot> {
    let bad = || StoreError::Backend("stored idempotent response is invalid".into());
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
    Ok(SubmitSnapshot {
        request_id: v["request_id"].as_str().and_then(RequestId::parse).ok_or_else(bad)?,
        status: v["status"].as_str().and_then(Status::parse).ok_or_else(bad)?,
        queue_position: v["queue_position"].as_u64(),
        cost: v["cost"].as_u64().ok_or_else(bad)?,
        warnings: v["warnings"].clone(),
    })
}

/// What a submit transaction decided: refusals roll back whatever the transaction wrote.
pub enum Submitted {
    Commit(SubmitOutcome),
    Rollback(SubmitOutcome),
}

pub async fn submit(conn: &mut PgConnection, job: &NewJob) -> StoreResult<Submitted> {
    let account = job.tenant.account.as_str();
    let mode = job.tenant.mode.as_str();
    let id = job.id.to_string();
    if let Some(idem) = &job.idempotency {
        // Claim the key first: a concurrent submit with the same key (on any node) waits here
        // until this transaction ends, then finds the row and replays it.
        let fresh = sqlx::query(
            "INSERT INTO idempotency (account_id, mode, key, fingerprint, request_id, response, created_at) \
             VALUES ($1, $2, $3, $4, $5, '', $6) ON CONFLICT DO NOTHING",
        )
        .bind(account)
        .bind(mode)
        .bind(&idem.key)
        .bind(&idem.fingerprint)
        .bind(&id)
        .bind(job.now_ms)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        if !fresh {
            let row = sqlx::query("SELECT fingerprint, response FROM idempotency WHERE account_id = $1 AND mode = $2 AND key = $3")
                .bind(account)
                .bind(mode)
                .bind(&idem.key)
                .fetch_one(&mut *conn)
                .await
                .map_err(db_err)?;
            let fingerprint: String = row.get(0);
            if fingerprint != idem.fingerprint {
                return Ok(Submitted::Commit(SubmitOutcome::IdempotencyConflict));
            }
            return Ok(Submitted::Commit(SubmitOutcome::Replayed(snapshot_from_json(row.get::<&str, _>(1))?)));
        }
    }

    // Reserve and take a virtual time in one conditional UPDATE of the account. Fair queuing: a
    // job's virtual time is one past the later of the lane's clock and its account's latest
    // job, so a newly active account interleaves with a long backlog.
    let cost = if job.reserve { job.cost as i64 } else { 0 };
    let vtime: Option<i64> = sqlx::query_scalar(
        "UPDATE accounts SET credits_available = credits_available - $2, credits_reserved = credits_reserved + $2, \
         last_vtime = greatest(last_vtime, coalesce((SELECT vclock FROM queue_clock WHERE lane = $3), 0)) + 1 \
         WHERE id = $1 AND credits_available >= $2 RETURNING last_vtime",
    )
    .bind(account)
    .bind(cost)
    .bind(&job.lane)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    let Some(vtime) = vtime else {
        let available = crate::accounts::balance(conn, &job.tenant.account).await?.available;
        return Ok(Submitted::Rollback(SubmitOutcome::InsufficientCredits { cost: job.cost, available }));
    };
    let queued = matches!(job.initial, InitialState::Queued { .. });
    if queued {
        let counted = sqlx::query("UPDATE api_keys SET jobs_queued = jobs_queued + 1 WHERE id = $1 AND jobs_queued < $2")
            .bind(job.key.as_str())
            .bind(i64::from(job.queued_jobs_max))
            .execute(&mut *conn)
            .await
            .map_err(db_err)?
            .rows_affected();
        if counted == 0 {
            return Ok(Submitted::Rollback(SubmitOutcome::QueueFull { queued_jobs_max: job.queued_jobs_max }));
        }
    }

    let (status, run_after, output, error, completed_at, charged) = match &job.initial {
        InitialState::Queued { run_after } => (Status::InQueue, *run_after, None, None, None, None),
        InitialState::Completed { output } => {
            (Status::Completed, job.now_ms, Some(output.to_string()), None, Some(job.now_ms), Some(job.cost as i64))
        }
        InitialState::Failed { error } => (Status::Failed, job.now_ms, None, Some(error.clone()), Some(job.now_ms), Some(0)),
    };
    sqlx::query(
        "INSERT INTO jobs (id, account_id, mode, key_id, model, lane, status, input, metadata, webhook_url, \
         cost_reserved, cost_charged, output, error_code, error_message, vtime, run_after, created_at, \
         started_at, completed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19)",
    )
    .bind(&id)
    .bind(account)
    .bind(mode)
    .bind(job.key.as_str())
    .bind(&job.model)
    .bind(&job.lane)
    .bind(status.as_str())
    .bind(job.input.to_string())
    .bind(job.metadata.as_ref().map(|m| m.to_string()))
    .bind(job.webhook_url.as_deref())
    .bind(job.cost as i64)
    .bind(charged)
    .bind(output)
    .bind(error.as_ref().map(|e| e.code.clone()))
    .bind(error.as_ref().map(|e| e.message.clone()))
    .bind(vtime)
    .bind(run_after)
    .bind(job.now_ms)
    .bind(completed_at)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    if let (Some(url), false) = (job.webhook_url.as_deref(), queued) {
        // Created terminal (sandbox): its webhook event enters the outbox in this transaction.
        crate::webhooks::enqueue(conn, &id, account, mode, url, job.now_ms).await?;
    }
    if job.reserve {
        sqlx::query(
            "WITH r AS (INSERT INTO reservations (request_id, account_id, amount) VALUES ($1, $2, $3)) \
             INSERT INTO ledger (account_id, kind, amount, request_id, created_at) VALUES ($2, 'reserve', $3, $1, $4)",
        )
        .bind(&id)
        .bind(account)
        .bind(cost)
        .bind(job.now_ms)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    let queue_position = if queued { lane_position(conn, &job.lane, vtime).await? } else { 0 };
    let snapshot = SubmitSnapshot {
        request_id: job.id,
        status,
        queue_position: Some(queue_position),
        cost: job.cost,
        warnings: job.warnings.clone(),
    };
    if let Some(idem) = &job.idempotency {
        sqlx::query("UPDATE idempotency SET response = $4 WHERE account_id = $1 AND mode = $2 AND key = $3")
            .bind(account)
            .bind(mode)
            .bind(&idem.key)
            .bind(snapshot_json(&snapshot))
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(Submitted::Commit(SubmitOutcome::Created(snapshot)))
}

/// Resolves a job's reservation exactly once. The `resolved_at IS NULL` guard and the ledger's
/// one-entry-per-kind index make a second resolution impossible, whoever attempts it.
async fn settle(conn: &mut PgConnection, job: &JobRecord, settlement: Settlement, now: i64) -> StoreResult<()> {
    let id = job.id.to_string();
    let resolved = sqlx::query(
        "UPDATE reservations SET captured = $1, released = $2, resolved_at = $3 WHERE request_id = $4 AND resolved_at IS NULL",
    )
    .bind(settlement.capture as i64)
    .bind(settlement.release as i64)
    .bind(now)
    .bind(&id)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?
    .rows_affected();
    if resolved == 0 {
        return Ok(()); // a test-mode job, or already resolved
    }
    let (capture, release) = (settlement.capture as i64, settlement.release as i64);
    let moved = sqlx::query(
        "UPDATE accounts SET credits_available = credits_available + $2, credits_reserved = credits_reserved - $3 \
         WHERE id = $1 AND credits_reserved >= $3",
    )
    .bind(job.account.as_str())
    .bind(release)
    .bind(capture + release)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?
    .rows_affected();
    if moved == 0 {
        return Err(StoreError::Conflict(format!("the reservation of {id} exceeds the account's reserved credits")));
    }
    if capture > 0 {
        insert_entry(conn, &job.account, EntryKind::Capture, capture, Some(&id), None, now).await?;
    }
    if release > 0 {
        insert_entry(conn, &job.account, EntryKind::Release, release, Some(&id), None, now).await?;
    }
    Ok(())
}

pub async fn append_log(conn: &mut PgConnection, id: &str, level: LogLevel, message: &str, now: i64) -> StoreResult<()> {
    // A line racing another for the same number is dropped rather than failing the caller's
    // transaction: logs are informative, the job's state is not.
    sqlx::query(
        "INSERT INTO job_logs (job_id, n, ts, level, message) \
         SELECT $1, coalesce(max(n), 0) + 1, $2, $3, $4 FROM job_logs WHERE job_id = $1 \
         HAVING coalesce(max(n), 0) < $5 ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(now)
    .bind(level.as_str())
    .bind(message)
    .bind(JOB_LOG_LINES_MAX)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

pub async fn claim(conn: &mut PgConnection, c: &ClaimRequest<'_>) -> StoreResult<Option<Claimed>> {
    let mut full_keys: Vec<String> = Vec::new();
    loop {
        let picked = sqlx::query(
            "SELECT j.seq, j.vtime, j.key_id FROM jobs j \
             WHERE j.status = 'IN_QUEUE' AND j.lane = $1 AND j.run_after <= $2 AND NOT (j.key_id = ANY($4)) \
               AND NOT EXISTS (SELECT 1 FROM api_keys k JOIN accounts a ON a.id = k.account_id \
                               WHERE k.id = j.key_id AND k.jobs_running >= coalesce(a.concurrency, $3)) \
             ORDER BY j.vtime LIMIT 1 FOR UPDATE OF j SKIP LOCKED",
        )
        .bind(c.lane)
        .bind(c.now_ms)
        .bind(i64::from(c.concurrency_default))
        .bind(&full_keys)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
        let Some(row) = picked else { return Ok(None) };
        let (seq, vtime, key_id): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
        // The read above may be stale by now; this conditional increment is the real check of
        // the key's concurrency, serialized by the key's row lock across all nodes.
        let slot = sqlx::query(
            "UPDATE api_keys k SET jobs_queued = k.jobs_queued - 1, jobs_running = k.jobs_running + 1 \
             FROM accounts a WHERE k.id = $1 AND a.id = k.account_id AND k.jobs_running < coalesce(a.concurrency, $2)",
        )
        .bind(&key_id)
        .bind(i64::from(c.concurrency_default))
        .execute(&mut *conn)
        .await
        .map_err(db_err)?
        .rows_affected();
        if slot == 0 {
            if full_keys.len() >= CLAIM_SKIPPED_KEYS_MAX {
                return Ok(None);
            }
            full_keys.push(key_id);
            continue;
        }
        let sql = format!(
            "UPDATE jobs SET status = 'IN_PROGRESS', attempt = attempt + 1, lease_owner = $1, lease_expires_at = $2, \
             started_at = coalesce(started_at, $3), progress = 0 WHERE seq = $4 RETURNING {}",
            rows::JOB_COLUMNS
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(c.runner)
            .bind(c.now_ms + c.lease_ms)
            .bind(c.now_ms)
            .bind(seq)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        let job = rows::job(&row)?;
        // Advance the lane's clock unless another claim holds it right now: that one advances
        // it too, and waiting for it would serialize every claim of the lane.
        sqlx::query(
            "WITH up AS (UPDATE queue_clock SET vclock = $2 WHERE lane = \
               (SELECT lane FROM queue_clock WHERE lane = $1 FOR UPDATE SKIP LOCKED) AND vclock < $2 RETURNING 1) \
             INSERT INTO queue_clock (lane, vclock) SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM up) \
             ON CONFLICT (lane) DO NOTHING",
        )
        .bind(c.lane)
        .bind(vtime)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
        let message = if job.attempt > 1 { format!("attempt {} started", job.attempt) } else { "started".to_owned() };
        append_log(conn, &job.id.to_string(), LogLevel::Info, &message, c.now_ms).await?;
        return Ok(Some(Claimed { lease: Lease { job: job.id, attempt: job.attempt, runner: c.runner.to_owned() }, job }));
    }
}

pub async fn heartbeat(conn: &mut PgConnection, lease: &Lease, progress: Option<u8>, lease_ms: i64, now: i64) -> StoreResult<LeaseState> {
    let row = sqlx::query(
        "UPDATE jobs SET lease_expires_at = $1, progress = coalesce($2, progress) \
         WHERE id = $3 AND attempt = $4 AND status = 'IN_PROGRESS' RETURNING cancel_requested",
    )
    .bind(now + lease_ms)
    .bind(progress.map(i64::from))
    .bind(lease.job.to_string())
    .bind(lease.attempt)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(match row {
        Some(row) => LeaseState::Held { cancel_requested: row.get::<bool, _>(0) },
        None => LeaseState::Lost,
    })
}

/// Moves a job (locked by the caller) to a terminal state and settles its reservation.
async fn terminate(conn: &mut PgConnection, job: &JobRecord, end: &JobEnd, now: i64) -> StoreResult<JobRecord> {
    let id = job.id.to_string();
    let (status, output, error, charged, settlement) = match end {
        JobEnd::Completed { output, used } => {
            let s = Settlement::completed(job.cost_reserved, *used);
            (Status::Completed, Some(output.to_string()), None, s.capture, s)
        }
        JobEnd::Failed(e) => (Status::Failed, None, Some(e.clone()), 0, Settlement::refunded(job.cost_reserved)),
        JobEnd::Canceled => (Status::Canceled, None, Some(JobError::canceled()), 0, Settlement::refunded(job.cost_reserved)),
    };
    let sql = format!(
        "UPDATE jobs SET status = $1, output = $2, error_code = $3, error_message = $4, cost_charged = $5, \
         completed_at = $6, lease_owner = NULL, lease_expires_at = NULL, \
         progress = CASE WHEN $1 = 'COMPLETED' THEN 100 ELSE progress END WHERE id = $7 RETURNING {}",
        rows::JOB_COLUMNS
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(status.as_str())
        .bind(output)
        .bind(error.as_ref().map(|e| e.code.clone()))
        .bind(error.as_ref().map(|e| e.message.clone()))
        .bind(charged as i64)
        .bind(now)
        .bind(&id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    settle(conn, job, settlement, now).await?; // accounts before api_keys: the lock order
    let counter = match job.status {
        Status::InQueue => "UPDATE api_keys SET jobs_queued = jobs_queued - 1 WHERE id = $1",
        _ => "UPDATE api_keys SET jobs_running = jobs_running - 1 WHERE id = $1",
    };
    sqlx::query(counter).bind(job.key.as_str()).execute(&mut *conn).await.map_err(db_err)?;
    let line = match &error {
        None => (LogLevel::Info, "completed".to_owned()),
        Some(e) => (LogLevel::Error, format!("{}: {}", e.code, e.message)),
    };
    append_log(conn, &id, line.0, &line.1, now).await?;
    if let Some(url) = job.webhook_url.as_deref() {
        // The outbox row commits with the terminal status, so no crash can lose the webhook.
        crate::webhooks::enqueue(conn, &id, job.account.as_str(), job.mode.as_str(), url, now).await?;
    }
    rows::job(&row)
}

pub async fn finish(conn: &mut PgConnection, lease: &Lease, end: &JobEnd, now: i64) -> StoreResult<Option<JobRecord>> {
    let Some(job) = by_id(conn, &lease.job.to_string(), true).await? else { return Ok(None) };
    if job.status != Status::InProgress || job.attempt != lease.attempt {
        return Ok(None); // fenced: a newer attempt (or a cancel) owns the job now
    }
    terminate(conn, &job, end, now).await.map(Some)
}

pub async fn release(conn: &mut PgConnection, lease: &Lease, now: i64) -> StoreResult<Option<JobRecord>> {
    let Some(job) = by_id(conn, &lease.job.to_string(), true).await? else { return Ok(None) };
    if job.status != Status::InProgress || job.attempt != lease.attempt {
        return Ok(None);
    }
    requeue(conn, &job, "released by a stopping runner; back in the queue", now).await?;
    Ok(Some(job))
}

async fn requeue(conn: &mut PgConnection, job: &JobRecord, why: &str, now: i64) -> StoreResult<()> {
    let id = job.id.to_string();
    sqlx::query(
        "UPDATE jobs SET status = 'IN_QUEUE', lease_owner = NULL, lease_expires_at = NULL, progress = 0, run_after = $1 \
         WHERE id = $2",
    )
    .bind(now)
    .bind(&id)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    sqlx::query("UPDATE api_keys SET jobs_queued = jobs_queued + 1, jobs_running = jobs_running - 1 WHERE id = $1")
        .bind(job.key.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    append_log(conn, &id, LogLevel::Warn, why, now).await
}

/// Requeues (or, out of attempts, fails) jobs whose lease ran out; returns them as they now are.
pub async fn expire_leases(conn: &mut PgConnection, now: i64) -> StoreResult<Vec<JobRecord>> {
    let sql = format!(
        "SELECT {} FROM jobs WHERE status = 'IN_PROGRESS' AND lease_expires_at < $1 \
         ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        rows::JOB_COLUMNS
    );
    let rows = sqlx::query(AssertSqlSafe(sql)).bind(now).bind(EXPIRED_PER_PASS_MAX).fetch_all(&mut *conn).await.map_err(db_err)?;
    let mut expired = rows.iter().map(rows::job).collect::<StoreResult<Vec<_>>>()?;
    // Accounts and keys in a fixed order, so two reapers never lock them in a cycle.
    expired.sort_by(|a, b| (a.account.as_str(), a.key.as_str()).cmp(&(b.account.as_str(), b.key.as_str())));
    let mut out = Vec::with_capacity(expired.len());
    for job in expired {
        if job.cancel_requested {
            // Its owner asked to stop it: a lost runner ends it rather than running it again.
            out.push(terminate(conn, &job, &JobEnd::Canceled, now).await?);
        } else if job.attempt >= JOB_ATTEMPTS_MAX {
            let error = JobError::new(
                ERROR_WORKER_LOST,
                format!("The job's runner stopped responding {} times; credits were refunded.", job.attempt),
            );
            out.push(terminate(conn, &job, &JobEnd::Failed(error), now).await?);
        } else {
            requeue(conn, &job, &format!("lease of attempt {} expired; back in the queue", job.attempt), now).await?;
            out.push(JobRecord { status: Status::InQueue, progress: 0, ..job });
        }
    }
    Ok(out)
}

pub async fn cancel(conn: &mut PgConnection, job: JobRecord, now: i64) -> StoreResult<JobRecord> {
    match job.status {
        Status::InQueue => terminate(conn, &job, &JobEnd::Canceled, now).await,
        Status::InProgress if !job.cancel_requested => {
            let id = job.id.to_string();
            sqlx::query("UPDATE jobs SET cancel_requested = TRUE WHERE id = $1").bind(&id).execute(&mut *conn).await.map_err(db_err)?;
            append_log(conn, &id, LogLevel::Info, "cancel requested", now).await?;
            Ok(JobRecord { cancel_requested: true, ..job })
        }
        _ => Ok(job),
    }
}
