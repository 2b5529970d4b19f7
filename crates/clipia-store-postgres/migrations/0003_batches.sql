-- Group commit for the hot paths. Each node gathers the submits, claims and finishes that arrive
-- together and runs them as one transaction, in one round trip, through the functions below; the
-- invariants stay where they were (CHECKs, unique indexes, conditional updates, row locks).
--
-- Lock order, for every transaction of every node: jobs, then accounts (ascending id), then
-- api_keys (ascending id), then the counters (lane_counts, queue_clock). A batch takes all its
-- account locks before any key lock, so two batches never wait on each other in a cycle.

-- Queued jobs per lane, as sharded counters: a submit batch adds to the shard of its connection,
-- a claim takes from the shard of its own, so nodes do not queue behind one hot row. The sum over
-- a lane's shards is the number of queued jobs (`clipia-server audit` checks it).
CREATE TABLE lane_counts (
    lane   TEXT NOT NULL,
    shard  INT NOT NULL,
    queued BIGINT NOT NULL,
    PRIMARY KEY (lane, shard)
);
INSERT INTO lane_counts (lane, shard, queued)
    SELECT lane, 0, count(*) FROM jobs WHERE status = 'IN_QUEUE' GROUP BY lane;

-- Moves the queued count of `lane` by `delta`, on this connection's shard.
CREATE FUNCTION clipia_count_queued(p_lane TEXT, delta BIGINT) RETURNS void LANGUAGE sql AS $$
    INSERT INTO lane_counts (lane, shard, queued) VALUES (p_lane, pg_backend_pid() % 64, delta)
    ON CONFLICT (lane, shard) DO UPDATE SET queued = lane_counts.queued + EXCLUDED.queued;
$$;

-- Submits in two steps, so that the rules (credits, caps, fair queuing, idempotency) stay in the
-- node's code and the writes go in as sets:
-- 1. clipia_submit_state locks the batch's accounts, then its keys (each in ascending id) and
--    returns what the rules read: balances, fair-queuing times, queued counts, lane clocks and
--    the idempotency records the batch names.
-- 2. clipia_submit_apply writes the accepted submits and returns their queue positions.
CREATE FUNCTION clipia_submit_state(p_accounts TEXT[], p_keys TEXT[], p_lanes TEXT[], p_idem JSONB) RETURNS JSONB
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts WHERE id = ANY (p_accounts) ORDER BY id FOR UPDATE;
    PERFORM 1 FROM api_keys WHERE id = ANY (p_keys) ORDER BY id FOR UPDATE;
    RETURN jsonb_build_object(
        'accounts', (SELECT coalesce(jsonb_object_agg(id, jsonb_build_array(credits_available, last_vtime)), '{}')
                     FROM accounts WHERE id = ANY (p_accounts)),
        'keys', (SELECT coalesce(jsonb_object_agg(id, jobs_queued), '{}') FROM api_keys WHERE id = ANY (p_keys)),
        'clocks', (SELECT coalesce(jsonb_object_agg(lane, vclock), '{}') FROM queue_clock WHERE lane = ANY (p_lanes)),
        'idem', (SELECT coalesce(jsonb_agg(jsonb_build_array(i.account_id, i.mode, i.key, i.fingerprint, i.response)), '[]')
                 FROM idempotency i
                 JOIN jsonb_to_recordset(p_idem) AS r (account TEXT, mode TEXT, key TEXT)
                   ON i.account_id = r.account AND i.mode = r.mode AND i.key = r.key));
END;
$$;

-- Writes accepted submits (`items`, in the order the node decided them) with the balance, key and
-- lane counter changes they add up to. Returns each item's queue position (the queued jobs of its
-- lane with an earlier virtual time), in order: the lane's queued count less the jobs not ahead of
-- it (few for an account that keeps submitting, whose jobs land at the end), or, when many are not
-- ahead (an account joining a long queue lands near its front), the count of those ahead, capped
-- at 1,000 so that no submit walks a whole backlog: a job with 256 or more jobs not ahead of it
-- and 1,000 or more ahead reports 1,000.
CREATE FUNCTION clipia_submit_apply(items JSONB, p_accounts JSONB, p_keys JSONB, p_lanes JSONB) RETURNS JSONB
LANGUAGE plpgsql AS $$
DECLARE
    positions JSONB;
