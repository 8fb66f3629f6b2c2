#!/bin/sh
# shellcheck disable=SC2086  # $MC_USER and $HERD_ARGS are word lists on purpose
# bench/herd.sh: thundering-herd benchmark: memcached direct, twemproxy and mintgate under hot keys with a short TTL.
#
# CLIENTS naive application clients (bench/herd, one process, one libev loop)
# hammer KEYS hot keys whose values live TTL seconds. A client that misses
# "regenerates": it stays idle REGEN_MS ms, then sets a new value. Without
# protection every client that asks during those REGEN_MS ms regenerates;
# with it, one client per expiry should. See bench/HERD.md for the method and
# how expiries are counted.
#
# Targets, run one after the other for SECS seconds each, the two backend
# memcached servers flushed before each run:
#   memcached  all clients on one of the two backends, directly
#   twemproxy  GATEWAYS nutcracker instances (ketama, md5) over both backends
#   mintgate   GATEWAYS `./mintgate -t 1` processes over both backends, with
#              examples/herd.lua, or a stand-in config when that is missing
# Clients are spread round-robin over a target's instances. Nothing is
# pinned: the figures that matter are counts, not speeds.
#
# Env: CLIENTS (150) GATEWAYS (3) KEYS (10) TTL (1) REGEN_MS (200) SECS (10)
#      THINK_MS (0) TARGETS ("memcached twemproxy mintgate") OUT (bench/results/herd.md)
# Stops every process it started on exit, ^C or TERM.

set -u

cd "$(dirname "$0")/.." || exit 1

CLIENTS=${CLIENTS:-150}
GATEWAYS=${GATEWAYS:-3}
KEYS=${KEYS:-10}
TTL=${TTL:-1}
REGEN_MS=${REGEN_MS:-200}
SECS=${SECS:-10}
THINK_MS=${THINK_MS:-0}
WANT=${TARGETS:-memcached twemproxy mintgate}
OUT=${OUT:-bench/results/herd.md}
HERD=bench/herd

SELF=herd.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh   # log, die, alive, port_open, pick_port, wait_up, start (shared with run.sh)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mgherd.XXXXXX") || exit 1

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

case $CLIENTS$GATEWAYS$KEYS$TTL$REGEN_MS$SECS in
*[!0-9]*) die "CLIENTS, GATEWAYS, KEYS, TTL, REGEN_MS, SECS must be integers" ;;
esac
case $THINK_MS in ''|*[!0-9.]*) die "THINK_MS must be a number" ;; esac
if [ "$CLIENTS" -lt 1 ] || [ "$GATEWAYS" -lt 1 ] || [ "$GATEWAYS" -gt 16 ] || [ "$KEYS" -lt 1 ] ||
    [ "$TTL" -lt 1 ] || [ "$SECS" -lt 1 ] || [ "$SECS" -gt 3600 ]; then
    die "need CLIENTS, KEYS, TTL >= 1, 1 <= GATEWAYS <= 16 and 1 <= SECS <= 3600"
fi
command -v memcached >/dev/null || die "memcached not found (make deps)"
command -v python3 >/dev/null || command -v nc >/dev/null || die "need python3 or nc"

# ---- build ----
if [ ! -x "$HERD" ] || [ -n "$(find bench/herd.c bench/common.h -newer "$HERD")" ]; then
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes \
        -Wmissing-prototypes -o "$HERD" bench/herd.c -lev || die "building bench/herd failed"
fi

# ---- ports and processes: bench/lib.sh (port_open, pick_port, wait_up, start) ----

# mc_cmd PORT LINE: sends one command line, prints the reply up to END/OK/an error (2 s at most).
mc_cmd() {
    if command -v python3 >/dev/null; then
        python3 - "$1" "$2" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(sys.argv[2].encode() + b"\r\n")
d = b""
try:
    while not d.endswith((b"END\r\n", b"OK\r\n", b"ERROR\r\n")) and len(d) < 1 << 20:
        r = s.recv(65536)
        if not r:
            break
        d += r
except socket.timeout:
    pass
sys.stdout.write(d.decode(errors="replace").replace("\r", ""))
EOF
    else
        printf '%s\r\n' "$2" | nc -q1 -w2 127.0.0.1 "$1" | tr -d '\r'
    fi
}

