#!/bin/sh
# bench/routes.sh: `make bench-routes`: what a route costs the gateway, in instructions per
# request (callgrind, user space, the gateway only), against the bare pool in the same run.
#
# Method as bench/ir.sh: the gateway alone under valgrind --tool=callgrind, a fresh process
# per run; two runs that differ only in the number of requests (SMALL, LARGE) are
# subtracted, so start-up, the prefill and shutdown cancel. Backends are plain memcached.
# Each pair below runs the same mgload workload against a config without and with the
# route:
#   failover   gets, `mg.failover { main, gutter }` vs the pool main   (goal: <= +150 per get)
#   replicate  sets, `mg.replicate { a, b }` (writes = all) vs pool a  (goal: <= 1.6x per set)
#   shadow     9:1 gets:sets, `mg.shadow { main, copy = test, percent = 5 }` vs main
#              (goal: <= 1.10x per request)
# Instructions stand in for CPU here: the figures are per request and noise-free; wall
# time under load is bench/run.sh's job.
#
# Env: SMALL (20000) LARGE (60000) OUT (docs/bench/routes.md)
set -u
cd "$(dirname "$0")/.." || exit 1
SMALL=${SMALL:-20000}
LARGE=${LARGE:-60000}
OUT=${OUT:-docs/bench/routes.md}
MGLOAD=./bench/mgload
command -v valgrind >/dev/null || { echo "bench/routes.sh: valgrind missing" >&2; exit 1; }
[ -x ./mintgate ] && [ -x "$MGLOAD" ] || { echo "bench/routes.sh: make mintgate bench/mgload first" >&2; exit 1; }
TMP=$(mktemp -d /tmp/mintgate-bench-routes.XXXXXX)
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
MC_USER=""; [ "$(id -u)" = 0 ] && MC_USER="-u nobody"
B1=$(free_port); B2=$(free_port)
# shellcheck disable=SC2086
memcached $MC_USER -p "$B1" -U 0 -l 127.0.0.1 & PIDS="$PIDS $!"
# shellcheck disable=SC2086
memcached $MC_USER -p "$B2" -U 0 -l 127.0.0.1 & PIDS="$PIDS $!"
sleep 0.3

config() { # config NAME: a script for the gateway
    f="$TMP/$1.lua"
    {
        echo 'local mg = require "mintgate"'
        echo 'mg.listen { os.getenv("MINTGATE_LISTEN") }'
        echo "local a = mg.pool { name = \"a\", servers = { \"127.0.0.1:$B1\" } }"
        echo "local b = mg.pool { name = \"b\", servers = { \"127.0.0.1:$B2\" } }"
        case $1 in
        bare) echo 'mg.route { default = a }' ;;
        failover) echo 'mg.route { default = mg.failover { a, b, ttl = 10 } }' ;;
        replicate) echo 'mg.route { default = mg.replicate { a, b } }' ;;
        shadow) echo 'mg.route { default = mg.shadow { a, copy = b, percent = 5 } }' ;;
        esac
    } >"$f"
    echo "$f"
}

# ir CONFIG N RATIO: total Ir of one run of N requests
ir() {
    port=$(free_port)
    out="$TMP/cg.$$.$2.$(basename "$1")"
    MINTGATE_LISTEN=127.0.0.1:$port valgrind --tool=callgrind --callgrind-out-file="$out" \
        ./mintgate -t 1 -c 20000 "$1" 2>"$TMP/vg.log" &
    vg=$!
    i=0
    while ! python3 -c "import socket,sys;socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null; do
        i=$((i + 1)); [ $i -gt 300 ] && { echo "bench/routes.sh: gateway did not start" >&2; exit 1; }
        sleep 0.2
    done
    "$MGLOAD" --port "$port" --prefill --ratio "$3" --conns 20 --depth 1 --requests "$2" \
        --keys 10000 --value-size 32 --key-prefix rt: --timeout 30 --seed 1 >"$TMP/mgload.out" ||
        { echo "bench/routes.sh: mgload failed: $(cat "$TMP/mgload.out")" >&2; exit 1; }
    kill "$vg"; wait "$vg" 2>/dev/null
    sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$out" | head -1
}

per() { # per CONFIG RATIO: instructions per request
    c=$(config "$1")
    s=$(ir "$c" "$SMALL" "$2"); l=$(ir "$c" "$LARGE" "$2")
    awk -v a="$s" -v b="$l" -v n="$SMALL" -v m="$LARGE" 'BEGIN { printf "%.0f\n", (b - a) / (m - n) }'
}

echo "bench/routes.sh: callgrind runs of $SMALL and $LARGE requests per config" >&2
G_BARE=$(per bare 1:0); G_FO=$(per failover 1:0)
S_BARE=$(per bare 0:1); S_REP=$(per replicate 0:1)
M_BARE=$(per bare 9:1); M_SH=$(per shadow 9:1)
mkdir -p "$(dirname "$OUT")"
{
    echo "# What a route costs (instructions per request, callgrind)"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(valgrind --version), $(memcached -V 2>&1 | head -1), $(./mintgate -V | head -1). The gateway alone under callgrind (-t 1), 20 connections, one request in flight each, 10000 keys, 32-byte values; per request = (Ir of $LARGE requests - Ir of $SMALL) / $((LARGE - SMALL))."
    echo
    echo "| route | workload | bare pool | with the route | difference | ratio | goal |"
    echo "|---|---|---:|---:|---:|---:|---|"
    awk -v a="$G_BARE" -v b="$G_FO" 'BEGIN { printf "| mg.failover { a, b } | get | %d | %d | %+d | %.2f | <= +150 per get |\n", a, b, b - a, b / a }'
    awk -v a="$S_BARE" -v b="$S_REP" 'BEGIN { printf "| mg.replicate { a, b } | set | %d | %d | %+d | %.2f | <= 1.6x per set |\n", a, b, b - a, b / a }'
    awk -v a="$M_BARE" -v b="$M_SH" 'BEGIN { printf "| mg.shadow { a, copy = b, percent = 5 } | get:set 9:1 | %d | %d | %+d | %.2f | <= 1.10x |\n", a, b, b - a, b / a }'
} >"$OUT"
cat "$OUT"
