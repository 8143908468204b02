#!/usr/bin/env bash
# Model swaps under load: rtml serving the fraud model over HTTP (wrk on
# POST /predict) and scoring a Kafka stream at a steady rate (rtml bench kafka
# on rtml broker) while, in the "swaps" phase, a new version folder replaces
# the serving one SWAPS times in a row (copied in, model.yaml last; the old
# folder removed; POST /v1/repository/models/fraud/load). The "steady" phase
# is the same load without swaps, in the same run. Each phase gets a fresh
# broker and server; the phases alternate RUNS times.
#
#   bench/model_swap.sh [--runs 3] [--swaps 100] [--duration 10] [--rate 1000]
#
# Reports, per phase (medians over the runs): wrk's p50/p99 and its non-2xx
# responses and socket errors; the stream's events, predictions, events with
# no prediction and duplicated predictions; and the ratio of p99 with swaps to
# p99 without. Writes the table to bench/results/ too.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3 SWAPS=100 DURATION=10 RATE=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --swaps) SWAPS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--swaps N] [--duration S] [--rate EVENTS_PER_S]" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/common.sh"
for tool in wrk kcat curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: scripts/install-deps.sh" >&2; exit 1; }
done

# The 30-float body (every input given: no store lookup), as bench/http_predict.sh.
/usr/bin/python3 - "$REPO" "$WORK" <<'PY'
import json, sys
repo, work = sys.argv[1], sys.argv[2]
sys.path.insert(0, repo + "/examples/fraud")
import transactions
req = json.load(open(repo + "/examples/fraud/request.json"))["features"]
row = [float(req.get(name, default if default is not None else 0.0) or 0.0)
       for name, dtype, lo, hi, default in transactions.FEATURES]
json.dump({"features": row}, open(work + "/ordered.json", "w"))
PY
cat > "$WORK/ordered.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$WORK/ordered.json"); wrk.body = f:read("*a"); f:close()
LUA

# phase NAME: one fresh broker + server, wrk and the stream for DURATION
# seconds, with SWAPS swaps spread over them when NAME is "swaps". Prints
# "p50_ms p99_ms failed_http events predictions missing duplicates swaps_ok".
phase() {
  local name=$1 dir=$WORK/$1-$RANDOM port bport
  mkdir -p "$dir/models/fraud"
  cp -r examples/fraud/models/fraud/1 "$dir/models/fraud/1"
  cat > "$dir/rtml.yaml" <<YAML
models: {repository: $dir/models, default: fraud}
features: {definitions: $REPO/examples/fraud/features.yaml, store: memory}
YAML
  bport=$(free_port); port=$(free_port)
  "$RTML" broker --port "$bport" --partitions 6 > "$dir/broker.log" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "ready at" "$dir/broker.log" 2>/dev/null && break; sleep 0.1; done
  "$RTML" serve --config "$dir/rtml.yaml" --port "$port" --brokers "127.0.0.1:$bport" \
    --log-level warn > "$dir/serve.log" 2>&1 &
  PIDS+=($!)
  local url=http://127.0.0.1:$port
  for _ in $(seq 300); do curl -fs -o /dev/null "$url/readyz" && break; sleep 0.1; done
  local events=$((RATE * DURATION))
  "$RTML" bench kafka -b "127.0.0.1:$bport" -n "$events" --rate "$RATE" --full-rows --json \
    --timeout $((DURATION + 60)) > "$dir/stream.json" 2>/dev/null &
  local stream_pid=$!
  local swaps_ok=0 swap_pid=
  if [ "$name" = swaps ]; then
    # Staged beforehand on the same filesystem, so that a swap is one rename
    # (the whole folder at once), one removal and one load request, all from
    # one process: the harness itself costs the machine little.
    for v in $(seq 2 $((SWAPS + 1))); do cp -r examples/fraud/models/fraud/1 "$dir/staged-$v"; done
    /usr/bin/python3 - "$dir" "$port" "$SWAPS" "$DURATION" > "$dir/swaps_ok" <<'PY' &
import http.client, os, shutil, sys, time
d, port, swaps, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
ok, version = 0, 1
for i in range(swaps):
    nxt = version + 1
    os.rename(f"{d}/staged-{nxt}", f"{d}/models/fraud/{nxt}")  # the new version, complete
    shutil.rmtree(f"{d}/models/fraud/{version}")               # the old one retires
    conn.request("POST", "/v1/repository/models/fraud/load")
    r = conn.getresponse()
    r.read()
    ok += r.status == 200
    version = nxt
    time.sleep(0.8 * duration / swaps)
print(ok)
PY
    swap_pid=$!
  fi
  local out
  out=$(wrk -t1 -c16 -d"${DURATION}s" --latency --timeout 2s -s "$WORK/ordered.lua" "$url/predict")
  wait "$stream_pid" || true
  if [ -n "$swap_pid" ]; then
    wait "$swap_pid" || true
    swaps_ok=$(cat "$dir/swaps_ok" 2>/dev/null || echo 0)
  fi
  local p50 p99 non2xx errors
  p50=$(awk '$1=="50%" {print $2}' <<<"$out" | to_ms)
  p99=$(awk '$1=="99%" {print $2}' <<<"$out" | to_ms)
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); non2xx=${non2xx:-0}
  errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out"); errors=${errors:-0}
  kcat -b "127.0.0.1:$bport" -C -t predictions -e -q -f '%s\n' > "$dir/predictions.jsonl" 2>/dev/null
  /usr/bin/python3 - "$dir/predictions.jsonl" "$events" "$p50" "$p99" "$((non2xx + errors))" "$swaps_ok" <<'PY'