MC_USER=""
[ "$(id -u)" = 0 ] && MC_USER="-u root"     # memcached refuses root without -u

start mc1 memcached -p @PORT@ -U 0 -l 127.0.0.1 -t 1 -m 64 $MC_USER || die "memcached 1 did not start: $(tail -3 "$TMP/mc1.log")"
MC1=$UP_PORT
start mc2 memcached -p @PORT@ -U 0 -l 127.0.0.1 -t 1 -m 64 $MC_USER || die "memcached 2 did not start: $(tail -3 "$TMP/mc2.log")"
MC2=$UP_PORT

TARGETS=""
NOTES=""
note() { NOTES="$NOTES- $*\n"; }
wanted() { case " $WANT " in *" $1 "*) return 0 ;; esac; return 1; }

wanted memcached && TARGETS="memcached"
PORTS_memcached=$MC1

# twemproxy: the YAML holds the listen port, so each instance picks its ports
# first and retries on a clash.
PORTS_twemproxy=""
if ! wanted twemproxy; then
    :
elif ! command -v nutcracker >/dev/null; then
    note "twemproxy: \`nutcracker\` not installed"
else
    g=1
    while [ $g -le "$GATEWAYS" ]; do
        ok=0
        i=0
        while [ $i -lt 5 ] && [ $ok = 0 ]; do
            NCP=$(pick_port)
            NCS=$(pick_port)
            cat >"$TMP/nc$g.yml" <<EOF
herd:
  listen: 127.0.0.1:$NCP
  hash: md5
  distribution: ketama
  auto_eject_hosts: false
  preconnect: true
  servers:
   - 127.0.0.1:$MC1:1
   - 127.0.0.1:$MC2:1
EOF
            nutcracker -t -c "$TMP/nc$g.yml" >"$TMP/nc$g.log" 2>&1 || die "nutcracker rejects its config: $(cat "$TMP/nc$g.log")"
            nutcracker -c "$TMP/nc$g.yml" -s "$NCS" -a 127.0.0.1 -o "$TMP/nc$g.log" \
                -p "$TMP/nc$g.pid" -v 4 &
            pid=$!
            PIDS="$PIDS $pid"
            if wait_up "$NCP" "$pid"; then ok=1; else kill "$pid" 2>/dev/null; fi
            i=$((i + 1))
        done
        if [ $ok = 0 ]; then
            note "twemproxy: instance $g did not start ($(tail -1 "$TMP/nc$g.log"))"
            PORTS_twemproxy=""
            break
        fi
        PORTS_twemproxy="$PORTS_twemproxy $NCP"
        g=$((g + 1))
    done
    [ -n "$PORTS_twemproxy" ] && TARGETS="$TARGETS twemproxy"
fi

# mintgate: examples/herd.lua when the lead's config exists; otherwise a
# stand-in with a staleness policy if this build accepts one, else without.
PORTS_mintgate=""
MG_CONFIG=""
export MEMCACHED_1="127.0.0.1:$MC1" MEMCACHED_2="127.0.0.1:$MC2" MINTGATE_LISTEN="127.0.0.1:0"
if ! wanted mintgate; then
    :
elif [ ! -x ./mintgate ]; then
    note "mintgate: missing (no ./mintgate; run \`make\` first)"
else
    if [ -f examples/herd.lua ]; then
        MG_CONFIG=examples/herd.lua
        MG_CONFIG_NOTE="examples/herd.lua"
    else
        MG_CONFIG=$TMP/herd.lua
        cat >"$MG_CONFIG" <<'EOF'
