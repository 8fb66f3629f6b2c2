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
# CPU placements. Every load run is made under each of these, interleaved too
# (processes are re-pinned with taskset -a -p between placements, so the same
# processes and the same prefilled keys serve both):
#   shared  every process may run on either CPU; the scheduler places them. On
#           a saturated two-core box every microsecond a proxy spends is taken
#           from the load generator and the backends, so ops/s ranks proxies
#           by their whole cost per request: how a proxy is deployed next to
#           its clients or servers, and what "cost per request" means to a user.
#   split   the target alone on CPU 0; mgload and the two backends on CPU 1
#           (bench/quick.sh explains it). The proxy never competes with the
#           rest, so when CPU 1 is the bottleneck (20 connections, one request
#           in flight) every proxy lands near the same ops/s whatever its own
#           cost; the table shows it, with mgload cpu and backends µs/req.
# Ratios are only taken within one placement.
#
# Env: ROUNDS (3) SECS (4) WORKLOADS ("c20 c200 pipe8 mget50 idle") IDLE (10000)
#      IDLE_SECS (2) TARGETS ("memcached twemproxy mintgate mintgate+lua")
#      PLACEMENTS ("shared split"; PIN=0 means "shared")
#      LUA_CONFIG (examples/bench.lua) OUT_DIR (docs/bench)
#      OTHER_MAX (15) RETRY (2): a run during which other processes used more
#      than OTHER_MAX % of a CPU is repeated, at most RETRY times, and counted.
# Default run: 3 rounds x 2 placements x 4 workloads x 4 targets x 4 s, about 8 minutes.
# Writes OUT_DIR/bench.md (also printed), bench.png and bench-split.png (if gnuplot),
# bench.dat, bench-split.dat, bench-raw.txt.

set -u

cd "$(dirname "$0")/.." || exit 1
SELF=bench/run.sh
. bench/lib.sh

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
WORKLOADS=${WORKLOADS:-c20 c200 pipe8 mget50 idle}
IDLE=${IDLE:-10000}
IDLE_SECS=${IDLE_SECS:-2}
OTHER_MAX=${OTHER_MAX:-15}
RETRY=${RETRY:-2}
WANT=${TARGETS:-memcached twemproxy mintgate mintgate+lua}
LUA_CONFIG=${LUA_CONFIG:-examples/bench.lua}
OUT_DIR=${OUT_DIR:-docs/bench}
KEYS=10000
PLACEMENTS=${PLACEMENTS:-shared split}
[ "${PIN:-auto}" = 0 ] && PLACEMENTS=shared
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
for p in $PLACEMENTS; do
    case $p in shared|split) ;; *) die "unknown placement '$p' (shared, split)";; esac
done

bench_init
NCPU=$(nproc)
if ! command -v taskset >/dev/null || [ "$NCPU" -lt 2 ]; then
    case " $PLACEMENTS " in *" split "*)
        log "$SELF: no taskset or fewer than 2 CPUs: placement 'split' left out" ;;
    esac
    PLACEMENTS=shared
fi
PIN_FRONT=""
PIN_BACK=""
PIN_LOAD=""
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

# place P: pins every server (all threads) for placement P and sets PIN_LOAD for mgload.
pin() {
    cpus=$1
    shift
    for p in "$@"; do
        taskset -a -p -c "$cpus" "$p" >/dev/null 2>&1 || log "$SELF: taskset on pid $p failed"
    done
}
place() {
    fronts=""
    for t in $TARGETS; do fronts="$fronts $(pid_of "$t")"; done
    case $1 in
    shared)
        PIN_LOAD=""
        command -v taskset >/dev/null && pin "0-$((NCPU - 1))" $fronts $BPIDS ;;
    split)
        PIN_LOAD="taskset -c 1"
        pin 0 $fronts
        pin 1 $BPIDS ;;
    esac
}
place_title() {
    case $1 in
    shared) echo "shared: every process may run on either CPU" ;;
    split) echo "split: the target alone on CPU 0; mgload and the two backends on CPU 1" ;;
    esac
}

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
    echo "round $3 $PL $1 $2 rc=$RC $LINE backend_cpu_ticks=$BTICKS other_cpu_pct=$OTHER" >>"$TMP/raw"
}

