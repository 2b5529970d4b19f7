-- Clipia's embedded schema. Times are unix milliseconds; JSON is stored as text.

CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    -- Balance caches, kept equal to the ledger by every write that appends to it.
    credits_available INTEGER NOT NULL DEFAULT 0 CHECK (credits_available >= 0),
    credits_reserved  INTEGER NOT NULL DEFAULT 0 CHECK (credits_reserved >= 0),
    -- Fair queuing: the virtual time of this account's latest queued job.
    last_vtime        INTEGER NOT NULL DEFAULT 0,
    rpm               INTEGER,
    concurrency       INTEGER,
    queued_max        INTEGER,
    created_at        INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    mode         TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    scopes       TEXT NOT NULL,
    name         TEXT,
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    -- Counters the dispatcher reads instead of scanning the queue.
    jobs_queued  INTEGER NOT NULL DEFAULT 0 CHECK (jobs_queued >= 0),
    jobs_running INTEGER NOT NULL DEFAULT 0 CHECK (jobs_running >= 0)
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    account_id       TEXT NOT NULL,
    mode             TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    model            TEXT NOT NULL,
    lane             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('IN_QUEUE', 'IN_PROGRESS', 'COMPLETED', 'FAILED', 'CANCELED')),
    input            TEXT NOT NULL,
    metadata         TEXT,
    webhook_url      TEXT,
    cost_reserved    INTEGER NOT NULL CHECK (cost_reserved >= 0),
    cost_charged     INTEGER,
    output           TEXT,
    error_code       TEXT,
    error_message    TEXT,
    progress         INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    vtime            INTEGER NOT NULL,
    run_after        INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    completed_at     INTEGER
);
CREATE INDEX jobs_queue ON jobs (status, lane, vtime);
CREATE INDEX jobs_tenant ON jobs (account_id, mode, seq);
CREATE INDEX jobs_usage ON jobs (account_id, mode, created_at);
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE status = 'IN_PROGRESS';

CREATE TABLE job_logs (
    job_id  TEXT NOT NULL,
    n       INTEGER NOT NULL,
    ts      INTEGER NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, n)
) WITHOUT ROWID;

-- The append-only ledger. A job has at most one entry of each kind: the database, not only
-- the code, refuses a second reservation, capture or release.
CREATE TABLE ledger (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('grant', 'reserve', 'capture', 'release', 'adjust')),
    amount     INTEGER NOT NULL,
    request_id TEXT,
    reason     TEXT,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX ledger_once_per_job ON ledger (request_id, kind) WHERE request_id IS NOT NULL;
CREATE INDEX ledger_account ON ledger (account_id, id);

-- Pending transfers: resolved exactly once (resolved_at goes from NULL to a time, never back).
CREATE TABLE reservations (
    request_id  TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount >= 0),
    captured    INTEGER,
    released    INTEGER,
    resolved_at INTEGER,
    CHECK (resolved_at IS NULL OR captured + released = amount)
);

CREATE TABLE idempotency (
    account_id  TEXT NOT NULL,
    mode        TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, mode, key)
);
CREATE INDEX idempotency_age ON idempotency (created_at);

CREATE TABLE queue_clock (
    lane   TEXT PRIMARY KEY,
    vclock INTEGER NOT NULL
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
