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
# Stops every process it started on exit, ^C or TERM.

set -u

cd "$(dirname "$0")/.." || exit 1

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
CONNS=${CONNS:-20}
DEPTH=${DEPTH:-1}
PIN=${PIN:-auto}
OUT=${OUT:-bench/results/quick.md}
MGLOAD=bench/mgload

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mgquick.XXXXXX") || exit 1
PIDS=""

log() { printf '%s\n' "$*" >&2; }
die() { log "quick.sh: $*"; exit 1; }

# alive PID: our child exists and has not exited (kill -0 is true for zombies too).
alive() {
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    [ -n "$st" ] && [ "$st" != Z ]
}

# Stop what we started: TERM first, KILL whatever is still there after ~3 s.
cleanup() {
    trap - EXIT INT TERM
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    n=0
    while [ $n -lt 30 ]; do
        left=""
        for p in $PIDS; do alive "$p" && left="$left $p"; done
        [ -z "$left" ] && break
        sleep 0.1
        n=$((n + 1))
    done
    for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

case $ROUNDS$SECS$CONNS$DEPTH in *[!0-9]*) die "ROUNDS, SECS, CONNS, DEPTH must be integers";; esac
if [ "$ROUNDS" -lt 1 ] || [ "$SECS" -lt 1 ]; then die "ROUNDS and SECS must be >= 1"; fi
command -v memcached >/dev/null || die "memcached not found (make deps)"
command -v python3 >/dev/null || command -v nc >/dev/null || die "need python3 or nc to find ports"

# ---- build ----
if [ ! -x "$MGLOAD" ] || [ -n "$(find bench/mgload.c -newer "$MGLOAD")" ]; then
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -pthread -o "$MGLOAD" bench/mgload.c -lev || die "building mgload failed"
fi

# ---- placement ----
PIN_LOAD=""
PIN_FRONT=""
PIN_BACK=""
if [ "$PIN" != 0 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_LOAD="taskset -c 1"
    PIN_BACK="taskset -c 1"
    PIN_FRONT="taskset -c 0"
    PLACEMENT="target (direct memcached or proxy) alone on CPU 0; mgload and the two backends on CPU 1"
else
    PLACEMENT="unpinned"
fi

# ---- ports ----
# A port nobody listens on right now. Another process may take it before we
# bind, so every start below checks that *our* process came up on it.
port_open() {
    if command -v nc >/dev/null; then
        nc -z 127.0.0.1 "$1" 2>/dev/null
    else
        python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$1"
    fi
}

pick_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    i=0
    while [ $i -lt 50 ]; do
        p=$(awk -v s="$$$i" 'BEGIN { srand(s); print 20000 + int(rand() * 40000) }')
        port_open "$p" || { echo "$p"; return; }
        i=$((i + 1))
    done
    echo 0
}

# wait_up PORT PID: 0 once PORT accepts and PID lives, 1 if PID died or after ~5 s.
# A foreign listener on PORT makes our process exit on bind: hence the second look.
wait_up() {
    n=0
    while [ $n -lt 50 ]; do
        alive "$2" || return 1
        if port_open "$1"; then
            sleep 0.2
            alive "$2"
            return
        fi
        sleep 0.1
        n=$((n + 1))
    done
    return 1
}

# start NAME CMD...: runs CMD (with @PORT@ replaced by a fresh port) until it
# comes up; sets UP_PORT and UP_PID, returns 1 after five failed tries.
# Not called in $(...): the child must belong to this shell so cleanup sees it.
start() {
    name=$1
    shift
    try=0
    while [ $try -lt 5 ]; do
        UP_PORT=$(pick_port)
        [ "$UP_PORT" -gt 0 ] || return 1
        cmd=$(printf '%s ' "$@" | sed "s/@PORT@/$UP_PORT/g")
        $cmd >"$TMP/$name.log" 2>&1 &
        UP_PID=$!
        PIDS="$PIDS $UP_PID"
        wait_up "$UP_PORT" "$UP_PID" && return 0
        kill "$UP_PID" 2>/dev/null
        try=$((try + 1))
    done
    return 1
}

MC_USER=""
[ "$(id -u)" = 0 ] && MC_USER="-u root"     # memcached refuses root without -u

start mc0 $PIN_FRONT memcached -p @PORT@ -U 0 -l 127.0.0.1 -t 1 $MC_USER || die "memcached (direct) did not start: $(tail -3 "$TMP/mc0.log")"
MC0=$UP_PORT
start mc1 $PIN_BACK memcached -p @PORT@ -U 0 -l 127.0.0.1 -t 1 $MC_USER || die "memcached 1 did not start: $(tail -3 "$TMP/mc1.log")"
MC1=$UP_PORT
start mc2 $PIN_BACK memcached -p @PORT@ -U 0 -l 127.0.0.1 -t 1 $MC_USER || die "memcached 2 did not start: $(tail -3 "$TMP/mc2.log")"
MC2=$UP_PORT

TARGETS="memcached"
NOTES=""

# twemproxy: the YAML needs the listen port, so pick it first and retry on a clash.
if command -v nutcracker >/dev/null; then
    ok=0
    i=0
    while [ $i -lt 5 ] && [ $ok = 0 ]; do
        NCP=$(pick_port)
        NCS=$(pick_port)
        cat >"$TMP/nutcracker.yml" <<EOF
quick:
  listen: 127.0.0.1:$NCP
  hash: md5
  distribution: ketama
  auto_eject_hosts: false
  preconnect: true
  servers:
   - 127.0.0.1:$MC1:1
   - 127.0.0.1:$MC2:1
EOF
        nutcracker -t -c "$TMP/nutcracker.yml" >"$TMP/nutcracker.log" 2>&1 || die "nutcracker rejects its config: $(cat "$TMP/nutcracker.log")"
        $PIN_FRONT nutcracker -c "$TMP/nutcracker.yml" -s "$NCS" -a 127.0.0.1 \
            -o "$TMP/nutcracker.log" -p "$TMP/nutcracker.pid" -v 4 &
        pid=$!
        PIDS="$PIDS $pid"
        if wait_up "$NCP" "$pid"; then ok=1; else kill "$pid" 2>/dev/null; fi
        i=$((i + 1))
    done
    if [ $ok = 1 ]; then
        TARGETS="$TARGETS twemproxy"
    else
        NOTES="$NOTES- twemproxy: did not start ($(tail -1 "$TMP/nutcracker.log"))\n"
    fi
else
    NOTES="$NOTES- twemproxy: \`nutcracker\` not installed\n"
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
kv() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

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

median() {
    [ -s "$1" ] || { echo "-"; return; }
    sort -n "$1" | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
total() { [ -s "$1" ] && awk '{ s += $1 } END { print s }' "$1" || echo "-"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f\n", a / b }'; }

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
