#!/bin/sh
# spec/run_ctests.sh TEST...: run the C unit test binaries; sum their "N passed, N failed".
mkdir -p build/results
passed=0; failed=0; rc=0
for t in "$@"; do
  echo "== $t"
  out=$("$t" 2>&1); st=$?
  echo "$out" | tail -n 20
  line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  if [ -z "$line" ]; then
    echo "$t: crashed or printed no summary (exit $st)"; failed=$((failed + 1)); rc=1; continue
  fi
  p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
  passed=$((passed + p)); failed=$((failed + f))
  [ "$st" = 0 ] || rc=1
done
echo "$passed passed, $failed failed" > build/results/ctest.txt
echo "C unit tests: $passed passed, $failed failed"
exit $rc
