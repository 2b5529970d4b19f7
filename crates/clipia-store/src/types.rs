//! Records and commands exchanged with a store.

use clipia_core::{AccountId, ApiKey, Credits, EntryKind, JobError, KeyHash, KeyId, Mode, RequestId, Scopes, Status};
use serde_json::Value;

use crate::Tenant;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub created_at: i64,
}

/// A key to create. Built from the secret so that only its hash and prefix reach the store.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub id: KeyId,
    pub account: AccountId,
    pub mode: Mode,
    pub scopes: Scopes,
    pub name: Option<String>,
    pub prefix: String,
    pub hash: KeyHash,
}

impl NewKey {
    pub fn for_secret(secret: &ApiKey, account: AccountId, scopes: Scopes, name: Option<String>) -> NewKey {
        NewKey {
            id: KeyId::generate(),
            account,
            mode: secret.mode(),
            scopes,
            name,
            prefix: secret.display_prefix(),
            hash: secret.hash(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub id: KeyId,
    pub account: AccountId,
    pub mode: Mode,
    pub scopes: Scopes,
    pub name: Option<String>,
    pub prefix: String,
    pub hash: KeyHash,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// Jobs of this key IN_PROGRESS now.
    pub running: u32,
    /// The account's overrides of the default limits.
    pub limits: LimitOverrides,
}

/// Per-account overrides of the default limits; `None` keeps the server default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitOverrides {
    pub requests_per_minute: Option<u32>,
    pub concurrent_generations: Option<u32>,
    pub queued_jobs_max: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    /// Spendable now.
    pub available: Credits,
    /// Set aside for jobs not yet finished.
    pub reserved: Credits,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests: u64,
    pub credits_spent: Credits,
}

#[derive(Clone, Debug)]
pub struct LedgerEntry {
    pub id: i64,
    pub kind: EntryKind,
    /// Signed: negative only for downward adjustments.
    pub amount: i64,
    pub request_id: Option<String>,
    pub reason: Option<String>,
    pub created_at: i64,
}

/// Where a job starts life.
#[derive(Clone, Debug)]
pub enum InitialState {
    /// Waits in its lane until `run_after`.
    Queued { run_after: i64 },
    /// Already finished (sandbox): the output is known at submit.
    Completed { output: Value },
    /// Already failed (sandbox's `clipia:fail`).
    Failed { error: JobError },
}

#[derive(Clone, Debug)]
pub struct IdempotencyClaim {
    pub key: String,
    /// A hash of the model and body, to tell a replay from a reuse.
    pub fingerprint: String,
}

/// A job to create, with everything its submit transaction needs.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub id: RequestId,
    pub tenant: Tenant,
    pub key: KeyId,
    pub model: String,
    /// The queue lane its runners claim from (`builtin`, `sandbox`, `upstream`, `worker`).
    pub lane: String,
    pub input: Value,
    pub metadata: Option<Value>,
    pub webhook_url: Option<String>,
    /// The price; reserved when `reserve` is set (live keys).
    pub cost: Credits,
    pub reserve: bool,
    pub initial: InitialState,
    pub idempotency: Option<IdempotencyClaim>,
    /// Submit warnings, kept so that a replay answers exactly as the first call did.
    pub warnings: Value,
    pub queued_jobs_max: u32,
    pub now_ms: i64,
}

/// What a submit answered, as kept for idempotent replays.
#[derive(Clone, Debug, PartialEq)]
pub struct SubmitSnapshot {
    pub request_id: RequestId,
    pub status: Status,
    pub queue_position: Option<u64>,
    pub cost: Credits,
    pub warnings: Value,
}

impl SubmitSnapshot {
    /// The form an idempotency record keeps (both stores; PostgreSQL's `clipia_submit_apply`
    /// writes the same fields).
    pub fn to_stored_json(&self) -> String {
        serde_json::json!({
            "request_id": self.request_id.to_string(),
            "status": self.status.as_str(),
            "queue_position": self.queue_position,
            "cost": self.cost,
            "warnings": self.warnings,
        })
        .to_string()
    }

