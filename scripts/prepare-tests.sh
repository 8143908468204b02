#!/usr/bin/env bash
# What `make test` needs before its tests: the two builds (Release, and
# clang with ASan + UBSan), the steps that mostly wait on the network (the
# Kafka broker's jars, the test virtualenvs, the Go tools) run beside the
# compilers instead of after them, then the container image (which
# compiles too: beside the builds it only slows them). The background
# steps' output goes to build-logs/<step>.log, printed in full if one fails.
#
#   scripts/prepare-tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
logs=build-logs
mkdir -p "$logs"
pids=() names=()
background() {  # background NAME COMMAND...
  "${@:2}" > "$logs/$1.log" 2>&1 &
  pids+=($!)
  names+=("$1")
}
background kafka ./scripts/install-kafka.sh
background venv ./scripts/install-venv.sh
background mlserver ./scripts/install-mlserver.sh
background tools ./scripts/install-tools.sh
echo "prepare-tests: installing the Kafka jars, the test virtualenvs and the Go tools in the"
echo "prepare-tests: background (logs in $logs/) while rtml compiles"
status=0
make --no-print-directory build sanitize-build || status=$?
[ $status -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then
    echo "prepare-tests: ${names[$i]}: $(tail -n 1 "$logs/${names[$i]}.log")"
  else
    [ $status -ne 0 ] && continue  # stopped because the build failed
    echo "prepare-tests: ${names[$i]} failed; its output ($logs/${names[$i]}.log):" >&2
    cat "$logs/${names[$i]}.log" >&2
    status=1
  fi
done
[ $status -eq 0 ] || exit $status
./scripts/image.sh
