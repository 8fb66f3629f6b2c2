#!/bin/sh
# Delete-heavy: Twitter's cluster 14 (65 % gets, 22 % deletes, 13 % sets; Zipf 1.30; TTL 1 d capped at 30 s).
# Runs every built-in policy and examples/invalidation_hooks.lua, one after another, and
# writes docs/lab/delete_heavy.json, docs/lab/delete_heavy.png and the table docs/lab/delete_heavy.md.
# Run from anywhere: ./docs/lab/delete_heavy.sh; six runs, one after another.
set -e
cd "$(dirname "$0")/../.."
out=docs/lab/delete_heavy
opts="--duration 10 --workload twitter:cluster14"
./mintgate-lab $opts \
  --json "$out.json" --png "$out.png" \
  examples/lab/none.lua examples/lab/newcache.lua examples/lab/mint.lua \
  examples/lab/publish.lua examples/lab/xfetch.lua examples/invalidation_hooks.lua \
  > "$out.table" 2> "$out.log" || { cat "$out.log" >&2; exit 1; }
{
  echo "# delete_heavy"
  echo
  echo "\`./docs/lab/delete_heavy.sh\`: \`./mintgate-lab $opts\` with the six policies."
  echo
  sed -n 's/^mintgate-lab: none: /Workload: /p' "$out.log"
  echo
  cat "$out.table"
} > "$out.md"
rm -f "$out.table" "$out.log"
cat "$out.md"
