#!/bin/sh
# shellcheck disable=SC2086,SC2046  # $PIN_*, $MC_USER, workload arguments are word lists on purpose
# bench/run.sh: `make bench`: memcached direct, twemproxy and mintgate (with and without Lua) in one run.
#
# Targets, all started once and kept up for the whole run:
#   memcached     a memcached of its own, the client talks to it directly
#   twemproxy     Debian's nutcracker, ketama (md5) over backends B1 and B2
#   mintgate      ./mintgate -t 1 -c 20000 -l ... -s B1,B2 (no script)
#   mintgate+lua  ./mintgate -t 1 -c 20000 examples/bench.lua, with
#                 MINTGATE_LISTEN, MEMCACHED_1, MEMCACHED_2 in its environment;
#                 "not available" while that file is missing or --check fails
# Every target gets the same 10000 keys (32-byte values) set through it once,
# so keys land wherever that target routes them and no run sees a miss.
#
# Workloads (bench/mgload, get:set 9:1, closed loop):
#   c20     20 connections, one request in flight each
#   c200    200 connections, one in flight
#   pipe8   20 connections, 8 requests in flight each
#   mget50  20 connections, one in flight, every get asks for 50 keys (one op)
#   idle    10000 connections that each send one get and then stay open; the
#           target's VmRSS before opening them and once all are answered gives
#           KB per connection. Measured once per target, first thing after the
#           prefill: a process that has held many connections, or many requests
#           in flight, keeps that memory in free lists and would look cheaper.
# Load runs are interleaved: round 1 runs c20 on every target, then c200 on
# every target, ...; round 2 the same again. Figures are medians over rounds,
# each taken separately. The target's CPU (utime+stime from /proc/PID/stat,
# read by mgload --target-pid around the run) is divided by the requests it
# answered: for a proxy this is the proxy alone; its two backends' CPU per
# request (read by this script around the run) is a separate column, since
# a proxy that splits or batches differently makes the backends work more or less.
#
# CPU placement as in bench/quick.sh: the target alone on CPU 0, mgload and the
# two backends on CPU 1; PIN=0 runs everything unpinned.
#
# Env: ROUNDS (3) SECS (5) WORKLOADS ("c20 c200 pipe8 mget50 idle") IDLE (10000)
#      IDLE_SECS (2) TARGETS ("memcached twemproxy mintgate mintgate+lua")
#      LUA_CONFIG (examples/bench.lua) PIN (auto|0) OUT_DIR (docs/bench)
#      OTHER_MAX (15) RETRY (2): a run during which other processes used more
#      than OTHER_MAX % of a CPU is repeated, at most RETRY times, and counted.
# Default run: 3 rounds x 4 workloads x 4 targets x 5 s, about 4.5 minutes.
# Writes OUT_DIR/bench.md (also printed), bench.png (if gnuplot), bench.dat, bench-raw.txt.

set -u

cd "$(dirname "$0")/.." || exit 1
SELF=bench/run.sh
. bench/lib.sh

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
WORKLOADS=${WORKLOADS:-c20 c200 pipe8 mget50 idle}
IDLE=${IDLE:-10000}
IDLE_SECS=${IDLE_SECS:-2}
OTHER_MAX=${OTHER_MAX:-15}
RETRY=${RETRY:-2}
WANT=${TARGETS:-memcached twemproxy mintgate mintgate+lua}
LUA_CONFIG=${LUA_CONFIG:-examples/bench.lua}
OUT_DIR=${OUT_DIR:-docs/bench}
KEYS=10000
ALL_TARGETS="memcached twemproxy mintgate mintgate+lua"

case $ROUNDS$SECS$IDLE$IDLE_SECS$OTHER_MAX$RETRY in
*[!0-9]*) die "ROUNDS, SECS, IDLE, IDLE_SECS, OTHER_MAX, RETRY must be integers";;
esac
if [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 100 ] || [ "$SECS" -lt 1 ] || [ "$IDLE_SECS" -lt 1 ] ||
    [ "$RETRY" -gt 5 ]; then
    die "ROUNDS must be 1..100, SECS and IDLE_SECS >= 1, RETRY <= 5"
fi
for w in $WORKLOADS; do
    case $w in c20|c200|pipe8|mget50|idle) ;; *) die "unknown workload '$w'";; esac
done

