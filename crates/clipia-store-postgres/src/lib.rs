//! The PostgreSQL store: several `clipia-server` nodes sharing one database.
//!
//! Architecture invariant: everything that must hold across nodes is enforced by the database —
//! credits by conditional UPDATEs and CHECK constraints, idempotency by a primary key, per-key
//! concurrency by conditional counter updates under row locks, exactly-once settlement by the
//! reservation's `resolved_at` guard and the ledger's unique index, claims by
//! `FOR UPDATE SKIP LOCKED` and leases fenced by `attempt`. No process-local lock is trusted.
//! Wake-ups and job events travel between nodes with LISTEN/NOTIFY ([`notify`]); each node also
//! polls, so a lost notification only delays, never loses, work.

mod accounts;
mod jobs;
pub mod notify;
mod ratelimit;
mod rows;
mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use clipia_core::{AccountId, KeyHash, KeyId, RequestId, Status};
use clipia_store::*;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, Row};

pub use notify::{Heard, Note};
pub use ratelimit::PgRateLimiter;
use rows::{db_err, is_retryable};

/// Connections of the main pool when the operator does not say.
pub const POOL_CONNECTIONS_DEFAULT: u32 = 16;
/// Connections of the notification sender's pool.
const NOTIFY_CONNECTIONS_MAX: u32 = 1;
/// How long an operation waits for a free connection before it fails.
const ACQUIRE_TIMEOUT_MS: u64 = 10_000;
/// Times a transaction runs again after a deadlock or a lost connection.
const TX_RETRIES_MAX: u32 = 3;
/// Pause before such a retry (doubled each time).
const TX_RETRY_BACKOFF_MS: u64 = 20;
/// The name the nodes' connections show in `pg_stat_activity` unless the URL sets one.
const APPLICATION_NAME_DEFAULT: &str = "clipia-server";

/// Runs `run` again, on a fresh connection, after a deadlock or a lost connection: errors after
/// which nothing was committed. For a whole transaction (`committed!`), a read, or a single
/// statement in its own implicit transaction.
pub(crate) async fn retried<T, F, Fut>(run: F) -> StoreResult<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut attempt = 0u32;
    loop {
        match run().await {
            Err(e) if is_retryable(&e) && attempt < TX_RETRIES_MAX => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "retried after a deadlock or a lost connection");
                tokio::time::sleep(Duration::from_millis(TX_RETRY_BACKOFF_MS << attempt)).await;
            }
            other => return other,
        }
    }
}

/// Runs `$body` (an expression using the connection `$c`, giving `StoreResult<T>`) in a
/// transaction and commits it, [`retried`]. A failed `COMMIT` is not retried: whether it took
/// effect is unknown. A macro rather than a function so the body may borrow freely.
macro_rules! committed {
    ($store:expr, |$c:ident| $body:expr) => {
        $crate::retried(|| async {
            let mut tx = $store.pool.begin().await.map_err(db_err)?;
            let $c: &mut PgConnection = &mut tx;
            let value = $body.await?;
            tx.commit().await.map_err(|e| StoreError::Backend(e.to_string()))?;
            Ok(value)
        })
        .await
    };
}

