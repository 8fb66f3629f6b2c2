#!/bin/sh
# Mass expiry: 20 keys read uniformly, all set with the same 1 s TTL before the run, 100 ms regenerations, no writes.
# Run from anywhere: ./docs/lab/mass_expiry.sh (six policies, one after another; see study.sh).
exec "$(dirname "$0")/study.sh" mass_expiry --duration 5 --keys 20 --zipf 0 --regen-ms 100 --ttl 1 --write-ratio 0 --mass-expiry
