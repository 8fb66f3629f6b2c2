#!/bin/sh
# Write-heavy: Twitter's cluster 12 (80 % sets, each a database write then a set; Zipf 0.30; TTL 300 s capped at 30 s).
# Runs every built-in policy and examples/invalidation_hooks.lua, one after another, and
# writes docs/lab/write_heavy.json, docs/lab/write_heavy.png and the table docs/lab/write_heavy.md.
# Run from anywhere: ./docs/lab/write_heavy.sh; six runs, one after another.
set -e
cd "$(dirname "$0")/../.."
out=docs/lab/write_heavy
opts="--duration 10 --workload twitter:cluster12"
./mintgate-lab $opts \
  --json "$out.json" --png "$out.png" \
  examples/lab/none.lua examples/lab/newcache.lua examples/lab/mint.lua \
  examples/lab/publish.lua examples/lab/xfetch.lua examples/invalidation_hooks.lua \
  > "$out.table" 2> "$out.log" || { cat "$out.log" >&2; exit 1; }
{
  echo "# write_heavy"
  echo
  echo "\`./docs/lab/write_heavy.sh\`: \`./mintgate-lab $opts\` with the six policies."
  echo
  sed -n 's/^mintgate-lab: none: /Workload: /p' "$out.log"
  echo
  cat "$out.table"
} > "$out.md"
rm -f "$out.table" "$out.log"
cat "$out.md"
