#!/bin/sh
# bench/scrape.sh: `make bench-scrape`: what a Prometheus scrape costs the gateway.
#
# Method: 4 memcached servers, a gateway (-t 2) whose config declares POOLS pools over all
# 4 (each pool+server pair has its own series: requests, errors by kind, up, a latency
# histogram) and a failover route, with --metrics. A short mgload run fills the counters;
# then SCRAPES scrapes in a row. Reported: the series in one scrape, the gateway's CPU per
# scrape (process_cpu_seconds_total before and after, over the scrapes; the workers are
# idle meanwhile), and the render time the gateway measures itself
# (mintgate_scrape_duration_seconds). The render runs on the main thread: workers never
# wait for it (they take the config lock only to reload).
#
# Env: POOLS (10) SCRAPES (200) OUT (docs/bench/scrape.md)
set -u
cd "$(dirname "$0")/.." || exit 1
POOLS=${POOLS:-10}
SCRAPES=${SCRAPES:-200}
OUT=${OUT:-docs/bench/scrape.md}
[ -x ./mintgate ] && [ -x ./bench/mgload ] || { echo "bench/scrape.sh: make mintgate bench/mgload first" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench/scrape.sh: curl missing" >&2; exit 1; }
TMP=$(mktemp -d /tmp/mintgate-bench-scrape.XXXXXX)
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
MC_USER=""; [ "$(id -u)" = 0 ] && MC_USER="-u nobody"
SERVERS=""
for i in 1 2 3 4; do
    p=$(free_port)
    # shellcheck disable=SC2086
    memcached $MC_USER -p "$p" -U 0 -l 127.0.0.1 & PIDS="$PIDS $!"
    SERVERS="$SERVERS\"127.0.0.1:$p\", "
done
G=$(free_port); M=$(free_port)
{
    echo 'local mg = require "mintgate"'
    i=1
    while [ $i -le "$POOLS" ]; do
        echo "local p$i = mg.pool { name = \"pool$i\", servers = { $SERVERS } }"
        i=$((i + 1))
    done
    echo 'mg.switch { name = "canary", percent = 10 }'
    echo 'mg.route { default = mg.failover { p1, p2, name = "fo" } }'
} >"$TMP/scrape.lua"
./mintgate -t 2 -l "127.0.0.1:$G" --metrics "127.0.0.1:$M" "$TMP/scrape.lua" 2>"$TMP/gw.log" &
PIDS="$PIDS $!"
i=0
until curl -sf "http://127.0.0.1:$M/metrics" -o /dev/null; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "bench/scrape.sh: gateway did not start" >&2; exit 1; }
    sleep 0.1
done
./bench/mgload --port "$G" --prefill --ratio 9:1 --conns 8 --depth 4 --requests 50000 --keys 10000 \
    --value-size 32 --key-prefix sc: --timeout 30 >/dev/null || { echo "bench/scrape.sh: mgload failed" >&2; exit 1; }
cpu() { curl -sf "http://127.0.0.1:$M/metrics" | sed -n 's/^process_cpu_seconds_total //p'; }
curl -sf "http://127.0.0.1:$M/metrics" -o "$TMP/one.txt"
SERIES=$(grep -vc '^#' "$TMP/one.txt")
C0=$(cpu)
n=0
while [ $n -lt "$SCRAPES" ]; do curl -sf "http://127.0.0.1:$M/metrics" -o /dev/null; n=$((n + 1)); done
C1=$(cpu)
RENDER=$(curl -sf "http://127.0.0.1:$M/metrics" | sed -n 's/^mintgate_scrape_duration_seconds //p')
BYTES=$(wc -c <"$TMP/one.txt")
PER=$(awk -v a="$C0" -v b="$C1" -v n="$SCRAPES" 'BEGIN { printf "%.2f", (b - a) * 1000 / (n + 1) }')
REN=$(awk -v r="$RENDER" 'BEGIN { printf "%.2f", r * 1000 }')
mkdir -p "$(dirname "$OUT")"
{
    echo "# What a scrape costs (bench/scrape.sh)"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(./mintgate -V). $POOLS pools over 4 memcached servers, a failover route, a switch; -t 2; $SCRAPES scrapes in a row with curl after a 50,000-request mgload run."
    echo
    echo "| series per scrape | bytes | gateway CPU per scrape | render time (mintgate_scrape_duration_seconds) | goal |"
    echo "|---:|---:|---:|---:|---|"
    echo "| $SERIES | $BYTES | $PER ms | $REN ms | <= 5 ms CPU for 1,000 series |"
} >"$OUT"
cat "$OUT"
