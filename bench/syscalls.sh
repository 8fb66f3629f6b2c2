#!/bin/sh
# shellcheck disable=SC2086,SC2034,SC2154  # word lists on purpose; PORT_*, PID_* are read through eval
# bench/syscalls.sh: `make bench-syscalls`: system calls per request of twemproxy and
# mintgate under the 20-connection workload, counted exactly by the kernel's syscall
# tracepoints (perf stat -e syscalls:sys_enter_*) on the proxy process for SECS seconds
# in the middle of a run. Counting slows nothing measurably (no sampling, no ptrace).
#
# Env: SECS (3) CONNS (20) DEPTH (1) MGARGS (extra mintgate flags) OUT (docs/bench/syscalls.md)
# Needs perf (Debian linux-perf) and access to tracepoints (root, or perf_event_paranoid <= -1).

set -u

cd "$(dirname "$0")/.." || exit 1
SELF=bench/syscalls.sh
. bench/lib.sh

SECS=${SECS:-3}
CONNS=${CONNS:-20}
DEPTH=${DEPTH:-1}
MGARGS=${MGARGS:-}
OUT=${OUT:-docs/bench/syscalls.md}
case $SECS$CONNS$DEPTH in *[!0-9]*) die "SECS, CONNS, DEPTH must be integers";; esac
command -v perf >/dev/null || die "perf not installed (Debian linux-perf)"
command -v nutcracker >/dev/null || die "nutcracker not installed (make deps)"
[ -x ./mintgate ] || die "no ./mintgate (make mintgate)"
CALLS="read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait epoll_ctl"
EVENTS=$(for c in $CALLS; do printf 'syscalls:sys_enter_%s,' "$c"; done | sed 's/,$//')
perf stat -x, -e "$EVENTS" -- true >/dev/null 2>&1 || die "perf cannot count syscall tracepoints here (run as root)"

bench_init
start_memcached mc1 "" -c 20000 || die "backend 1 did not start"
B1=$UP_PORT
start_memcached mc2 "" -c 20000 || die "backend 2 did not start"
B2=$UP_PORT
start_twemproxy nc "" "$B1" "$B2" || die "twemproxy did not start"
PORT_twemproxy=$UP_PORT
PID_twemproxy=$UP_PID
start mg ./mintgate -t 1 -c 20000 -l 127.0.0.1:@PORT@ -s "127.0.0.1:$B1,127.0.0.1:$B2" $MGARGS ||
    die "mintgate did not start"
PORT_mintgate=$UP_PORT
PID_mintgate=$UP_PID

{
    echo "# System calls per request ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "$CONNS connections, depth $DEPTH, get:set 9:1, 32-byte values, 10000 keys prefilled; counted over ${SECS}s in the middle of a $((SECS + 2))s run; mintgate flags: \`-t 1${MGARGS:+ $MGARGS}\`. $(uname -sr)."
    echo
    printf '| target | requests |'
    for c in $CALLS; do printf ' %s |' "$c"; done
    echo ' total |'
    printf '|---|---:|'
    for c in $CALLS; do printf -- '---:|'; done
    echo '---:|'
} >"$TMP/out.md"

for t in twemproxy mintgate; do
    eval "port=\$PORT_$t pid=\$PID_$t"
    "$MGLOAD" --port "$port" --prefill-only --key-prefix sc: >/dev/null || die "$t: prefill failed"
    "$MGLOAD" --port "$port" --conns "$CONNS" --depth "$DEPTH" --key-prefix sc: \
        --duration $((SECS + 2)) >"$TMP/$t.load" 2>&1 &
    lp=$!
    sleep 1
    timeout -s INT $((SECS + 5)) perf stat -x, -e "$EVENTS" -p "$pid" -o "$TMP/$t.perf" -- sleep "$SECS" \
        >/dev/null 2>&1
    wait $lp || die "$t: mgload failed: $(tail -1 "$TMP/$t.load")"
    ops_s=$(kv ops_s "$(cat "$TMP/$t.load")")
    req=$(awk -v o="$ops_s" -v s="$SECS" 'BEGIN { printf "%.0f", o * s }')
    {
        printf '| %s | %s |' "$t" "$req"
        for c in $CALLS; do
            n=$(awk -F, -v e="syscalls:sys_enter_$c" '$3 == e { print $1 }' "$TMP/$t.perf")
            awk -v n="${n:-0}" -v r="$req" 'BEGIN { printf " %.2f |", (r > 0 ? n / r : 0) }'
        done
        awk -F, -v r="$req" '$3 ~ /^syscalls:/ { s += $1 } END { printf " **%.2f** |\n", (r > 0 ? s / r : 0) }' "$TMP/$t.perf"
    } >>"$TMP/out.md"
    log "  $t: $ops_s ops/s"
done
echo >>"$TMP/out.md"
echo "requests: the run's ops/s times the counting window (so the figures are per request answered)." >>"$TMP/out.md"
cat "$TMP/out.md"
mkdir -p "$(dirname "$OUT")"
cp "$TMP/out.md" "$OUT" && log "$SELF: written to $OUT"
