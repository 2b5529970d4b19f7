//! Jobs and the queue, one job at a time: status reads, heartbeat, cancel, release and lease
//! expiry (submit, claim and finish are batched: see [`crate::batch`]). Every function here runs
//! inside one transaction that the caller opened.
//!
//! Row locks are always taken in one order — jobs, then accounts, then api_keys — so that
//! transactions of different nodes never wait on each other in a cycle. Claims skip rows other
//! nodes hold (`FOR UPDATE SKIP LOCKED`); every later write about a claimed job is fenced by its
//! `attempt`, so a node that lost its lease can never overwrite the attempt that took over.

use clipia_core::job::ERROR_WORKER_LOST;
use clipia_core::limits::{JOB_ATTEMPTS_MAX, JOB_LOG_LINES_MAX};
use clipia_core::{JobError, Status};
use clipia_store::{JobEnd, JobRecord, Lease, LeaseState, LogLevel, StoreError, StoreResult};
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::rows::{self, db_err};

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

/// Moves a job (locked by the caller) to a terminal state, settles its reservation and puts its
/// webhook event in the outbox: the same statement that ends batched finishes.
async fn terminate(conn: &mut PgConnection, job: &JobRecord, end: &JobEnd, now: i64) -> StoreResult<JobRecord> {
    let item = crate::batch::end_item(&job.id, job.attempt, job.status, end);
    crate::batch::end_jobs(conn, &[item], now)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Conflict(format!("job {} changed while it was being ended", job.id)))
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
    sqlx::query(
        "WITH k AS (UPDATE api_keys SET jobs_queued = jobs_queued + 1, jobs_running = jobs_running - 1 WHERE id = $1) \
         SELECT clipia_count_queued($2, 1)",
    )
    .bind(job.key.as_str())
    .bind(&job.lane)
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
