#!/usr/bin/env bash
# bench/run.sh — benchmark Clipia's submit path on this machine.
#
# Builds the release binaries, starts a fresh server on 127.0.0.1 (a free port) in a temporary
# data directory, lifts the limits of account `default`, runs the scenarios below with
# target/release/clipia-bench, prints one markdown table, and stops the server.
#
#   (a) max submit throughput, test key      (closed loop)
#   (b) max submit throughput, live key      (closed loop, credits reserved per job)
#   (c) latency at a fixed rate, live + test (open loop, latency from the scheduled send time)
#   (d) submit -> COMPLETED, test key        (submit, long-poll status, fetch result)
#
# Each scenario runs against its own fresh server, so that the queue one leaves behind (live
# jobs waiting for the builtin runner) does not slow the next.
#
# Knobs (environment):
#   DURATION=15            seconds per scenario
#   RATE=1000              open-loop rate of (c), submits per second
#   CONCURRENCY=64         closed-loop workers of (a), (b)
#   E2E_CONCURRENCY=16     closed-loop workers of (d)
#   BUILTIN_RUNNERS=1      builtin-engine jobs the server renders at once: live submits queue
#                          `clipia-mosaic` jobs that the server starts rendering in the background;
#                          one runner keeps most of the 2 CPUs for the API
#   BENCH_THREADS=1        threads of the load generator's runtime
#   SCENARIOS="a b c d"    which scenarios to run; also c-live, c-test, a-idem, b-idem
#   SKIP_BUILD=1           use the binaries already in target/release
#   KEEP_DATA=1            keep the temporary data directories
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-15}
RATE=${RATE:-1000}
CONCURRENCY=${CONCURRENCY:-64}
E2E_CONCURRENCY=${E2E_CONCURRENCY:-16}
BUILTIN_RUNNERS=${BUILTIN_RUNNERS:-1}
BENCH_THREADS=${BENCH_THREADS:-1}
SCENARIOS=${SCENARIOS:-"a b c d"}
SERVER=target/release/clipia-server
BENCH=target/release/clipia-bench
# Limits lifted so that the benchmark measures the server, not its rate limiter.
LIMIT_RPM=1000000000
LIMIT_QUEUED=1000000000
CREDITS=1000000000
# Seconds to wait for the server to print its address.
START_TIMEOUT_S=30

if [[ -z "${SKIP_BUILD:-}" ]]; then
    cargo build --release -p clipia-server -p clipia-bench
fi

PID=""
DATA=""
ROWS=()

stop_server() {
    if [[ -n "$PID" ]]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=""
    fi
    if [[ -n "$DATA" && -z "${KEEP_DATA:-}" ]]; then
        rm -rf "$DATA"
    fi
    DATA=""
}
trap stop_server EXIT

# Starts a fresh server; sets PID, URL, LIVE_KEY, TEST_KEY.
start_server() {
    DATA=$(mktemp -d /tmp/clipia-bench.XXXXXX)
    "$SERVER" serve --data-dir "$DATA" --bind 127.0.0.1:0 --builtin-runners "$BUILTIN_RUNNERS" \
        >"$DATA/server.out" 2>"$DATA/server.err" &
    PID=$!
    URL=""
    for _ in $(seq $((START_TIMEOUT_S * 10))); do
        URL=$(sed -n 's/^Clipia listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$DATA/server.out" | head -n1)
        [[ -n "$URL" ]] && break
        kill -0 "$PID" 2>/dev/null || { cat "$DATA/server.err" >&2; echo "server exited" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n "$URL" ]] || { echo "server did not print its address in ${START_TIMEOUT_S}s" >&2; exit 1; }
    LIVE_KEY=$(sed -n 's/^ *live key: *\(clipia_live_[A-Za-z0-9]*\).*/\1/p' "$DATA/server.out" | head -n1)
    TEST_KEY=$(sed -n 's/^ *test key: *\(clipia_test_[A-Za-z0-9]*\).*/\1/p' "$DATA/server.out" | head -n1)
    [[ -n "$LIVE_KEY" && -n "$TEST_KEY" ]] || { echo "no bootstrap keys in the server's output" >&2; exit 1; }
    "$SERVER" limits set --data-dir "$DATA" --account default \
        --rpm "$LIMIT_RPM" --concurrency 1000 --max-queued "$LIMIT_QUEUED" >/dev/null
    "$SERVER" credits grant --data-dir "$DATA" --account default --amount "$CREDITS" --reason benchmark >/dev/null
}

# bench LABEL SUBCOMMAND ARGS… — runs the load generator, keeps its ROW line.
bench() {
    local label=$1
    shift
    echo "== $label  (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    local out
    out=$("$BENCH" "$@" --url "$URL" --duration "$DURATION" --threads "$BENCH_THREADS" --label "$label")
    echo "$out" | grep -v '^ROW '
    ROWS+=("$(echo "$out" | sed -n 's/^ROW //p')")
}

scenario() {
    start_server
    case $1 in
        a) bench "(a) max submit, test key, C=$CONCURRENCY" submit --key "$TEST_KEY" --concurrency "$CONCURRENCY" ;;
        a-idem) bench "(a') max submit, test key, Idempotency-Key, C=$CONCURRENCY" submit --key "$TEST_KEY" --concurrency "$CONCURRENCY" --idempotency ;;
        b) bench "(b) max submit, live key, C=$CONCURRENCY" submit --key "$LIVE_KEY" --concurrency "$CONCURRENCY" ;;
        b-idem) bench "(b') max submit, live key, Idempotency-Key, C=$CONCURRENCY" submit --key "$LIVE_KEY" --concurrency "$CONCURRENCY" --idempotency ;;
        c)
            bench "(c) ${RATE}/s open loop, live key, Idempotency-Key" submit --key "$LIVE_KEY" --rate "$RATE" --idempotency
            stop_server
            start_server
            bench "(c) ${RATE}/s open loop, test key, Idempotency-Key" submit --key "$TEST_KEY" --rate "$RATE" --idempotency
            ;;
        c-live) bench "(c) ${RATE}/s open loop, live key, Idempotency-Key" submit --key "$LIVE_KEY" --rate "$RATE" --idempotency ;;
        c-test) bench "(c) ${RATE}/s open loop, test key, Idempotency-Key" submit --key "$TEST_KEY" --rate "$RATE" --idempotency ;;
        d) bench "(d) submit->COMPLETED, test key, C=$E2E_CONCURRENCY" submit-to-completed --key "$TEST_KEY" --concurrency "$E2E_CONCURRENCY" ;;
        *) echo "unknown scenario $1" >&2; exit 2 ;;
    esac
    stop_server
}

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ), duration ${DURATION}s per scenario, builtin runners ${BUILTIN_RUNNERS}"
for s in $SCENARIOS; do
    scenario "$s"
done

echo
echo "| scenario | sent | ok | errors | ok/s | p50 ms | p90 ms | p99 ms | max ms | service p99 ms |"
echo "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
