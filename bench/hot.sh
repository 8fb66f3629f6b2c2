#!/bin/sh
# shellcheck disable=SC2086  # $MC_USER and argument lists are word lists on purpose
# bench/hot.sh: `make bench-hot`: a skewed workload with one hot key, with and without the near cache (issue 15).
#
# Workload (bench/mgload, closed loop, CONNS connections, one request in
# flight each, get:set RATIO): KEYS (100,000) keys of VALUE bytes drawn
# Zipf(ZIPF = 0.99, the usual "YCSB zipfian" constant: key k with weight
# 1/(k+1)^0.99), plus one extra key, bench:hot, that takes a share of all
# requests (HOT_SHARES: a run at 20 % and one at 50 %), read with HOT_RATIO (1000:1) as
# its own get:set mix. Every target gets every key and the hot key set once
# through it first, so no get should miss.
#
# Targets, all started once and kept up for the whole run:
#   memcached      mgload talks to one memcached of its own (-t 1) that holds
#                  every key: the client with no proxy at all. It is not "the
#                  hot key's server" of a cluster: it serves all the traffic.
#   twemproxy      Debian's nutcracker, ketama (md5) over backends B1 and B2,
#                  configured as bench/run.sh does.
#   mintgate       ./mintgate -t 1 -c 20000 -s B1,B2.
#   mintgate+near  ./mintgate -t 1 -c 20000 with a config this script writes
#                  (bench/lib.sh near_config): mg.near { size = "64m", ttl = 1,
#                  hot = true } and one pool "main" over B1, B2. Left out with a
#                  note while ./mintgate --check rejects it (before the near
#                  cache lands).
# Each target exists twice: "local" (everything on loopback) and "relay": the
# memcached servers behind bench/relay, which delays every reply DELAY_US
# (500) µs, standing in for the network hop to a memcached cluster. For the
# direct target the relay sits between mgload and its memcached (the client
# pays the hop); for the proxies between the proxy and B1/B2 (the gateway runs
# beside the client, the cluster is remote). Backends: memcached -t 1.
#
# Runs are interleaved: round 1 runs every share, network and target once,
# round 2 again, ...; figures are medians over ROUNDS rounds.
#
# Latency at a fixed load (OPEN_RATE, 10,000 requests/s): the closed loop above
# runs every target at saturation, where a request's latency is mostly its wait
# in the queues of whatever saturates first (on two shared CPUs: the load
# generator itself as often as the target). So each round also runs every
# target open loop (mgload --rate): Poisson arrivals at OPEN_RATE over the same
# CONNS connections, each request timed from its arrival; the same offered load
# for every target, well under each one's capacity (mgload's "late" counts
# arrivals that found every connection busy: a target that cannot keep up shows
# there and in its p99).
#
# Requests for the hot key that reached memcached. memcached counts get hits
# per slab class (`stats slabs`, meta `mg` included), so the hot key gets a
# value of HOT_VALUE (512) bytes, which puts it in a slab class of its own (every
# other item is VALUE (32) bytes; the script checks that no other item shares
# the class). The get hits of the classes with chunks >= HOT_VALUE, summed over
# the target's backends, read before and after each run, are the hot key's
# gets that reached a memcached: exact, whatever routes the key. "Backend gets"
# is cmd_get (every get and mg command) summed the same way, for all keys.
# Both are divided by the gets mgload completed in the run (client gets), so
# targets that served different numbers of requests compare; both include the
# few requests still in flight when mgload stops (at most CONNS), so a proxy
# with no cache shows 1.00 give or take that. The gateway's `stats hotkeys` is
# a sampled estimate of what clients asked, not of what reached memcached, so
# it is not used.
#
# Env: ROUNDS (3) SECS (4) CONNS (50) HOT_SHARES ("0.2 0.5") DELAY_US (500;
#      0 = no relay runs) ZIPF (0.99) KEYS (100000) RATIO (9:1) HOT_RATIO (the hot key's own
#      get:set, 1000:1: a celebrity key is read, and written now and then) VALUE (32)
#      HOT_VALUE (512) TARGETS ("memcached twemproxy mintgate mintgate+near")
#      NEAR_OPTS (the fields of mg.near, default 'size = "64m", ttl = 1, hot = true')
#      OPEN_RATE (10000; 0 = no open-loop runs) OUT_DIR (docs/bench)
# Default run: 3 rounds x 2 shares x 2 networks x 4 targets x 2 (closed, open
# loop) x ~5.5 s, ~9 min.
# Writes OUT_DIR/hot.md (also printed) and hot-raw.txt.
# Instructions per near hit (callgrind): TARGETS="mintgate-hot mintgate+near" make bench-ir.

