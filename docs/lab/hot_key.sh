#!/bin/sh
# Read-mostly with a hot key: 1 % writes (then delete), Zipf 1.1, TTL 3 s, 50 ms regenerations, a hot-key burst in the middle third.
# Run from anywhere: ./docs/lab/hot_key.sh (six policies, one after another; see study.sh).
exec "$(dirname "$0")/study.sh" hot_key --duration 10 --zipf 1.1 --write-ratio 0.01 --burst --ttl 3 --regen-ms 50