local mg = require "mintgate"
mg.listen { os.getenv("MINTGATE_LISTEN") }
local p = mg.pool { name = "main", servers = { os.getenv("MEMCACHED_1"), os.getenv("MEMCACHED_2") } }
mg.route { default = p }
EOF
        cp "$MG_CONFIG" "$TMP/herd-plain.lua"
        echo 'mg.stale { grace = 10, lock = 2, wait = 300 }' >>"$MG_CONFIG"
        if ./mintgate --check "$MG_CONFIG" >"$TMP/check.log" 2>&1; then
            MG_CONFIG_NOTE="stand-in (no examples/herd.lua): main pool over both backends, mg.stale { grace = 10, lock = 2, wait = 300 }"
        else
            MG_CONFIG=$TMP/herd-plain.lua
            MG_CONFIG_NOTE="stand-in (no examples/herd.lua), without mg.stale (rejected: $(tail -1 "$TMP/check.log"))"
        fi
    fi
    ./mintgate --check "$MG_CONFIG" >"$TMP/check.log" 2>&1 || die "mintgate rejects $MG_CONFIG: $(cat "$TMP/check.log")"
    # The script reads MINTGATE_LISTEN, so it must name the port this gateway
    # gets: a wrapper sets it and execs (same pid, so cleanup still reaches it).
    cat >"$TMP/mg.sh" <<EOF
MINTGATE_LISTEN=127.0.0.1:\$1 exec ./mintgate -t 1 -l 127.0.0.1:\$1 "$MG_CONFIG"
EOF
    g=1
    while [ $g -le "$GATEWAYS" ]; do
        if ! start "mg$g" sh "$TMP/mg.sh" @PORT@; then
            note "mintgate: gateway $g failed to start: $(tail -2 "$TMP/mg$g.log" | tr '\n' ' ')"
            PORTS_mintgate=""
            break
        fi
        PORTS_mintgate="$PORTS_mintgate $UP_PORT"
        g=$((g + 1))
    done
    [ -n "$PORTS_mintgate" ] && TARGETS="$TARGETS mintgate"
    note "mintgate config: $MG_CONFIG_NOTE"
fi

[ -n "$TARGETS" ] || die "no target to run"

# ---- runs ----
ports_of() {
    case $1 in
    memcached) echo "$PORTS_memcached" ;;
    twemproxy) echo "$PORTS_twemproxy" ;;
    mintgate) echo "$PORTS_mintgate" ;;
    esac
}
kv() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# Sums the numeric STAT lines of `stats herd` over the mintgate gateways.
herd_stats() {
    for p in $PORTS_mintgate; do mc_cmd "$p" "stats herd"; done |
        awk '$1 == "STAT" && $3 ~ /^[0-9]+$/ { if (!($2 in s)) o[n++] = $2; s[$2] += $3 }
             END { for (i = 0; i < n; i++) printf "%s%s=%s", (i ? " " : ""), o[i], s[o[i]] }'
}

TO=""
command -v timeout >/dev/null && TO="timeout -k 5 $((SECS + 90))"
HERD_ARGS="--clients $CLIENTS --keys $KEYS --ttl $TTL --regen-ms $REGEN_MS --think-ms $THINK_MS --duration $SECS --max-time $((SECS + 60))"

