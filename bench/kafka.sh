#!/usr/bin/env bash
# Kafka benchmark: end-to-end latency (event creation -> prediction arrival)
# and sustained throughput of rtml's stream worker, beside the Python reference
# consumer (../shared/peers/seed-python/consumer.py: kafka-python, one XGBoost
# prediction per message) on the same `rtml broker`, in the same run.
#
#   bench/kafka.sh [--runs 3] [--events 50000]
#
# Both scorers get the same events: all 30 fraud inputs as {"id", "features"}
# (the Python consumer's format), produced by `rtml bench kafka`. Medians of
# the runs are printed as a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3 EVENTS=50000
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --events) EVENTS=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--events N]" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/common.sh"
port=$(free_port)
B=127.0.0.1:$port
topics=ml-features,predictions,ml-features-dlq
for r in $(seq "$RUNS"); do topics=$topics,py-in-$r,py-out-$r,py-dlq-$r; done
"$RTML" broker --port "$port" --partitions 6 --topics "$topics" > "$WORK/broker.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q "ready at" "$WORK/broker.log" 2>/dev/null && break; sleep 0.1; done
cat > "$WORK/rtml.yaml" <<YAML
models: {repository: $REPO/examples/fraud/models, default: fraud}
features: {definitions: $REPO/examples/fraud/features.yaml, store: memory}
YAML
"$RTML" serve --config "$WORK/rtml.yaml" --port 0 --brokers "$B" --log-level warn &
PIDS+=($!)

bench() { "$RTML" bench kafka -b "$B" --full-rows --json "$@" 2>/dev/null; }
field() { /usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }
declare -A R
record() {  # record LABEL JSON...
  local label=$1; shift
  local eps=() p50=() p95=() p99=()
  for j in "$@"; do
    eps+=("$(field "$j" events_per_s)"); p50+=("$(field "$j" p50_ms)")
    p95+=("$(field "$j" p95_ms)"); p99+=("$(field "$j" p99_ms)")
  done
  R[$label]="$(median "${eps[@]}") $(median "${p50[@]}") $(median "${p95[@]}") $(median "${p99[@]}")"
}

echo "warming up rtml (waits for the stream worker to join its group) ..." >&2
bench -n 100 --timeout 60 >/dev/null
flat=() paced=()
for r in $(seq "$RUNS"); do
  echo "rtml run $r/$RUNS: $EVENTS events flat out, then 10000 at 2000/s ..." >&2
  flat+=("$(bench -n "$EVENTS")")
  paced+=("$(bench -n 10000 --rate 2000)")
done
record "rtml, flat out" "${flat[@]}"
record "rtml, 2000/s" "${paced[@]}"

if [ -x "$PEERS/seed-python/consumer.py" ]; then
  pflat=() ppaced=()
  for r in $(seq "$RUNS"); do
    echo "python run $r/$RUNS ..." >&2
    # exec: the background PID is the consumer itself, so that kill stops it
    (cd "$PEERS/seed-python" && MODEL=$MODEL OMP_NUM_THREADS=1 exec /usr/bin/python3 consumer.py \
       --brokers "$B" --in "py-in-$r" --out "py-out-$r" --group "py-$r" --max-idle-s 20 \
       > "$WORK/py-$r.log" 2>&1) &
    PIDS+=($!)
    pb() { bench --topic "py-in-$r" --predictions "py-out-$r" --dead-letters "py-dlq-$r" "$@"; }
    pb -n 50 --timeout 60 >/dev/null  # the consumer has joined once this returns
    pflat+=("$(pb -n $((EVENTS / 5)))")
    ppaced+=("$(pb -n 5000 --rate 1000)")
    kill "${PIDS[-1]}" 2>/dev/null || true
  done
  record "python, flat out" "${pflat[@]}"
  record "python, 1000/s" "${ppaced[@]}"
else
  echo "no Python reference at $PEERS/seed-python (set PEERS_DIR): skipped" >&2
fi

mkdir -p bench/results
out=bench/results/kafka-$(date -u +%Y%m%dT%H%M%SZ).md
read -r pyeps _ <<<"${R[python, flat out]:-0 0}"
{
  echo "| scorer | events/s end to end | p50 ms | p95 ms | p99 ms | throughput vs Python |"
  echo "|---|---:|---:|---:|---:|---:|"
  for label in "rtml, flat out" "python, flat out" "rtml, 2000/s" "python, 1000/s"; do
    [ -n "${R[$label]:-}" ] || continue
    read -r eps p50 p95 p99 <<<"${R[$label]}"
    ratio=$(awk -v a="$eps" -v b="$pyeps" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }')
    [[ $label == *"/s" ]] && ratio="–"
    printf '| %s | %.0f | %s | %s | %s | %s |\n' "$label" "$eps" "$p50" "$p95" "$p99" "$ratio"
  done
} | tee "$out"
echo "(written to $out)" >&2
