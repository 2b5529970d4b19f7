//! Jobs and the queue: submit, claim, heartbeat, finish, cancel, lease expiry. Every function
//! here runs inside the writer's transaction, so each is atomic.

use clipia_core::limits::{JOB_ATTEMPTS_MAX, JOB_LOG_LINES_MAX};
use clipia_core::{EntryKind, JobError, RequestId, Settlement, Status};
use clipia_core::job::ERROR_WORKER_LOST;
use clipia_store::{
    ClaimRequest, Claimed, InitialState, JobEnd, JobRecord, Lease, LeaseState, LogLevel, NewJob, StoreError,
    StoreResult, SubmitOutcome, SubmitSnapshot,
};
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Row};

use crate::accounts::post_entry;
use crate::rows::{self, db_err};

pub async fn by_id(conn: &mut SqliteConnection, id: &str) -> StoreResult<Option<JobRecord>> {
    let sql = format!("SELECT {} FROM jobs WHERE id = ?", rows::JOB_COLUMNS);
    let row = sqlx::query(AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *conn).await.map_err(db_err)?;
    row.as_ref().map(rows::job).transpose()
}

pub async fn queue_position(conn: &mut SqliteConnection, id: &str) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs q, jobs me WHERE me.id = ? AND me.status = 'IN_QUEUE' \
         AND q.status = 'IN_QUEUE' AND q.lane = me.lane AND q.vtime < me.vtime",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(n as u64)
}