bench_init
setup_placement
mkdir -p "$TMP/res"
: >"$TMP/notes"
: >"$TMP/raw"
: >"$TMP/repeated"
: >"$TMP/disturbed"

note() { printf '%s\n' "- $*" >>"$TMP/notes"; }
wanted() { case " $WANT " in *" $1 "*) return 0;; esac; return 1; }

# ---- targets ----
start_memcached mc1 "$PIN_BACK" -c 20000 || die "backend memcached 1 did not start: $(tail -3 "$TMP/mc1.log")"
B1=$UP_PORT
BPIDS=$UP_PID
start_memcached mc2 "$PIN_BACK" -c 20000 || die "backend memcached 2 did not start: $(tail -3 "$TMP/mc2.log")"
B2=$UP_PORT
BPIDS="$BPIDS $UP_PID"
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

TARGETS=""
# add_target NAME: records UP_PORT/UP_PID for NAME and sets every key once through it.
add_target() {
    eval "PORT_$(var "$1")=\$UP_PORT PID_$(var "$1")=\$UP_PID"
    pre=$($PIN_LOAD "$MGLOAD" --port "$UP_PORT" --prefill-only --keys $KEYS --value-size 32 \
        --key-prefix bench: 2>"$TMP/prefill.err")
    if [ "$(kv prefill_errors "$pre")" != 0 ]; then
        note "$1: prefill failed, left out ($(tail -1 "$TMP/prefill.err"))"
        stop "$UP_PID"
        return
    fi
    TARGETS="$TARGETS $1"
}
# Shell variables cannot hold "+": NAME -> suffix.
var() { echo "$1" | tr '+' '_'; }
port_of() { eval "echo \$PORT_$(var "$1")"; }
pid_of() { eval "echo \$PID_$(var "$1")"; }

if wanted memcached; then
    if start_memcached mc0 "$PIN_FRONT" -c 20000; then
        add_target memcached
    else
        note "memcached: did not start: $(tail -2 "$TMP/mc0.log" | tr '\n' ' ')"
    fi
fi
if wanted twemproxy; then
    if ! command -v nutcracker >/dev/null; then
        note "twemproxy: \`nutcracker\` not installed (make deps)"
    elif start_twemproxy nc "$PIN_FRONT" "$B1" "$B2"; then
        add_target twemproxy
    else
        note "twemproxy: did not start: $(tail -1 "$TMP/nc.log")"
    fi
fi
if wanted mintgate || wanted mintgate+lua; then
    [ -x ./mintgate ] || die "no ./mintgate (make mintgate)"
fi
if wanted mintgate; then
    if start mg $PIN_FRONT ./mintgate -t 1 -c 20000 -l 127.0.0.1:@PORT@ -s "127.0.0.1:$B1,127.0.0.1:$B2"; then
        add_target mintgate
    else
        note "mintgate: did not start: $(tail -2 "$TMP/mg.log" | tr '\n' ' ')"
    fi
fi
if wanted mintgate+lua; then
    if ! lua_config_ok "$LUA_CONFIG" "$B1" "$B2"; then
        note "mintgate+lua: not available ($LUA_CONFIG: $(tail -1 "$TMP/check.log"))"
    elif start mglua $PIN_FRONT env MINTGATE_LISTEN=127.0.0.1:@PORT@ MEMCACHED_1=127.0.0.1:$B1 \
        MEMCACHED_2=127.0.0.1:$B2 ./mintgate -t 1 -c 20000 "$LUA_CONFIG"; then
        add_target mintgate+lua
    else
        note "mintgate+lua: did not start: $(tail -2 "$TMP/mglua.log" | tr '\n' ' ')"
    fi
fi
[ -n "$TARGETS" ] || die "no target started"
BUSY=$(busy_note)

# ---- runs ----
w_args() {
    case $1 in
    c20) echo "--conns 20 --depth 1" ;;
    c200) echo "--conns 200 --depth 1" ;;
    pipe8) echo "--conns 20 --depth 8" ;;
    mget50) echo "--conns 20 --depth 1 --multiget 50" ;;
    esac
}
w_title() {
    case $1 in
    c20) echo "20 conns" ;;
    c200) echo "200 conns" ;;
    pipe8) echo "pipelined x8" ;;
    mget50) echo "50-key get" ;;
    idle) echo "idle" ;;
    esac
}
LOAD_WL=$(echo " $WORKLOADS " | sed 's/ idle / /g')

