-- Request-rate checks in batches: a node counts all the requests that arrive together in one call.
--
-- Each element is one (key, quota) pair with the number of requests it carries; the node sends
-- the pairs sorted by key so that two nodes lock bucket rows in the same order. For every pair the
-- bucket is refilled to `now`, then as many whole tokens as it holds, at most `n`, are spent and
-- recorded in `granted`. The node allows the first `granted` of those requests and refuses the rest.
ALTER TABLE rate_buckets ADD COLUMN granted INT NOT NULL DEFAULT 0;

CREATE FUNCTION clipia_rate_batch(p_keys TEXT[], p_quotas DOUBLE PRECISION[], p_counts INT[], p_now BIGINT)
RETURNS TABLE (ord INT, tokens_left DOUBLE PRECISION, spent INT)
LANGUAGE plpgsql AS $$
DECLARE
    i INT;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
        INSERT INTO rate_buckets AS b (key, tokens, allowed, updated_ms, granted)
        VALUES (p_keys[i], p_quotas[i] - least(p_counts[i], floor(p_quotas[i])::INT),
                p_counts[i] <= floor(p_quotas[i]), p_now, least(p_counts[i], floor(p_quotas[i])::INT))
        ON CONFLICT (key) DO UPDATE SET
            tokens = least(p_quotas[i], b.tokens + greatest(p_now - b.updated_ms, 0) * p_quotas[i] / 60000.0)
                - least(p_counts[i], floor(least(p_quotas[i], b.tokens + greatest(p_now - b.updated_ms, 0) * p_quotas[i] / 60000.0))::INT),
            granted = least(p_counts[i], floor(least(p_quotas[i], b.tokens + greatest(p_now - b.updated_ms, 0) * p_quotas[i] / 60000.0))::INT),
            allowed = p_counts[i] <= floor(least(p_quotas[i], b.tokens + greatest(p_now - b.updated_ms, 0) * p_quotas[i] / 60000.0)),
            updated_ms = greatest(b.updated_ms, p_now)
        RETURNING b.tokens, b.granted INTO tokens_left, spent;
        ord := i;
        RETURN NEXT;
    END LOOP;
END;
$$;