log "herd.sh: ${SECS}s per target, $CLIENTS clients, $KEYS keys, TTL ${TTL}s, regeneration ${REGEN_MS} ms; targets: $TARGETS"
for t in $TARGETS; do
    for p in $MC1 $MC2; do
        r=$(mc_cmd "$p" flush_all)
        [ "$r" = "OK" ] || die "flush_all on port $p answered '$r'"
    done
    if [ "$t" = mintgate ] && [ -n "$PORTS_mintgate" ]; then
        herd_stats >"$TMP/herd_stats.before"
    fi
    targs=""
    for p in $(ports_of "$t"); do targs="$targs --target 127.0.0.1:$p"; done
    # In the background so that a signal is acted on at once (the shell runs
    # traps while it waits, not while a command substitution runs).
    $TO "$HERD" $targs $HERD_ARGS --label "$t" >"$TMP/herd.$t.out" 2>"$TMP/herd.$t.err" &
    hp=$!
    PIDS="$PIDS $hp"
    wait "$hp"
    rc=$?
    line=$(grep '^herd ' "$TMP/herd.$t.out" | tail -1)
    if [ -z "$line" ]; then
        log "  $t: herd failed (rc=$rc): $(tail -3 "$TMP/herd.$t.err" | tr '\n' ' ')"
        echo "$t: bench/herd rc=$rc: $(tail -1 "$TMP/herd.$t.err")" >>"$TMP/failures"
        continue
    fi
    [ $rc -ne 0 ] && echo "$t: bench/herd rc=$rc: $(tail -1 "$TMP/herd.$t.err")" >>"$TMP/failures"
    echo "$line" >>"$TMP/lines"
    log "  $t: regen/expiry $(kv regen_per_expiry "$line") over $(kv expiries "$line") expiries, $(kv hits "$line") hits ($(kv stale_hits "$line") stale), p99 $(kv p99_us "$line") us"
    if [ "$t" = mintgate ]; then
        herd_stats >"$TMP/herd_stats.after"
        echo "mintgate stats herd (sum over gateways, this run): $(awk 'NR == FNR { for (i = 1; i <= NF; i++) { split($i, a, "="); b[a[1]] = a[2] }; next }
            { for (i = 1; i <= NF; i++) { split($i, a, "="); printf "%s%s=%d", (i > 1 ? " " : ""), a[1], a[2] - b[a[1]] } }' \
            "$TMP/herd_stats.before" "$TMP/herd_stats.after")" >>"$TMP/extra"
    fi
done

# ---- report ----
mkdir -p "$(dirname "$OUT")"
{
    echo "# Herd benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "$CLIENTS clients, $KEYS hot keys, \`set key 0 $TTL\`, regeneration ${REGEN_MS} ms, think ${THINK_MS} ms,"
    echo "${SECS}s per target; twemproxy and mintgate: $GATEWAYS instances over 2 memcached backends;"
    echo "memcached: all clients on one backend. Method: bench/HERD.md."
    echo "$(memcached -V 2>&1 | head -1), $(nutcracker -V 2>&1 | head -1 | sed 's/This is //'), $(nproc) CPUs, $(uname -sr)."
    echo
    echo "| target | inst | expiries | regen/expiry | misses/expiry | expiries/key/s | hits | stale hits | p50 µs | p99 µs | p99 in windows µs | p99 steady µs | gets in windows | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    if [ -s "$TMP/lines" ]; then
        while IFS= read -r l; do
            errs=$(( $(kv get_errors "$l") + $(kv set_errors "$l") + $(kv bad_values "$l") + $(kv conns_failed "$l") + $(kv conns_lost "$l") ))
            echo "| $(kv target "$l") | $(kv gateways "$l") | $(kv expiries "$l") | $(kv regen_per_expiry "$l") | $(kv miss_per_expiry "$l") | $(kv expiries_per_key_s "$l") | $(kv hits "$l") | $(kv stale_hits "$l") | $(kv p50_us "$l") | $(kv p99_us "$l") | $(kv p99_win_us "$l") | $(kv p99_steady_us "$l") | $(kv win_gets "$l") ($(kv win_pct "$l")% of time) | $errs |"
        done <"$TMP/lines"
    fi
    if [ -n "$NOTES" ] || [ -s "$TMP/failures" ] || [ -s "$TMP/extra" ]; then
        echo
        printf '%b' "$NOTES"
        [ -s "$TMP/extra" ] && sed 's/^/- /' "$TMP/extra"
        [ -s "$TMP/failures" ] && sed 's/^/- failed: /' "$TMP/failures"
    fi
    if [ -s "$TMP/lines" ]; then
        echo
        echo '```'
        cat "$TMP/lines"
        echo '```'
    fi
} >"$TMP/table.md"

cat "$TMP/table.md"
cp "$TMP/table.md" "$OUT" && log "herd.sh: written to $OUT"
[ ! -s "$TMP/failures" ]
