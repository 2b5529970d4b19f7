//! Limits shared by every layer, as named constants with their unit last.

/// Requests per minute per key when the account has no override (SPEC §7).
pub const REQUESTS_PER_MINUTE_DEFAULT: u32 = 120;
/// Jobs IN_PROGRESS at once per key when the account has no override (SPEC §7).
pub const CONCURRENT_GENERATIONS_DEFAULT: u32 = 10;
/// Jobs a key may have waiting IN_QUEUE before submits answer 429.
pub const QUEUED_JOBS_MAX_DEFAULT: u32 = 1_000;
/// The largest request body the API reads.
pub const BODY_BYTES_MAX: usize = 256 * 1024;
/// The largest `metadata` object a submit may carry, serialized (SPEC §4).
pub const METADATA_BYTES_MAX: usize = 4 * 1024;
/// The longest `Idempotency-Key` (SPEC §5).
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;
/// How long idempotency records are kept (SPEC §5: 24 h).
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// The longest `webhook_url`.
pub const WEBHOOK_URL_LEN_MAX: usize = 2048;
/// The longest a status long-poll may hold (`?wait=`, SPEC §4).
pub const STATUS_WAIT_S_MAX: u64 = 60;
/// Most items on one page of a list.
pub const PAGE_LIMIT_MAX: u32 = 100;
/// Items on a page when `limit` is not given.
pub const PAGE_LIMIT_DEFAULT: u32 = 20;
/// Attempts a job gets before a lost runner makes it fail.
pub const JOB_ATTEMPTS_MAX: i64 = 3;
/// Log lines kept per job; later lines are dropped so a chatty backend cannot grow a row forever.
pub const JOB_LOG_LINES_MAX: i64 = 200;