# load_once W T R: one measured run; sets LINE, RC, BTICKS (backends' CPU ticks)
# and OTHER (% of one CPU that processes other than ours used meanwhile).
load_once() {
    b0=$(cpu_ticks $BPIDS)
    t0=$(cpu_ticks "$(pid_of "$2")")
    m0=$(busy_ticks)
    LINE=$($PIN_LOAD "$MGLOAD" --port "$(port_of "$2")" --target-pid "$(pid_of "$2")" $(w_args "$1") \
        --ratio 9:1 --value-size 32 --keys $KEYS --key-prefix bench: --duration "$SECS" \
        2>"$TMP/mgload.err")
    RC=$?
    b1=$(cpu_ticks $BPIDS)
    t1=$(cpu_ticks "$(pid_of "$2")")
    m1=$(busy_ticks)
    BTICKS=$((b1 - b0))
    # The machine's busy time minus target, backends and mgload (from its own
    # report). Near 0 on a quiet machine: the kernel's loopback work is
    # charged to the processes it runs for.
    OTHER=$(awk -v m=$((m1 - m0 - BTICKS - (t1 - t0))) -v hz="$CLK_TCK" -v c="$(kv cpu_pct "$LINE")" \
        -v e="$(kv elapsed_s "$LINE")" 'BEGIN { o = e > 0 ? 100 * m / hz / e - c : 0; printf "%d", (o > 0 ? o + 0.5 : 0) }')
    echo "round $3 $1 $2 rc=$RC $LINE backend_cpu_ticks=$BTICKS other_cpu_pct=$OTHER" >>"$TMP/raw"
}

# run_load W T R: load_once, repeated up to RETRY times while other processes
# used more than OTHER_MAX % of a CPU; appends each figure to $TMP/res/W.T.<figure>.
run_load() {
    f="$TMP/res/$1.$(var "$2")"
    try=0
    while :; do
        load_once "$@"
        if [ $RC -ne 0 ] || [ "$OTHER" -le "$OTHER_MAX" ]; then break; fi
        if [ $try -ge "$RETRY" ]; then
            echo "$2 $1 round $3" >>"$TMP/disturbed"
            break
        fi
        try=$((try + 1))
        echo "$2 $1 round $3" >>"$TMP/repeated"
        log "  round $3 $1 $2: other processes used ${OTHER}% of a CPU; repeating"
    done
    if [ $RC -ne 0 ] || [ -z "$LINE" ]; then
        log "  round $3 $1 $2: mgload failed (rc=$RC): $(tail -2 "$TMP/mgload.err" | tr '\n' ' ')"
        note "$2 $1 round $3: mgload rc=$RC: $(tail -1 "$TMP/mgload.err")"
        return
    fi
    for k in ops_s p50_us p99_us p999_us cpu_pct; do kv $k "$LINE" >>"$f.$k"; done
    ops=$(kv ops "$LINE")
    cpu=$(kv target_cpu_us "$LINE")
    [ -n "$cpu" ] && [ "$ops" -gt 0 ] && awk -v c="$cpu" -v o="$ops" 'BEGIN { printf "%.3f\n", c / o }' >>"$f.cpu_req"
    [ "$2" != memcached ] && [ "$ops" -gt 0 ] &&
        awk -v t="$BTICKS" -v hz="$CLK_TCK" -v o="$ops" 'BEGIN { printf "%.3f\n", t / hz * 1e6 / o }' >>"$f.bcpu_req"
    echo $(( $(kv errors "$LINE") + $(kv misses "$LINE") )) >>"$f.bad"
    log "  round $3 $1 $2: $(kv ops_s "$LINE") ops/s p50 $(kv p50_us "$LINE") p99 $(kv p99_us "$LINE") p999 $(kv p999_us "$LINE") us, target cpu $(tail -1 "$f.cpu_req" 2>/dev/null) us/req, errors+misses $(tail -1 "$f.bad"), mgload cpu $(kv cpu_pct "$LINE")%, others ${OTHER}%"
}