set -u

cd "$(dirname "$0")/.." || exit 1
SELF=bench/hot.sh
. bench/lib.sh

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
CONNS=${CONNS:-50}
HOT_SHARES=${HOT_SHARES:-0.2 0.5}
DELAY_US=${DELAY_US:-500}
ZIPF=${ZIPF:-0.99}
KEYS=${KEYS:-100000}
RATIO=${RATIO:-9:1}
HOT_RATIO=${HOT_RATIO:-1000:1}
VALUE=${VALUE:-32}
HOT_VALUE=${HOT_VALUE:-512}
WANT=${TARGETS:-memcached twemproxy mintgate mintgate+near}
OUT_DIR=${OUT_DIR:-docs/bench}
OPEN_RATE=${OPEN_RATE:-10000}
ALL_TARGETS="memcached twemproxy mintgate mintgate+near"
PREFIX=bench:

case $ROUNDS$SECS$CONNS$DELAY_US$KEYS$VALUE$HOT_VALUE$OPEN_RATE in
*[!0-9]*) die "ROUNDS, SECS, CONNS, DELAY_US, KEYS, VALUE, HOT_VALUE, OPEN_RATE must be integers";;
esac
if [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 100 ] || [ "$SECS" -lt 1 ] || [ "$CONNS" -lt 1 ] ||
    [ "$CONNS" -gt 10000 ] || [ "$KEYS" -lt 1 ]; then
    die "ROUNDS must be 1..100, SECS >= 1, CONNS 1..10000, KEYS >= 1"
fi
# The hot key's slab class must hold nothing else: well apart from the other items.
[ "$HOT_VALUE" -ge $((VALUE * 2 + 256)) ] || die "HOT_VALUE must be >= 2*VALUE+256 (its own slab class)"
for s in $HOT_SHARES; do
    awk -v s="$s" 'BEGIN { exit !(s + 0 == s && s > 0 && s <= 1) }' || die "HOT_SHARES: '$s' is not in (0, 1]"
done
command -v python3 >/dev/null || die "python3 not found (reads memcached's stats)"

bench_init
[ -x bench/relay ] && [ -z "$(find bench/relay.c bench/common.h -newer bench/relay)" ] ||
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -o bench/relay bench/relay.c || die "building bench/relay failed"
mkdir -p "$TMP/res"
: >"$TMP/notes"
: >"$TMP/raw"
note() { printf '%s\n' "- $*" >>"$TMP/notes"; }
wanted() { case " $WANT " in *" $1 "*) return 0;; esac; return 1; }
# Shell variables cannot hold "+" or "@": NAME -> suffix.
var() { echo "$1" | tr '+@.' '___'; }
NETS=local
[ "$DELAY_US" -gt 0 ] && NETS="local relay"

# ---- servers ----
start_memcached mc0 "" -c 20000 || die "memcached (direct) did not start: $(tail -3 "$TMP/mc0.log")"
M0=$UP_PORT
M0_PID=$UP_PID
start_memcached mc1 "" -c 20000 || die "backend memcached 1 did not start: $(tail -3 "$TMP/mc1.log")"
B1=$UP_PORT
start_memcached mc2 "" -c 20000 || die "backend memcached 2 did not start: $(tail -3 "$TMP/mc2.log")"
B2=$UP_PORT
# The relays: R0 in front of the direct memcached, R1 and R2 in front of B1, B2.
RELAY_PIDS=""
if [ "$DELAY_US" -gt 0 ]; then
    # start_relay NAME TO: sets UP_PORT.
    start_relay() {
        start "$1" bench/relay --listen @PORT@ --to "127.0.0.1:$2" --delay-us "$DELAY_US" --stats ||
            die "$1 did not start: $(tail -2 "$TMP/$1.log")"
        RELAY_PIDS="$RELAY_PIDS $UP_PID"
    }
    start_relay relay0 "$M0"
    R0=$UP_PORT
    start_relay relay1 "$B1"
    R1=$UP_PORT
    start_relay relay2 "$B2"
    R2=$UP_PORT
fi

