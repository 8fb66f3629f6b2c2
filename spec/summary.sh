#!/bin/sh
# spec/summary.sh DIR: add up every "N passed, N failed" file in DIR; exit 1 on any failure.
passed=0; failed=0
for f in "$1"/*.txt; do
  [ -f "$f" ] || continue
  line=$(tail -n 1 "$f")
  p=${line%% passed*}; x=${line#*, }; x=${x%% failed*}
  printf '  %-12s %s\n' "$(basename "$f" .txt)" "$line"
  passed=$((passed + p)); failed=$((failed + x))
done
for want in layers ctest busted busted-reference capable busted-asan busted-tsan valgrind fuzz-wire; do
  [ -f "$1/$want.txt" ] || { echo "  $want: did not run"; failed=$((failed + 1)); }
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
