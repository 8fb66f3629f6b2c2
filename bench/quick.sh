#!/bin/sh
# shellcheck disable=SC2086  # $PIN_*, $MC_USER are word lists on purpose
# bench/quick.sh: quick comparison of memcached direct, twemproxy and mintgate under one workload.
#
# Workload: bench/mgload, CONNS=20 connections, depth 1 (one request in flight
# per connection), get:set 9:1, 32-byte values, 10000 keys set beforehand so
# there are no misses. Targets run interleaved (A B C A B C ...) for ROUNDS
# rounds of SECS seconds, so drift on the machine hits every target alike; the
# table shows the median over rounds of each figure, taken separately.
#
# CPU placement. The machine has two cores, so whatever generates the load
# competes with what is measured unless they are kept apart. The rule here:
# the process the client talks to (the "front") gets CPU 0 to itself;
# mgload and the backing memcached servers share CPU 1. So "direct" is a
# memcached of its own (same flags as the two backends) alone on CPU 0, and
# "twemproxy"/"mintgate" are the proxy alone on CPU 0 with its two backends
# on CPU 1. This is the deployed shape (the proxy has its own CPU, the
# backends are elsewhere), and both proxies get exactly the same budget, so
# proxy vs proxy is a fair single-core comparison and proxy vs direct is
# "one core of proxy plus a hop" against "one core of memcached".
# Rejected: putting every server and the proxy on CPU 0 and only mgload on
# CPU 1. That charges the proxy for memcached's CPU and makes the two
# processes ping-pong on one core; on this machine it cut twemproxy from
# ~105k to ~69k ops/s and pushed its p99 from ~0.4 to ~2.8 ms, a scheduler
# artefact rather than a property of the proxy. PIN=0 runs everything
# unpinned (also the fallback without taskset or with fewer than two CPUs).
# mgload prints its own cpu_pct: near 100 means the generator set the pace
# and the row's throughput is a lower bound on what the target can do.
#
# Env: ROUNDS (3) SECS (5) CONNS (20) DEPTH (1) PIN (auto|0) OUT (bench/results/quick.md)
# Stops every process it started on exit, ^C or TERM. Helpers: bench/lib.sh;
# the full comparison (more workloads, CPU, memory) is bench/run.sh.

set -u

cd "$(dirname "$0")/.." || exit 1
SELF=bench/quick.sh
. bench/lib.sh

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
CONNS=${CONNS:-20}
DEPTH=${DEPTH:-1}
OUT=${OUT:-bench/results/quick.md}

case $ROUNDS$SECS$CONNS$DEPTH in *[!0-9]*) die "ROUNDS, SECS, CONNS, DEPTH must be integers";; esac
if [ "$ROUNDS" -lt 1 ] || [ "$SECS" -lt 1 ]; then die "ROUNDS and SECS must be >= 1"; fi

bench_init
setup_placement

start_memcached mc0 "$PIN_FRONT" || die "memcached (direct) did not start: $(tail -3 "$TMP/mc0.log")"
MC0=$UP_PORT
start_memcached mc1 "$PIN_BACK" || die "memcached 1 did not start: $(tail -3 "$TMP/mc1.log")"
MC1=$UP_PORT
start_memcached mc2 "$PIN_BACK" || die "memcached 2 did not start: $(tail -3 "$TMP/mc2.log")"
MC2=$UP_PORT

TARGETS="memcached"
NOTES=""

if ! command -v nutcracker >/dev/null; then
    NOTES="$NOTES- twemproxy: \`nutcracker\` not installed\n"
elif start_twemproxy nc "$PIN_FRONT" "$MC1" "$MC2"; then
    TARGETS="$TARGETS twemproxy"
    NCP=$UP_PORT
else
    NOTES="$NOTES- twemproxy: did not start ($(tail -1 "$TMP/nc.log"))\n"
fi

