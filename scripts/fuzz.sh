#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz (built in the sanitizer tree,
# AddressSanitizer + UBSan) from its seed corpus, for a bounded time or
# number of executions each, and prints a Markdown table: executions, rate,
# corpus size, crashes. A crash (or sanitizer report, or leak) fails the run
# and leaves its input in $OUT/<target>-crash-* with the command to replay it.
#
#   scripts/fuzz.sh [--seconds N | --runs N] [--build build-asan] [--out DIR] [--targets "a b"]
#
# `make fuzz` runs each target for 10^7 executions (long: the YAML targets
# do a few thousand a second); `make test` runs each for 5 s.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="" RUNS="" BUILD=build-asan OUT="" ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --targets) ONLY=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N | --runs N] [--build DIR] [--out DIR] [--targets \"a b\"]" >&2; exit 2 ;;
  esac
done
[ -n "$SECONDS_EACH$RUNS" ] || SECONDS_EACH=10
OUT=${OUT:-$BUILD/fuzz-out}
mkdir -p "$OUT"
targets=${ONLY:-$(cd tests/fuzz && ls ./*_fuzzer.cc | sed 's|^\./||; s|\.cc$||')}
limit=()
if [ -n "$RUNS" ]; then limit=(-runs="$RUNS"); else limit=(-max_total_time="$SECONDS_EACH"); fi

failed=0
report="| target | executions | per second | corpus | crashes |"$'\n'"|---|---|---|---|---|"
for t in $targets; do
  bin=$BUILD/tests/fuzz/$t
  [ -x "$bin" ] || { echo "$bin is missing: build the sanitizer tree (make fuzz)" >&2; exit 1; }
  # A working copy of the seeds: new inputs found stay out of the tree.
  work=$OUT/$t-corpus
  mkdir -p "$work"
  cp -n tests/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  echo "fuzzing $t (${limit[*]})" >&2
  log=$OUT/$t.log
  status=0
  # malloc_context_size=2: ASan records two frames of each allocation's stack,
  # not 30. The YAML targets spend their time in yaml-cpp, a Debian library
  # built without frame pointers, whose malloc stacks unwind into garbage that
  # is never the same twice: with the default, storing them in ASan's stack
  # depot took a fifth of the run's time, more as the depot grew.
  # A crash report keeps its full stack; replaying the input with the target
  # alone prints the allocation's whole stack too.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:malloc_context_size=2 UBSAN_OPTIONS=print_stacktrace=1 \
    "$bin" "${limit[@]}" -rss_limit_mb=2560 -print_final_stats=1 \
    -artifact_prefix="$OUT/$t-" "$work" >"$log" 2>&1 || status=$?
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log" | tail -1)
  corpus=$(find "$work" -type f | wc -l)
  crashes=$(find "$OUT" -maxdepth 1 -name "$t-*" -type f | wc -l)
  report+=$'\n'"| $t | ${execs:-?} | ${rate:-?} | $corpus | $crashes |"
  if [ "$status" != 0 ] || [ "$crashes" != 0 ]; then
    failed=1
    echo "$t FAILED (exit $status): see $log; replay: $bin $OUT/$t-crash-*" >&2
    grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -5 >&2 || true
  fi
done
echo "$report"
exit "$failed"
