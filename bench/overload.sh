#!/usr/bin/env bash
# Overload benchmark: rtml offered three times what it can score, open loop
# (build/bench/loadgen: requests are due at a fixed rate whatever the server
# does, latency counted from when each was due), with admission control on
# (the defaults) and, in the same run, off (http.max_queue_ms and
# http.max_queue_rows 0: every request queues, as before admission control).
#
#   bench/overload.sh [--runs 3] [--duration 8] [--rows 128] [--connections 512] [--loops 1]
#                     [--modes "on off"]
#
# Per mode and run: the best throughput (closed loop, 4 connections), the
# unloaded latency (open loop at 30% of it), then the overload (open loop at
# 3x the best, up to --connections connections) with a /healthz probe every
# 20 ms and the server's resident memory sampled. Prints a Markdown table of
# medians (accepted requests/s and their share of the best, p50/p99 of
# accepted and refused requests, Retry-After present, health p99, peak
# memory) and writes it to bench/results/. The server runs --loops event
# loops (default 1, so that on two cores the load generator, one thread run
# at a higher priority so that its clock is not late, has a core of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3 DURATION=8 ROWS=128 CONNS=512 LOOPS=1 MODES="on off"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --loops) LOOPS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--duration S] [--rows R] [--connections C] [--loops L] [--modes \"on off\"]" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/common.sh"
LOADGEN=$REPO/build/bench/loadgen
[ -x "$LOADGEN" ] || { echo "build the load generator first: cmake --build build --target loadgen" >&2; exit 1; }

# The fraud demo with its feature store in a scratch folder (RocksDB).
cp examples/fraud/features.yaml "$WORK/"
/usr/bin/python3 examples/fraud/make_features.py --out "$WORK/data/user_profile.csv" >&2
for mode in on off; do
  limits=""
  [ "$mode" = off ] && limits="http: {max_queue_ms: 0, max_queue_rows: 0}"
  cat > "$WORK/$mode.yaml" <<YAML
models: {repository: $REPO/examples/fraud/models, default: fraud}
features: {definitions: features.yaml, store: rocksdb, rocksdb: {path: online}}
$limits
YAML
done
"$RTML" features apply -c "$WORK/on.yaml" >&2
"$RTML" features materialize-incremental -c "$WORK/on.yaml" >&2
/usr/bin/python3 - "$ROWS" "$WORK/body.json" <<'PY'
import json, sys
rows, out = int(sys.argv[1]), sys.argv[2]
json.dump({"instances": [{"user_id": 1000 + i * 37 % 40000, "amount": 20.0 + i, "hour_of_day": i % 24}
                         for i in range(rows)]}, open(out, "w"))
PY

