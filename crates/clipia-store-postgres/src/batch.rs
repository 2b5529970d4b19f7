//! Group commit: the submits, claims and finishes that arrive at a node together run as one
//! transaction and one round trip, through the functions of migration `0003_batches.sql`.
//!
//! Why: a submit updates its account's row (the credit reservation) and a claim or finish its
//! key's row (the concurrency counters), and PostgreSQL holds those row locks until the commit is
//! on disk. One transaction per request would let one account submit about once per commit flush
//! (~3 ms here), whatever the number of nodes. A batch pays that flush once for everything it
//! holds. Callers are answered only after their batch's `COMMIT`, so every acknowledged write is
//! durable, as before.
//!
//! A batch that fails for a reason other than a deadlock or a lost connection (both rerun the
//! whole batch) is run again one item at a time, so one bad item fails alone.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use clipia_core::limits::JOB_LOG_LINES_MAX;
use clipia_core::{KeyHash, RequestId, Status};
use clipia_store::{Claimed, InitialState, JobEnd, JobRecord, KeyRecord, Lease, NewJob, StoreError, StoreResult, SubmitOutcome, SubmitSnapshot};
use serde_json::{json, Value};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::rows::{self, db_err};

/// Requests one batch carries at most.
pub const BATCH_MAX: usize = 256;
/// Batches of one kind in flight at once per node: the next one gathers while one commits.
const BATCHES_IN_FLIGHT: usize = 1;

type Reply<A> = oneshot::Sender<StoreResult<A>>;

/// A queue in front of one batch operation. Callers wait for their own answer; a background task
/// takes everything waiting (up to [`BATCH_MAX`]) whenever a batch slot is free.
pub struct Batcher<Q, A> {
    tx: mpsc::UnboundedSender<(Q, Reply<A>)>,
}