BEGIN
    -- Positions first, against the queue as it is before this batch (plus the batch itself).
    WITH it AS (
        SELECT * FROM jsonb_to_recordset(items) AS r (lane TEXT, status TEXT, vtime BIGINT, ord BIGINT)
    ), placed AS (
        -- Jobs ahead = queued jobs of the lane with an earlier virtual time, before this batch
        -- (`existing`, counted one way or the other) plus in this batch.
        SELECT it.ord, CASE
            WHEN it.status <> 'IN_QUEUE' THEN 0
            WHEN b.behind < 256 THEN greatest(
                coalesce((SELECT sum(queued) FROM lane_counts c WHERE c.lane = it.lane), 0) - b.behind, 0)
                + (SELECT count(*) FROM it o WHERE o.lane = it.lane AND o.status = 'IN_QUEUE' AND o.vtime < it.vtime)
            ELSE least((SELECT count(*) FROM (SELECT 1 FROM jobs q
                    WHERE q.status = 'IN_QUEUE' AND q.lane = it.lane AND q.vtime < it.vtime LIMIT 1000) x)
                + (SELECT count(*) FROM it o WHERE o.lane = it.lane AND o.status = 'IN_QUEUE' AND o.vtime < it.vtime),
                1000)
            END AS pos
        FROM it CROSS JOIN LATERAL (SELECT count(*) AS behind FROM (SELECT 1 FROM jobs q
            WHERE q.status = 'IN_QUEUE' AND q.lane = it.lane AND q.vtime >= it.vtime LIMIT 256) x) b
    )
    SELECT coalesce(jsonb_agg(pos ORDER BY ord), '[]') INTO positions FROM placed;

    INSERT INTO jobs (id, account_id, mode, key_id, model, lane, status, input, metadata, webhook_url,
        cost_reserved, cost_charged, output, error_code, error_message, vtime, run_after, created_at,
        started_at, completed_at)
        SELECT id, account, mode, key, model, lane, status, input, metadata, webhook_url, cost, charged,
            output, error_code, error_message, vtime, run_after, now, completed_at, completed_at
        FROM jsonb_to_recordset(items) AS r (id TEXT, account TEXT, mode TEXT, key TEXT, model TEXT, lane TEXT, status TEXT, input TEXT,
            metadata TEXT, webhook_url TEXT, webhook_id TEXT, webhook_host TEXT, cost BIGINT, reserve BOOLEAN,
            charged BIGINT, output TEXT, error_code TEXT, error_message TEXT, completed_at BIGINT,
            run_after BIGINT, now BIGINT, idem_key TEXT, idem_fp TEXT, warnings JSONB, vtime BIGINT);
    INSERT INTO idempotency (account_id, mode, key, fingerprint, request_id, response, created_at)
        SELECT r.account, r.mode, r.idem_key, r.idem_fp, r.id,
            jsonb_build_object('request_id', r.id, 'status', r.status, 'queue_position', p.pos, 'cost', r.cost,
                'warnings', r.warnings)::TEXT,
            r.now
        FROM jsonb_to_recordset(items) AS r (id TEXT, account TEXT, mode TEXT, key TEXT, model TEXT, lane TEXT, status TEXT, input TEXT,
            metadata TEXT, webhook_url TEXT, webhook_id TEXT, webhook_host TEXT, cost BIGINT, reserve BOOLEAN,
            charged BIGINT, output TEXT, error_code TEXT, error_message TEXT, completed_at BIGINT,
            run_after BIGINT, now BIGINT, idem_key TEXT, idem_fp TEXT, warnings JSONB, vtime BIGINT, ord BIGINT)
        JOIN jsonb_array_elements(positions) WITH ORDINALITY AS p (pos, ord) ON p.ord = r.ord
        WHERE r.idem_key IS NOT NULL;
    INSERT INTO reservations (request_id, account_id, amount)
        SELECT id, account, cost FROM jsonb_to_recordset(items) AS r (id TEXT, account TEXT, cost BIGINT, reserve BOOLEAN)
        WHERE reserve;
    INSERT INTO ledger (account_id, kind, amount, request_id, created_at)
        SELECT account, 'reserve', cost, id, now
        FROM jsonb_to_recordset(items) AS r (id TEXT, account TEXT, cost BIGINT, reserve BOOLEAN, now BIGINT)
        WHERE reserve;
    -- Jobs created terminal (sandbox): their webhook events enter the outbox with them.
    INSERT INTO webhook_deliveries (id, request_id, account_id, mode, url, host, state, next_attempt_at, created_at)
        SELECT webhook_id, id, account, mode, webhook_url, webhook_host, 'pending', now, now
        FROM jsonb_to_recordset(items) AS r (id TEXT, account TEXT, mode TEXT, key TEXT, model TEXT, lane TEXT, status TEXT, input TEXT,
            metadata TEXT, webhook_url TEXT, webhook_id TEXT, webhook_host TEXT, cost BIGINT, reserve BOOLEAN,
            charged BIGINT, output TEXT, error_code TEXT, error_message TEXT, completed_at BIGINT,
            run_after BIGINT, now BIGINT, idem_key TEXT, idem_fp TEXT, warnings JSONB, vtime BIGINT)
        WHERE status <> 'IN_QUEUE' AND webhook_url IS NOT NULL;
    UPDATE accounts a SET credits_available = a.credits_available - x.debit,
            credits_reserved = a.credits_reserved + x.debit, last_vtime = greatest(a.last_vtime, x.last_vtime)
        FROM jsonb_to_recordset(p_accounts) AS x (id TEXT, debit BIGINT, last_vtime BIGINT)
        WHERE a.id = x.id;
    UPDATE api_keys k SET jobs_queued = k.jobs_queued + x.queued
        FROM jsonb_to_recordset(p_keys) AS x (id TEXT, queued BIGINT)
        WHERE k.id = x.id;
    PERFORM clipia_count_queued(x.lane, x.queued) FROM jsonb_to_recordset(p_lanes) AS x (lane TEXT, queued BIGINT);
    RETURN positions;
