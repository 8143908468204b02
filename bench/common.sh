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