impl<Q, A> Clone for Batcher<Q, A> {
    fn clone(&self) -> Self {
        Batcher { tx: self.tx.clone() }
    }
}

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    pub fn spawn<F, Fut>(run: F) -> Self
    where
        F: Fn(Vec<Q>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<StoreResult<A>>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Q, Reply<A>)>();
        let run = Arc::new(run);
        let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let mut waiting = vec![first];
                while waiting.len() < BATCH_MAX {
                    match rx.try_recv() {
                        Ok(next) => waiting.push(next),
                        Err(_) => break,
                    }
                }
                let (requests, replies): (Vec<Q>, Vec<Reply<A>>) = waiting.into_iter().unzip();
                let run = run.clone();
                tokio::spawn(async move {
                    let answers = run(requests).await;
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(answer);
                    }
                    drop(slot);
                });
            }
        });
        Batcher { tx }
    }

    pub async fn call(&self, request: Q) -> StoreResult<A> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((request, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the store's batch worker stopped".into())
}

/// The pool a batch runs on (a struct so that `committed!` applies).
#[derive(Clone)]
pub struct Db {
    pub pool: PgPool,
}

/// Runs `one` over the whole batch; when that fails (after the retries of `committed!`), runs
/// it again for each item alone so that the others still succeed.
async fn with_fallback<Q, A, F, Fut>(items: Vec<Q>, one: F) -> Vec<StoreResult<A>>
where
    F: Fn(Vec<Q>) -> Fut,
    Fut: Future<Output = StoreResult<Vec<A>>>,
    Q: Clone,
{
    let n = items.len();
    match one(items.clone()).await {
        Ok(out) => out.into_iter().map(Ok).collect(),
        Err(e) if n == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, items = n, "batch failed; running its items one by one");
            let mut out = Vec::with_capacity(n);
            for item in items {
                out.push(one(vec![item]).await.map(|mut v| v.remove(0)));
            }
            out
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Submits

/// The `n`th item of a batch's writes (`ord` counts from 1, as SQL's ordinality does).
fn submit_item(job: &NewJob, vtime: i64, n: usize) -> Value {
    let (status, run_after, output, error, completed_at, charged) = match &job.initial {
        InitialState::Queued { run_after } => (Status::InQueue, *run_after, None, None, None, None),
        InitialState::Completed { output } => {
            (Status::Completed, job.now_ms, Some(output.to_string()), None, Some(job.now_ms), Some(job.cost as i64))
        }
        InitialState::Failed { error } => (Status::Failed, job.now_ms, None, Some(error.clone()), Some(job.now_ms), Some(0)),
    };
    json!({
        "id": job.id.to_string(),
        "account": job.tenant.account.as_str(),
        "mode": job.tenant.mode.as_str(),
        "key": job.key.as_str(),
        "model": job.model,
        "lane": job.lane,
        "status": status.as_str(),
        "input": job.input.to_string(),
        "metadata": job.metadata.as_ref().map(|m| m.to_string()),
        "webhook_url": job.webhook_url,
        "webhook_id": job.webhook_url.as_ref().map(|_| uuid::Uuid::new_v4().hyphenated().to_string()),
        "webhook_host": job.webhook_url.as_deref().map(clipia_core::webhook::destination_host),
        "cost": job.cost as i64,
        "reserve": job.reserve,
        "charged": charged,
        "output": output,
        "error_code": error.as_ref().map(|e| e.code.clone()),
        "error_message": error.as_ref().map(|e| e.message.clone()),
        "completed_at": completed_at,
        "run_after": run_after,
        "now": job.now_ms,
        "idem_key": job.idempotency.as_ref().map(|i| i.key.clone()),
        "idem_fp": job.idempotency.as_ref().map(|i| i.fingerprint.clone()),
        "warnings": job.warnings,
        "vtime": vtime,
        "ord": n + 1,
    })
}

fn is_queued(job: &NewJob) -> bool {
    matches!(job.initial, InitialState::Queued { .. })
}

/// Whether a submit reads or writes its account's row (and so must hold its lock): it reserves
/// credits, takes a fair-queuing time, or names an idempotency key (the account's lock orders
/// submits with the same key, on every node).
fn needs_account(job: &NewJob) -> bool {
    job.reserve || is_queued(job) || job.idempotency.is_some()
}

/// What the rules decided for one submit of a batch.
enum Decision {
    /// Accepted: the `n`th item written.
    Created(usize),
    /// The same idempotency key and body as the `n`th item written in this batch.
    ReplayOf(usize),
    Done(SubmitOutcome),
}

/// The balances, counters and records a batch's rules read, as `clipia_submit_state` returns them.
struct SubmitState {
    accounts: HashMap<String, (i64, i64)>,
    keys: HashMap<String, i64>,
    clocks: HashMap<String, i64>,
    idem: HashMap<(String, String, String), (String, Result<String, usize>)>,
}

fn parse_state(text: &str) -> StoreResult<SubmitState> {
    let bad = || StoreError::Backend("unexpected submit state".into());
    let v: Value = serde_json::from_str(text).map_err(|_| bad())?;
    let int = |v: &Value| v.as_i64().ok_or_else(bad);
    let mut state = SubmitState { accounts: HashMap::new(), keys: HashMap::new(), clocks: HashMap::new(), idem: HashMap::new() };
    for (id, a) in v["accounts"].as_object().ok_or_else(bad)? {
        state.accounts.insert(id.clone(), (int(&a[0])?, int(&a[1])?));
    }
    for (id, n) in v["keys"].as_object().ok_or_else(bad)? {
        state.keys.insert(id.clone(), int(n)?);
    }
    for (lane, n) in v["clocks"].as_object().ok_or_else(bad)? {
        state.clocks.insert(lane.clone(), int(n)?);
    }
    for r in v["idem"].as_array().ok_or_else(bad)? {
        let s = |i: usize| r[i].as_str().map(str::to_owned).ok_or_else(bad);
        state.idem.insert((s(0)?, s(1)?, s(2)?), (s(3)?, Ok(s(4)?)));
    }
    Ok(state)
}

/// One transaction for `jobs`: read and lock, decide in arrival order, write the accepted ones.
async fn submit_once(db: &Db, jobs: Vec<Arc<NewJob>>) -> StoreResult<Vec<SubmitOutcome>> {
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v.dedup();
        v
    };
    let accounts = sorted(jobs.iter().filter(|j| needs_account(j)).map(|j| j.tenant.account.as_str().to_owned()).collect());
    let keys = sorted(jobs.iter().filter(|j| is_queued(j)).map(|j| j.key.as_str().to_owned()).collect());
    let lanes = sorted(jobs.iter().filter(|j| is_queued(j)).map(|j| j.lane.clone()).collect());
    let idem: Vec<Value> = jobs
        .iter()
        .filter_map(|j| j.idempotency.as_ref().map(|i| json!({"account": j.tenant.account.as_str(), "mode": j.tenant.mode.as_str(), "key": i.key})))
        .collect();
    let idem = Value::Array(idem).to_string();
    committed!(db, |c| async {
        let text: String = sqlx::query_scalar("SELECT clipia_submit_state($1, $2, $3, $4::jsonb)::text")
            .bind(&accounts)
            .bind(&keys)
            .bind(&lanes)
            .bind(&idem)
            .fetch_one(&mut *c)
            .await
            .map_err(db_err)?;
        let mut state = parse_state(&text)?;
        let (mut items, mut decisions) = (Vec::new(), Vec::with_capacity(jobs.len()));
        let (mut debits, mut key_adds, mut lane_adds) = (HashMap::new(), HashMap::new(), HashMap::new());
        for job in &jobs {
            decisions.push(decide(job, &mut state, &mut items, &mut debits, &mut key_adds, &mut lane_adds)?);
        }
        let positions: Vec<u64> = if items.is_empty() {
            Vec::new()
        } else {
            let changes = |m: HashMap<String, Value>| Value::Array(m.into_values().collect()).to_string();
            let text: String = sqlx::query_scalar("SELECT clipia_submit_apply($1::jsonb, $2::jsonb, $3::jsonb, $4::jsonb)::text")
                .bind(Value::Array(std::mem::take(&mut items)).to_string())
                .bind(changes(debits))
                .bind(changes(key_adds))
                .bind(changes(lane_adds))
                .fetch_one(&mut *c)
                .await
                .map_err(db_err)?;
            serde_json::from_str(&text).map_err(|e| StoreError::Backend(format!("submit positions: {e}")))?
        };
        let created = |n: usize, job: &NewJob| -> StoreResult<SubmitSnapshot> {
            Ok(SubmitSnapshot {
                request_id: job.id,
                status: match job.initial {
                    InitialState::Queued { .. } => Status::InQueue,
                    InitialState::Completed { .. } => Status::Completed,
                    InitialState::Failed { .. } => Status::Failed,
                },
                queue_position: Some(*positions.get(n).ok_or_else(|| StoreError::Backend("a submit lacks its position".into()))?),
                cost: job.cost,
                warnings: job.warnings.clone(),
            })
        };
        let written: Vec<&Arc<NewJob>> = jobs.iter().zip(&decisions).filter(|(_, d)| matches!(d, Decision::Created(_))).map(|(j, _)| j).collect();
        decisions
            .into_iter()
            .zip(&jobs)
            .map(|(d, job)| match d {
                Decision::Created(n) => created(n, job).map(SubmitOutcome::Created),
                Decision::ReplayOf(n) => created(n, written[n]).map(SubmitOutcome::Replayed),
                Decision::Done(outcome) => Ok(outcome),
            })
            .collect::<StoreResult<Vec<_>>>()
    })
}

/// Applies the rules of SPEC §5–6 to one submit against the batch's running state.
fn decide(
    job: &NewJob,
    state: &mut SubmitState,
    items: &mut Vec<Value>,
    debits: &mut HashMap<String, Value>,
    key_adds: &mut HashMap<String, Value>,
    lane_adds: &mut HashMap<String, Value>,
) -> StoreResult<Decision> {
    let account = job.tenant.account.as_str();
    let idem_key = job.idempotency.as_ref().map(|i| (account.to_owned(), job.tenant.mode.as_str().to_owned(), i.key.clone()));
    if let (Some(k), Some(i)) = (&idem_key, &job.idempotency) {
        if let Some((fingerprint, response)) = state.idem.get(k) {
            if *fingerprint != i.fingerprint {
                return Ok(Decision::Done(SubmitOutcome::IdempotencyConflict));
            }
            return Ok(match response {
                Ok(text) => Decision::Done(SubmitOutcome::Replayed(SubmitSnapshot::from_stored_json(text)?)),
                Err(n) => Decision::ReplayOf(*n),
            });
        }
    }
    let queued = is_queued(job);
    let cost = if job.reserve { job.cost as i64 } else { 0 };
    let mut vtime = 0;
    if needs_account(job) {
        let Some((available, last_vtime)) = state.accounts.get_mut(account) else {
            return Err(StoreError::NotFound(format!("account {account}")));
        };
        if *available < cost {
            return Ok(Decision::Done(SubmitOutcome::InsufficientCredits { cost: job.cost, available: (*available).max(0) as u64 }));
        }
        if queued {
            let queued_now = state.keys.get(job.key.as_str()).copied().unwrap_or(0);
            if queued_now >= i64::from(job.queued_jobs_max) {
                return Ok(Decision::Done(SubmitOutcome::QueueFull { queued_jobs_max: job.queued_jobs_max }));
            }
            state.keys.insert(job.key.as_str().to_owned(), queued_now + 1);
            // Fair queuing: one past the later of the lane's clock and the account's latest job.
            vtime = (*last_vtime).max(state.clocks.get(&job.lane).copied().unwrap_or(0)) + 1;
            *last_vtime = vtime;
            bump(key_adds, job.key.as_str());
            bump(lane_adds, &job.lane);
        }
        *available -= cost;
        let entry = debits.entry(account.to_owned()).or_insert_with(|| json!({"id": account, "debit": 0, "last_vtime": 0}));
        entry["debit"] = json!(entry["debit"].as_i64().unwrap_or(0) + cost);
        entry["last_vtime"] = json!(entry["last_vtime"].as_i64().unwrap_or(0).max(vtime));
    }
    let n = items.len();
    items.push(submit_item(job, vtime, n));
    if let (Some(k), Some(i)) = (idem_key, &job.idempotency) {
        state.idem.insert(k, (i.fingerprint.clone(), Err(n)));
    }
    Ok(Decision::Created(n))
}

/// Counts one more queued job for a key or a lane (`clipia_submit_apply` reads `id` for keys
/// and `lane` for lanes).
fn bump(changes: &mut HashMap<String, Value>, id: &str) {
    let entry = changes.entry(id.to_owned()).or_insert_with(|| json!({"id": id, "lane": id, "queued": 0}));
    entry["queued"] = json!(entry["queued"].as_i64().unwrap_or(0) + 1);
}

pub async fn submit_batch(db: Db, jobs: Vec<Arc<NewJob>>) -> Vec<StoreResult<SubmitOutcome>> {
    with_fallback(jobs, |jobs| submit_once(&db, jobs)).await
}

// ---------------------------------------------------------------------------------------------
// Claims

#[derive(Clone)]
pub struct ClaimOwned {
    pub lane: String,
    pub runner: String,
    pub lease_ms: i64,
    pub now_ms: i64,
    pub concurrency_default: u32,
}

/// One transaction per lane (and lease settings) in the batch; a runner gets a job or nothing.
async fn claim_once(db: &Db, claims: Vec<ClaimOwned>) -> StoreResult<Vec<Option<Claimed>>> {
    let mut out: Vec<Option<Claimed>> = vec![None; claims.len()];
    let mut groups: Vec<((String, i64, u32), Vec<usize>)> = Vec::new();
    for (i, c) in claims.iter().enumerate() {
        let key = (c.lane.clone(), c.lease_ms, c.concurrency_default);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    for ((lane, lease_ms, concurrency_default), members) in groups {
        let runners: Vec<String> = members.iter().map(|&i| claims[i].runner.clone()).collect();
        let now = members.iter().map(|&i| claims[i].now_ms).max().unwrap_or(0);
        let sql = format!("SELECT {} FROM clipia_claim_batch($1, $2, $3, $4, $5, $6)", rows::JOB_COLUMNS);
        let found = committed!(db, |c| async {
            sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(&lane)
                .bind(&runners)
                .bind(now)
                .bind(lease_ms)
                .bind(i64::from(concurrency_default))
                .bind(JOB_LOG_LINES_MAX)
                .fetch_all(&mut *c)
                .await
                .map_err(db_err)
        })?;
        // The function serves the runners in order and stops at the first it cannot serve.
        for (row, &i) in found.iter().zip(&members) {
            let job = rows::job(row)?;
            let lease = Lease { job: job.id, attempt: job.attempt, runner: claims[i].runner.clone() };
            out[i] = Some(Claimed { lease, job });
        }
    }
    Ok(out)
}

pub async fn claim_batch(db: Db, claims: Vec<ClaimOwned>) -> Vec<StoreResult<Option<Claimed>>> {
    with_fallback(claims, |claims| claim_once(&db, claims)).await
}

// ---------------------------------------------------------------------------------------------
// Finishes

#[derive(Clone)]
pub struct Finish {
    pub lease: Lease,
    pub end: JobEnd,
    pub now_ms: i64,
}

/// The arguments of `clipia_terminate` for an end, as JSON fields.
fn end_fields(end: &JobEnd) -> (Status, Option<String>, Option<clipia_core::JobError>, i64) {
    match end {
        JobEnd::Completed { output, used } => (Status::Completed, Some(output.to_string()), None, *used as i64),
        JobEnd::Failed(e) => (Status::Failed, None, Some(e.clone()), 0),
        JobEnd::Canceled => (Status::Canceled, None, Some(clipia_core::JobError::canceled()), 0),
    }
}

/// The item `clipia_end_jobs` reads to end job `id` from state `from` at `attempt`.
pub fn end_item(id: &RequestId, attempt: i64, from: Status, end: &JobEnd) -> Value {
    let (status, output, error, used) = end_fields(end);
    json!({
        "id": id.to_string(),
        "attempt": attempt,
        "from": from.as_str(),
        "status": status.as_str(),
        "output": output,
        "error_code": error.as_ref().map(|e| e.code.clone()),
        "error_message": error.as_ref().map(|e| e.message.clone()),
        "used": used,
    })
}

/// Ends jobs in one statement (see `clipia_end_jobs`) and puts their webhook events in the
/// outbox of the same transaction. Returns the jobs that ended.
pub async fn end_jobs(c: &mut PgConnection, items: &[Value], now: i64) -> StoreResult<Vec<JobRecord>> {
    let sql = format!("SELECT {} FROM clipia_end_jobs($1::jsonb, $2, $3)", rows::JOB_COLUMNS);
    let found = sqlx::query(AssertSqlSafe(sql))
        .bind(Value::Array(items.to_vec()).to_string())
        .bind(now)
        .bind(JOB_LOG_LINES_MAX)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
    let done = found.iter().map(rows::job).collect::<StoreResult<Vec<_>>>()?;
    enqueue_webhooks(c, &done, now).await?;
    Ok(done)
}

async fn finish_once(db: &Db, finishes: Vec<Finish>) -> StoreResult<Vec<Option<JobRecord>>> {
    let items: Vec<Value> = finishes.iter().map(|f| end_item(&f.lease.job, f.lease.attempt, Status::InProgress, &f.end)).collect();
    let now = finishes.iter().map(|f| f.now_ms).max().unwrap_or(0);
    let done: Vec<JobRecord> = committed!(db, |c| end_jobs(c, &items, now))?;
    let mut out: Vec<Option<JobRecord>> = vec![None; finishes.len()];
    for job in done {
        if let Some(i) = (0..finishes.len()).find(|&i| out[i].is_none() && finishes[i].lease.job == job.id) {
            out[i] = Some(job);
        }
    }
    Ok(out)
}

/// Outbox rows for the jobs that just ended, in the transaction that ended them.
pub async fn enqueue_webhooks(c: &mut PgConnection, done: &[JobRecord], now: i64) -> StoreResult<()> {
    for job in done {
        if let Some(url) = job.webhook_url.as_deref() {
            crate::webhooks::enqueue(c, &job.id.to_string(), job.account.as_str(), job.mode.as_str(), url, now).await?;
        }
    }
    Ok(())
}

pub async fn finish_batch(db: Db, finishes: Vec<Finish>) -> Vec<StoreResult<Option<JobRecord>>> {
    with_fallback(finishes, |finishes| finish_once(&db, finishes)).await
}

// ---------------------------------------------------------------------------------------------
// Key lookups

/// The keys behind a batch of presented hashes, in one read. Every authenticated request makes
/// one such lookup, so reading them together saves a round trip per request.
pub async fn key_batch(db: Db, hashes: Vec<KeyHash>) -> Vec<StoreResult<Option<KeyRecord>>> {
    let wanted: Vec<&str> = hashes.iter().map(KeyHash::as_str).collect();
    let sql = format!("{} WHERE k.hash = ANY($1)", rows::KEY_SELECT);
    // A lost connection must not fail every request of the batch: the read runs again.
    let read = crate::retried(|| async {
        sqlx::query(AssertSqlSafe(sql.clone())).bind(&wanted).fetch_all(&db.pool).await.map_err(db_err)
    });
    match read.await {
        Ok(found) => {
            let mut by_hash = HashMap::with_capacity(found.len());
            for row in &found {
                match rows::key(row) {
                    Ok(key) => {
                        by_hash.insert(key.hash.as_str().to_owned(), key);
                    }
                    Err(e) => return vec![Err(e); hashes.len()],
                }
            }
            wanted.iter().map(|h| Ok(by_hash.get(*h).cloned())).collect()
        }
        Err(e) => vec![Err(e); hashes.len()],
    }
}
