# Shared set-up for the benchmark scripts (sourced, after their own flags):
# paths, the scratch folder, background processes stopped on exit, helpers.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RTML=${RTML_BIN:-$REPO/build/rtml}
PEERS=${PEERS_DIR:-$REPO/../shared/peers}
MODEL=$REPO/examples/fraud/models/fraud/1/model.json
[ -x "$RTML" ] || { echo "build rtml first: make build" >&2; exit 1; }
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

wait_http() {  # wait_http URL: poll until it answers, 30 s at most
  for _ in $(seq 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "server at $1 did not come up" >&2; return 1
}

# wrk runs (run_wrk), for the scripts that measure HTTP servers; they set
# RUNS, DURATION, CONNS and write the wrk Lua script of each body to
# $WORK/<body>.lua beside $WORK/<body>.json.
declare -A RESULT
SERVER_PID=""
# cpu_ticks PID: user+system clock ticks of PID and all its descendants.
cpu_ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    if [ "$p" != "$1" ]; then total=$((total + $(cpu_ticks "$p"))); continue; fi
    read -r -a f < "/proc/$p/stat" 2>/dev/null || continue
    total=$((total + f[13] + f[14]))
  done
  echo "$total"
}
# run_wrk LABEL URL BODY [RUNS]: RUNS runs, added to earlier runs of LABEL;
# stores "rps p50_ms p99_ms cpu_us_per_req" medians over all of them (rps of
# 2xx answers only; ERRORS[LABEL] counts the others).
declare -A ALL_RPS ALL_P50 ALL_P99 ALL_CPU ERRORS
run_wrk() {
  local label=$1 url=$2 body=$3 runs=${4:-$RUNS} rps p50 p99 cpu bad
  curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' -d @"$WORK/$body.json" "$url" \
    || { echo "$label: $url does not answer the request" >&2; return 1; }
  wrk -t2 -c"$CONNS" -d2s -s "$WORK/$body.lua" "$url" >/dev/null  # warm-up
  for r in $(seq "$runs"); do
    t0=$(cpu_ticks "$SERVER_PID")
    out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/$body.lua" "$url")
    t1=$(cpu_ticks "$SERVER_PID")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    cpu=$(awk -v t=$((t1 - t0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')
    # Answers that were not 2xx (refusals under overload, errors) are not
    # throughput: req/s counts the 2xx ones only, and ERRORS[label] the rest.
    bad=$(awk '/Non-2xx or 3xx responses/ {print $NF}' <<<"$out")
    rps=$(awk -v n="$n" -v bad="${bad:-0}" '/Requests\/sec/ {printf "%.2f", $2 * (n - bad) / n}' <<<"$out")
    ERRORS[$label]=$(( ${ERRORS[$label]:-0} + ${bad:-0} ))
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    ALL_RPS[$label]+=" $rps" ALL_P50[$label]+=" $p50" ALL_P99[$label]+=" $p99" ALL_CPU[$label]+=" $cpu"
    printf '  %-34s run %d/%d: %8.0f req/s  p50 %-8s p99 %-8s CPU %s us/req  non-2xx %s\n' "$label" "$r" "$runs" "$rps" "$p50" "$p99" "$cpu" "${bad:-0}" >&2
  done
  # shellcheck disable=SC2086  # word-splitting the lists is the point
  RESULT[$label]="$(median ${ALL_RPS[$label]}) $(median_ms ${ALL_P50[$label]}) $(median_ms ${ALL_P99[$label]}) $(median ${ALL_CPU[$label]})"
}
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.3f\n", v}'; }
median_ms() { printf '%s\n' "$@" | to_ms | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

start_rtml() {  # start_rtml THREADS [CONFIG] [BINARY] -> sets URL
  local port; port=$(free_port)
  "${3:-$RTML}" serve --config "${2:-$WORK/rtml.yaml}" --port "$port" --threads "$1" --log-level warn &
  PIDS+=($!); SERVER_PID=$!; URL="http://127.0.0.1:$port"; wait_http "$URL/readyz"
}
stop_last() { kill "${PIDS[-1]}" 2>/dev/null || true; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'; }