mod batch;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    listen_pool: PgPool,
    channel: String,
    /// Tells this process's notes from other nodes' (a random id per process).
    origin: String,
    notifier: notify::Notifier,
    submits: batch::Batcher<std::sync::Arc<NewJob>, SubmitOutcome>,
    claims: batch::Batcher<batch::ClaimOwned, Option<Claimed>>,
    finishes: batch::Batcher<batch::Finish, Option<JobRecord>>,
    keys: batch::Batcher<KeyHash, Option<KeyRecord>>,
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl PgStore {
    /// Whether `url` names a PostgreSQL database.
    pub fn accepts(url: &str) -> bool {
        is_postgres_url(url)
    }

    /// Connects, creates the schema named first on the search path if it is missing (so a URL
    /// with `options=-c search_path=NAME` selects a deployment of its own), and migrates.
    /// Several nodes may open the same database at once: migrations take an advisory lock.
    pub async fn open(url: &str, pool_connections_max: u32) -> StoreResult<PgStore> {
        if !is_postgres_url(url) {
            return Err(StoreError::Backend("a PostgreSQL URL starts with postgres:// or postgresql://".into()));
        }
        let mut opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::Backend(format!("bad database URL: {e}")))?;
        if opts.get_application_name().is_none() {
            opts = opts.application_name(APPLICATION_NAME_DEFAULT);
        }
        let mut conn = PgConnection::connect_with(&opts).await.map_err(db_err)?;
        let schema = ensure_schema(&mut conn).await?;
        sqlx::migrate!("./migrations").run(&mut conn).await.map_err(|e| StoreError::Backend(format!("migrations: {e}")))?;
        let _ = conn.close().await;

        let pool = PgPoolOptions::new()
            .max_connections(pool_connections_max.max(2))
            .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
            .connect_lazy_with(opts.clone());
        let notify_pool = PgPoolOptions::new()
            .max_connections(NOTIFY_CONNECTIONS_MAX)
            .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
            .after_connect(|c, _| Box::pin(async move { c.execute("SET synchronous_commit = off").await.map(|_| ()) }))
            .connect_lazy_with(opts.clone());
        let listen_pool = PgPoolOptions::new().max_connections(1).connect_lazy_with(opts);
        let channel = notify::channel_for(&schema);
        let origin = format!("{:016x}", rand::random::<u64>());
        let notifier = notify::Notifier::spawn(notify_pool, channel.clone(), origin.clone());
        let db = batch::Db { pool: pool.clone() };
        let submits = batch::Batcher::spawn({
            let db = db.clone();
            move |jobs| batch::submit_batch(db.clone(), jobs)
        });
        let claims = batch::Batcher::spawn({
            let db = db.clone();
            move |claims| batch::claim_batch(db.clone(), claims)
        });
        let finishes = batch::Batcher::spawn({
            let db = db.clone();
            move |finishes| batch::finish_batch(db.clone(), finishes)
        });
        let keys = batch::Batcher::spawn(move |hashes| batch::key_batch(db.clone(), hashes));
        Ok(PgStore { pool, listen_pool, channel, origin, notifier, submits, claims, finishes, keys })
    }

    /// Other nodes' wake-ups and job events, for as long as the receiver is kept.
    pub fn listen(&self) -> tokio::sync::mpsc::Receiver<Heard> {
        notify::listen(self.listen_pool.clone(), self.channel.clone(), self.origin.clone())
    }

    /// The shared request-rate limiter, on this store's pool.
    pub fn rate_limiter(&self) -> PgRateLimiter {
        PgRateLimiter::new(batch::Db { pool: self.pool.clone() })
    }

    fn note_event(&self, job: &JobRecord) {
        self.notifier.send(Note::Event { id: job.id, status: job.status, progress: job.progress });
    }

    fn note_wake(&self, lane: &str) {
        self.notifier.send(Note::Wake { lane: lane.to_owned() });
    }

    async fn audit_ledger(&self) -> StoreResult<Vec<String>> {
        let mut problems = Vec::new();
        let rows = sqlx::query(
            "SELECT a.id, a.credits_available, a.credits_reserved, \
               coalesce(sum(CASE l.kind WHEN 'grant' THEN l.amount WHEN 'adjust' THEN l.amount \
                 WHEN 'reserve' THEN -l.amount WHEN 'release' THEN l.amount ELSE 0 END), 0)::bigint, \
               coalesce(sum(CASE l.kind WHEN 'reserve' THEN l.amount WHEN 'capture' THEN -l.amount \
                 WHEN 'release' THEN -l.amount ELSE 0 END), 0)::bigint \
             FROM accounts a LEFT JOIN ledger l ON l.account_id = a.id GROUP BY a.id",
        )
        .fetch_all(&self.pool)
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
                OR (r.resolved_at IS NOT NULL AND r.captured != j.cost_charged) \
                OR r.amount != j.cost_reserved",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        problems.extend(bad.into_iter().map(|id| format!("reservation of {id} is not settled consistently")));
        let counters: Vec<String> = sqlx::query_scalar(
            "SELECT k.id FROM api_keys k WHERE k.jobs_queued != (SELECT count(*) FROM jobs j WHERE j.key_id = k.id AND j.status = 'IN_QUEUE') \
                OR k.jobs_running != (SELECT count(*) FROM jobs j WHERE j.key_id = k.id AND j.status = 'IN_PROGRESS')",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        problems.extend(counters.into_iter().map(|id| format!("the job counters of key {id} disagree with its jobs")));
        let lanes: Vec<String> = sqlx::query_scalar(
            "SELECT lane FROM (SELECT lane, sum(queued) AS counted FROM lane_counts GROUP BY lane) c \
             FULL JOIN (SELECT lane, count(*) AS queued FROM jobs WHERE status = 'IN_QUEUE' GROUP BY lane) j USING (lane) \
             WHERE coalesce(c.counted, 0) != coalesce(j.queued, 0)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        problems.extend(lanes.into_iter().map(|lane| format!("the queued count of lane {lane} disagrees with its jobs")));
        Ok(problems)
    }
}

/// Creates the first schema of the connection's search path when it does not exist yet, and
/// returns the schema the store lives in.
async fn ensure_schema(conn: &mut PgConnection) -> StoreResult<String> {
    if let Some(schema) = sqlx::query_scalar::<_, Option<String>>("SELECT current_schema()").fetch_one(&mut *conn).await.map_err(db_err)? {
        return Ok(schema);
    }
    let path: String = sqlx::query_scalar("SHOW search_path").fetch_one(&mut *conn).await.map_err(db_err)?;
    let first = path.split(',').map(|s| s.trim().trim_matches('"')).find(|s| !s.is_empty() && *s != "$user");
    let Some(name) = first else {
        return Err(StoreError::Backend("the search_path names no schema to create".into()));
    };
    let valid = name.len() <= 63 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(StoreError::Backend(format!("schema name {name:?} must be letters, digits and _ only")));
    }
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{name}\""))).execute(&mut *conn).await.map_err(db_err)?;
    Ok(name.to_owned())
}

