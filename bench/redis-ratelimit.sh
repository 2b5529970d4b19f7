#!/usr/bin/env bash
# bench/redis-ratelimit.sh — what a Redis-kept token bucket would cost, for comparison with the
# PostgreSQL limiter (`pgbench` prints that one). The bucket is the same as clipia's: capacity =
# quota, refilled at quota per minute, one token per request, kept as a hash per key that expires
# when full again. Needs redis-server on 127.0.0.1:6379 and redis-benchmark (Debian: redis-tools).
# Knobs: N (checks, 200000), C (connections, 32).
set -euo pipefail
N=${N:-200000}; C=${C:-32}
BUCKET='local h = redis.call("HMGET", KEYS[1], "tokens", "at")
local quota, now = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens, at = tonumber(h[1]) or quota, tonumber(h[2]) or now
tokens = math.min(quota, tokens + math.max(now - at, 0) * quota / 60000)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call("HSET", KEYS[1], "tokens", tokens, "at", now)
redis.call("PEXPIRE", KEYS[1], 60000)
return {allowed, tostring(tokens)}'
# redis-benchmark's CSV row: "command","rps","avg","min","p50","p95","p99","max" (ms).
summary() { tail -1 | awk -F'","' '{ printf "%.0f checks/s, p50 %s ms, p99 %s ms\n", $2, $5, $7 }'; }
echo "$C connections, 64 keys:"
redis-benchmark -q -n "$N" -c "$C" -r 64 --csv EVAL "$BUCKET" 1 'bucket:__rand_int__' 1000000 1000 | summary
echo "one connection:"
redis-benchmark -q -n $((N / 4)) -c 1 --csv EVAL "$BUCKET" 1 bucket:one 1000000 1000 | summary
