#!/bin/sh
# docs/lab/study.sh NAME OPTIONS...: one workload of the study. Runs every built-in policy
# and examples/invalidation_hooks.lua, one after another, under ./mintgate-lab OPTIONS,
# and writes docs/lab/NAME.json, docs/lab/NAME.png and the table docs/lab/NAME.md.
# The per-workload scripts (hot_key.sh, ...) call it with their options.
set -e
cd "$(dirname "$0")/../.."
name=$1
shift
out=docs/lab/$name
./mintgate-lab "$@" \
  --json "$out.json" --png "$out.png" \
  examples/lab/none.lua examples/lab/newcache.lua examples/lab/mint.lua \
  examples/lab/publish.lua examples/lab/xfetch.lua examples/invalidation_hooks.lua \
  > "$out.table" 2> "$out.log" || { cat "$out.log" >&2; exit 1; }
{
  echo "# $name"
  echo
  echo "\`./docs/lab/$name.sh\`: \`./mintgate-lab $*\` with the six policies."
  echo
  sed -n 's/^mintgate-lab: none: /Workload: /p' "$out.log"
  echo
  cat "$out.table"
} > "$out.md"
rm -f "$out.table" "$out.log"
cat "$out.md"