    pub fn from_stored_json(text: &str) -> crate::StoreResult<SubmitSnapshot> {
        let bad = || crate::StoreError::Backend("stored idempotent response is invalid".into());
        let v: Value = serde_json::from_str(text).map_err(|_| bad())?;
        Ok(SubmitSnapshot {
            request_id: v["request_id"].as_str().and_then(RequestId::parse).ok_or_else(bad)?,
            status: v["status"].as_str().and_then(Status::parse).ok_or_else(bad)?,
            queue_position: v["queue_position"].as_u64(),
            cost: v["cost"].as_u64().ok_or_else(bad)?,
            warnings: v["warnings"].clone(),
        })
    }
}

#[derive(Clone, Debug)]
pub enum SubmitOutcome {
    Created(SubmitSnapshot),
    /// The same idempotency key, model and body as an earlier submit: its answer again.
    Replayed(SubmitSnapshot),
    /// The same idempotency key with another model or body.
    IdempotencyConflict,
    InsufficientCredits { cost: Credits, available: Credits },
    QueueFull { queued_jobs_max: u32 },
}

#[derive(Clone, Debug)]
pub struct JobRecord {
    pub id: RequestId,
    pub seq: i64,
    pub account: AccountId,
    pub mode: Mode,
    pub key: KeyId,
    pub model: String,
    pub lane: String,
    pub status: Status,
    pub input: Value,
    pub metadata: Option<Value>,
    pub webhook_url: Option<String>,
    pub cost_reserved: Credits,
    pub cost_charged: Option<Credits>,
    pub output: Option<Value>,
    pub error: Option<JobError>,
    pub progress: u8,
    pub attempt: i64,
    pub cancel_requested: bool,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub status: Option<Status>,
    pub model: Option<String>,
    /// Only jobs older than this sequence number (the cursor).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    pub fn parse(text: &str) -> LogLevel {
        match text {
            "debug" => LogLevel::Debug,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => LogLevel::Info,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LogLine {
    pub timestamp: i64,
    pub level: LogLevel,
    pub message: String,
}

pub struct ClaimRequest<'a> {
    pub lane: &'a str,
    pub runner: &'a str,
    pub lease_ms: i64,
    pub now_ms: i64,
    pub concurrency_default: u32,
}

/// Proof of a claim. Every later write about the job names the attempt, so a runner that lost
/// its lease (and a newer attempt that took over) can never be overwritten by the stale one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub job: RequestId,
    pub attempt: i64,
    pub runner: String,
}

#[derive(Clone, Debug)]
pub struct Claimed {
    pub lease: Lease,
    pub job: JobRecord,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    Held { cancel_requested: bool },
    Lost,
}

#[derive(Clone, Debug)]
pub enum JobEnd {
    Completed { output: Value, used: Credits },
    Failed(JobError),
    Canceled,
}

#[derive(Clone, Debug, Default)]
pub struct QueueStats {
    pub queued: u64,
    pub in_progress: u64,
}

// ---- webhooks (SPEC §8) ---------------------------------------------------------------------

/// One signing secret of a tenant. A tenant has one current secret (`expires_at: None`) and,
/// for 24 h after a rotation, the previous one beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSecretRecord {
    /// `whsec_…`, as shown to the owner and used to sign.
    pub secret: String,
    pub created_at: i64,
    /// When a rotated-out secret stops signing; `None` for the current one.
    pub expires_at: Option<i64>,
}

/// Where a delivery (one event for one request) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt (or being attempted now, under a lease).
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Given up: 410, a refused destination, or the retry schedule ran out.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryState> {
        [DeliveryState::Pending, DeliveryState::Delivered, DeliveryState::Failed].into_iter().find(|s| s.as_str() == text)
    }
}

/// A row of the webhook outbox: one event of one request, written in the same transaction as
/// the request's terminal status, and attempted until delivered or given up.
#[derive(Clone, Debug)]
pub struct WebhookDelivery {
    /// The webhook id (a UUID): the same on every attempt and resend of this event.
    pub id: String,
    pub request_id: RequestId,
    pub tenant: Tenant,
    pub url: String,
    /// `clipia_core::webhook::destination_host(url)`: what per-destination limits count by.
    pub host: String,
    pub state: DeliveryState,
    /// Attempts made so far, over all rounds; a claim increments it, so a claimed delivery's
    /// `attempts` is the number of the attempt being made.
    pub attempts: u32,
    /// `attempts` when the current round began (0, or the count at the last resend): the retry
    /// schedule restarts at each resend.
    pub round_start: u32,
    /// When the next attempt is due; while claimed, when the claim's lease runs out.
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub last_error: Option<String>,
}

/// One attempt to deliver, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookAttempt {
    pub webhook_id: String,
    /// 1, 2, …: the delivery's `attempts` when it was claimed.
    pub number: u32,
    pub started_at: i64,
    pub duration_ms: i64,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why the attempt failed without an answer (timeout, connection refused, refused address),
    /// or why a non-2xx answer ended the delivery.
    pub error: Option<String>,
}

/// What follows a recorded attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryNext {
    Delivered,
    Retry { at_ms: i64 },
    Failed { reason: String },
}

/// Asks for due deliveries to attempt now.
pub struct WebhookClaim<'a> {
    pub now_ms: i64,
    /// Claimed rows get `next_attempt_at = now_ms + lease_ms`: if this node dies mid-send, the
    /// row becomes due again then and is re-sent (at-least-once).
    pub lease_ms: i64,
    /// The most rows to return.
    pub limit: u32,
    /// The most deliveries in flight to one `host` at once.
    pub per_host_max: u32,
    /// Deliveries this node already has in flight, by host: a host gets at most
    /// `per_host_max - in_flight[host]` more rows.
    pub in_flight: &'a std::collections::HashMap<String, u32>,
}

/// A delivery with its attempts, oldest first.
#[derive(Clone, Debug)]
pub struct DeliveryLog {
    pub delivery: WebhookDelivery,
    pub attempts: Vec<WebhookAttempt>,
}

#[derive(Clone, Debug)]
pub enum ResendOutcome {
    /// The request's delivery is due now (a new round of the same event, same webhook id).
    Armed(WebhookDelivery),
    /// The tenant has no such request.
    NotFound,
    /// The request has no `webhook_url`.
    NoWebhookUrl,
    /// The request has not finished, so there is no event yet.
    NotTerminal,
}
