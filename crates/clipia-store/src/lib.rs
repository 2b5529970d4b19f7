//! The storage trait: every durable operation Clipia performs, phrased in domain terms.
//!
//! Architecture invariant: callers never see SQL. Each method is one atomic step of the domain
//! (a submit reserves credits, records the idempotency key and enqueues the job in one
//! transaction; a completion is fenced by the lease's attempt and settles the reservation in the
//! same transaction), so every backend — SQLite now, PostgreSQL for scale-out — keeps the same
//! invariants by construction. Times are unix milliseconds passed in by the caller, so that tests
//! can drive a clock.

mod types;

pub use types::*;

use async_trait::async_trait;
use clipia_core::{AccountId, KeyHash, KeyId, Mode, RequestId};

/// Failures of the store itself. Domain refusals (short balance, idempotency conflicts, a lost
/// lease) are ordinary return values, not errors.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("storage error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- accounts, keys, limits -------------------------------------------------------------
    async fn account_count(&self) -> StoreResult<u64>;
    async fn create_account(&self, name: &str, now_ms: i64) -> StoreResult<Account>;
    /// By id (`acct_…`) or by name.
    async fn find_account(&self, id_or_name: &str) -> StoreResult<Option<Account>>;
    async fn create_key(&self, key: NewKey, now_ms: i64) -> StoreResult<KeyRecord>;
    async fn list_keys(&self, account: &AccountId) -> StoreResult<Vec<KeyRecord>>;
    /// Revokes a key; `account` limits it to one account's keys. Returns the key as it now is.
    async fn revoke_key(&self, account: Option<&AccountId>, key: &KeyId, now_ms: i64) -> StoreResult<Option<KeyRecord>>;
    /// The key with this hash, revoked or not; the caller checks `revoked_at`.
    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<KeyRecord>>;
    async fn set_limits(&self, account: &AccountId, limits: LimitOverrides) -> StoreResult<LimitOverrides>;
    async fn limits(&self, account: &AccountId) -> StoreResult<LimitOverrides>;

    // ---- credits ------------------------------------------------------------------------------
    /// Appends a grant (or, negative, an adjustment) to the ledger. Refused when it would take
    /// the spendable balance below zero.
    async fn grant_credits(&self, account: &AccountId, amount: i64, reason: &str, now_ms: i64) -> StoreResult<Balance>;
    async fn balance(&self, account: &AccountId) -> StoreResult<Balance>;
    async fn usage_since(&self, account: &AccountId, since_ms: i64) -> StoreResult<Usage>;
    /// Ledger entries, newest first, before the entry id `before` when given.
    async fn ledger_page(&self, account: &AccountId, before: Option<i64>, limit: u32) -> StoreResult<Vec<LedgerEntry>>;

    // ---- jobs ---------------------------------------------------------------------------------
    /// One transaction: replay or refuse by idempotency key, check the queued-jobs cap, reserve
    /// credits (live), insert the job and the idempotency record.
    async fn submit(&self, job: NewJob) -> StoreResult<SubmitOutcome>;
    /// A request as its owner (account + mode) sees it; `None` across tenants.
    async fn job(&self, tenant: &Tenant, id: &RequestId) -> StoreResult<Option<JobRecord>>;
    /// A request by id alone, for internal use (runners, file serving).
    async fn job_by_id(&self, id: &RequestId) -> StoreResult<Option<JobRecord>>;
    async fn list_jobs(&self, tenant: &Tenant, filter: &JobFilter) -> StoreResult<Vec<JobRecord>>;
    /// Jobs ahead of this one in its lane; 0 when it is next or no longer queued.
    async fn queue_position(&self, job: &JobRecord) -> StoreResult<u64>;
    async fn job_logs(&self, id: &RequestId) -> StoreResult<Vec<LogLine>>;
    async fn append_log(&self, id: &RequestId, level: LogLevel, message: &str, now_ms: i64) -> StoreResult<()>;
    /// IN_QUEUE → CANCELED at once (reservation released); IN_PROGRESS → cancel requested;
    /// terminal → unchanged. `None` when the tenant has no such request.
    async fn cancel(&self, tenant: &Tenant, id: &RequestId, now_ms: i64) -> StoreResult<Option<JobRecord>>;

    // ---- the queue ----------------------------------------------------------------------------
    /// Leases the next runnable job of `lane`: fair between accounts, within each key's
    /// concurrency limit.
    async fn claim(&self, claim: ClaimRequest<'_>) -> StoreResult<Option<Claimed>>;
    /// Renews a lease and records progress. Tells a runner whose lease was lost to stop.
    async fn heartbeat(&self, lease: &Lease, progress: Option<u8>, lease_ms: i64, now_ms: i64) -> StoreResult<LeaseState>;
    /// Ends a leased job; `None` when the lease was lost (a newer attempt owns the job). Settles
    /// the reservation in the same transaction.
    async fn finish(&self, lease: &Lease, end: JobEnd, now_ms: i64) -> StoreResult<Option<JobRecord>>;
    /// Gives a leased job back to the queue (graceful shutdown).
    async fn release(&self, lease: &Lease, now_ms: i64) -> StoreResult<bool>;
    /// Requeues jobs whose lease expired; those out of attempts fail (and are refunded).
    async fn expire_leases(&self, now_ms: i64) -> StoreResult<Vec<RequestId>>;
    async fn queue_stats(&self) -> StoreResult<QueueStats>;

    // ---- webhooks (SPEC §8) -----------------------------------------------------------------
    // The outbox rows themselves are written by `submit` (jobs created already terminal) and by
    // every transition to a terminal status (`finish`, `cancel`, `expire_leases`), in the same
    // transaction as that status, for jobs with a `webhook_url`: one row per event, with a fresh
    // UUID as its webhook id, `state` pending, `next_attempt_at` = the transition's time.

    /// The tenant's active signing secrets (current and, within 24 h of a rotation, previous),
    /// oldest first. Empty when none was ever created. Secrets past `expires_at` are left out.
    async fn webhook_secrets(&self, tenant: &Tenant, now_ms: i64) -> StoreResult<Vec<WebhookSecretRecord>>;
    /// Makes `candidate` the tenant's current secret if it has none (lazily, on first use);
    /// otherwise changes nothing. Returns the active secrets, oldest first.
    async fn ensure_webhook_secret(&self, tenant: &Tenant, candidate: &str, now_ms: i64) -> StoreResult<Vec<WebhookSecretRecord>>;
    /// Rotation: the current secret gets `expires_at = now_ms + overlap_ms` (secrets already
    /// expiring keep their earlier time) and `new_secret` becomes current. Returns the active
    /// secrets, oldest first (the new one last).
    async fn rotate_webhook_secret(&self, tenant: &Tenant, new_secret: &str, overlap_ms: i64, now_ms: i64) -> StoreResult<Vec<WebhookSecretRecord>>;
    /// Leases due, pending deliveries (`next_attempt_at <= now_ms`), oldest due first, within
    /// the claim's total and per-host limits: each gets `attempts + 1` and
    /// `next_attempt_at = now_ms + lease_ms`. Returned as they are after the claim.
    async fn claim_webhooks(&self, claim: WebhookClaim<'_>) -> StoreResult<Vec<WebhookDelivery>>;
    /// Records an attempt (always) and, when the delivery's `attempts` still equals
    /// `attempt.number` (no newer claim took over, e.g. after a resend), applies `next`.
    async fn record_webhook_attempt(&self, attempt: WebhookAttempt, next: DeliveryNext, now_ms: i64) -> StoreResult<()>;
    /// A request's deliveries with their attempts, oldest first; empty across tenants.
    async fn webhook_deliveries(&self, tenant: &Tenant, request: &RequestId) -> StoreResult<Vec<DeliveryLog>>;
    /// Sends a request's event again: its latest delivery becomes pending and due now, starting
    /// a new round of the retry schedule (`round_start = attempts`), keeping its webhook id. A
    /// terminal request with a `webhook_url` but no delivery yet gets one.
    async fn resend_webhook(&self, tenant: &Tenant, request: &RequestId, now_ms: i64) -> StoreResult<ResendOutcome>;

    // ---- housekeeping -------------------------------------------------------------------------
    /// Checks the ledger invariants over the whole store; each problem found is one line.
    /// Per account: the balance equals the ledger's sums. Per job: its reservation is resolved
    /// exactly when the job is terminal, and captured + released = reserved.
    async fn audit(&self) -> StoreResult<Vec<String>>;
    async fn prune_idempotency(&self, before_ms: i64) -> StoreResult<u64>;
    /// A named server-wide secret, created on first use so that every node shares it.
    async fn secret(&self, name: &str, generate: &(dyn Fn() -> String + Send + Sync)) -> StoreResult<String>;
}

/// The tenant a key belongs to: requests are only ever visible within it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub account: AccountId,
    pub mode: Mode,
}