END;
$$;

-- Claims up to one job of `p_lane` for each runner in `runners`, in virtual-time order, skipping
-- rows other transactions hold and keys at their concurrency limit, as one set: the queue index
-- is walked once per batch. Returns the claimed jobs in runner order (the first rows for the first
-- runners). Locks: the jobs (SKIP LOCKED), then their keys in ascending id.
CREATE FUNCTION clipia_claim_batch(p_lane TEXT, runners TEXT[], p_now BIGINT, lease_ms BIGINT,
    concurrency_default BIGINT, lines_max BIGINT) RETURNS SETOF jobs LANGUAGE plpgsql AS $$
DECLARE
    seqs BIGINT[];
    key_ids TEXT[];
    vtimes BIGINT[];
    taken BIGINT;
BEGIN
    SELECT array_agg(c.seq ORDER BY c.vtime), array_agg(c.key_id ORDER BY c.vtime), array_agg(c.vtime ORDER BY c.vtime)
        INTO seqs, key_ids, vtimes
        FROM (SELECT j.seq, j.key_id, j.vtime FROM jobs j
              WHERE j.status = 'IN_QUEUE' AND j.lane = p_lane AND j.run_after <= p_now
                AND NOT EXISTS (SELECT 1 FROM api_keys k JOIN accounts a ON a.id = k.account_id
                                WHERE k.id = j.key_id AND k.jobs_running >= coalesce(a.concurrency, concurrency_default))
              ORDER BY j.vtime LIMIT cardinality(runners) FOR UPDATE OF j SKIP LOCKED) c;
    IF seqs IS NULL THEN
        RETURN;
    END IF;
    -- The read above may be stale: the keys' counters, under their row locks, decide how many
    -- of each key's candidates may start, whichever node asks.
    PERFORM 1 FROM api_keys WHERE id = ANY (key_ids) ORDER BY id FOR UPDATE;
    RETURN QUERY
    WITH cand AS (
        SELECT c.seq, c.key_id, c.vtime, c.ord,
            row_number() OVER (PARTITION BY c.key_id ORDER BY c.ord) AS nth_of_key
        FROM unnest(seqs, key_ids, vtimes) WITH ORDINALITY AS c (seq, key_id, vtime, ord)
    ), chosen AS (
        SELECT cand.seq, cand.key_id, row_number() OVER (ORDER BY cand.ord) AS rn
        FROM cand
        JOIN api_keys k ON k.id = cand.key_id
        JOIN accounts a ON a.id = k.account_id
        WHERE cand.nth_of_key <= coalesce(a.concurrency, concurrency_default) - k.jobs_running
    ), counted AS (
        UPDATE api_keys k SET jobs_queued = k.jobs_queued - s.n, jobs_running = k.jobs_running + s.n
        FROM (SELECT key_id, count(*) AS n FROM chosen GROUP BY key_id) s
        WHERE k.id = s.key_id
    ), started AS (
        UPDATE jobs j SET status = 'IN_PROGRESS', attempt = j.attempt + 1, lease_owner = runners[ch.rn],
            lease_expires_at = p_now + lease_ms, started_at = coalesce(j.started_at, p_now), progress = 0
        FROM chosen ch WHERE j.seq = ch.seq
        RETURNING j.*, ch.rn
    ), logged AS (
        INSERT INTO job_logs (job_id, n, ts, level, message)
        SELECT s.id, coalesce(m.n, 0) + 1, p_now, 'info',
            CASE WHEN s.attempt > 1 THEN 'attempt ' || s.attempt || ' started' ELSE 'started' END
        FROM started s LEFT JOIN LATERAL (SELECT max(x.n) AS n FROM job_logs x WHERE x.job_id = s.id) m ON TRUE
        WHERE coalesce(m.n, 0) < lines_max
        ON CONFLICT DO NOTHING
    )
    SELECT s.seq, s.id, s.account_id, s.mode, s.key_id, s.model, s.lane, s.status, s.input, s.metadata,
        s.webhook_url, s.cost_reserved, s.cost_charged, s.output, s.error_code, s.error_message, s.progress,
        s.attempt, s.lease_owner, s.lease_expires_at, s.cancel_requested, s.vtime, s.run_after, s.created_at,
        s.started_at, s.completed_at
    FROM started s ORDER BY s.rn;
    GET DIAGNOSTICS taken = ROW_COUNT;
    IF taken > 0 THEN
        PERFORM clipia_count_queued(p_lane, -taken);
        -- Advance the lane's clock unless another claim holds it right now: that one advances it
        -- too, and waiting for it would serialize every claim of the lane.
        INSERT INTO queue_clock (lane, vclock) VALUES (p_lane, 0) ON CONFLICT (lane) DO NOTHING;
        UPDATE queue_clock SET vclock = vtimes[cardinality(vtimes)]
            WHERE lane = (SELECT lane FROM queue_clock WHERE lane = p_lane FOR UPDATE SKIP LOCKED)
              AND vclock < vtimes[cardinality(vtimes)];
    END IF;
