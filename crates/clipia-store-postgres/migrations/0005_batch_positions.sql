-- Queue positions for a batch whose jobs land amid a long queue (an account whose jobs fair
-- queuing interleaves with another's) are counted once per lane and batch instead of once per
-- job: the batch's earliest job is counted from the front, and each of the others adds only the
-- jobs between it and that one. The results are the same as before (exact up to 1,000; a job with
-- 1,000 or more ahead and 256 or more behind reports 1,000); only the work to find them changes.
CREATE OR REPLACE FUNCTION clipia_submit_apply(items JSONB, p_accounts JSONB, p_keys JSONB, p_lanes JSONB) RETURNS JSONB
LANGUAGE plpgsql AS $$
DECLARE
    positions JSONB;
BEGIN
    -- Positions first, against the queue as it is before this batch (plus the batch itself).
    -- Jobs ahead = queued jobs of the lane with an earlier virtual time: those already queued
    -- (`existing`, counted one of three ways) plus those earlier in this batch.
    WITH it AS (
        SELECT * FROM jsonb_to_recordset(items) AS r (lane TEXT, status TEXT, vtime BIGINT, ord BIGINT)
    ), span AS (
        -- Per lane, the batch's earliest and latest queued virtual times.
        SELECT lane, min(vtime) AS v_first, max(vtime) AS v_last FROM it WHERE status = 'IN_QUEUE' GROUP BY lane
    ), base AS (
        -- When even the batch's latest job has 256 or more jobs behind it, every job of the batch
        -- in this lane is counted from the front: the jobs ahead of the earliest one are counted
        -- once (up to the cap), and each job adds the few between it and that one.
        SELECT s.lane, s.v_first,
            CASE WHEN (SELECT count(*) FROM (SELECT 1 FROM jobs q
                        WHERE q.status = 'IN_QUEUE' AND q.lane = s.lane AND q.vtime >= s.v_last LIMIT 256) x) >= 256
                THEN (SELECT count(*) FROM (SELECT 1 FROM jobs q
                        WHERE q.status = 'IN_QUEUE' AND q.lane = s.lane AND q.vtime < s.v_first LIMIT 1000) x)
            END AS ahead_first
        FROM span s
    ), placed AS (
        SELECT it.ord, CASE
            WHEN it.status <> 'IN_QUEUE' THEN 0
            -- 1. From the front, once per lane and batch (a job amid a long queue).
            WHEN base.ahead_first >= 1000 THEN 1000
            WHEN base.ahead_first IS NOT NULL THEN least(base.ahead_first
                + (SELECT count(*) FROM (SELECT 1 FROM jobs q WHERE q.status = 'IN_QUEUE' AND q.lane = it.lane
                    AND q.vtime >= base.v_first AND q.vtime < it.vtime LIMIT 1000) x)
                + (SELECT count(*) FROM it o WHERE o.lane = it.lane AND o.status = 'IN_QUEUE' AND o.vtime < it.vtime),
                1000)
            -- 2. From the lane's counter, less the few jobs behind (a job near the end).
            WHEN b.behind < 256 THEN greatest(
                coalesce((SELECT sum(queued) FROM lane_counts c WHERE c.lane = it.lane), 0) - b.behind, 0)
                + (SELECT count(*) FROM it o WHERE o.lane = it.lane AND o.status = 'IN_QUEUE' AND o.vtime < it.vtime)
            -- 3. From the front, for this job alone.
            ELSE least((SELECT count(*) FROM (SELECT 1 FROM jobs q
                    WHERE q.status = 'IN_QUEUE' AND q.lane = it.lane AND q.vtime < it.vtime LIMIT 1000) x)
                + (SELECT count(*) FROM it o WHERE o.lane = it.lane AND o.status = 'IN_QUEUE' AND o.vtime < it.vtime),
                1000)
            END AS pos
        FROM it
        LEFT JOIN base ON base.lane = it.lane
        -- Probed only for jobs that case 1 does not place.
        CROSS JOIN LATERAL (SELECT CASE WHEN it.status = 'IN_QUEUE' AND base.ahead_first IS NULL THEN
            (SELECT count(*) FROM (SELECT 1 FROM jobs q
                WHERE q.status = 'IN_QUEUE' AND q.lane = it.lane AND q.vtime >= it.vtime LIMIT 256) x) END AS behind) b
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