TARGETS=""
# add_target NAME NET BACKEND_PORTS: records UP_PORT/UP_PID and which memcached
# servers hold its keys, then sets every key once through it.
add_target() {
    eval "PORT_$(var "$1@$2")=\$UP_PORT PID_$(var "$1@$2")=\$UP_PID BACK_$(var "$1@$2")=\"\$3\""
    pre=$("$MGLOAD" --port "$UP_PORT" --prefill-only --keys "$KEYS" --value-size "$VALUE" \
        --hot-share 1 --hot-value-size "$HOT_VALUE" --key-prefix $PREFIX 2>"$TMP/prefill.err")
    if [ "$(kv prefill_errors "$pre")" != 0 ]; then
        note "$1 ($2): prefill failed, left out ($(tail -1 "$TMP/prefill.err"))"
        [ "$1" = memcached ] || stop "$UP_PID"
        return
    fi
    TARGETS="$TARGETS $1@$2"
}
port_of() { eval "echo \$PORT_$(var "$1")"; }
pid_of() { eval "echo \$PID_$(var "$1")"; }
back_of() { eval "echo \$BACK_$(var "$1")"; }

if wanted mintgate || wanted mintgate+near; then
    [ -x ./mintgate ] || die "no ./mintgate (make mintgate)"
fi
NEAR_OK=0
if wanted mintgate+near; then
    near_config "$TMP/near.lua"
    if lua_config_ok "$TMP/near.lua" "$B1" "$B2"; then
        NEAR_OK=1
    else
        note "mintgate+near: not available: \`./mintgate --check\` rejects the config ($(head -1 "$TMP/check.log")); left out"
        log "$SELF: mintgate+near left out: $(head -1 "$TMP/check.log")"
    fi
fi
for net in $NETS; do
    if [ "$net" = local ]; then d=$M0 s1=$B1 s2=$B2; else d=$R0 s1=$R1 s2=$R2; fi
    n=$(var "$net")
    if wanted memcached; then
        # mgload connects to $d (the memcached, or its relay); CPU is the memcached's.
        UP_PORT=$d
        UP_PID=$M0_PID
        add_target memcached "$net" "$M0"
    fi
    if wanted twemproxy; then
        if ! command -v nutcracker >/dev/null; then
            [ "$net" = local ] && note "twemproxy: \`nutcracker\` not installed (make deps)"
        elif start_twemproxy "nc$n" "" "$s1" "$s2"; then
            add_target twemproxy "$net" "$B1 $B2"
        else
            note "twemproxy ($net): did not start: $(tail -1 "$TMP/nc$n.log")"
        fi
    fi
    if wanted mintgate; then
        if start "mg$n" ./mintgate -t 1 -c 20000 -l 127.0.0.1:@PORT@ -s "127.0.0.1:$s1,127.0.0.1:$s2"; then
            add_target mintgate "$net" "$B1 $B2"
        else
            note "mintgate ($net): did not start: $(tail -2 "$TMP/mg$n.log" | tr '\n' ' ')"
        fi
    fi
    if [ $NEAR_OK = 1 ]; then
        if start "mgnear$n" env MINTGATE_LISTEN=127.0.0.1:@PORT@ MEMCACHED_1="127.0.0.1:$s1" \
            MEMCACHED_2="127.0.0.1:$s2" ./mintgate -t 1 -c 20000 "$TMP/near.lua"; then
            add_target mintgate+near "$net" "$B1 $B2"
        else
            note "mintgate+near ($net): did not start: $(tail -2 "$TMP/mgnear$n.log" | tr '\n' ' ')"
        fi
    fi
done
[ -n "$TARGETS" ] || die "no target started"
BUSY=$(busy_note)
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# counters PORTS: "cmd_get hot_hits hot_items" summed over the memcached servers on PORTS.
counters() {
    for p in "$@"; do
        c=$(mc_counters "$p" "$HOT_VALUE")
        [ -n "$c" ] || { echo ""; return; }
        echo "$c"
    done | awk 'NF == 3 { g += $1; h += $2; if ($3 > i) i = $3 } END { if (NR) print g, h, i }'
}