# run_load W T R: load_once, repeated up to RETRY times while other processes
# used more than OTHER_MAX % of a CPU; appends each figure to $TMP/res/PLACEMENT.W.T.<figure>.
run_load() {
    f="$TMP/res/$PL.$1.$(var "$2")"
    try=0
    while :; do
        load_once "$@"
        if [ $RC -ne 0 ] || [ "$OTHER" -le "$OTHER_MAX" ]; then break; fi
        if [ $try -ge "$RETRY" ]; then
            echo "$2 $1 $PL round $3" >>"$TMP/disturbed"
            break
        fi
        try=$((try + 1))
        echo "$2 $1 $PL round $3" >>"$TMP/repeated"
        log "  round $3 $PL $1 $2: other processes used ${OTHER}% of a CPU; repeating"
    done
    if [ $RC -ne 0 ] || [ -z "$LINE" ]; then
        log "  round $3 $PL $1 $2: mgload failed (rc=$RC): $(tail -2 "$TMP/mgload.err" | tr '\n' ' ')"
        note "$2 $1 $PL round $3: mgload rc=$RC: $(tail -1 "$TMP/mgload.err")"
        return
    fi
    for k in ops_s p50_us p99_us p999_us cpu_pct; do kv $k "$LINE" >>"$f.$k"; done
    ops=$(kv ops "$LINE")
    cpu=$(kv target_cpu_us "$LINE")
    [ -n "$cpu" ] && [ "$ops" -gt 0 ] && awk -v c="$cpu" -v o="$ops" 'BEGIN { printf "%.3f\n", c / o }' >>"$f.cpu_req"
    [ "$2" != memcached ] && [ "$ops" -gt 0 ] &&
        awk -v t="$BTICKS" -v hz="$CLK_TCK" -v o="$ops" 'BEGIN { printf "%.3f\n", t / hz * 1e6 / o }' >>"$f.bcpu_req"
    echo $(( $(kv errors "$LINE") + $(kv misses "$LINE") )) >>"$f.bad"
    log "  round $3 $PL $1 $2: $(kv ops_s "$LINE") ops/s p50 $(kv p50_us "$LINE") p99 $(kv p99_us "$LINE") p999 $(kv p999_us "$LINE") us, target cpu $(tail -1 "$f.cpu_req" 2>/dev/null) us/req, errors+misses $(tail -1 "$f.bad"), mgload cpu $(kv cpu_pct "$LINE")%, others ${OTHER}%"
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
n_p=$(echo $PLACEMENTS | wc -w)
log "$SELF: targets:$TARGETS; placements: $PLACEMENTS; $ROUNDS round(s) x $n_p placement(s) x $n_load workload(s) x $n_t target(s) x ${SECS}s (~$((ROUNDS * n_p * n_load * n_t * (SECS + 1) / 60 + 1)) min)"
case " $WORKLOADS " in
*" idle "*)
    # RSS does not depend on where a process runs: measured once, first placement.
    PL=${PLACEMENTS%% *}
    place "$PL"
    for t in $TARGETS; do run_idle "$t"; done ;;
esac
r=1
while [ $r -le "$ROUNDS" ]; do
    for PL in $PLACEMENTS; do
        place "$PL"
        for w in $LOAD_WL; do
            for t in $TARGETS; do run_load "$w" "$t" "$r"; done
        done
    done
    r=$((r + 1))
done

# ---- report ----
m() { median "$TMP/res/$1.$(var "$2").$3"; }
has() { case " $TARGETS " in *" $1 "*) return 0;; esac; return 1; }

# load_table P: the load table of placement P.
load_table() {
    echo "| workload | target | ops/s | × tw | × mc | p50 µs | p99 µs | p99.9 µs | CPU µs/req | × tw | × mc | backends µs/req | errors+misses | mgload cpu % |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for w in $LOAD_WL; do
        pw="$1.$w"
        tw_ops=$(m "$pw" twemproxy ops_s); mc_ops=$(m "$pw" memcached ops_s)
        tw_cpu=$(m "$pw" twemproxy cpu_req); mc_cpu=$(m "$pw" memcached cpu_req)
        for t in $ALL_TARGETS; do
            has "$t" || continue
            ops=$(m "$pw" "$t" ops_s)
            cpu=$(m "$pw" "$t" cpu_req)
            echo "| $(w_title "$w") | $t | $(fmt %.0f "$ops") | $(ratio "$ops" "$tw_ops") | $(ratio "$ops" "$mc_ops") | $(m "$pw" "$t" p50_us) | $(m "$pw" "$t" p99_us) | $(m "$pw" "$t" p999_us) | $(fmt %.2f "$cpu") | $(ratio "$cpu" "$tw_cpu") | $(ratio "$cpu" "$mc_cpu") | $(fmt %.2f "$(m "$pw" "$t" bcpu_req)") | $(total "$TMP/res/$pw.$(var "$t").bad") | $(m "$pw" "$t" cpu_pct) |"
        done
    done
}

# plot_data P: one block per figure, a row per workload, a column per target.
plot_data() {
    for fig in ops_s p99_us cpu_req; do
        printf '"workload"'; for t in $ALL_TARGETS; do printf ' "%s"' "$t"; done; echo
        for w in $LOAD_WL; do
            printf '"%s"' "$(w_title "$w")"
            for t in $ALL_TARGETS; do printf ' %s' "$(m "$1.$w" "$t" "$fig")"; done
            echo
        done
        printf '\n\n'
    done
    printf '"workload"'; for t in $ALL_TARGETS; do printf ' "%s"' "$t"; done; echo
    printf '"%s"' "$IDLE idle"
    for t in $ALL_TARGETS; do printf ' %s' "$(m idle "$t" kb_conn)"; done
    echo
}