END;
$$;

-- Ends a set of jobs and settles their reservations exactly once: the `resolved_at IS NULL`
-- guard and the ledger's one-entry-per-kind index refuse a second settlement, whoever attempts
-- it, and the CHECKs on the balances refuse a settlement the account cannot cover. Each item is
-- {"id", "attempt", "from", "status", "output", "error_code", "error_message", "used"}; an item
-- whose job is no longer in state `from` at `attempt` (another attempt, a cancel or an earlier
-- end owns it) is left alone. COMPLETED captures what was used (at most the reservation); FAILED
-- and CANCELED release everything. Locks: jobs, accounts, keys, each in ascending id. Returns the
-- jobs as they now are; their webhook events are added to the outbox by the caller, in the same
-- transaction.
CREATE FUNCTION clipia_end_jobs(batch JSONB, p_now BIGINT, lines_max BIGINT) RETURNS SETOF jobs
LANGUAGE plpgsql AS $$
DECLARE
    ids TEXT[];
BEGIN
    SELECT array_agg(e->>'id') INTO ids FROM jsonb_array_elements(batch) e;
    PERFORM 1 FROM jobs WHERE id = ANY (ids) ORDER BY id FOR UPDATE;
    PERFORM 1 FROM accounts WHERE id IN (SELECT account_id FROM jobs WHERE id = ANY (ids)) ORDER BY id FOR UPDATE;
    PERFORM 1 FROM api_keys WHERE id IN (SELECT key_id FROM jobs WHERE id = ANY (ids)) ORDER BY id FOR UPDATE;
    RETURN QUERY
    WITH item AS (
        SELECT DISTINCT ON (r.id) r.* FROM jsonb_to_recordset(batch) AS r (id TEXT, attempt BIGINT, "from" TEXT,
            status TEXT, output TEXT, error_code TEXT, error_message TEXT, used BIGINT)
    ), live AS (
        SELECT j.seq, j.id, j.account_id, j.key_id, j.lane, j.status AS was, j.cost_reserved, i.status, i.output,
            i.error_code, i.error_message,
            CASE WHEN i.status = 'COMPLETED' THEN least(greatest(i.used, 0), j.cost_reserved) ELSE 0 END AS capture
        FROM jobs j JOIN item i ON i.id = j.id
        WHERE j.status = i."from" AND j.attempt = i.attempt
    ), ended AS (
        UPDATE jobs j SET status = l.status, output = l.output, error_code = l.error_code,
            error_message = l.error_message, cost_charged = l.capture, completed_at = p_now, lease_owner = NULL,
            lease_expires_at = NULL, progress = CASE WHEN l.status = 'COMPLETED' THEN 100 ELSE j.progress END
        FROM live l WHERE j.seq = l.seq
        RETURNING j.*
    ), settled AS (
        UPDATE reservations r SET captured = l.capture, released = l.cost_reserved - l.capture, resolved_at = p_now
        FROM live l WHERE r.request_id = l.id AND r.resolved_at IS NULL
        RETURNING r.request_id, r.account_id, r.captured, r.released
    ), balanced AS (
        UPDATE accounts a SET credits_available = a.credits_available + s.refund,
            credits_reserved = a.credits_reserved - s.total
        FROM (SELECT account_id, sum(released) AS refund, sum(captured + released) AS total
              FROM settled GROUP BY account_id) s
        WHERE a.id = s.account_id
    ), entered AS (
        INSERT INTO ledger (account_id, kind, amount, request_id, created_at)
        SELECT s.account_id, k.kind, k.amount, s.request_id, p_now
        FROM settled s CROSS JOIN LATERAL (VALUES ('capture', s.captured), ('release', s.released)) AS k (kind, amount)
        WHERE k.amount > 0
    ), counted AS (
        UPDATE api_keys k SET jobs_queued = k.jobs_queued - s.queued, jobs_running = k.jobs_running - s.running
        FROM (SELECT key_id, count(*) FILTER (WHERE was = 'IN_QUEUE') AS queued,
                count(*) FILTER (WHERE was = 'IN_PROGRESS') AS running
              FROM live GROUP BY key_id) s
        WHERE k.id = s.key_id
    ), lanes AS (
        SELECT clipia_count_queued(lane, -count(*)) FROM live WHERE was = 'IN_QUEUE' GROUP BY lane
    ), logged AS (
        INSERT INTO job_logs (job_id, n, ts, level, message)
        SELECT l.id, coalesce(m.n, 0) + 1, p_now, CASE WHEN l.error_code IS NULL THEN 'info' ELSE 'error' END,
            CASE WHEN l.error_code IS NULL THEN 'completed' ELSE l.error_code || ': ' || l.error_message END
        FROM live l LEFT JOIN LATERAL (SELECT max(x.n) AS n FROM job_logs x WHERE x.job_id = l.id) m ON TRUE
        WHERE coalesce(m.n, 0) < lines_max
        ON CONFLICT DO NOTHING
    )
    SELECT e.* FROM ended e LEFT JOIN (SELECT count(*) FROM lanes) AS forced ON TRUE;
END;
$$;
