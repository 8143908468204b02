#!/usr/bin/env bash
# HTTP benchmark: single-row POST /predict with keep-alive, measured with wrk
# against rtml and, in the same run on the same machine, the Python reference
# service (../shared/peers/seed-python: FastAPI + uvicorn + XGBoost) and nginx
# returning a fixed answer (the machine's HTTP ceiling).
#
#   bench/http_predict.sh [--runs 3] [--duration 8] [--connections 32] [--metrics-only]
#                         [--baseline OTHER_RTML]
#
# Every server gets the same body: the fraud demo row as 30 ordered floats
# (the Python service's format); rtml is also measured with named features
# and a user_id, its 8 profile features read from the RocksDB feature store.
# Prints a Markdown table of medians over the runs (requests/s, p50, p99, and
# the server's CPU time per request, summed over its processes) and the ratios
# to the Python service; writes it to bench/results/ too. Last, the cost of
# per-request metrics: rtml with scoring.metrics on and off, alternated
# (--metrics-only runs just that). With --baseline, only this build against
# another rtml binary (say, the previous release's), alternated the same way:
# the before/after check for a change to the request path. wrk shares the two
# cores with the server, so CPU per request is the steadier efficiency figure.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3 DURATION=8 CONNS=32 METRICS_ONLY= BASELINE=
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) BASELINE=$2; METRICS_ONLY=1; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --metrics-only) METRICS_ONLY=1; shift ;;
    *) echo "usage: $0 [--runs N] [--duration S] [--connections C] [--metrics-only] [--baseline RTML]" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/common.sh"
command -v wrk >/dev/null || { echo "wrk is missing: scripts/install-deps.sh" >&2; exit 1; }


# The fraud demo with its feature store in a scratch folder (RocksDB).
cp examples/fraud/features.yaml "$WORK/"
/usr/bin/python3 examples/fraud/make_features.py --out "$WORK/data/user_profile.csv" >&2
cat > "$WORK/rtml.yaml" <<YAML
models: {repository: $REPO/examples/fraud/models, default: fraud}
features: {definitions: features.yaml, store: rocksdb, rocksdb: {path: online}}
YAML
"$RTML" features apply -c "$WORK/rtml.yaml" >&2
"$RTML" features materialize-incremental -c "$WORK/rtml.yaml" >&2

# Bodies: the README's example as 30 ordered floats (its user's stored profile
# included), and as named features with user_id (the profile from the store).
/usr/bin/python3 - "$REPO" "$WORK" <<'PY'
import json, sys
repo, work = sys.argv[1], sys.argv[2]
sys.path.insert(0, repo + "/examples/fraud")
import transactions
req = json.load(open(repo + "/examples/fraud/request.json"))["features"]
import csv
stored = {}
for r in csv.DictReader(open(work + "/data/user_profile.csv")):
    if r["user_id"] == str(req["user_id"]) and r["event_timestamp"] > stored.get("event_timestamp", ""):
        stored = r
full = dict({k: float(v) for k, v in stored.items()
             if k not in ("user_id", "event_timestamp", "home_country")}, **req)
row = []
for name, dtype, lo, hi, default in transactions.FEATURES:
    v = full.get(name, default)
    row.append(float(v) if v is not None else 0.0)
json.dump({"features": row}, open(work + "/ordered.json", "w"))
json.dump({"features": req}, open(work + "/named.json", "w"))
PY
for b in ordered named; do
  cat > "$WORK/$b.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$WORK/$b.json"); wrk.body = f:read("*a"); f:close()
LUA
done

start_python() {  # start_python WORKERS -> sets URL
  local port; port=$(free_port)
  MODEL=$MODEL "$PEERS/seed-python/serve.sh" "$port" "$1" >"$WORK/python.log" 2>&1 &
  PIDS+=($!); SERVER_PID=$!; URL="http://127.0.0.1:$port"; wait_http "$URL/health"
}

echo "wrk -t2 -c$CONNS -d${DURATION}s, $RUNS runs each, medians; $(nproc) cores" >&2
for loops in 1 2; do
  [ -z "$METRICS_ONLY" ] || break
  start_rtml "$loops"
  run_wrk "rtml ($loops loop, ordered)" "$URL/predict" ordered
  run_wrk "rtml ($loops loop, named)" "$URL/predict" named
  stop_last
