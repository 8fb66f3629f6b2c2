#!/bin/sh
# Read-mostly with a hot key: 1 % writes (then delete), Zipf 1.1, TTL 3 s, 50 ms regenerations, a hot-key burst in the middle third.
# Runs every built-in policy and examples/invalidation_hooks.lua, one after another, and
# writes docs/lab/hot_key.json, docs/lab/hot_key.png and the table docs/lab/hot_key.md.
# Run from anywhere: ./docs/lab/hot_key.sh; six runs, one after another.
set -e
cd "$(dirname "$0")/../.."
out=docs/lab/hot_key
opts="--duration 10 --zipf 1.1 --write-ratio 0.01 --burst --ttl 3 --regen-ms 50"
./mintgate-lab $opts \
  --json "$out.json" --png "$out.png" \
  examples/lab/none.lua examples/lab/newcache.lua examples/lab/mint.lua \
  examples/lab/publish.lua examples/lab/xfetch.lua examples/invalidation_hooks.lua \
  > "$out.table" 2> "$out.log" || { cat "$out.log" >&2; exit 1; }
{
  echo "# hot_key"
  echo
  echo "\`./docs/lab/hot_key.sh\`: \`./mintgate-lab $opts\` with the six policies."
  echo
  sed -n 's/^mintgate-lab: none: /Workload: /p' "$out.log"
  echo
  cat "$out.table"
} > "$out.md"
rm -f "$out.table" "$out.log"
cat "$out.md"