# run_one S T R: one measured run of target T (NAME@NET) at hot share S, round R.
run_one() {
    f="$TMP/res/$(var "$1").$(var "$2")"
    back=$(back_of "$2")
    c0=$(counters $back)
    rl0=0
    [ -n "$RELAY_PIDS" ] && rl0=$(cpu_ticks $RELAY_PIDS)
    line=$("$MGLOAD" --port "$(port_of "$2")" --target-pid "$(pid_of "$2")" --conns "$CONNS" --depth 1 \
        --ratio "$RATIO" --hot-ratio "$HOT_RATIO" --value-size "$VALUE" --keys "$KEYS" --zipf "$ZIPF" --hot-share "$1" \
        --hot-value-size "$HOT_VALUE" --key-prefix $PREFIX --duration "$SECS" 2>"$TMP/mgload.err")
    rc=$?
    rl1=0
    [ -n "$RELAY_PIDS" ] && rl1=$(cpu_ticks $RELAY_PIDS)
    c1=$(counters $back)
    echo "round $3 share $1 $2 rc=$rc $line backend_before=$c0 backend_after=$c1" >>"$TMP/raw"
    if [ $rc -ne 0 ] || [ -z "$line" ] || [ -z "$c0" ] || [ -z "$c1" ]; then
        log "  round $3 share $1 $2: failed (mgload rc=$rc, backend stats '${c0:-none}' '${c1:-none}'): $(tail -1 "$TMP/mgload.err")"
        note "$2 share $1 round $3: failed (mgload rc=$rc): $(tail -1 "$TMP/mgload.err")"
        return
    fi
    for k in ops_s p50_us p99_us hot_p50_us hot_p99_us gets hot_gets; do kv $k "$line" >>"$f.$k"; done
    set -- "$@" $c0 $c1     # $4..$6 before, $7..$9 after
    bg=$(( $7 - $4 ))
    hg=$(( $8 - $5 ))
    gets=$(kv gets "$line")
    hgets=$(kv hot_gets "$line")
    echo "$bg" >>"$f.bgets"
    echo "$hg" >>"$f.hbgets"
    awk -v b="$bg" -v g="$gets" 'BEGIN { if (g > 0) printf "%.4f\n", b / g }' >>"$f.bgets_per"
    awk -v b="$hg" -v g="$hgets" 'BEGIN { if (g > 0) printf "%.4f\n", b / g }' >>"$f.hbgets_per"
    [ "$9" -gt 1 ] && note "$2 share $1 round $3: $9 items share the hot key's slab class on one backend; its hot-key count is an upper bound"
    ops=$(kv ops "$line")
    cpu=$(kv target_cpu_us "$line")
    [ -n "$cpu" ] && [ "$ops" -gt 0 ] && awk -v c="$cpu" -v o="$ops" 'BEGIN { printf "%.3f\n", c / o }' >>"$f.cpu_req"
    # The relays' CPU per client request (only the relay in this target's path was busy).
    case $2 in *@relay) [ "$ops" -gt 0 ] &&
        awk -v t=$((rl1 - rl0)) -v hz="$CLK_TCK" -v o="$ops" 'BEGIN { printf "%.3f\n", t / hz * 1e6 / o }' >>"$f.relay_req" ;;
    esac
    echo $(( $(kv errors "$line") + $(kv misses "$line") )) >>"$f.bad"
    log "  round $3 share $1 $2: $(kv ops_s "$line") ops/s p50 $(kv p50_us "$line") p99 $(kv p99_us "$line") hot p99 $(kv hot_p99_us "$line") us; backend gets $bg for $gets client gets, hot key $hg of $hgets; errors+misses $(tail -1 "$f.bad")"
}

# run_open S T R: one open-loop run of target T at hot share S, round R, at OPEN_RATE.
run_open() {
    f="$TMP/res/$(var "$1").$(var "$2").open"
    line=$("$MGLOAD" --port "$(port_of "$2")" --conns "$CONNS" --depth 1 --rate "$OPEN_RATE" \
        --ratio "$RATIO" --hot-ratio "$HOT_RATIO" --value-size "$VALUE" --keys "$KEYS" --zipf "$ZIPF" --hot-share "$1" \
        --hot-value-size "$HOT_VALUE" --key-prefix $PREFIX --duration "$SECS" 2>"$TMP/mgload.err")
    rc=$?
    echo "round $3 share $1 $2 open rate $OPEN_RATE rc=$rc $line" >>"$TMP/raw"
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        log "  round $3 share $1 $2 open: failed (mgload rc=$rc): $(tail -1 "$TMP/mgload.err")"
        note "$2 share $1 round $3, open loop: failed (mgload rc=$rc): $(tail -1 "$TMP/mgload.err")"
        return
    fi
    for k in ops_s p50_us p99_us hot_p50_us hot_p99_us late; do kv $k "$line" >>"$f.$k"; done
    echo $(( $(kv errors "$line") + $(kv misses "$line") + $(kv dropped "$line") )) >>"$f.bad"
    log "  round $3 share $1 $2 open at $OPEN_RATE/s: p50 $(kv p50_us "$line") p99 $(kv p99_us "$line") hot p50 $(kv hot_p50_us "$line") hot p99 $(kv hot_p99_us "$line") us; late $(kv late "$line")"
}

