#!/usr/bin/env bash
# The chaos suite's longer mode: real Kafka, real Redis (behind a slowing
# proxy), three rtml replicas in one consumer group behind nginx, under
# heavier HTTP and stream load, each fault played ROUNDS times with longer
# holds and gaps (tests/integration/chaos.py; the short mode runs in CI as
# tests/integration/test_chaos.py). Prints the per-fault table that
# docs/operations.md ("Chaos suite") quotes, and writes it as JSON.
#
#   bench/chaos.sh [--rounds 3] [--http-rate 300] [--event-rate 300] [--hold 5] [--gap 20]
#                  [--json build/chaos.json]
# Needs the build (build/rtml) and `make test`'s dependencies (Kafka, nginx,
# Redis): run `make test` once first.
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=(--rounds 3 --http-rate 300 --event-rate 300 --hold 5 --gap 20 --json build/chaos.json)
[ $# -gt 0 ] && ARGS=("$@")
[ -x build/rtml ] || { echo "build/rtml is missing: run make build (or make test) first" >&2; exit 1; }
cd tests/integration
RTML_BIN="$PWD/../../build/rtml" OMP_NUM_THREADS=1 PYTHONDONTWRITEBYTECODE=1 \
  exec /usr/bin/python3 chaos.py "${ARGS[@]/#build\//../../build/}"