mkdir -p "$OUT_DIR"
{
    echo "# mintgate benchmark"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(memcached -V 2>&1 | head -1), $(nutcracker -V 2>&1 | head -1 | sed 's/This is //'), $(./mintgate -V 2>/dev/null | head -1); $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), $(uname -sr)."
    echo "$ROUNDS interleaved round(s) of ${SECS}s per placement, workload and target; every figure is the median over rounds. Machine: $BUSY."
    echo
    echo "get:set 9:1, 32-byte values, $KEYS keys set beforehand through each target (no misses expected). An op is one request (a 50-key get is one op)."
    echo "× tw / × mc: the figure divided by twemproxy's / direct memcached's in the same placement, workload and run (ops/s: higher is better; CPU: lower is better)."
    echo "CPU µs/req: the target process's utime+stime over the run divided by the requests answered (for a proxy, the proxy alone). Backends µs/req: the same for the two memcached behind a proxy."
    echo "mgload cpu: near 100% means the load generator set the pace, so that row's ops/s is a lower bound."
    echo "A run during which other processes used more than ${OTHER_MAX}% of a CPU was repeated (at most $RETRY times): $(wc -l <"$TMP/repeated") repeat(s), $(wc -l <"$TMP/disturbed") run(s) kept although still disturbed$(if [ -s "$TMP/disturbed" ]; then printf ' (%s)' "$(paste -sd, "$TMP/disturbed" | sed 's/,/, /g')"; fi)."
    for PL in $PLACEMENTS; do
        echo
        echo "## Load, $(place_title "$PL")"
        echo
        case $PL in
        shared) echo "The whole box is shared, as when a proxy runs beside its clients or its servers: what a proxy spends per request is taken from the load generator and the backends, so ops/s ranks the proxies by their whole cost per request." ;;
        split) echo "The proxy has a CPU of its own and never competes with the rest. Where CPU 1 (mgload plus both backends) is the bottleneck, every proxy lands near the same ops/s whatever its own cost: read CPU µs/req and backends µs/req there." ;;
        esac
        echo
        load_table "$PL"
    done
    case " $WORKLOADS " in
    *" idle "*)
        echo
        echo "## Idle connections"
        echo
        echo "$IDLE connections opened right after the prefill (before the load runs), each sends one get and stays open. KB per connection: the target's VmRSS once all were answered minus VmRSS before opening them, divided by the connections answered. Measured once per target (placement ${PLACEMENTS%% *})."
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
    echo "- Goals (issue 5): with the Lua route, key transform and switch, >= 1.25x twemproxy's ops/s at 20 connections and p99 no worse than twemproxy's; the 50-key get at least as fast as twemproxy's per key; RSS per idle connection <= 1 KB (reference: twemproxy 7.2 KB, memcached 0.6 KB)."
    echo "  Instructions per proxied get (callgrind, 20 conns; \`make bench-ir\`, docs/bench/ir.md):"
    echo "  twemproxy 9,041, memcached's proxy 8,600, memcached itself 3,779; mintgate <= 3,800 without a script, <= 4,500 with one."
    echo "- twemproxy: nutcracker, hash md5, distribution ketama, preconnect, default 16 KB mbufs. mintgate: \`-t 1 -c 20000\` (default \`--batch-loops 3\`). All memcached: \`-t 1 -c 20000 -U 0\`, memcached's defaults otherwise (\`-R 20\`: see README, Deploying)."
    echo "- Idle KB per connection for twemproxy moves a lot between runs: it keeps a pool of 16 KB mbufs, which grows with the requests in flight while the connections open and is never returned."
    cat "$TMP/notes"
} >"$TMP/bench.md"

cp "$TMP/bench.md" "$OUT_DIR/bench.md"
cp "$TMP/raw" "$OUT_DIR/bench-raw.txt"
for PL in $PLACEMENTS; do
    case $PL in shared) base=bench ;; *) base=bench-$PL ;; esac
    plot_data "$PL" >"$OUT_DIR/$base.dat"
    if command -v gnuplot >/dev/null; then
        gnuplot -e "mode='bench'; placement='$(place_title "$PL")'; datafile='$OUT_DIR/$base.dat'; outfile='$OUT_DIR/$base.png'" \
            bench/plot.gp 2>"$TMP/gnuplot.err" || log "$SELF: gnuplot failed: $(tail -3 "$TMP/gnuplot.err")"
    fi
done
command -v gnuplot >/dev/null || log "$SELF: gnuplot not installed (Debian gnuplot-nox); no plot"
cat "$TMP/bench.md"
log "$SELF: written to $OUT_DIR/bench.md, the .png and .dat files and bench-raw.txt"
! grep -q 'mgload rc=' "$TMP/notes"