n_s=$(echo $HOT_SHARES | wc -w)
n_t=$(echo $TARGETS | wc -w)
n_l=1
[ "$OPEN_RATE" -gt 0 ] && n_l=2
log "$SELF: targets:$TARGETS; shares: $HOT_SHARES; $ROUNDS round(s) x $n_s share(s) x $n_t target(s) x $n_l loop(s) x ${SECS}s (~$((ROUNDS * n_s * n_t * n_l * (SECS + 2) / 60 + 1)) min)"
r=1
while [ $r -le "$ROUNDS" ]; do
    for s in $HOT_SHARES; do
        for t in $TARGETS; do run_one "$s" "$t" "$r"; done
        if [ "$OPEN_RATE" -gt 0 ]; then
            for t in $TARGETS; do run_open "$s" "$t" "$r"; done
        fi
    done
    r=$((r + 1))
done

# ---- report ----
m() { median "$TMP/res/$(var "$1").$(var "$2").$3"; }
has() { case " $TARGETS " in *" $1 "*) return 0;; esac; return 1; }
pct() { awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else printf "%.1f %%\n", 100 * v }'; }
net_title() {
    case $1 in
    local) echo "local: everything on loopback" ;;
    relay) echo "relay: memcached ${DELAY_US} µs away (bench/relay delays every reply)" ;;
    esac
}

