#!/bin/sh
# shellcheck disable=SC2086,SC2034,SC2154  # word lists on purpose; PORT_*, PID_*, FLAGS_* are read through eval
# bench/ab.sh: `make bench-ab`: what one change buys. mintgate started once per variant
# (each variant is a set of extra command-line flags), all in front of the same two
# backends, interleaved with twemproxy round by round (tw A B tw A B ...), one workload.
#
#   VARIANTS="--batch-loops 0;--batch-loops 3" sh bench/ab.sh
#   VARIANTS=";" LUA=1 WORKLOAD=mget50 sh bench/ab.sh   # one binary, with examples/bench.lua
#   BIN_A=/tmp/old/mintgate VARIANTS=";" sh bench/ab.sh  # an older build against this one
#
# Env: VARIANTS (";"-separated flag sets; default "--batch-loops 0;--batch-loops 3")
#      BIN_A (binary of the first variant; default ./mintgate) WORKLOAD (c20: c20 c200
#      pipe8 mget50) PLACEMENT (shared: shared or split, as in bench/run.sh) ROUNDS (5)
#      SECS (4) LUA (0; 1: every variant runs examples/bench.lua) OUT (bench/results/ab.md)
# Prints a markdown table: medians over rounds, ratio to the first variant and to twemproxy.

set -u

cd "$(dirname "$0")/.." || exit 1
SELF=bench/ab.sh
. bench/lib.sh

VARIANTS=${VARIANTS:---batch-loops 0;--batch-loops 3}
BIN_A=${BIN_A:-./mintgate}
WORKLOAD=${WORKLOAD:-c20}
PLACEMENT=${PLACEMENT:-shared}
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-4}
LUA=${LUA:-0}
OUT=${OUT:-bench/results/ab.md}

case $ROUNDS$SECS$LUA in *[!0-9]*) die "ROUNDS, SECS, LUA must be integers";; esac
[ "$ROUNDS" -ge 1 ] && [ "$SECS" -ge 1 ] || die "ROUNDS and SECS must be >= 1"
case $WORKLOAD in
c20) WARGS="--conns 20 --depth 1" ;;
c200) WARGS="--conns 200 --depth 1" ;;
pipe8) WARGS="--conns 20 --depth 8" ;;
mget50) WARGS="--conns 20 --depth 1 --multiget 50" ;;
*) die "unknown workload '$WORKLOAD' (c20 c200 pipe8 mget50)" ;;
esac
[ -x ./mintgate ] || die "no ./mintgate (make mintgate)"
[ -x "$BIN_A" ] || die "BIN_A: $BIN_A is not executable"
command -v nutcracker >/dev/null || die "nutcracker not installed (make deps)"

bench_init
PIN_FRONT=""
PIN_BACK=""
PIN_LOAD=""
case $PLACEMENT in
shared) ;;
split)
    command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ] || die "split needs taskset and 2 CPUs"
    PIN_FRONT="taskset -c 0"
    PIN_BACK="taskset -c 1"
    PIN_LOAD="taskset -c 1" ;;
*) die "unknown placement '$PLACEMENT' (shared, split)" ;;
esac

start_memcached mc1 "$PIN_BACK" -c 20000 || die "backend 1 did not start"
B1=$UP_PORT
start_memcached mc2 "$PIN_BACK" -c 20000 || die "backend 2 did not start"
B2=$UP_PORT
start_twemproxy nc "$PIN_FRONT" "$B1" "$B2" || die "twemproxy did not start: $(tail -1 "$TMP/nc.log")"
NAMES="tw"
PORT_tw=$UP_PORT

# Split VARIANTS on ";" into v1 v2 ...; each gets its own mintgate.
i=0
rest="$VARIANTS;"
while [ -n "$rest" ]; do
    flags=${rest%%;*}
    rest=${rest#*;}
    i=$((i + 1))
    bin=./mintgate
    [ $i = 1 ] && bin=$BIN_A
    eval "FLAGS_v$i=\$flags"
    if [ "$LUA" = 1 ]; then
        lua_config_ok examples/bench.lua "$B1" "$B2" || die "examples/bench.lua: $(tail -1 "$TMP/check.log")"
        start v$i $PIN_FRONT env MINTGATE_LISTEN=127.0.0.1:@PORT@ MEMCACHED_1=127.0.0.1:$B1 \
            MEMCACHED_2=127.0.0.1:$B2 "$bin" -t 1 -c 20000 $flags examples/bench.lua ||
            die "variant $i ($flags) did not start: $(tail -2 "$TMP/v$i.log" | tr '\n' ' ')"
    else
        start v$i $PIN_FRONT "$bin" -t 1 -c 20000 -l 127.0.0.1:@PORT@ -s "127.0.0.1:$B1,127.0.0.1:$B2" $flags ||
            die "variant $i ($flags) did not start: $(tail -2 "$TMP/v$i.log" | tr '\n' ' ')"
    fi
    eval "PORT_v$i=\$UP_PORT"
    NAMES="$NAMES v$i"
done

for n in $NAMES; do
    eval "p=\$PORT_$n"
    pre=$($PIN_LOAD "$MGLOAD" --port "$p" --prefill-only --keys 10000 --value-size 32 --key-prefix ab:)
    [ "$(kv prefill_errors "$pre")" = 0 ] || die "$n: prefill failed"
done

log "$SELF: $WORKLOAD, $PLACEMENT, $ROUNDS round(s) x ${SECS}s; variants: $VARIANTS"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for n in $NAMES; do
        eval "p=\$PORT_$n"
        line=$($PIN_LOAD "$MGLOAD" --port "$p" $WARGS --ratio 9:1 --value-size 32 --keys 10000 \
            --key-prefix ab: --duration "$SECS" 2>"$TMP/mgload.err") ||
            die "$n round $r: mgload failed: $(tail -1 "$TMP/mgload.err")"
        for k in ops_s p50_us p99_us p999_us errors misses; do kv $k "$line" >>"$TMP/$n.$k"; done
        log "  round $r $n: $(kv ops_s "$line") ops/s p99 $(kv p99_us "$line") us"
    done
    r=$((r + 1))
done

TW=$(median "$TMP/tw.ops_s")
A=$(median "$TMP/v1.ops_s")
mkdir -p "$(dirname "$OUT")"
{
    echo "# A/B: $WORKLOAD, placement $PLACEMENT$([ "$LUA" = 1 ] && echo ", examples/bench.lua")"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $ROUNDS interleaved round(s) of ${SECS}s; medians. $(nproc) CPUs, $(uname -sr)."
    echo
    echo "| target | flags | ops/s | × first | × tw | p50 µs | p99 µs | p99.9 µs | errors+misses |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    for n in $NAMES; do
        ops=$(median "$TMP/$n.ops_s")
        if [ "$n" = tw ]; then
            label="twemproxy"
            flags="-"
        else
            eval "flags=\$FLAGS_$n"
            label="mintgate $n"
            [ "$n" = v1 ] && [ "$BIN_A" != ./mintgate ] && label="$BIN_A"
        fi
        bad=$(($(total "$TMP/$n.errors") + $(total "$TMP/$n.misses")))
        echo "| $label | \`${flags:-(none)}\` | $(fmt %.0f "$ops") | $(ratio "$ops" "$A") | $(ratio "$ops" "$TW") | $(median "$TMP/$n.p50_us") | $(median "$TMP/$n.p99_us") | $(median "$TMP/$n.p999_us") | $bad |"
    done
} >"$TMP/ab.md"
cat "$TMP/ab.md"
cp "$TMP/ab.md" "$OUT" && log "$SELF: written to $OUT"
