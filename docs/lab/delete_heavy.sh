#!/bin/sh
# Delete-heavy: Twitter's cluster 14 (65 % gets, 22 % deletes, 13 % sets; Zipf 1.30; TTL 1 d capped at 30 s).
# Run from anywhere: ./docs/lab/delete_heavy.sh (six policies, one after another; see study.sh).
exec "$(dirname "$0")/study.sh" delete_heavy --duration 10 --workload twitter:cluster14
