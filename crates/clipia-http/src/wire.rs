//! The JSON shapes of SPEC §4, built from service records. Only this crate knows them.

use clipia_service::requests::RequestView;
use clipia_service::submit::Submitted;
use clipia_service::time::rfc3339;
use clipia_service::App;
use clipia_store::{JobRecord, KeyRecord, LedgerEntry, LogLine};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

fn urls(base: &str, id: &str) -> (String, String, String) {
    (
        format!("{base}/v1/requests/{id}/status"),
        format!("{base}/v1/requests/{id}"),
        format!("{base}/v1/requests/{id}/cancel"),
    )
}

/// `POST /v1/models/{model}`.
#[derive(Serialize, ToSchema)]
pub struct SubmitResponse {
    /// A UUID.
    pub request_id: String,
    /// `IN_QUEUE`, or already `COMPLETED` / `FAILED` for test keys.
    pub status: String,
    pub queue_position: Option<u64>,
    pub status_url: String,
    pub response_url: String,
    /// [ext] Cancels the request.
    pub cancel_url: String,
    /// Credits reserved for the job (computed but not charged for test keys).
    pub cost: u64,
    #[schema(value_type = Vec<Object>)]
    pub warnings: Value,
}

impl SubmitResponse {
    pub fn new(s: &Submitted, base: &str) -> SubmitResponse {
        let id = s.snapshot.request_id.to_string();
        let (status_url, response_url, cancel_url) = urls(base, &id);
        SubmitResponse {
            request_id: id,
            status: s.snapshot.status.as_str().to_owned(),
            queue_position: s.snapshot.queue_position,
            status_url,
            response_url,
            cancel_url,
            cost: s.snapshot.cost,
            warnings: s.snapshot.warnings.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LogEntry {
    pub timestamp: String,
    pub level: String,
    pub message: String,
}

impl From<&LogLine> for LogEntry {
    fn from(l: &LogLine) -> LogEntry {
        LogEntry { timestamp: rfc3339(l.timestamp), level: l.level.as_str().to_owned(), message: l.message.clone() }
    }
}

/// `GET /v1/requests/{id}/status`.
#[derive(Serialize, ToSchema)]
pub struct StatusResponse {
    pub request_id: String,
    pub status: String,
    /// Jobs ahead while IN_QUEUE; null otherwise.
    pub queue_position: Option<u64>,
    /// 0–100.
    pub progress: u8,
    pub logs: Vec<LogEntry>,
}

impl From<&RequestView> for StatusResponse {
    fn from(v: &RequestView) -> StatusResponse {
        StatusResponse {
            request_id: v.job.id.to_string(),
            status: v.job.status.as_str().to_owned(),
            queue_position: v.queue_position,
            progress: v.job.progress,
            logs: v.logs.iter().map(LogEntry::from).collect(),
        }
    }
}

/// `GET /v1/requests/{id}` while the request is not finished (HTTP 202).
#[derive(Serialize, ToSchema)]
pub struct PendingResponse {
    pub request_id: String,
    pub status: String,
    pub queue_position: Option<u64>,
    pub status_url: String,
    pub response_url: String,
}

impl PendingResponse {
    pub fn new(v: &RequestView, base: &str) -> PendingResponse {
        let id = v.job.id.to_string();
        let (status_url, response_url, _) = urls(base, &id);
        PendingResponse { request_id: id, status: v.job.status.as_str().to_owned(), queue_position: v.queue_position, status_url, response_url }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ErrorObject {
    /// Upper case: `GENERATION_FAILED`, `CANCELED`, `TIMEOUT`, `WORKER_LOST`.
    pub code: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct Metrics {
    pub queue_ms: Option<i64>,
    pub run_ms: Option<i64>,
}

/// `GET /v1/requests/{id}` once finished (HTTP 200), the cancel answer, and list items.
#[derive(Serialize, ToSchema)]
pub struct ResultResponse {
    pub request_id: String,
    pub status: String,
    pub model: String,
    /// Images: `{images: [{url, original_url, width, height, content_type, file_size, expires_at}], seed}`;
    /// video: `{video: {url, original_url, width, height, duration, fps, content_type, file_size, expires_at}}`.
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    pub error: Option<ErrorObject>,
    /// The reservation while running, the amount charged once finished, 0 for FAILED and CANCELED.
    pub cost: u64,
    pub created_at: String,
    pub completed_at: Option<String>,
    /// [ext]
    pub started_at: Option<String>,
    /// [ext] The input as run, defaults applied.
    #[schema(value_type = Object)]
    pub input: Value,
    /// [ext]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// [ext]
    pub metrics: Metrics,
    /// [ext] `live` or `test`.
    pub mode: String,
}

impl ResultResponse {
    pub fn new(app: &App, job: &JobRecord, base: &str) -> ResultResponse {
        let cost = if job.status.is_terminal() { job.cost_charged.unwrap_or(0) } else { job.cost_reserved };
        ResultResponse {
            request_id: job.id.to_string(),
            status: job.status.as_str().to_owned(),
            model: job.model.clone(),
            output: app.output(job, base),
            error: job.error.as_ref().map(|e| ErrorObject { code: e.code.clone(), message: e.message.clone() }),
            cost,
            created_at: rfc3339(job.created_at),
            completed_at: job.completed_at.map(rfc3339),
            started_at: job.started_at.map(rfc3339),
            input: job.input.clone(),
            metadata: job.metadata.clone(),
            metrics: Metrics {
                queue_ms: job.started_at.map(|s| s - job.created_at),
                run_ms: job.started_at.zip(job.completed_at).map(|(s, c)| c - s),
            },
            mode: job.mode.as_str().to_owned(),
        }
    }
}

/// `GET /v1/requests`.
#[derive(Serialize, ToSchema)]
pub struct RequestList {
    pub data: Vec<ResultResponse>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /v1/models/{model}/estimate`.
#[derive(Serialize, ToSchema)]
pub struct EstimateResponse {
    pub credits: u64,
    #[schema(value_type = Vec<Object>)]
    pub warnings: Value,
}

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: &'static str,
    /// Model objects: `id`, `slug`, `object`, `type`, `name`, `description`, `capabilities`,
    /// `pricing`, `input_schema`, and [ext] `json_schema`, `example_input`, `unavailable_reason`.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    /// Spendable now.
    pub credits: u64,
    /// [ext] Set aside for unfinished jobs.
    pub reserved: u64,
}

#[derive(Serialize, ToSchema)]
pub struct UsageView {
    pub requests: u64,
    pub credits_spent: u64,
}

#[derive(Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub prefix: String,
    pub mode: String,
    pub scopes: Vec<String>,
    pub name: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<&KeyRecord> for KeyView {
    fn from(k: &KeyRecord) -> KeyView {
        KeyView {
            id: k.id.to_string(),
            prefix: k.prefix.clone(),
            mode: k.mode.as_str().to_owned(),
            scopes: k.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            name: k.name.clone(),
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LimitsView {
    pub requests_per_minute: u32,
    pub concurrent_generations: u32,
}

/// `GET /v1/account`.
#[derive(Serialize, ToSchema)]
pub struct AccountResponse {
    pub account_id: String,
    pub balance: BalanceView,
    pub usage_30d: UsageView,
    /// [ext] The key making this call.
    pub key: KeyView,
    /// [ext]
    pub limits: LimitsView,
}

#[derive(Serialize, ToSchema)]
pub struct LedgerEntryView {
    pub id: i64,
    /// `grant`, `reserve`, `capture`, `release` or `adjust`.
    pub kind: String,
    pub amount: i64,
    pub request_id: Option<String>,
    pub reason: Option<String>,
    pub created_at: String,
}

impl From<&LedgerEntry> for LedgerEntryView {
    fn from(e: &LedgerEntry) -> LedgerEntryView {
        LedgerEntryView {
            id: e.id,
            kind: e.kind.as_str().to_owned(),
            amount: e.amount,
            request_id: e.request_id.clone(),
            reason: e.reason.clone(),
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LedgerPage {
    pub data: Vec<LedgerEntryView>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub data: Vec<KeyView>,
}

/// `POST /v1/keys`: the only time the secret is shown.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub record: KeyView,
}
