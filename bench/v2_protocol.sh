#!/usr/bin/env bash
# The Open Inference Protocol (KServe V2) benchmark: rtml against Seldon's
# MLServer (mlserver + mlserver-xgboost from PyPI, pinned in
# bench/requirements-mlserver.txt, in .venv-mlserver made by
# scripts/install-mlserver.sh), both serving the fraud demo model (200
# trees, 30 inputs) over V2 REST and V2 gRPC, in the same run on the same
# machine, with single-row and 64-row requests.
#
#   bench/v2_protocol.sh [--runs 3] [--duration 8] [--connections 32]
#
# Every server gets the same requests: one [N, 30] FP32 tensor "x" (all the
# model's inputs, so rtml reads nothing from its feature store), as a JSON
# body for REST (wrk) and as a serialized ModelInferRequest with
# raw_input_contents, as tritonclient.grpc sends it, for gRPC
# (bench/grpc_loadgen, the same bytes to both). MLServer runs as the peers'
# notes ran it: one process (parallel_workers 0), OMP_NUM_THREADS=1; rtml
# with 2 HTTP event loops and 2 gRPC threads. Prints a Markdown table of
# medians over the runs (requests/s, p50, p99, server CPU per request) with
# rtml's ratio to MLServer, and writes it to bench/results/v2_protocol.md.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3 DURATION=8 CONNS=32
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--duration S] [--connections C]" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/common.sh"
LOADGEN=${GRPC_LOADGEN:-$REPO/build/bench/grpc_loadgen}
[ -x "$LOADGEN" ] || { echo "build bench/grpc_loadgen first: make build" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: scripts/install-deps.sh" >&2; exit 1; }
./scripts/install-mlserver.sh >&2
./scripts/install-venv.sh >&2  # tritonclient's protobuf classes write the gRPC requests
MLSERVER_VENV=${MLSERVER_VENV:-$REPO/.venv-mlserver}

# rtml: the fraud demo, its feature store in the scratch folder (the model
# names a feature service; these requests give every input, so none is read).
cp examples/fraud/features.yaml "$WORK/"
/usr/bin/python3 examples/fraud/make_features.py --out "$WORK/data/user_profile.csv" >&2
cat > "$WORK/rtml.yaml" <<YAML
models: {repository: $REPO/examples/fraud/models, default: fraud}
features: {definitions: features.yaml, store: rocksdb, rocksdb: {path: online}}
grpc: {threads: 2}
YAML
"$RTML" features apply -c "$WORK/rtml.yaml" >&2
"$RTML" features materialize-incremental -c "$WORK/rtml.yaml" >&2

# MLServer: the same model, saved without feature names (MLServer's DMatrix
# has none, and XGBoost refuses a model that names them).
mkdir -p "$WORK/mlserver/fraud"
"$MLSERVER_VENV/bin/python" - "$MODEL" "$WORK/mlserver/fraud/model.json" <<'PY'
import sys, xgboost as xgb
b = xgb.Booster(model_file=sys.argv[1]); b.feature_names = None; b.feature_types = None
b.save_model(sys.argv[2])
PY
ML_HTTP=$(free_port) ML_GRPC=$(free_port) ML_METRICS=$(free_port)
echo "{\"http_port\": $ML_HTTP, \"grpc_port\": $ML_GRPC, \"metrics_port\": $ML_METRICS, \"parallel_workers\": 0}" \
  > "$WORK/mlserver/settings.json"
echo '{"name": "fraud", "implementation": "mlserver_xgboost.XGBoostModel", "parameters": {"uri": "./model.json", "version": "1"}}' \
  > "$WORK/mlserver/fraud/model-settings.json"

# The requests: the README's example row (its user's stored profile
# included) as the model's 30 inputs in order, 1 and 64 of them.
"$REPO/.venv/bin/python" - "$REPO" "$WORK" <<'PY'
import csv, json, struct, sys
from tritonclient.grpc import service_pb2 as pb
repo, work = sys.argv[1], sys.argv[2]
sys.path.insert(0, repo + "/examples/fraud")
import transactions
req = json.load(open(repo + "/examples/fraud/request.json"))["features"]
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
assert len(row) == 30, len(row)
for n in (1, 64):
    data = row * n
    body = {"inputs": [{"name": "x", "shape": [n, 30], "datatype": "FP32", "data": data}]}
    json.dump(body, open(f"{work}/v2_{n}.json", "w"))
    with open(f"{work}/v2_{n}.lua", "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f'local f = io.open("{work}/v2_{n}.json"); wrk.body = f:read("*a"); f:close()\n')
    grpc_req = pb.ModelInferRequest(model_name="fraud")
    grpc_req.inputs.add(name="x", datatype="FP32", shape=[n, 30])
    grpc_req.raw_input_contents.append(struct.pack(f"<{30 * n}f", *data))
    open(f"{work}/v2_{n}.pb", "wb").write(grpc_req.SerializeToString())
PY

# run_grpc LABEL TARGET REQUEST: RUNS runs of grpc_loadgen, as run_wrk does.
run_grpc() {
  local label=$1 target=$2 request=$3 out rps p50 p99 cpu n errors
  "$LOADGEN" --target "$target" --request "$request" --concurrency "$CONNS" --duration 2 \
    --warmup 0.5 >/dev/null || { echo "$label: $target does not answer the request" >&2; return 1; }
  for r in $(seq "$RUNS"); do
    t0=$(cpu_ticks "$SERVER_PID")
    out=$("$LOADGEN" --target "$target" --request "$request" --concurrency "$CONNS" \
      --duration "$DURATION" --warmup 1)
    t1=$(cpu_ticks "$SERVER_PID")
    read -r rps n errors p50 p99 < <(/usr/bin/python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["calls_per_s"], r["ok"], r["errors"], r["p50_ms"], r["p99_ms"])' "$out")
    # CPU over the whole run (warm-up included) per answered call.
    cpu=$(awk -v t=$((t1 - t0)) -v n="$n" -v hz="$(getconf CLK_TCK)" -v d="$DURATION" \
      'BEGIN {printf "%.1f", t * 1e6 / hz / (n * (d + 1) / d)}')
    ERRORS[$label]=$(( ${ERRORS[$label]:-0} + errors ))
    ALL_RPS[$label]+=" $rps" ALL_P50[$label]+=" ${p50}ms" ALL_P99[$label]+=" ${p99}ms" ALL_CPU[$label]+=" $cpu"
    printf '  %-34s run %d/%d: %8.0f req/s  p50 %-8s p99 %-8s CPU %s us/req  errors %s\n' "$label" "$r" "$RUNS" "$rps" "${p50}ms" "${p99}ms" "$cpu" "$errors" >&2
  done
  # shellcheck disable=SC2086
  RESULT[$label]="$(median ${ALL_RPS[$label]}) $(median_ms ${ALL_P50[$label]}) $(median_ms ${ALL_P99[$label]}) $(median ${ALL_CPU[$label]})"
}

measure_all() {  # measure_all NAME REST_URL GRPC_TARGET
  local rows  # (run_wrk sets n)
  for rows in 1 64; do
    run_wrk "$1 REST, $rows row(s)" "$2" "v2_$rows"
    run_grpc "$1 gRPC, $rows row(s)" "$3" "$WORK/v2_$rows.pb"
  done
}

echo "rtml: V2 REST and gRPC" >&2
GRPC_PORT=$(free_port)
port=$(free_port)
"$RTML" serve --config "$WORK/rtml.yaml" --port "$port" --threads 2 --grpc-port "$GRPC_PORT" \
  --log-level warn &
PIDS+=($!); SERVER_PID=$!
wait_http "http://127.0.0.1:$port/readyz"
measure_all rtml "http://127.0.0.1:$port/v2/models/fraud/infer" "127.0.0.1:$GRPC_PORT"
stop_last

echo "MLServer $("$MLSERVER_VENV/bin/python" -c 'import mlserver; print(mlserver.__version__)'): V2 REST and gRPC" >&2
(cd "$WORK/mlserver" && OMP_NUM_THREADS=1 exec "$MLSERVER_VENV/bin/mlserver" start . \
  > "$WORK/mlserver.log" 2>&1) &
PIDS+=($!); SERVER_PID=$!
for _ in $(seq 600); do
  curl -fs -o /dev/null "http://127.0.0.1:$ML_HTTP/v2/models/fraud/ready" && break; sleep 0.1
done
curl -fs -o /dev/null "http://127.0.0.1:$ML_HTTP/v2/models/fraud/ready" \
  || { echo "MLServer did not come up:" >&2; tail -20 "$WORK/mlserver.log" >&2; exit 1; }
measure_all MLServer "http://127.0.0.1:$ML_HTTP/v2/models/fraud/infer" "127.0.0.1:$ML_GRPC"
stop_last

mkdir -p bench/results
{
  echo "| server, protocol, rows | req/s | p50 ms | p99 ms | server CPU µs/req | rtml ÷ MLServer (req/s) |"
  echo "|---|---:|---:|---:|---:|---:|"
  for proto in REST gRPC; do
    for n in 1 64; do
      read -r r_rps r_p50 r_p99 r_cpu <<<"${RESULT[rtml $proto, $n row(s)]}"
      read -r m_rps m_p50 m_p99 m_cpu <<<"${RESULT[MLServer $proto, $n row(s)]}"
      ratio=$(awk -v a="$r_rps" -v b="$m_rps" 'BEGIN {printf "%.0fx", a / b}')
      printf '| rtml, V2 %s, %d | %.0f | %s | %s | %s | %s |\n' "$proto" "$n" "$r_rps" "$r_p50" "$r_p99" "$r_cpu" "$ratio"
      printf '| MLServer, V2 %s, %d | %.0f | %s | %s | %s | |\n' "$proto" "$n" "$m_rps" "$m_p50" "$m_p99" "$m_cpu"
    done
  done
  echo
  errors=$(for k in "${!ERRORS[@]}"; do [ "${ERRORS[$k]}" != 0 ] && printf '%s: %s; ' "$k" "${ERRORS[$k]}"; done || true)
  echo "Medians of $RUNS runs of ${DURATION} s, $CONNS connections (REST: wrk -t2; gRPC: grpc_loadgen, $CONNS calls in flight over 4 connections); answers that were not OK: ${errors:-none}."
} | tee bench/results/v2_protocol.md
