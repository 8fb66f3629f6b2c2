#!/bin/sh
# Write-heavy: Twitter's cluster 12 (80 % sets, each a database write then a set; Zipf 0.30; TTL 300 s capped at 30 s).
# Run from anywhere: ./docs/lab/write_heavy.sh (six policies, one after another; see study.sh).
exec "$(dirname "$0")/study.sh" write_heavy --duration 10 --workload twitter:cluster12
