#!/usr/bin/env bash
# Feature-store benchmark: rtml's online lookups (1 and 100 entities of 10
# features, one client) on RocksDB and on a real Redis, beside redis-benchmark
# sending the equivalent raw commands to the same Redis in the same run.
#
#   bench/feature_lookup.sh [--seconds 3]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${2:-3}
[ "${1:-}" = "--seconds" ] || SECONDS_EACH=3
BIN=${BENCH_BIN:-build/bench/feature_lookup}
[ -x "$BIN" ] || { echo "build first: make build" >&2; exit 1; }
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do redis-cli -p "$port" PING 2>/dev/null | grep -q PONG && break; sleep 0.05; done

"$BIN" --redis-port "$port" --seconds "$SECONDS_EACH"
# The same work as raw Redis commands: one HMGET per entity (what rtml sends),
# one client, unpipelined (1 entity per request) and 100 deep (one batch).
fields="_ts f0 f1 f2 f3 f4 f5 f6 f7 f8 f9"
for pipeline in 1 100; do
  out=$(redis-benchmark -p "$port" -c 1 -n 200000 -P "$pipeline" -q --csv \
        HMGET bench:fv:stats:4242 $fields 2>/dev/null | tail -1)
  rps=$(echo "$out" | awk -F'"' '{print $4}')
  p50=$(echo "$out" | awk -F'"' '{print $10}')
  p99=$(echo "$out" | awk -F'"' '{print $14}')
  # With -P, a "request" is one HMGET; latency is per pipelined batch of them.
  printf '| redis-benchmark HMGET -P %d | %d | %s ms/batch | %s ms/batch | %.0f | %.0f |\n' \
    "$pipeline" "$pipeline" "$p50" "$p99" "$(awk -v r="$rps" -v p="$pipeline" 'BEGIN{print r/p}')" "$rps"
done
ceiling=$(redis-benchmark -p "$port" -c 32 -P 16 -n 400000 -q --csv HGETALL bench:fv:stats:4242 \
          2>/dev/null | tail -1 | awk -F'"' '{print $4}')
echo "(Redis ceiling here: redis-benchmark -c 32 -P 16 HGETALL = $ceiling requests/s)" >&2