# run_idle T: IDLE connections, one get each, held IDLE_SECS; KB per connection.
run_idle() {
    f="$TMP/res/idle.$(var "$1")"
    line=$($PIN_LOAD "$MGLOAD" --port "$(port_of "$1")" --target-pid "$(pid_of "$1")" --conns 0 \
        --idle "$IDLE" --idle-get --keys $KEYS --key-prefix bench: --duration "$IDLE_SECS" \
        --connect-timeout 5 2>"$TMP/mgload.err")
    rc=$?
    echo "idle $1 rc=$rc $line" >>"$TMP/raw"
    ok=$(kv idle_ok "$line")
    a=$(kv target_rss_kb_before "$line")
    b=$(kv target_rss_kb_idle "$line")
    if [ $rc -ne 0 ] || [ -z "$ok" ] || [ -z "$a" ] || [ -z "$b" ] || [ "$ok" -eq 0 ]; then
        log "  idle $1: failed (rc=$rc): $(tail -2 "$TMP/mgload.err" | tr '\n' ' ')"
        note "$1 idle: mgload rc=$rc: $(tail -1 "$TMP/mgload.err")"
        return
    fi
    echo "$a" >"$f.rss_before"
    echo "$b" >"$f.rss_idle"
    echo "$ok" >"$f.ok"
    awk -v a="$a" -v b="$b" -v n="$ok" 'BEGIN { printf "%.2f\n", (b - a) / n }' >"$f.kb_conn"
    [ "$ok" -lt "$IDLE" ] && note "$1 idle: only $ok of $IDLE connections answered ($(kv idle_failed "$line") failed)"
    log "  idle $1: $ok conns, VmRSS $a -> $b KB, $(cat "$f.kb_conn") KB/conn"
}

n_load=$(echo $LOAD_WL | wc -w)
n_t=$(echo $TARGETS | wc -w)
log "$SELF: targets:$TARGETS; $ROUNDS round(s) x $n_load workload(s) x $n_t target(s) x ${SECS}s (~$((ROUNDS * n_load * n_t * (SECS + 1) / 60 + 1)) min); $PLACEMENT"
case " $WORKLOADS " in
*" idle "*)
    for t in $TARGETS; do run_idle "$t"; done ;;
esac
r=1
while [ $r -le "$ROUNDS" ]; do
    for w in $LOAD_WL; do
        for t in $TARGETS; do run_load "$w" "$t" "$r"; done
    done
    r=$((r + 1))
done

# ---- report ----
m() { median "$TMP/res/$1.$(var "$2").$3"; }
has() { case " $TARGETS " in *" $1 "*) return 0;; esac; return 1; }

