-- Clipia's PostgreSQL schema: the same tables as the embedded store, with the invariants that
-- must hold across nodes enforced by the database (CHECKs, unique indexes), not by a process.
-- Times are unix milliseconds; JSON is stored as text so that it reads back byte for byte.

CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    -- Balance caches, kept equal to the ledger by every write that appends to it. The CHECK
    -- is the last line of defence: every debit is also a conditional UPDATE.
    credits_available BIGINT NOT NULL DEFAULT 0 CHECK (credits_available >= 0),
    credits_reserved  BIGINT NOT NULL DEFAULT 0 CHECK (credits_reserved >= 0),
    -- Fair queuing: the virtual time of this account's latest queued job.
    last_vtime        BIGINT NOT NULL DEFAULT 0,
    rpm               BIGINT,
    concurrency       BIGINT,
    queued_max        BIGINT,
    created_at        BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    mode         TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    scopes       TEXT NOT NULL,
    name         TEXT,
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    -- Counters that every node's claims and submits move with conditional UPDATEs, so the
    -- per-key concurrency and queued-jobs caps hold across nodes.
    jobs_queued  BIGINT NOT NULL DEFAULT 0 CHECK (jobs_queued >= 0),
    jobs_running BIGINT NOT NULL DEFAULT 0 CHECK (jobs_running >= 0)
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE jobs (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    cost_reserved    BIGINT NOT NULL CHECK (cost_reserved >= 0),
    cost_charged     BIGINT,
    output           TEXT,
    error_code       TEXT,
    error_message    TEXT,
    progress         BIGINT NOT NULL DEFAULT 0,
    attempt          BIGINT NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    vtime            BIGINT NOT NULL,
    run_after        BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    completed_at     BIGINT
);
-- Partial indexes keep the queue's hot paths small however many finished jobs pile up.
CREATE INDEX jobs_queue ON jobs (lane, vtime) WHERE status = 'IN_QUEUE';
CREATE INDEX jobs_tenant ON jobs (account_id, mode, seq);
CREATE INDEX jobs_usage ON jobs (account_id, mode, created_at);
CREATE INDEX jobs_leased ON jobs (lease_expires_at) WHERE status = 'IN_PROGRESS';

CREATE TABLE job_logs (
    job_id  TEXT NOT NULL,
    n       BIGINT NOT NULL,
    ts      BIGINT NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, n)
);

-- The append-only ledger. A job has at most one entry of each kind: the database, not only
-- the code, refuses a second reservation, capture or release.
CREATE TABLE ledger (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('grant', 'reserve', 'capture', 'release', 'adjust')),
    amount     BIGINT NOT NULL,
    request_id TEXT,
    reason     TEXT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ledger_once_per_job ON ledger (request_id, kind) WHERE request_id IS NOT NULL;
CREATE INDEX ledger_account ON ledger (account_id, id);

-- Pending transfers: resolved exactly once (resolved_at goes from NULL to a time, never back).
CREATE TABLE reservations (
    request_id  TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount >= 0),
    captured    BIGINT,
    released    BIGINT,
    resolved_at BIGINT,
    CHECK (resolved_at IS NULL OR captured + released = amount)
);

-- Idempotency across nodes is this primary key: a second node inserting the same key waits
-- for the first transaction and then sees its row.
CREATE TABLE idempotency (
    account_id  TEXT NOT NULL,
    mode        TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, mode, key)
);
CREATE INDEX idempotency_age ON idempotency (created_at);

CREATE TABLE queue_clock (
    lane   TEXT PRIMARY KEY,
    vclock BIGINT NOT NULL
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Request-rate token buckets shared by every node. UNLOGGED: they are written on every API
-- call, and losing them in a database crash only refills everyone's bucket, so they skip the
-- write-ahead log and its fsync.
CREATE UNLOGGED TABLE rate_buckets (
    key        TEXT PRIMARY KEY,
    tokens     DOUBLE PRECISION NOT NULL,
    allowed    BOOLEAN NOT NULL,
    updated_ms BIGINT NOT NULL
);
