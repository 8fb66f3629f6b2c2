#!/bin/sh
# spec/summary.sh DIR: add up the runners' results in DIR (build/results): each DIR/NAME.txt
# must be one line "N passed, N failed" or "N passed, N failed, N skipped". A result that
# is missing (its runner did not run or died before writing it) or malformed counts as one
# failure; nothing is skipped over. Prints one line per result, the skipped total, and last
# "total: N passed, N failed" (the line .ci/run reads). Exits 0 only when every expected
# result is there and well-formed and nothing failed.
dir=${1:-build/results}
expected="layers lint ctest busted busted-reference capable busted-asan busted-tsan valgrind fuzz-wire rock"
passed=0; failed=0; skipped=0; problems=0
for want in $expected; do
  [ -f "$dir/$want.txt" ] || { printf '  %-12s FAILED: no result (did not run)\n' "$want"; problems=$((problems + 1)); }
done
for f in "$dir"/*.txt; do
  [ -f "$f" ] || continue
  name=$(basename "$f" .txt)
  line=$(cat "$f")
  if [ "$(wc -l <"$f")" != 1 ] ||
    ! printf '%s\n' "$line" | grep -Eq '^[0-9]{1,9} passed, [0-9]{1,9} failed(, [0-9]{1,9} skipped)?$'; then
    printf '  %-12s FAILED: malformed result %s\n' "$name" "$(printf '%s' "$line" | head -c 200 | tr '\n' '|')"
    problems=$((problems + 1))
    continue
  fi
  p=${line%% passed*}; x=${line#*, }; x=${x%% failed*}
  case $line in *skipped) s=${line##*failed, }; s=${s%% skipped} ;; *) s=0 ;; esac
  printf '  %-12s %s\n' "$name" "$line"
  passed=$((passed + p)); failed=$((failed + x)); skipped=$((skipped + s))
done
failed=$((failed + problems))
[ "$problems" = 0 ] || echo "summary: $problems results missing or malformed (each counted as a failure)"
echo "skipped: $skipped"
echo "total: $passed passed, $failed failed"
[ "$failed" = 0 ]