import collections, json, sys
path, events, p50, p99, failed, swaps_ok = sys.argv[1:]
events = int(events)
ids = collections.Counter()
for line in open(path):
    try:
        ids[json.loads(line)["id"]] += 1
    except (ValueError, KeyError):
        pass
missing = events - len(ids)
dups = sum(v - 1 for v in ids.values())
print(p50, p99, failed, events, sum(ids.values()), missing, dups, swaps_ok)
PY
  stop_last; stop_last
}
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.3f\n", v}'; }
stop_last() { kill "${PIDS[-1]}" 2>/dev/null || true; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'; }

declare -A P50 P99 FAILED MISSING DUPS OK EVENTS PREDS
echo "wrk -t1 -c16 -d${DURATION}s + a stream at ${RATE}/s; $SWAPS swaps; $RUNS runs; $(nproc) cores" >&2
for r in $(seq "$RUNS"); do
  for name in $( ((r % 2)) && echo "steady swaps" || echo "swaps steady"); do
    read -r p50 p99 failed events preds missing dups ok <<<"$(phase "$name")"
    printf '  run %d/%d %-6s: p50 %s ms, p99 %s ms, failed HTTP %s, stream %s events -> %s predictions, %s missing, %s duplicated%s\n' \
      "$r" "$RUNS" "$name" "$p50" "$p99" "$failed" "$events" "$preds" "$missing" "$dups" \
      "$([ "$name" = swaps ] && echo ", $ok/$SWAPS swaps answered 200")" >&2
    P50[$name]+=" $p50" P99[$name]+=" $p99" FAILED[$name]+=" $failed" MISSING[$name]+=" $missing"
    DUPS[$name]+=" $dups" OK[$name]+=" $ok" EVENTS[$name]+=" $events" PREDS[$name]+=" $preds"
  done
done

sum() { local t=0 x; for x in "$@"; do t=$((t + x)); done; echo "$t"; }
mkdir -p bench/results
out=bench/results/model-swap-$(date -u +%Y%m%dT%H%M%SZ).md
{
  echo "| phase | p50 ms | p99 ms | failed HTTP requests (all runs) | stream events missing / duplicated (all runs) | swaps answered 200 |"
  echo "|---|---:|---:|---:|---:|---:|"
  for name in steady swaps; do
    # shellcheck disable=SC2086
    printf '| %s | %s | %s | %s | %s / %s | %s |\n' "$name" "$(median ${P50[$name]})" \
      "$(median ${P99[$name]})" "$(sum ${FAILED[$name]})" "$(sum ${MISSING[$name]})" \
      "$(sum ${DUPS[$name]})" "$([ "$name" = swaps ] && echo "$(sum ${OK[$name]})/$((SWAPS * RUNS))" || echo -)"
  done
  # shellcheck disable=SC2086
  awk -v a="$(median ${P99[swaps]})" -v b="$(median ${P99[steady]})" 'BEGIN {
    printf "\np99 with swaps / p99 without: %.2fx\n", a / b }'
} | tee "$out"
echo "(written to $out)" >&2