pub async fn submit(conn: &mut SqliteConnection, job: NewJob) -> StoreResult<SubmitOutcome> {
    let account = job.tenant.account.as_str();
    let mode = job.tenant.mode.as_str();
    // Everything the decision needs, in one statement: every statement costs a round trip to
    // SQLite's thread while the writer holds the write lock.
    let state = sqlx::query(
        "SELECT a.credits_available, a.credits_reserved, a.last_vtime, k.jobs_queued, \
                coalesce(q.vclock, 0), coalesce(q.queued, 0), coalesce(q.max_vtime, 0), i.fingerprint, i.response \
         FROM accounts a JOIN api_keys k ON k.id = ?2 \
         LEFT JOIN queue_clock q ON q.lane = ?3 \
         LEFT JOIN idempotency i ON i.account_id = a.id AND i.mode = ?4 AND i.key = ?5 \
         WHERE a.id = ?1",
    )
    .bind(account)
    .bind(job.key.as_str())
    .bind(&job.lane)
    .bind(mode)
    .bind(job.idempotency.as_ref().map(|i| i.key.as_str()))
    .fetch_one(&mut *conn)
    .await
    .map_err(db_err)?;
    if let (Some(idem), Some(fingerprint)) = (&job.idempotency, state.get::<Option<String>, _>(7)) {
        if fingerprint != idem.fingerprint {
            return Ok(SubmitOutcome::IdempotencyConflict);
        }
        return Ok(SubmitOutcome::Replayed(SubmitSnapshot::from_stored_json(state.get::<&str, _>(8))?));
    }
    let (available, reserved, last_vtime): (i64, i64, i64) = (state.get(0), state.get(1), state.get(2));
    let (key_queued, clock, lane_queued, lane_max_vtime): (i64, i64, i64, i64) =
        (state.get(3), state.get(4), state.get(5), state.get(6));
    let queued = matches!(job.initial, InitialState::Queued { .. });
    if queued && key_queued >= i64::from(job.queued_jobs_max) {
        return Ok(SubmitOutcome::QueueFull { queued_jobs_max: job.queued_jobs_max });
    }
    let id = job.id.to_string();
    let (mut available, mut reserved) = (available as u64, reserved as u64);
    if job.reserve {
        if available < job.cost {
            return Ok(SubmitOutcome::InsufficientCredits { cost: job.cost, available });
        }
        (available, reserved) = clipia_core::ledger::apply(available, reserved, EntryKind::Reserve, job.cost as i64)
            .ok_or_else(|| StoreError::Backend("reservation overflow".into()))?;
        sqlx::query(
            "INSERT INTO ledger (account_id, kind, amount, request_id, created_at) VALUES (?1, 'reserve', ?2, ?3, ?4); \
             INSERT INTO reservations (request_id, account_id, amount) VALUES (?3, ?1, ?2)",
        )
        .bind(account)
        .bind(job.cost as i64)
        .bind(&id)
        .bind(job.now_ms)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }

    // Fair queuing: a queued job's virtual time is one past the later of the lane's clock and
    // its account's latest job, so a newly active account interleaves with a long backlog.
    // Jobs finished at submit (sandbox) never queue and take the lane's clock as it is.
    let vtime = if queued { clock.max(last_vtime) + 1 } else { clock };
    if job.reserve || queued {
        sqlx::query("UPDATE accounts SET credits_available = ?, credits_reserved = ?, last_vtime = ? WHERE id = ?")
            .bind(available as i64)
            .bind(reserved as i64)
            .bind(if queued { vtime } else { last_vtime })
            .bind(account)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
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
         started_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .bind(completed_at)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    if let (Some(url), false) = (job.webhook_url.as_deref(), queued) {
        // Created terminal (sandbox): its webhook event enters the outbox in this transaction.
        crate::webhooks::enqueue(conn, &id, account, mode, url, job.now_ms).await?;
    }
    let queue_position = if queued {
        sqlx::query(
            "UPDATE api_keys SET jobs_queued = jobs_queued + 1 WHERE id = ?1; \
             INSERT INTO queue_clock (lane, vclock, queued, max_vtime) VALUES (?2, 0, 1, ?3) \
             ON CONFLICT (lane) DO UPDATE SET queued = queued + 1, max_vtime = max(max_vtime, excluded.max_vtime)",
        )
        .bind(job.key.as_str())
        .bind(&job.lane)
        .bind(vtime)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
        // Behind every queued job (the usual case), the position is the lane's count; placed
        // ahead by fair queuing, it is near the front, where counting is cheap.
        if vtime > lane_max_vtime {
            lane_queued as u64
        } else {
            queue_position(conn, &id).await?
        }
    } else {
        0
    };
    let snapshot = SubmitSnapshot {
        request_id: job.id,
        status,
        queue_position: Some(queue_position),
        cost: job.cost,
        warnings: job.warnings.clone(),
    };
    if let Some(idem) = &job.idempotency {
        sqlx::query(
            "INSERT INTO idempotency (account_id, mode, key, fingerprint, request_id, response, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(account)
        .bind(mode)
        .bind(&idem.key)
        .bind(&idem.fingerprint)
        .bind(&id)
        .bind(snapshot.to_stored_json())
        .bind(job.now_ms)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(SubmitOutcome::Created(snapshot))
}

/// Resolves a job's reservation exactly once. The `resolved_at IS NULL` guard and the ledger's
/// one-entry-per-kind index make a second resolution impossible, whoever attempts it.
async fn settle(conn: &mut SqliteConnection, job: &JobRecord, settlement: Settlement, now: i64) -> StoreResult<()> {
    let id = job.id.to_string();
    let resolved = sqlx::query(
        "UPDATE reservations SET captured = ?, released = ?, resolved_at = ? WHERE request_id = ? AND resolved_at IS NULL",
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
    if settlement.capture > 0 {
        post_entry(conn, &job.account, EntryKind::Capture, settlement.capture as i64, Some(&id), None, now).await?;
    }
    if settlement.release > 0 {
        post_entry(conn, &job.account, EntryKind::Release, settlement.release as i64, Some(&id), None, now).await?;
    }
    Ok(())
}

pub async fn append_log(conn: &mut SqliteConnection, id: &str, level: LogLevel, message: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO job_logs (job_id, n, ts, level, message) \
         SELECT ?1, coalesce(max(n), 0) + 1, ?2, ?3, ?4 FROM job_logs WHERE job_id = ?1 \
         HAVING coalesce(max(n), 0) < ?5",
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

pub async fn claim(conn: &mut SqliteConnection, c: &ClaimRequest<'_>) -> StoreResult<Option<Claimed>> {
    let picked = sqlx::query(
        "SELECT j.seq, j.vtime, j.key_id FROM jobs j \
         WHERE j.status = 'IN_QUEUE' AND j.lane = ?1 AND j.run_after <= ?2 \
           AND NOT EXISTS (SELECT 1 FROM api_keys k JOIN accounts a ON a.id = k.account_id \
                           WHERE k.id = j.key_id AND k.jobs_running >= coalesce(a.concurrency, ?3)) \
         ORDER BY j.vtime LIMIT 1",
    )
    .bind(c.lane)
    .bind(c.now_ms)
    .bind(i64::from(c.concurrency_default))
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    let Some(row) = picked else { return Ok(None) };
    let (seq, vtime, key_id): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
    let sql = format!(
        "UPDATE jobs SET status = 'IN_PROGRESS', attempt = attempt + 1, lease_owner = ?, lease_expires_at = ?, \
         started_at = coalesce(started_at, ?), progress = 0 WHERE seq = ? RETURNING {}",
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
    sqlx::query("UPDATE api_keys SET jobs_queued = jobs_queued - 1, jobs_running = jobs_running + 1 WHERE id = ?")
        .bind(&key_id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO queue_clock (lane, vclock) VALUES (?1, ?2) \
         ON CONFLICT (lane) DO UPDATE SET vclock = max(vclock, excluded.vclock), queued = max(queued - 1, 0)",
    )
    .bind(c.lane)
    .bind(vtime)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    let message = if job.attempt > 1 { format!("attempt {} started", job.attempt) } else { "started".to_owned() };
    append_log(conn, &job.id.to_string(), LogLevel::Info, &message, c.now_ms).await?;
    Ok(Some(Claimed { lease: Lease { job: job.id, attempt: job.attempt, runner: c.runner.to_owned() }, job }))
}

pub async fn heartbeat(conn: &mut SqliteConnection, lease: &Lease, progress: Option<u8>, lease_ms: i64, now: i64) -> StoreResult<LeaseState> {
    let row = sqlx::query(
        "UPDATE jobs SET lease_expires_at = ?, progress = coalesce(?, progress) \
         WHERE id = ? AND attempt = ? AND status = 'IN_PROGRESS' RETURNING cancel_requested",
    )
    .bind(now + lease_ms)
    .bind(progress.map(i64::from))
    .bind(lease.job.to_string())
    .bind(lease.attempt)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(match row {
        Some(row) => LeaseState::Held { cancel_requested: row.get::<i64, _>(0) != 0 },
        None => LeaseState::Lost,
    })
}

/// Moves a job to a terminal state and settles its reservation. The caller has checked that
/// the job may make this move.
async fn terminate(conn: &mut SqliteConnection, job: &JobRecord, end: &JobEnd, now: i64) -> StoreResult<JobRecord> {
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
        "UPDATE jobs SET status = ?, output = ?, error_code = ?, error_message = ?, cost_charged = ?, \
         completed_at = ?, lease_owner = NULL, lease_expires_at = NULL, \
         progress = CASE WHEN ? = 'COMPLETED' THEN 100 ELSE progress END WHERE id = ? RETURNING {}",
        rows::JOB_COLUMNS
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(status.as_str())
        .bind(output)
        .bind(error.as_ref().map(|e| e.code.clone()))
        .bind(error.as_ref().map(|e| e.message.clone()))
        .bind(charged as i64)
        .bind(now)
        .bind(status.as_str())
        .bind(&id)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    let counter = match job.status {
        Status::InQueue => {
            "UPDATE api_keys SET jobs_queued = jobs_queued - 1 WHERE id = ?1; \
             UPDATE queue_clock SET queued = max(queued - 1, 0) WHERE lane = ?2"
        }
        _ => "UPDATE api_keys SET jobs_running = jobs_running - 1 WHERE id = ?1",
    };
    sqlx::query(counter).bind(job.key.as_str()).bind(&job.lane).execute(&mut *conn).await.map_err(db_err)?;
    settle(conn, job, settlement, now).await?;
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

pub async fn finish(conn: &mut SqliteConnection, lease: &Lease, end: JobEnd, now: i64) -> StoreResult<Option<JobRecord>> {
    let Some(job) = by_id(conn, &lease.job.to_string()).await? else { return Ok(None) };
    if job.status != Status::InProgress || job.attempt != lease.attempt {
        return Ok(None); // fenced: a newer attempt (or a cancel) owns the job now
    }
    terminate(conn, &job, &end, now).await.map(Some)
}

pub async fn release(conn: &mut SqliteConnection, lease: &Lease, now: i64) -> StoreResult<bool> {
    let id = lease.job.to_string();
    let Some(job) = by_id(conn, &id).await? else { return Ok(false) };
    if job.status != Status::InProgress || job.attempt != lease.attempt {
        return Ok(false);
    }
    requeue(conn, &job, "released by a stopping runner; back in the queue", now).await?;
    Ok(true)
}

async fn requeue(conn: &mut SqliteConnection, job: &JobRecord, why: &str, now: i64) -> StoreResult<()> {
    let id = job.id.to_string();
    sqlx::query(
        "UPDATE jobs SET status = 'IN_QUEUE', lease_owner = NULL, lease_expires_at = NULL, progress = 0, run_after = ? \
         WHERE id = ?",
    )
    .bind(now)
    .bind(&id)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    sqlx::query(
        "UPDATE api_keys SET jobs_queued = jobs_queued + 1, jobs_running = jobs_running - 1 WHERE id = ?1; \
         UPDATE queue_clock SET queued = queued + 1 WHERE lane = ?2",
    )
        .bind(job.key.as_str())
        .bind(&job.lane)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    append_log(conn, &id, LogLevel::Warn, why, now).await
}

pub async fn expire_leases(conn: &mut SqliteConnection, now: i64) -> StoreResult<Vec<RequestId>> {
    let sql = format!(
        "SELECT {} FROM jobs WHERE status = 'IN_PROGRESS' AND lease_expires_at < ? ORDER BY lease_expires_at LIMIT 100",
        rows::JOB_COLUMNS
    );
    let expired = sqlx::query(AssertSqlSafe(sql)).bind(now).fetch_all(&mut *conn).await.map_err(db_err)?;
    let mut ids = Vec::with_capacity(expired.len());
    for row in &expired {
        let job = rows::job(row)?;
        if job.cancel_requested {
            // Its owner asked to stop it: a lost runner ends it rather than running it again.
            terminate(conn, &job, &JobEnd::Canceled, now).await?;
        } else if job.attempt >= JOB_ATTEMPTS_MAX {
            let error = JobError::new(
                ERROR_WORKER_LOST,
                format!("The job's runner stopped responding {} times; credits were refunded.", job.attempt),
            );
            terminate(conn, &job, &JobEnd::Failed(error), now).await?;
        } else {
            requeue(conn, &job, &format!("lease of attempt {} expired; back in the queue", job.attempt), now).await?;
        }
        ids.push(job.id);
    }
    Ok(ids)
}

pub async fn cancel(conn: &mut SqliteConnection, job: JobRecord, now: i64) -> StoreResult<JobRecord> {
    match job.status {
        Status::InQueue => terminate(conn, &job, &JobEnd::Canceled, now).await,
        Status::InProgress if !job.cancel_requested => {
            let id = job.id.to_string();
            sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = ?").bind(&id).execute(&mut *conn).await.map_err(db_err)?;
            append_log(conn, &id, LogLevel::Info, "cancel requested", now).await?;
            Ok(JobRecord { cancel_requested: true, ..job })
        }
        _ => Ok(job),
    }
}