mkdir -p "$OUT_DIR"
{
    echo "# Hot key: near cache benchmark"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(memcached -V 2>&1 | head -1), $(nutcracker -V 2>&1 | head -1 | sed 's/This is //'), $(./mintgate -V 2>/dev/null | head -1); $(nproc) CPUs, $(uname -sr). Machine: $BUSY."
    echo
    echo "Workload: $KEYS keys of $VALUE bytes drawn Zipf($ZIPF), plus one hot key (${PREFIX}hot, $HOT_VALUE bytes) taking the share of requests in each table's title; get:set $RATIO for the others and $HOT_RATIO for the hot key (each of its sets drops it from the near cache); $CONNS connections, one request in flight each; $ROUNDS interleaved round(s) of ${SECS}s, medians. Backends: memcached -t 1 (two behind each proxy; the direct target is mgload talking to one memcached of its own that holds every key). No CPU pinning: everything, the relays included, shares the $(nproc) CPUs."
    echo
    echo "CPU µs/req: the target process's utime+stime over the run per request (the memcached itself for the direct target). Relay CPU µs/req: the relays' (only the one(s) in the target's path were busy)."
    echo "Hot key at memcached: the hot key's gets that reached a memcached (get hits of its own slab class, \`stats slabs\`, before and after each run), per hot get the client completed. Backend gets: every get and mg command memcached counted (\`cmd_get\`), per client get. Both include the few requests in flight when mgload stops (≤ $CONNS)."
    for s in $HOT_SHARES; do
        for net in $NETS; do
            echo
            echo "## Hot key $(awk -v s="$s" 'BEGIN { printf "%g", 100 * s }') % of requests; $(net_title "$net")"
            echo
            echo "| target | ops/s | p50 µs | p99 µs | hot p50 µs | hot p99 µs | backend gets / client get | hot key at memcached, per run | hot key at memcached / hot get | CPU µs/req | relay CPU µs/req | errors+misses |"
            echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            for t in $ALL_TARGETS; do
                tn="$t@$net"
                if ! has "$tn"; then
                    wanted "$t" && echo "| $t | not available | | | | | | | | | | |"
                    continue
                fi
                echo "| $t | $(fmt %.0f "$(m "$s" "$tn" ops_s)") | $(m "$s" "$tn" p50_us) | $(m "$s" "$tn" p99_us) | $(m "$s" "$tn" hot_p50_us) | $(m "$s" "$tn" hot_p99_us) | $(fmt %.3f "$(m "$s" "$tn" bgets_per)") | $(fmt %.0f "$(m "$s" "$tn" hbgets)") | $(pct "$(m "$s" "$tn" hbgets_per)") | $(fmt %.2f "$(m "$s" "$tn" cpu_req)") | $(fmt %.2f "$(m "$s" "$tn" relay_req)") | $(total "$TMP/res/$(var "$s").$(var "$tn").bad") |"
            done
        done
    done
    if [ "$OPEN_RATE" -gt 0 ]; then
        for s in $HOT_SHARES; do
            echo
            echo "## Hot key $(awk -v s="$s" 'BEGIN { printf "%g", 100 * s }') % of requests; open loop at $OPEN_RATE requests/s"
            echo
            echo "Poisson arrivals at $OPEN_RATE requests/s for every target, over the same $CONNS connections; latency from each request's arrival. Late: arrivals that found all $CONNS connections busy (median per run)."
            echo
            echo "| target | network | ops/s | p50 µs | p99 µs | hot p50 µs | hot p99 µs | late | errors+misses |"
            echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
            for net in $NETS; do
                for t in $ALL_TARGETS; do
                    tn="$t@$net"
                    has "$tn" || continue
                    echo "| $t | $net | $(fmt %.0f "$(m "$s" "$tn" open.ops_s)") | $(m "$s" "$tn" open.p50_us) | $(m "$s" "$tn" open.p99_us) | $(m "$s" "$tn" open.hot_p50_us) | $(m "$s" "$tn" open.hot_p99_us) | $(fmt %.0f "$(m "$s" "$tn" open.late)") | $(total "$TMP/res/$(var "$s").$(var "$tn").open.bad") |"
                done
            done
        done
    fi
    echo
    echo "## mintgate+near against mintgate"
    echo
    if has "mintgate+near@local"; then
        echo "Ratios of the medians (near / plain): ops/s (higher is better), hot-key p99 (closed loop, and open loop at $OPEN_RATE requests/s) and backend gets per client get (lower is better)."
        echo
        echo "| hot share | network | ops/s | hot p99 | hot p99 at $OPEN_RATE/s | backend gets / client get | hot key at memcached / hot get |"
        echo "|---:|---|---:|---:|---:|---:|---:|"
        for s in $HOT_SHARES; do
            for net in $NETS; do
                a="mintgate+near@$net" b="mintgate@$net"
                echo "| $s | $net | $(ratio "$(m "$s" "$a" ops_s)" "$(m "$s" "$b" ops_s)") | $(ratio "$(m "$s" "$a" hot_p99_us)" "$(m "$s" "$b" hot_p99_us)") | $(ratio "$(m "$s" "$a" open.hot_p99_us)" "$(m "$s" "$b" open.hot_p99_us)") | $(ratio "$(m "$s" "$a" bgets_per)" "$(m "$s" "$b" bgets_per)") | $(ratio "$(m "$s" "$a" hbgets_per)" "$(m "$s" "$b" hbgets_per)") |"
            done
        done
    else
        echo "Not measured: mintgate+near was not available (see the notes)."
    fi
    echo
    echo "## Notes"
    echo
    echo "- mintgate+near config (bench/lib.sh near_config): \`mg.near { ${NEAR_OPTS:-size = \"64m\", ttl = 1, hot = true} }\` and \`mg.pool { name = \"main\", servers = { B1, B2 } }\`. The first runs include the hot-key detector finding the key."
    echo "- twemproxy: nutcracker, md5, ketama, as in \`make bench\`. mintgate: \`-t 1 -c 20000 -s B1,B2\`. memcached: \`-t 1 -c 20000 -U 0\`."
    [ "$DELAY_US" -gt 0 ] && echo "- bench/relay (one thread, epoll) forwards requests at once and holds replies ${DELAY_US} µs; its own CPU (not in the targets' CPU µs/req) comes out of the same two CPUs. It printed on exit: see hot-raw.txt."
    echo "- Instructions per near hit (callgrind): \`TARGETS=\"mintgate-hot mintgate+near\" make bench-ir\` (docs/bench/ir.md)."
    cat "$TMP/notes"
} >"$TMP/hot.md"

# The relays' own figures (CPU, bytes) go to the raw file: stop them first.
for p in $RELAY_PIDS; do stop "$p"; done
cat "$TMP"/relay*.log >>"$TMP/raw" 2>/dev/null
cp "$TMP/hot.md" "$OUT_DIR/hot.md"
cp "$TMP/raw" "$OUT_DIR/hot-raw.txt"
cat "$TMP/hot.md"
log "$SELF: written to $OUT_DIR/hot.md and hot-raw.txt"
! grep -q 'failed' "$TMP/notes"
