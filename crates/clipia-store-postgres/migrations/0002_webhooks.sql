-- Webhooks (SPEC §8): signing secrets per account and mode, the delivery outbox and its attempts.

-- One current secret (expires_at NULL) per tenant and, for 24 h after a rotation, the previous.
CREATE TABLE webhook_secrets (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY,
    account_id TEXT NOT NULL,
    mode       TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (account_id, mode, secret)
);
CREATE UNIQUE INDEX webhook_secrets_one_current ON webhook_secrets (account_id, mode) WHERE expires_at IS NULL;

-- The outbox: one row per event, inserted in the transaction that makes its job terminal, so no
-- crash can lose a webhook. next_attempt_at doubles as the lease of a claimed row; nodes claim
-- with FOR UPDATE SKIP LOCKED, so one delivery is attempted by one node at a time.
CREATE TABLE webhook_deliveries (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    id              TEXT PRIMARY KEY,
    request_id      TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    mode            TEXT NOT NULL,
    url             TEXT NOT NULL,
    host            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    round_start     BIGINT NOT NULL DEFAULT 0 CHECK (round_start <= attempts),
    next_attempt_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    completed_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_request ON webhook_deliveries (request_id, created_at);

CREATE TABLE webhook_attempts (
    webhook_id  TEXT NOT NULL,
    n           BIGINT NOT NULL,
    started_at  BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status_code BIGINT,
    error       TEXT,
    PRIMARY KEY (webhook_id, n)
);
