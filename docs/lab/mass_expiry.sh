#!/bin/sh
# Mass expiry: 20 keys read uniformly, all set with the same 1 s TTL before the run, 100 ms regenerations, no writes.
# Runs every built-in policy and examples/invalidation_hooks.lua, one after another, and
# writes docs/lab/mass_expiry.json, docs/lab/mass_expiry.png and the table docs/lab/mass_expiry.md.
# Run from anywhere: ./docs/lab/mass_expiry.sh; six runs, one after another.
set -e
cd "$(dirname "$0")/../.."
out=docs/lab/mass_expiry
opts="--duration 5 --keys 20 --zipf 0 --regen-ms 100 --ttl 1 --write-ratio 0 --mass-expiry"
./mintgate-lab $opts \
  --json "$out.json" --png "$out.png" \
  examples/lab/none.lua examples/lab/newcache.lua examples/lab/mint.lua \
  examples/lab/publish.lua examples/lab/xfetch.lua examples/invalidation_hooks.lua \
  > "$out.table" 2> "$out.log" || { cat "$out.log" >&2; exit 1; }
{
  echo "# mass_expiry"
  echo
  echo "\`./docs/lab/mass_expiry.sh\`: \`./mintgate-lab $opts\` with the six policies."
  echo
  sed -n 's/^mintgate-lab: none: /Workload: /p' "$out.log"
  echo
  cat "$out.table"
} > "$out.md"
rm -f "$out.table" "$out.log"
cat "$out.md"
