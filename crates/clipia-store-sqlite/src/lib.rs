//! The embedded store: SQLite in WAL mode inside the data directory.
//!
//! Architecture invariant: reads run on a pool of read connections; every write goes through
//! the one [`writer::Writer`], which group-commits with `synchronous = FULL`, so an answered
//! write survives a crash of the process or the machine. Other processes (the admin commands)
//! may write to the same file at the same time; SQLite's lock and a busy timeout serialize them.

mod accounts;
mod jobs;
mod rows;
mod webhooks;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use clipia_core::{AccountId, KeyHash, KeyId, RequestId, Status};
use clipia_store::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ConnectOptions, Row};

use rows::db_err;
use writer::Writer;

/// Read connections; WAL lets them run beside the writer.
const READ_CONNECTIONS_MAX: u32 = 4;
/// How long a write waits for another process (an admin command) to release the database.
const BUSY_TIMEOUT_MS: u64 = 10_000;
/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "clipia.db";

#[derive(Clone)]
pub struct SqliteStore {
    reads: SqlitePool,
    writer: Writer,
}

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .expect("a sqlite URL built from a path")
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
        .disable_statement_logging()
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir` and applies the migrations.
    pub async fn open(data_dir: &Path) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join(DATABASE_FILE);
        let opts = options(&path);
        let mut conn = opts.connect().await.map_err(db_err)?;
        sqlx::migrate!("./migrations").run(&mut conn).await.map_err(|e| StoreError::Backend(format!("migrations: {e}")))?;
        let reads = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS_MAX)
            .connect_with(opts.read_only(true))
            .await
            .map_err(db_err)?;
        Ok(SqliteStore { reads, writer: Writer::spawn(conn) })
    }

    async fn audit_impl(&self) -> StoreResult<Vec<String>> {
        let mut problems = Vec::new();
        let rows = sqlx::query(
            "SELECT a.id, a.credits_available, a.credits_reserved, \
               coalesce(sum(CASE l.kind WHEN 'grant' THEN l.amount WHEN 'adjust' THEN l.amount \
                 WHEN 'reserve' THEN -l.amount WHEN 'release' THEN l.amount ELSE 0 END), 0), \
               coalesce(sum(CASE l.kind WHEN 'reserve' THEN l.amount WHEN 'capture' THEN -l.amount \
                 WHEN 'release' THEN -l.amount ELSE 0 END), 0) \
             FROM accounts a LEFT JOIN ledger l ON l.account_id = a.id GROUP BY a.id",
        )
        .fetch_all(&self.reads)
        .await
        .map_err(db_err)?;
        for r in rows {
            let (id, avail, res, l_avail, l_res): (String, i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
            if avail != l_avail || res != l_res {
                problems.push(format!("{id}: balance {avail}/{res} but ledger says {l_avail}/{l_res}"));
            }
        }
        let bad: Vec<String> = sqlx::query_scalar(
            "SELECT r.request_id FROM reservations r JOIN jobs j ON j.id = r.request_id \
             WHERE (j.status IN ('COMPLETED', 'FAILED', 'CANCELED')) != (r.resolved_at IS NOT NULL) \
                OR (r.resolved_at IS NOT NULL AND r.captured + r.released != r.amount) \
                OR (r.resolved_at IS NOT NULL AND r.captured != j.cost_charged)",
        )
        .fetch_all(&self.reads)
        .await
        .map_err(db_err)?;
        problems.extend(bad.into_iter().map(|id| format!("reservation of {id} is not settled consistently")));
        // The dispatcher's counters must match the jobs they count.
        let drifted: Vec<String> = sqlx::query_scalar(
            "SELECT 'lane ' || q.lane || ' counts ' || q.queued || ' queued jobs' FROM queue_clock q \
             WHERE q.queued != (SELECT count(*) FROM jobs j WHERE j.lane = q.lane AND j.status = 'IN_QUEUE') \
             UNION ALL \
             SELECT 'key ' || k.id || ' counts ' || k.jobs_queued || ' queued and ' || k.jobs_running || ' running' \
             FROM api_keys k \
             WHERE k.jobs_queued != (SELECT count(*) FROM jobs j WHERE j.key_id = k.id AND j.status = 'IN_QUEUE') \
                OR k.jobs_running != (SELECT count(*) FROM jobs j WHERE j.key_id = k.id AND j.status = 'IN_PROGRESS')",
        )
        .fetch_all(&self.reads)
        .await
        .map_err(db_err)?;
        problems.extend(drifted);
        Ok(problems)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn account_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts").fetch_one(&self.reads).await.map_err(db_err)?;
        Ok(n as u64)
    }

    async fn create_account(&self, name: &str, now_ms: i64) -> StoreResult<Account> {
        let name = name.to_owned();
        self.writer.write(move |c| Box::pin(async move { accounts::create_account(c, &name, now_ms).await })).await
    }

    async fn find_account(&self, id_or_name: &str) -> StoreResult<Option<Account>> {
        let row = sqlx::query("SELECT id, name, created_at FROM accounts WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1")
            .bind(id_or_name)
            .bind(id_or_name)
            .bind(id_or_name)
            .fetch_optional(&self.reads)
            .await
            .map_err(db_err)?;
        row.map(|r| {
            Ok(Account { id: rows::account_id(r.get(0))?, name: r.get(1), created_at: r.get(2) })
        })
        .transpose()
    }

    async fn create_key(&self, key: NewKey, now_ms: i64) -> StoreResult<KeyRecord> {
        self.writer.write(move |c| Box::pin(async move { accounts::create_key(c, key, now_ms).await })).await
    }

    async fn list_keys(&self, account: &AccountId) -> StoreResult<Vec<KeyRecord>> {
        let sql = format!("{} WHERE k.account_id = ? ORDER BY k.created_at, k.id", rows::KEY_SELECT);
        let rows = sqlx::query(AssertSqlSafe(sql)).bind(account.as_str()).fetch_all(&self.reads).await.map_err(db_err)?;
        rows.iter().map(rows::key).collect()
    }

    async fn revoke_key(&self, account: Option<&AccountId>, key: &KeyId, now_ms: i64) -> StoreResult<Option<KeyRecord>> {
        let (account, key) = (account.cloned(), key.clone());
        self.writer.write(move |c| Box::pin(async move { accounts::revoke_key(c, account, key, now_ms).await })).await
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<KeyRecord>> {
        let sql = format!("{} WHERE k.hash = ?", rows::KEY_SELECT);
        let row = sqlx::query(AssertSqlSafe(sql)).bind(hash.as_str()).fetch_optional(&self.reads).await.map_err(db_err)?;
        row.as_ref().map(rows::key).transpose()
    }

    async fn set_limits(&self, account: &AccountId, limits: LimitOverrides) -> StoreResult<LimitOverrides> {
        let account = account.clone();
        self.writer.write(move |c| Box::pin(async move { accounts::set_limits(c, account, limits).await })).await
    }

    async fn limits(&self, account: &AccountId) -> StoreResult<LimitOverrides> {
        let mut conn = self.reads.acquire().await.map_err(db_err)?;
        accounts::limits_of(&mut conn, account).await
    }

    async fn grant_credits(&self, account: &AccountId, amount: i64, reason: &str, now_ms: i64) -> StoreResult<Balance> {
        let (account, reason) = (account.clone(), reason.to_owned());
        let kind = if amount >= 0 { clipia_core::EntryKind::Grant } else { clipia_core::EntryKind::Adjust };
        self.writer
            .write(move |c| {
                Box::pin(async move { accounts::post_entry(c, &account, kind, amount, None, Some(&reason), now_ms).await })
            })
            .await
    }

    async fn balance(&self, account: &AccountId) -> StoreResult<Balance> {
        let mut conn = self.reads.acquire().await.map_err(db_err)?;
        accounts::balance(&mut conn, account).await
    }

    async fn usage_since(&self, account: &AccountId, since_ms: i64) -> StoreResult<Usage> {
        let row = sqlx::query(
            "SELECT count(*), coalesce(sum(cost_charged), 0) FROM jobs WHERE account_id = ? AND mode = 'live' AND created_at >= ?",
        )
        .bind(account.as_str())
        .bind(since_ms)
        .fetch_one(&self.reads)
        .await
        .map_err(db_err)?;
        Ok(Usage { requests: row.get::<i64, _>(0) as u64, credits_spent: row.get::<i64, _>(1) as u64 })
    }

    async fn ledger_page(&self, account: &AccountId, before: Option<i64>, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        let rows = sqlx::query(
            "SELECT id, kind, amount, request_id, reason, created_at FROM ledger \
             WHERE account_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(account.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let kind: String = r.get(1);
                Ok(LedgerEntry {
                    id: r.get(0),
                    kind: clipia_core::EntryKind::parse(&kind)
                        .ok_or_else(|| StoreError::Backend(format!("unknown ledger kind {kind}")))?,
                    amount: r.get(2),
                    request_id: r.get(3),
                    reason: r.get(4),
                    created_at: r.get(5),
                })
            })
            .collect()
    }

    async fn submit(&self, job: NewJob) -> StoreResult<SubmitOutcome> {
        self.writer.write(move |c| Box::pin(async move { jobs::submit(c, job).await })).await
    }

    async fn job(&self, tenant: &Tenant, id: &RequestId) -> StoreResult<Option<JobRecord>> {
        Ok(self
            .job_by_id(id)
            .await?
            .filter(|j| j.account == tenant.account && j.mode == tenant.mode))
    }

    async fn job_by_id(&self, id: &RequestId) -> StoreResult<Option<JobRecord>> {
        let mut conn = self.reads.acquire().await.map_err(db_err)?;
        jobs::by_id(&mut conn, &id.to_string()).await
    }

    async fn list_jobs(&self, tenant: &Tenant, f: &JobFilter) -> StoreResult<Vec<JobRecord>> {
        let sql = format!(
            "SELECT {} FROM jobs WHERE account_id = ? AND mode = ? AND seq < ? \
             AND (? IS NULL OR status = ?) AND (? IS NULL OR model = ?) ORDER BY seq DESC LIMIT ?",
            rows::JOB_COLUMNS
        );
        let status = f.status.map(Status::as_str);
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.account.as_str())
            .bind(tenant.mode.as_str())
            .bind(f.before_seq.unwrap_or(i64::MAX))
            .bind(status)
            .bind(status)
            .bind(f.model.as_deref())
            .bind(f.model.as_deref())
            .bind(i64::from(f.limit))
            .fetch_all(&self.reads)
            .await
            .map_err(db_err)?;
        rows.iter().map(rows::job).collect()
    }

    async fn queue_position(&self, job: &JobRecord) -> StoreResult<u64> {
        if job.status != Status::InQueue {
            return Ok(0);
        }
        let mut conn = self.reads.acquire().await.map_err(db_err)?;
        jobs::queue_position(&mut conn, &job.id.to_string()).await
    }

    async fn job_logs(&self, id: &RequestId) -> StoreResult<Vec<LogLine>> {
        let rows = sqlx::query("SELECT ts, level, message FROM job_logs WHERE job_id = ? ORDER BY n")
            .bind(id.to_string())
            .fetch_all(&self.reads)
            .await
            .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| LogLine { timestamp: r.get(0), level: LogLevel::parse(r.get(1)), message: r.get(2) })
            .collect())
    }

    async fn append_log(&self, id: &RequestId, level: LogLevel, message: &str, now_ms: i64) -> StoreResult<()> {
        let (id, message) = (id.to_string(), message.to_owned());
        self.writer.write(move |c| Box::pin(async move { jobs::append_log(c, &id, level, &message, now_ms).await })).await
    }

    async fn cancel(&self, tenant: &Tenant, id: &RequestId, now_ms: i64) -> StoreResult<Option<JobRecord>> {
        let (tenant, id) = (tenant.clone(), id.to_string());
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let Some(job) = jobs::by_id(c, &id).await? else { return Ok(None) };
                    if job.account != tenant.account || job.mode != tenant.mode {
                        return Ok(None);
                    }
                    jobs::cancel(c, job, now_ms).await.map(Some)
                })
            })
            .await
    }

    async fn claim(&self, claim: ClaimRequest<'_>) -> StoreResult<Option<Claimed>> {
        let (lane, runner) = (claim.lane.to_owned(), claim.runner.to_owned());
        let (lease_ms, now_ms, concurrency_default) = (claim.lease_ms, claim.now_ms, claim.concurrency_default);
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let req = ClaimRequest { lane: &lane, runner: &runner, lease_ms, now_ms, concurrency_default };
                    jobs::claim(c, &req).await
                })
            })
            .await
    }

    async fn heartbeat(&self, lease: &Lease, progress: Option<u8>, lease_ms: i64, now_ms: i64) -> StoreResult<LeaseState> {
        let lease = lease.clone();
        self.writer.write(move |c| Box::pin(async move { jobs::heartbeat(c, &lease, progress, lease_ms, now_ms).await })).await
    }

    async fn finish(&self, lease: &Lease, end: JobEnd, now_ms: i64) -> StoreResult<Option<JobRecord>> {
        let lease = lease.clone();
        self.writer.write(move |c| Box::pin(async move { jobs::finish(c, &lease, end, now_ms).await })).await
    }

    async fn release(&self, lease: &Lease, now_ms: i64) -> StoreResult<bool> {
        let lease = lease.clone();
        self.writer.write(move |c| Box::pin(async move { jobs::release(c, &lease, now_ms).await })).await
    }

    async fn expire_leases(&self, now_ms: i64) -> StoreResult<Vec<RequestId>> {
        self.writer.write(move |c| Box::pin(async move { jobs::expire_leases(c, now_ms).await })).await
    }

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        let row = sqlx::query(
            "SELECT coalesce(sum(status = 'IN_QUEUE'), 0), coalesce(sum(status = 'IN_PROGRESS'), 0) \
             FROM jobs WHERE status IN ('IN_QUEUE', 'IN_PROGRESS')",
        )
        .fetch_one(&self.reads)
        .await
        .map_err(db_err)?;
        Ok(QueueStats { queued: row.get::<i64, _>(0) as u64, in_progress: row.get::<i64, _>(1) as u64 })
    }

    async fn audit(&self) -> StoreResult<Vec<String>> {
        self.audit_impl().await
    }

    async fn webhook_secrets(&self, tenant: &Tenant, now_ms: i64) -> StoreResult<Vec<WebhookSecretRecord>> {
        let mut conn = self.reads.acquire().await.map_err(db_err)?;
        webhooks::secrets(&mut conn, tenant, now_ms).await
    }

    async fn ensure_webhook_secret(&self, tenant: &Tenant, candidate: &str, now_ms: i64) -> StoreResult<Vec<WebhookSecretRecord>> {
        let (tenant, candidate) = (tenant.clone(), candidate.to_owned());
        self.writer
            .write(move |c| Box::pin(async move { webhooks::ensure_secret(c, &tenant, &candidate, now_ms).await }))
            .await
    }

    async fn rotate_webhook_secret(&self, tenant: &Tenant, new_secret: &str, overlap_ms: i64, now_ms: i64) -> StoreResult<Vec<WebhookSecretRecord>> {
        let (tenant, new_secret) = (tenant.clone(), new_secret.to_owned());
        self.writer
            .write(move |c| Box::pin(async move { webhooks::rotate_secret(c, &tenant, &new_secret, overlap_ms, now_ms).await }))
            .await
    }

    async fn claim_webhooks(&self, claim: WebhookClaim<'_>) -> StoreResult<Vec<WebhookDelivery>> {
        let in_flight = claim.in_flight.clone();
        let (now_ms, lease_ms, limit, per_host_max) = (claim.now_ms, claim.lease_ms, claim.limit, claim.per_host_max);
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let claim = WebhookClaim { now_ms, lease_ms, limit, per_host_max, in_flight: &in_flight };
                    webhooks::claim(c, &claim).await
                })
            })
            .await
    }

    async fn record_webhook_attempt(&self, attempt: WebhookAttempt, next: DeliveryNext, now_ms: i64) -> StoreResult<()> {
        self.writer.write(move |c| Box::pin(async move { webhooks::record_attempt(c, &attempt, &next, now_ms).await })).await
    }

    async fn webhook_deliveries(&self, tenant: &Tenant, request: &RequestId) -> StoreResult<Vec<DeliveryLog>> {
        let mut conn = self.reads.acquire().await.map_err(db_err)?;
        webhooks::deliveries(&mut conn, tenant, request).await
    }

    async fn resend_webhook(&self, tenant: &Tenant, request: &RequestId, now_ms: i64) -> StoreResult<ResendOutcome> {
        let (tenant, request) = (tenant.clone(), *request);
        self.writer.write(move |c| Box::pin(async move { webhooks::resend(c, &tenant, &request, now_ms).await })).await
    }

    async fn prune_idempotency(&self, before_ms: i64) -> StoreResult<u64> {
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let done = sqlx::query("DELETE FROM idempotency WHERE created_at < ?")
                        .bind(before_ms)
                        .execute(&mut *c)
                        .await
                        .map_err(db_err)?;
                    Ok(done.rows_affected())
                })
            })
            .await
    }

    async fn secret(&self, name: &str, generate: &(dyn Fn() -> String + Send + Sync)) -> StoreResult<String> {
        let (name, candidate) = (name.to_owned(), generate());
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
                        .bind(&name)
                        .bind(&candidate)
                        .execute(&mut *c)
                        .await
                        .map_err(db_err)?;
                    sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
                        .bind(&name)
                        .fetch_one(&mut *c)
                        .await
                        .map_err(db_err)
                })
            })
            .await
    }
}
