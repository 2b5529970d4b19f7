#!/usr/bin/env bash
# bench/postgres-http.sh — submit throughput over HTTP on PostgreSQL: one node (one key), then two
# nodes, each with its own load generator and account. Needs release builds of clipia-server and
# clipia-bench and a PostgreSQL on 127.0.0.1 (trust auth, db `test`).
#
# Each phase starts on an empty schema, so both measure the same thing: accounts submitting into a
# queue that starts empty. Knobs:
#   DUR=10      seconds per run
#   C=32        closed-loop workers per generator
#   SAMEKEY=1   both generators use one key (one account shared by the two nodes)
#   BACKLOG=1   the two-node phase reuses the one-node phase's schema: its second account joins a
#               queue that already holds the first account's jobs
set -euo pipefail
cd "$(dirname "$0")/.."
S=target/release/clipia-server; B=target/release/clipia-bench
DUR=${DUR:-10}; C=${C:-32}
SCHEMAS=()
url() { echo "postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D$1&application_name=$1"; }
# The schemas this run made are dropped at the end, so that old queues do not keep the
# database's autovacuum busy during later runs.
drop_schemas() { for s in "${SCHEMAS[@]}"; do psql -q -h 127.0.0.1 -U postgres test -c "DROP SCHEMA IF EXISTS $s CASCADE" 2>/dev/null || true; done; }
SCHEMA=clipia_hbench_$RANDOM$RANDOM; URL=$(url $SCHEMA); SCHEMAS+=("$SCHEMA")
D1=$(mktemp -d); D2=$(mktemp -d)
start() { # dir -> prints base url
  $S serve --data-dir $1 --database-url "$URL" --bind 127.0.0.1:0 --builtin-runners 0 --default-rpm 1000000000 --default-max-queued 1000000000 > $1/out 2> $1/err &
  echo $! > $1/pid
  for i in $(seq 300); do grep -q "Clipia listening" $1/out 2>/dev/null && break; sleep 0.1; done
  grep "Clipia listening" $1/out | sed 's/Clipia listening on //'
}
first_node() { # -> sets U1 and KEY: a node on $URL with account `default` funded
  U1=$(start $D1)
  KEY=$(grep -o 'clipia_live_[A-Za-z0-9]*' $D1/out | head -1)
  $S credits grant --account default --amount 1000000000 --database-url "$URL" --data-dir $D1 > /dev/null
}
# CPU seconds (user + system) used so far by the given processes.
cpu() { # pid... -> seconds
  local t=0; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done
  echo "scale=1; $t / $(getconf CLK_TCK)" | bc
}
pg_pids() { pgrep -d ' ' postgres || true; }

first_node
echo "one node:"
S0=$(cpu $(cat $D1/pid)); P0=$(cpu $(pg_pids))
TIMEFORMAT=%U+%S
{ time $B submit --url $U1 --key $KEY --concurrency $C --duration $DUR --label one > $D1/bench 2>&1 ; } 2> $D1/bench-cpu
grep -E "ROW|throughput|errors" $D1/bench | head -5
echo "cpu seconds during the run (${DUR}s + 1s warm-up, $(nproc) cores): server $(echo "$(cpu $(cat $D1/pid)) - $S0" | bc)," \
  "postgres $(echo "$(cpu $(pg_pids)) - $P0" | bc), load generator $(echo "$(cat $D1/bench-cpu)" | bc)"

if [ -z "${BACKLOG:-}" ]; then
  kill $(cat $D1/pid); wait 2>/dev/null || true
  SCHEMA=clipia_hbench_$RANDOM$RANDOM; URL=$(url $SCHEMA); SCHEMAS+=("$SCHEMA"); D1=$(mktemp -d)
  first_node
fi
U2=$(start $D2)
$S accounts create --name second --database-url "$URL" --data-dir $D1 > /dev/null
$S credits grant --account second --amount 1000000000 --database-url "$URL" --data-dir $D1 > /dev/null
$S limits set --account second --rpm 1000000000 --max-queued 1000000000 --database-url "$URL" --data-dir $D1 > /dev/null
KEY2=${SAMEKEY:+$KEY}; KEY2=${KEY2:-$($S keys create --account second --mode live --database-url "$URL" --data-dir $D1)}
echo "two nodes:"
S0=$(cpu $(cat $D1/pid) $(cat $D2/pid)); P0=$(cpu $(pg_pids))
$B submit --url $U1 --key $KEY --concurrency $C --duration $DUR --label two-a > $D1/bench 2>&1 &
P=$!
$B submit --url $U2 --key $KEY2 --concurrency $C --duration $DUR --label two-b > $D2/bench 2>&1
wait $P
grep -E "ROW|throughput|errors" $D1/bench $D2/bench | head -10
echo "cpu seconds during the run: servers $(echo "$(cpu $(cat $D1/pid) $(cat $D2/pid)) - $S0" | bc), postgres $(echo "$(cpu $(pg_pids)) - $P0" | bc)"
kill $(cat $D1/pid) $(cat $D2/pid); wait 2>/dev/null || true
drop_schemas