mkdir -p "$OUT_DIR"
{
    echo "# mintgate benchmark"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(memcached -V 2>&1 | head -1), $(nutcracker -V 2>&1 | head -1 | sed 's/This is //'), $(./mintgate -V 2>/dev/null | head -1); $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), $(uname -sr)."
    echo "Placement: $PLACEMENT. $ROUNDS interleaved round(s) of ${SECS}s per workload and target; every figure is the median over rounds. Machine: $BUSY."
    echo
    echo "## Load"
    echo
    echo "get:set 9:1, 32-byte values, $KEYS keys set beforehand through each target (no misses expected). An op is one request (a 50-key get is one op)."
    echo "× tw / × mc: the figure divided by twemproxy's / direct memcached's in the same workload and run (ops/s: higher is better; CPU: lower is better)."
    echo "CPU µs/req: the target process's utime+stime over the run divided by the requests answered (for a proxy, the proxy alone). Backends µs/req: the same for the two memcached behind a proxy (they share CPU 1 with mgload)."
    echo "mgload cpu: near 100% means the load generator set the pace, so that row's ops/s is a lower bound."
    echo "A run during which other processes used more than ${OTHER_MAX}% of a CPU was repeated (at most $RETRY times): $(wc -l <"$TMP/repeated") repeat(s), $(wc -l <"$TMP/disturbed") run(s) kept although still disturbed$(if [ -s "$TMP/disturbed" ]; then printf ' (%s)' "$(paste -sd, "$TMP/disturbed" | sed 's/,/, /g')"; fi)."
    echo
    echo "| workload | target | ops/s | × tw | × mc | p50 µs | p99 µs | p99.9 µs | CPU µs/req | × tw | × mc | backends µs/req | errors+misses | mgload cpu % |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for w in $LOAD_WL; do
        tw_ops=$(m "$w" twemproxy ops_s); mc_ops=$(m "$w" memcached ops_s)
        tw_cpu=$(m "$w" twemproxy cpu_req); mc_cpu=$(m "$w" memcached cpu_req)
        for t in $ALL_TARGETS; do
            has "$t" || continue
            ops=$(m "$w" "$t" ops_s)
            cpu=$(m "$w" "$t" cpu_req)
            echo "| $(w_title "$w") | $t | $(fmt %.0f "$ops") | $(ratio "$ops" "$tw_ops") | $(ratio "$ops" "$mc_ops") | $(m "$w" "$t" p50_us) | $(m "$w" "$t" p99_us) | $(m "$w" "$t" p999_us) | $(fmt %.2f "$cpu") | $(ratio "$cpu" "$tw_cpu") | $(ratio "$cpu" "$mc_cpu") | $(fmt %.2f "$(m "$w" "$t" bcpu_req)") | $(total "$TMP/res/$w.$(var "$t").bad") | $(m "$w" "$t" cpu_pct) |"
        done
    done
    case " $WORKLOADS " in
    *" idle "*)
        echo
        echo "## Idle connections"
        echo
        echo "$IDLE connections opened right after the prefill (before the load runs), each sends one get and stays open. KB per connection: the target's VmRSS once all were answered minus VmRSS before opening them, divided by the connections answered. Measured once per target."
        echo
        echo "| target | VmRSS before KB | VmRSS with idle KB | answered | KB per conn | × tw | × mc |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        tw_kb=$(m idle twemproxy kb_conn); mc_kb=$(m idle memcached kb_conn)
        for t in $ALL_TARGETS; do
            has "$t" || continue
            kb=$(m idle "$t" kb_conn)
            echo "| $t | $(m idle "$t" rss_before) | $(m idle "$t" rss_idle) | $(m idle "$t" ok) | $kb | $(ratio "$kb" "$tw_kb") | $(ratio "$kb" "$mc_kb") |"
        done ;;
    esac
    echo
    echo "## Notes"
    echo
    echo "- Goals: RSS per idle connection <= 1 KB (reference: twemproxy 7.2 KB, memcached 0.6 KB)."
    echo "  Instructions per proxied get (callgrind, 20 conns; \`make bench-ir\`, docs/bench/ir.md):"
    echo "  twemproxy 9,041, memcached's proxy 8,600, memcached itself 3,779; mintgate <= 3,800 without a script, <= 4,500 with one."
    echo "- twemproxy: nutcracker, hash md5, distribution ketama, preconnect, default 16 KB mbufs. mintgate: \`-t 1 -c 20000\`. All memcached: \`-t 1 -c 20000 -U 0\`."
    echo "- Idle KB per connection for twemproxy moves a lot between runs: it keeps a pool of 16 KB mbufs, which grows with the requests in flight while the connections open and is never returned."
    cat "$TMP/notes"
} >"$TMP/bench.md"

# Plot data: one block per figure, a row per workload, a column per target.
{
    for fig in ops_s p99_us cpu_req; do
        printf '"workload"'; for t in $ALL_TARGETS; do printf ' "%s"' "$t"; done; echo
        for w in $LOAD_WL; do
            printf '"%s"' "$(w_title "$w")"
            for t in $ALL_TARGETS; do printf ' %s' "$(m "$w" "$t" "$fig")"; done
            echo
        done
        printf '\n\n'
    done
    printf '"workload"'; for t in $ALL_TARGETS; do printf ' "%s"' "$t"; done; echo
    printf '"%s"' "$IDLE idle"
    for t in $ALL_TARGETS; do printf ' %s' "$(m idle "$t" kb_conn)"; done
    echo
} >"$OUT_DIR/bench.dat"

cp "$TMP/bench.md" "$OUT_DIR/bench.md"
cp "$TMP/raw" "$OUT_DIR/bench-raw.txt"
if command -v gnuplot >/dev/null; then
    gnuplot -e "mode='bench'; datafile='$OUT_DIR/bench.dat'; outfile='$OUT_DIR/bench.png'" bench/plot.gp \
        2>"$TMP/gnuplot.err" || log "$SELF: gnuplot failed: $(tail -3 "$TMP/gnuplot.err")"
else
    log "$SELF: gnuplot not installed (Debian gnuplot-nox); no plot"
fi
cat "$TMP/bench.md"
log "$SELF: written to $OUT_DIR/bench.md, bench.png, bench.dat, bench-raw.txt"
! grep -q 'mgload rc=' "$TMP/notes"