SERVER_PID="" PORT=""
start_rtml() {  # start_rtml CONFIG
  PORT=$(free_port)
  "$RTML" serve --config "$1" --port "$PORT" --threads "$LOOPS" --log-level error &
  PIDS+=($!); SERVER_PID=$!
  for _ in $(seq 300); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" && return 0; sleep 0.1; done
  echo "rtml did not come up" >&2; exit 1
}
stop_last() { kill "${PIDS[-1]}" 2>/dev/null || true; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'; }
gen() { nice -n -10 "$LOADGEN" --port "$PORT" --body "$WORK/body.json" --duration "$DURATION" "$@"; }
field() {  # field JSON PYTHON-EXPR: evaluates EXPR on the parsed JSON `j`
  /usr/bin/python3 -c 'import json,sys; j=json.loads(sys.argv[1]); o=j["outcomes"]; print(eval(sys.argv[2]))' "$1" "$2"
}

declare -A ALL
add() { ALL[$1]+=" $2"; }
echo "loadgen: ${ROWS}-row batches, ${DURATION}s per phase, $RUNS runs per mode; $(nproc) cores" >&2
for r in $(seq "$RUNS"); do
  for mode in $MODES; do
    start_rtml "$WORK/$mode.yaml"
    gen --closed --connections 4 --duration 2 --health-every-ms 0 >/dev/null  # warm-up
    best=$(gen --closed --connections 4 --health-every-ms 0)
    best_rps=$(field "$best" 'o["200"]["per_s"]')
    calm=$(gen --rate "$(awk -v b="$best_rps" 'BEGIN {print b * 0.3}')" --connections 16)
    over=$(gen --rate "$(awk -v b="$best_rps" 'BEGIN {print b * 3}')" --connections "$CONNS" --pid "$SERVER_PID")
    stop_last
    add "$mode best" "$best_rps"
    add "$mode calm_p99" "$(field "$calm" 'o["200"]["p99_ms"]')"
    add "$mode offered" "$(field "$over" 'round(j["offered_per_s"])')"
    add "$mode ok_rps" "$(field "$over" 'o.get("200", {}).get("per_s", 0)')"
    add "$mode ok_share" "$(field "$over" 'round(100 * o.get("200", {}).get("per_s", 0) / '"$best_rps"', 1)')"
    add "$mode ok_p50" "$(field "$over" 'o.get("200", {}).get("p50_ms", 0)')"
    add "$mode ok_p99" "$(field "$over" 'o.get("200", {}).get("p99_ms", 0)')"
    add "$mode refused_rps" "$(field "$over" 'o.get("503", {}).get("per_s", 0)')"
    add "$mode refused_p99" "$(field "$over" 'o.get("503", {}).get("p99_ms", 0)')"
    add "$mode retry_after" "$(field "$over" 'round(100 * j["retry_after_503"] / max(1, o.get("503", {}).get("count", 0)))')"
    add "$mode other" "$(field "$over" 'sum(v["count"] for k, v in o.items() if k not in ("200", "503")) + j["io_errors"] + j["connect_errors"]')"
    add "$mode health_p99" "$(field "$over" 'j["health"]["p99_ms"]')"
    add "$mode health_fail" "$(field "$over" 'j["health"]["failures"]')"
    add "$mode rss" "$(field "$over" 'j["max_rss_mb"]')"
    # The bars, per run: accepted p99 within twice the unloaded p99 plus the
    # queueing budget (http.max_queue_ms, 20 by default), refusals' p99
    # under 1 ms.
    calm_p99=$(field "$calm" 'o["200"]["p99_ms"]')
    add "$mode within_bar" "$(field "$over" 'int(o.get("200", {}).get("p99_ms", 1e9) <= 2 * '"$calm_p99"' + 20)')"
    add "$mode fast_refusals" "$(field "$over" 'int(o.get("503", {}).get("p99_ms", 1e9) < 1)')"
    printf '  run %d, admission %-3s: best %s req/s, overload: %s\n' "$r" "$mode" "$best_rps" "$over" >&2
  done
done

m() { median ${ALL["$1"]}; }  # shellcheck disable=SC2086
runs_of() {  # runs_of KEY: how many runs had 1, "k of n" ("–" for a mode not run)
  local v; v=$(echo ${ALL["$1"]:-})  # shellcheck disable=SC2086
  [ -n "$v" ] && echo "$(( ${v// /+} )) of $RUNS" || echo "–"
}
mkdir -p bench/results
out=bench/results/overload-$(date -u +%Y%m%dT%H%M%SZ).md
{
  echo "Overload: ${ROWS}-row batches, open loop at 3x the best throughput, ${DURATION}s per phase, medians of $RUNS runs, $(nproc) cores, $LOOPS event loop(s)"
  echo
  echo "| | admission on (defaults) | admission off |"
  echo "|---|---|---|"
  echo "| best throughput (closed loop, 4 conns) | $(m 'on best') req/s | $(m 'off best') req/s |"
  echo "| unloaded p99 (30% of best) | $(m 'on calm_p99') ms | $(m 'off calm_p99') ms |"
  echo "| offered under overload | $(m 'on offered') req/s | $(m 'off offered') req/s |"
  echo "| accepted (200) | $(m 'on ok_rps') req/s, $(m 'on ok_share')% of best | $(m 'off ok_rps') req/s, $(m 'off ok_share')% of best |"
  echo "| accepted p50 / p99 | $(m 'on ok_p50') / $(m 'on ok_p99') ms | $(m 'off ok_p50') / $(m 'off ok_p99') ms |"
  echo "| refused (503) | $(m 'on refused_rps') req/s, p99 $(m 'on refused_p99') ms, Retry-After on $(m 'on retry_after')% | $(m 'off refused_rps') req/s |"
  echo "| other outcomes and I/O errors | $(m 'on other') | $(m 'off other') |"
  echo "| /healthz p99 (failures) | $(m 'on health_p99') ms ($(m 'on health_fail')) | $(m 'off health_p99') ms ($(m 'off health_fail')) |"
  echo "| peak resident memory | $(m 'on rss') MB | $(m 'off rss') MB |"
  echo "| runs with accepted p99 within 2x unloaded p99 + 20 ms | $(runs_of 'on within_bar') | $(runs_of 'off within_bar') |"
  echo "| runs with refusals' p99 under 1 ms | $(runs_of 'on fast_refusals') | – |"
  echo
  echo "Command: bench/overload.sh --runs $RUNS --duration $DURATION --rows $ROWS --connections $CONNS --loops $LOOPS --modes \"$MODES\""
} | tee "$out"
echo "written to $out" >&2