#[async_trait]
impl Store for PgStore {
    async fn account_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts").fetch_one(&self.pool).await.map_err(db_err)?;
        Ok(n.max(0) as u64)
    }

    async fn create_account(&self, name: &str, now_ms: i64) -> StoreResult<Account> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        accounts::create_account(&mut conn, name, now_ms).await
    }

    async fn find_account(&self, id_or_name: &str) -> StoreResult<Option<Account>> {
        let row = sqlx::query("SELECT id, name, created_at FROM accounts WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1")
            .bind(id_or_name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.map(|r| Ok(Account { id: rows::account_id(r.get(0))?, name: r.get(1), created_at: r.get(2) })).transpose()
    }

    async fn create_key(&self, key: NewKey, now_ms: i64) -> StoreResult<KeyRecord> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        accounts::create_key(&mut conn, key, now_ms).await
    }

    async fn list_keys(&self, account: &AccountId) -> StoreResult<Vec<KeyRecord>> {
        let sql = format!("{} WHERE k.account_id = $1 ORDER BY k.created_at, k.id", rows::KEY_SELECT);
        let rows = sqlx::query(AssertSqlSafe(sql)).bind(account.as_str()).fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(rows::key).collect()
    }

    async fn revoke_key(&self, account: Option<&AccountId>, key: &KeyId, now_ms: i64) -> StoreResult<Option<KeyRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        accounts::revoke_key(&mut conn, account, key, now_ms).await
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<KeyRecord>> {
        self.keys.call(hash.clone()).await
    }

    async fn set_limits(&self, account: &AccountId, limits: LimitOverrides) -> StoreResult<LimitOverrides> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        accounts::set_limits(&mut conn, account, limits).await
    }

    async fn limits(&self, account: &AccountId) -> StoreResult<LimitOverrides> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        accounts::limits_of(&mut conn, account).await
    }

    async fn grant_credits(&self, account: &AccountId, amount: i64, reason: &str, now_ms: i64) -> StoreResult<Balance> {
        let kind = if amount >= 0 { clipia_core::EntryKind::Grant } else { clipia_core::EntryKind::Adjust };
        committed!(self, |c| accounts::post_entry(c, account, kind, amount, None, Some(reason), now_ms))
    }

    async fn balance(&self, account: &AccountId) -> StoreResult<Balance> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        accounts::balance(&mut conn, account).await
    }

    async fn usage_since(&self, account: &AccountId, since_ms: i64) -> StoreResult<Usage> {
        let row = sqlx::query(
            "SELECT count(*), coalesce(sum(cost_charged), 0)::bigint FROM jobs \
             WHERE account_id = $1 AND mode = 'live' AND created_at >= $2",
        )
        .bind(account.as_str())
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(Usage { requests: row.get::<i64, _>(0).max(0) as u64, credits_spent: row.get::<i64, _>(1).max(0) as u64 })
    }

    async fn ledger_page(&self, account: &AccountId, before: Option<i64>, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        let rows = sqlx::query(
            "SELECT id, kind, amount, request_id, reason, created_at FROM ledger \
             WHERE account_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(account.as_str())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        let lane = job.lane.clone();
        let outcome = self.submits.call(std::sync::Arc::new(job)).await?;
        if let SubmitOutcome::Created(s) = &outcome {
            if s.status == Status::InQueue {
                self.note_wake(&lane);
            }
        }
        Ok(outcome)
    }

    async fn job(&self, tenant: &Tenant, id: &RequestId) -> StoreResult<Option<JobRecord>> {
        Ok(self.job_by_id(id).await?.filter(|j| j.account == tenant.account && j.mode == tenant.mode))
    }

    async fn job_by_id(&self, id: &RequestId) -> StoreResult<Option<JobRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        jobs::by_id(&mut conn, &id.to_string(), false).await
    }

    async fn list_jobs(&self, tenant: &Tenant, f: &JobFilter) -> StoreResult<Vec<JobRecord>> {
        let sql = format!(
            "SELECT {} FROM jobs WHERE account_id = $1 AND mode = $2 AND seq < $3 \
             AND ($4::text IS NULL OR status = $4) AND ($5::text IS NULL OR model = $5) ORDER BY seq DESC LIMIT $6",
            rows::JOB_COLUMNS
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.account.as_str())
            .bind(tenant.mode.as_str())
            .bind(f.before_seq.unwrap_or(i64::MAX))
            .bind(f.status.map(Status::as_str))
            .bind(f.model.as_deref())
            .bind(i64::from(f.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(rows::job).collect()
    }

    async fn queue_position(&self, job: &JobRecord) -> StoreResult<u64> {
        if job.status != Status::InQueue {
            return Ok(0);
        }
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        jobs::queue_position(&mut conn, &job.id.to_string()).await
    }

    async fn job_logs(&self, id: &RequestId) -> StoreResult<Vec<LogLine>> {
        let rows = sqlx::query("SELECT ts, level, message FROM job_logs WHERE job_id = $1 ORDER BY n")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(|r| LogLine { timestamp: r.get(0), level: LogLevel::parse(r.get(1)), message: r.get(2) }).collect())
    }

    async fn append_log(&self, id: &RequestId, level: LogLevel, message: &str, now_ms: i64) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        jobs::append_log(&mut conn, &id.to_string(), level, message, now_ms).await
    }

    async fn cancel(&self, tenant: &Tenant, id: &RequestId, now_ms: i64) -> StoreResult<Option<JobRecord>> {
        let id = id.to_string();
        let job: Option<JobRecord> = committed!(self, |c| async {
            let Some(job) = jobs::by_id(c, &id, true).await? else { return Ok(None) };
            if job.account != tenant.account || job.mode != tenant.mode {
                return Ok(None);
            }
            jobs::cancel(c, job, now_ms).await.map(Some)
        })?;
        if let Some(job) = &job {
            self.note_event(job);
            if job.status == Status::InProgress {
                self.notifier.send(Note::Cancel { id: job.id });
            }
        }
        Ok(job)
    }

    async fn claim(&self, claim: ClaimRequest<'_>) -> StoreResult<Option<Claimed>> {
        let claimed = self
            .claims
            .call(batch::ClaimOwned {
                lane: claim.lane.to_owned(),
                runner: claim.runner.to_owned(),
                lease_ms: claim.lease_ms,
                now_ms: claim.now_ms,
                concurrency_default: claim.concurrency_default,
            })
            .await?;
        if let Some(claimed) = &claimed {
            self.note_event(&claimed.job);
        }
        Ok(claimed)
    }

    async fn heartbeat(&self, lease: &Lease, progress: Option<u8>, lease_ms: i64, now_ms: i64) -> StoreResult<LeaseState> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        let state = jobs::heartbeat(&mut conn, lease, progress, lease_ms, now_ms).await?;
        if let (LeaseState::Held { .. }, Some(progress)) = (&state, progress) {
            // Watchers on other nodes see progress now, not at their next re-read.
            self.notifier.send(Note::Event { id: lease.job, status: Status::InProgress, progress });
        }
        Ok(state)
    }

    async fn finish(&self, lease: &Lease, end: JobEnd, now_ms: i64) -> StoreResult<Option<JobRecord>> {
        let done = self.finishes.call(batch::Finish { lease: lease.clone(), end, now_ms }).await?;
        if let Some(job) = &done {
            self.note_event(job);
            self.note_wake(&job.lane); // a concurrency slot of the key is free again
        }
        Ok(done)
    }

    async fn release(&self, lease: &Lease, now_ms: i64) -> StoreResult<bool> {
        let released = committed!(self, |c| jobs::release(c, lease, now_ms))?;
        if let Some(job) = &released {
            self.note_wake(&job.lane);
        }
        Ok(released.is_some())
    }

    async fn expire_leases(&self, now_ms: i64) -> StoreResult<Vec<RequestId>> {
        let expired = committed!(self, |c| jobs::expire_leases(c, now_ms))?;
        for job in &expired {
            self.note_event(job);
            self.note_wake(&job.lane);
        }
        Ok(expired.into_iter().map(|j| j.id).collect())
    }

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        let row = sqlx::query(
            "SELECT count(*) FILTER (WHERE status = 'IN_QUEUE'), count(*) FILTER (WHERE status = 'IN_PROGRESS') \
             FROM jobs WHERE status IN ('IN_QUEUE', 'IN_PROGRESS')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(QueueStats { queued: row.get::<i64, _>(0).max(0) as u64, in_progress: row.get::<i64, _>(1).max(0) as u64 })
    }

    async fn audit(&self) -> StoreResult<Vec<String>> {
        self.audit_ledger().await
    }

    async fn webhook_secrets(&self, tenant: &Tenant, now_ms: i64) -> StoreResult<Vec<WebhookSecretRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        webhooks::secrets(&mut conn, tenant, now_ms).await
    }

    async fn ensure_webhook_secret(&self, tenant: &Tenant, candidate: &str, now_ms: i64) -> StoreResult<Vec<WebhookSecretRecord>> {
        committed!(self, |c| webhooks::ensure_secret(c, tenant, candidate, now_ms))
    }

    async fn rotate_webhook_secret(&self, tenant: &Tenant, new_secret: &str, overlap_ms: i64, now_ms: i64) -> StoreResult<Vec<WebhookSecretRecord>> {
        committed!(self, |c| webhooks::rotate_secret(c, tenant, new_secret, overlap_ms, now_ms))
    }

    async fn claim_webhooks(&self, claim: WebhookClaim<'_>) -> StoreResult<Vec<WebhookDelivery>> {
        committed!(self, |c| webhooks::claim(c, &claim))
    }

    async fn record_webhook_attempt(&self, attempt: WebhookAttempt, next: DeliveryNext, now_ms: i64) -> StoreResult<()> {
        committed!(self, |c| webhooks::record_attempt(c, &attempt, &next, now_ms))
    }

    async fn webhook_deliveries(&self, tenant: &Tenant, request: &RequestId) -> StoreResult<Vec<DeliveryLog>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        webhooks::deliveries(&mut conn, tenant, request).await
    }

    async fn resend_webhook(&self, tenant: &Tenant, request: &RequestId, now_ms: i64) -> StoreResult<ResendOutcome> {
        committed!(self, |c| webhooks::resend(c, tenant, request, now_ms))
    }

    async fn prune_idempotency(&self, before_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM idempotency WHERE created_at < $1").bind(before_ms).execute(&self.pool).await.map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn secret(&self, name: &str, generate: &(dyn Fn() -> String + Send + Sync)) -> StoreResult<String> {
        let candidate = generate();
        sqlx::query_scalar(
            "WITH ins AS (INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING value) \
             SELECT value FROM ins UNION ALL SELECT value FROM settings WHERE name = $1 LIMIT 1",
        )
        .bind(name)
        .bind(&candidate)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }
}