if [ -x ./mintgate ]; then
    if start mintgate $PIN_FRONT ./mintgate -l 127.0.0.1:@PORT@ -s "127.0.0.1:$MC1,127.0.0.1:$MC2" -t 1; then
        TARGETS="$TARGETS mintgate"
        MGP=$UP_PORT
    else
        NOTES="$NOTES- mintgate: failed to start: $(tail -2 "$TMP/mintgate.log" | tr '\n' ' ')\n"
    fi
else
    NOTES="$NOTES- mintgate: missing (no ./mintgate; run \`make\` first)\n"
fi

# ---- runs ----
port_of() {
    case $1 in
    memcached) echo "$MC0" ;;
    twemproxy) echo "$NCP" ;;
    mintgate) echo "$MGP" ;;
    esac
}

log "quick.sh: $ROUNDS round(s) x ${SECS}s, targets: $TARGETS ($PLACEMENT)"
r=1
while [ $r -le "$ROUNDS" ]; do
    for t in $TARGETS; do
        line=$($PIN_LOAD "$MGLOAD" --port "$(port_of $t)" --conns "$CONNS" --depth "$DEPTH" \
            --ratio 9:1 --value-size 32 --keys 10000 --key-prefix quick: --prefill \
            --duration "$SECS" 2>"$TMP/mgload.err")
        rc=$?
        if [ $rc -ne 0 ] || [ -z "$line" ]; then
            log "  round $r $t: mgload failed (rc=$rc): $(tail -2 "$TMP/mgload.err" | tr '\n' ' ')"
            echo "$t round $r: mgload rc=$rc" >>"$TMP/failures"
            continue
        fi
        for k in ops_s p50_us p99_us cpu_pct; do kv $k "$line" >>"$TMP/$t.$k"; done
        echo $(( $(kv errors "$line") + $(kv misses "$line") )) >>"$TMP/$t.bad"
        log "  round $r $t: $(kv ops_s "$line") ops/s p50 $(kv p50_us "$line") us p99 $(kv p99_us "$line") us errors $(kv errors "$line") misses $(kv misses "$line") mgload cpu $(kv cpu_pct "$line")%"
    done
    r=$((r + 1))
done

REF_MC=$(median "$TMP/memcached.ops_s")
REF_TW="-"
[ -s "$TMP/twemproxy.ops_s" ] && REF_TW=$(median "$TMP/twemproxy.ops_s")

mkdir -p "$(dirname "$OUT")"
{
    echo "# Quick benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "Workload: $CONNS conns, depth $DEPTH, get:set 9:1, 32-byte values, 10000 keys prefilled;"
    echo "$ROUNDS interleaved round(s) of ${SECS}s; medians over rounds. Placement: $PLACEMENT."
    echo "$(memcached -V 2>&1 | head -1), $(nutcracker -V 2>&1 | head -1 | sed 's/This is //'), $(nproc) CPUs, $(uname -sr)."
    echo
    echo "| target | ops/s | p50 µs | p99 µs | vs memcached | vs twemproxy | errors+misses | mgload cpu % |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for t in memcached twemproxy mintgate; do
        case " $TARGETS " in *" $t "*) ;; *) continue ;; esac
        ops=$(median "$TMP/$t.ops_s")
        echo "| $t | $(awk -v v="$ops" 'BEGIN { printf "%.0f", v }') | $(median "$TMP/$t.p50_us") | $(median "$TMP/$t.p99_us") | $(ratio "$ops" "$REF_MC") | $(ratio "$ops" "$REF_TW") | $(total "$TMP/$t.bad") | $(median "$TMP/$t.cpu_pct") |"
    done
    if [ -n "$NOTES" ] || [ -s "$TMP/failures" ]; then
        echo
        printf '%b' "$NOTES"
        [ -s "$TMP/failures" ] && sed 's/^/- /' "$TMP/failures"
    fi
} >"$TMP/table.md"

cat "$TMP/table.md"
cp "$TMP/table.md" "$OUT" && log "quick.sh: written to $OUT"
[ ! -s "$TMP/failures" ]