done
# The cost of per-request metrics: the same server with scoring.metrics off,
# restarted and alternated with metrics on so that drift in the machine's
# speed hits both alike.
{ cat "$WORK/rtml.yaml"; echo "scoring: {metrics: false}"; } > "$WORK/rtml-nometrics.yaml"
if [ -n "$BASELINE" ]; then
  [ -x "$BASELINE" ] || { echo "--baseline $BASELINE is not an executable" >&2; exit 2; }
  for r in $(seq "$RUNS"); do  # which goes first alternates, so order favours neither
    for which in $( ((r % 2)) && echo "this baseline" || echo "baseline this"); do
      if [ "$which" = this ]; then
        start_rtml 1; run_wrk "rtml (1 loop, ordered, this build)" "$URL/predict" ordered 1
      else
        start_rtml 1 "$WORK/rtml.yaml" "$BASELINE"
        run_wrk "rtml (1 loop, ordered, baseline)" "$URL/predict" ordered 1
      fi
      stop_last
    done
  done
  read -r now _ _ nowcpu <<<"${RESULT[rtml (1 loop, ordered, this build)]}"
  read -r base _ _ basecpu <<<"${RESULT[rtml (1 loop, ordered, baseline)]}"
  awk -v a="$now" -v b="$base" -v ac="$nowcpu" -v bc="$basecpu" 'BEGIN {
    printf "This build vs baseline (1 loop, ordered, medians): %+.1f%% req/s (%.0f vs %.0f), %+.1f%% CPU per request (%.1f vs %.1f us)\n",
           100 * (a / b - 1), a, b, 100 * (ac / bc - 1), ac, bc }'
  exit 0
fi
for r in $(seq "$RUNS"); do
  start_rtml 1; run_wrk "rtml (1 loop, ordered, metrics on)" "$URL/predict" ordered 1; stop_last
  start_rtml 1 "$WORK/rtml-nometrics.yaml"
  run_wrk "rtml (1 loop, ordered, metrics off)" "$URL/predict" ordered 1; stop_last
done
if [ -n "$METRICS_ONLY" ]; then
  :
elif [ -x "$PEERS/seed-python/serve.sh" ]; then
  for workers in 1 2; do
    start_python "$workers"
    run_wrk "python ($workers worker)" "$URL/predict" ordered
    stop_last
  done
else
  echo "no Python reference at $PEERS/seed-python (set PEERS_DIR): skipped" >&2
fi
if [ -z "$METRICS_ONLY" ] && { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }; then
  port=$(free_port); mkdir -p "$WORK/ngx"
  cat > "$WORK/nginx.conf" <<NGX
worker_processes 2; daemon off; pid $WORK/ngx/nginx.pid; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$port;
  location / { default_type application/json; return 200 '{"prediction":0.5}'; } } }
NGX
  /usr/sbin/nginx -p "$WORK/ngx" -c "$WORK/nginx.conf" & PIDS+=($!); SERVER_PID=$!
  wait_http "http://127.0.0.1:$port/"
  run_wrk "nginx (fixed answer, 2 workers)" "http://127.0.0.1:$port/predict" ordered
  stop_last
fi

mkdir -p bench/results
out=bench/results/http-$(date -u +%Y%m%dT%H%M%SZ).md
read -r py1 _ _ py1cpu <<<"${RESULT[python (1 worker)]:-0 0 0 0}"
read -r py2 _ _ py2cpu <<<"${RESULT[python (2 worker)]:-0 0 0 0}"
{
  echo "| server | req/s | p50 ms | p99 ms | server CPU µs/req | req/s vs Python | CPU/req vs Python |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for label in "rtml (1 loop, ordered)" "rtml (1 loop, named)" "python (1 worker)" \
               "rtml (2 loop, ordered)" "rtml (2 loop, named)" "python (2 worker)" \
               "nginx (fixed answer, 2 workers)" \
               "rtml (1 loop, ordered, metrics on)" "rtml (1 loop, ordered, metrics off)"; do
    [ -n "${RESULT[$label]:-}" ] || continue
    read -r rps p50 p99 cpu <<<"${RESULT[$label]}"
    base=$py1 basecpu=$py1cpu; [[ $label == *"2 "* ]] && base=$py2 basecpu=$py2cpu
    ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }')
    cratio=$(awk -v a="$cpu" -v b="$basecpu" 'BEGIN { if (a > 0 && b > 0) printf "%.1fx less", b / a; else print "-" }')
    printf '| %s | %.0f | %s | %s | %s | %s | %s |\n' "$label" "$rps" "$p50" "$p99" "$cpu" "$ratio" "$cratio"
  done
  read -r on _ _ oncpu <<<"${RESULT[rtml (1 loop, ordered, metrics on)]}"
  read -r off _ _ offcpu <<<"${RESULT[rtml (1 loop, ordered, metrics off)]}"
  awk -v on="$on" -v off="$off" -v oncpu="$oncpu" -v offcpu="$offcpu" 'BEGIN {
    printf "\nMetrics cost (1 loop, ordered): %.1f%% fewer req/s, %.1f%% more CPU per request\n",
           100 * (1 - on / off), 100 * (oncpu / offcpu - 1) }'
} | tee "$out"
echo "(written to $out)" >&2
