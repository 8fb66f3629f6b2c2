#!/bin/sh
# spec/run_ctests.sh TEST...: run the C unit test binaries (plain and ASan+UBSan builds,
# LeakSanitizer on) and sum their "N passed, N failed" into build/results/ctest.txt.
# A binary passes only when it exits 0 within CTEST_TIMEOUT seconds (600) and its last
# summary line says "0 failed": a sanitizer report after that line (LeakSanitizer exits
# 23), a crash, a timeout or a missing line counts as one more failure.
cd "$(dirname "$0")/.." || exit 2
mkdir -p build/results
result=build/results/ctest.txt
# Later options win: leaks are always looked for, whatever the caller's ASAN_OPTIONS.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS UBSAN_OPTIONS
[ $# -gt 0 ] || { echo "run_ctests: no test binaries given"; echo "0 passed, 1 failed" >"$result"; exit 1; }

passed=0; failed=0; rc=0
for t in "$@"; do
  echo "== $t"
  out=$(timeout "${CTEST_TIMEOUT:-600}" "$t" 2>&1); st=$?
  echo "$out" | tail -n 20
  line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  if [ -z "$line" ]; then
    echo "$t: FAILED: crashed, timed out or printed no summary (exit $st)"
    failed=$((failed + 1)); rc=1; continue
  fi
  p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$st" != 0 ]; then
    rc=1
    if [ "$f" = 0 ]; then
      echo "$t: FAILED: printed \"$line\" but exited $st (a sanitizer report?)"
      failed=$((failed + 1))
    fi
  fi
done
echo "$passed passed, $failed failed" >"$result"
echo "C unit tests: $passed passed, $failed failed"
exit $rc
