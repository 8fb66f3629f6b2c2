# shellcheck shell=sh disable=SC2086,SC2034,SC3045
# (word lists on purpose; variables are for the sourcing script; dash and bash have ulimit -n/-H)
# bench/lib.sh: helpers shared by the bench scripts (process control, ports, placement, targets, stats).
#
# Sourced, not run. The caller sets SELF (its name for messages) and calls
# bench_init once; every process started through start/start_twemproxy is
# stopped on exit, ^C or TERM. Start helpers are never called inside $(...):
# the child must belong to the calling shell so the cleanup can see it.

MGLOAD=bench/mgload
PIDS=""
WAIT_TRIES=${WAIT_TRIES:-50}    # wait_up polls every 0.1 s; valgrind needs more

log() { printf '%s\n' "$*" >&2; }
die() { log "$SELF: $*"; exit 1; }

# alive PID: our child has a thread that has not exited (kill -0 is true for
# zombies too). Every thread counts: a leader can be a zombie while another
# thread still works, e.g. valgrind writing a profile after a fatal signal.
alive() {
    cat /proc/"$1"/task/*/stat 2>/dev/null | sed 's/.*) //' | cut -c1 | grep -q '[^ZX]'
}

# stop_pids PID...: TERM, then KILL whatever is still there after ~STOP_WAIT s
# (valgrind writes its profile on TERM and can take a few seconds to).
stop_pids() {
    for p in "$@"; do kill "$p" 2>/dev/null; done
    n=0
    lim=$(( ${STOP_WAIT:-3} * 10 ))
    while [ $n -lt $lim ]; do
        left=""
        for p in "$@"; do alive "$p" && left="$left $p"; done
        [ -z "$left" ] && break
        sleep 0.1
        n=$((n + 1))
    done
    for p in "$@"; do kill -9 "$p" 2>/dev/null; done
    for p in "$@"; do wait "$p" 2>/dev/null; done
}

# stop PID: stops one process this shell started and forgets it.
stop() {
    stop_pids "$1"
    rest=""
    for p in $PIDS; do [ "$p" = "$1" ] || rest="$rest $p"; done
    PIDS=$rest
}

bench_cleanup() {
    trap - EXIT INT TERM
    stop_pids $PIDS
    # BENCH_KEEP=DIR keeps the run's files (callgrind profiles, logs) for callgrind_annotate.
    if [ -n "${BENCH_KEEP:-}" ]; then mkdir -p "$BENCH_KEEP" && cp -r "$TMP"/. "$BENCH_KEEP"/; fi
    rm -rf "$TMP"
}

# bench_init: temp dir, traps, file limit, tool checks, mgload build.
bench_init() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/mgbench.XXXXXX") || exit 1
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # 10,000 idle connections: every process started from here inherits this.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null
    command -v memcached >/dev/null || die "memcached not found (make deps)"
    command -v python3 >/dev/null || command -v nc >/dev/null || die "need python3 or nc to find ports"
    if [ ! -x "$MGLOAD" ] || [ -n "$(find bench/mgload.c bench/common.h -newer "$MGLOAD")" ]; then
        ${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -pthread -o "$MGLOAD" bench/mgload.c -lev -lm || die "building mgload failed"
    fi
    MC_USER=""
    [ "$(id -u)" = 0 ] && MC_USER="-u root"     # memcached refuses root without -u
}

# ---- placement ----
# See bench/quick.sh for the reasoning: the process the client talks to has
# CPU 0 to itself; mgload and the backing memcached servers share CPU 1.
setup_placement() {
    PIN_LOAD=""
    PIN_FRONT=""
    PIN_BACK=""
    if [ "${PIN:-auto}" != 0 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
        PIN_LOAD="taskset -c 1"
        PIN_BACK="taskset -c 1"
        PIN_FRONT="taskset -c 0"
        PLACEMENT="target (direct memcached or proxy) alone on CPU 0; mgload and the two backends on CPU 1"
    else
        PLACEMENT="unpinned"
    fi
}

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

# wait_up PORT PID: 0 once PORT accepts and PID lives, 1 if PID died or after WAIT_TRIES/10 s.
# A foreign listener on PORT makes our process exit on bind: hence the second look.
wait_up() {
    n=0
    while [ $n -lt "$WAIT_TRIES" ]; do
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
# Its output goes to $TMP/NAME.log.
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
        stop "$UP_PID"
        try=$((try + 1))
    done
    return 1
}

# start_memcached NAME PIN [EXTRA...]: one memcached with the bench's flags.
start_memcached() {
    name=$1
    pin=$2
    shift 2
    start "$name" $pin memcached -p @PORT@ -U 0 -l 127.0.0.1 -t 1 $MC_USER "$@"
}

# start_twemproxy NAME WRAP B1 B2: nutcracker (ketama, md5, as libmemcached) in
# front of backend ports B1 and B2, run under WRAP (taskset, valgrind...).
# The YAML needs the listen port, so it is picked first and retried on a clash.
start_twemproxy() {
    name=$1
    wrap=$2
    i=0
    while [ $i -lt 5 ]; do
        UP_PORT=$(pick_port)
        ncs=$(pick_port)
        cat >"$TMP/$name.yml" <<EOF
bench:
  listen: 127.0.0.1:$UP_PORT
  hash: md5
  distribution: ketama
  auto_eject_hosts: false
  preconnect: true
  servers:
   - 127.0.0.1:$3:1
   - 127.0.0.1:$4:1
EOF
        nutcracker -t -c "$TMP/$name.yml" >"$TMP/$name.log" 2>&1 || return 1
        $wrap nutcracker -c "$TMP/$name.yml" -s "$ncs" -a 127.0.0.1 \
            -o "$TMP/$name.log" -p "$TMP/$name.pid" -v 4 2>"$TMP/$name.err" &
        UP_PID=$!
        PIDS="$PIDS $UP_PID"
        wait_up "$UP_PORT" "$UP_PID" && return 0
        stop "$UP_PID"
        i=$((i + 1))
    done
    return 1
}

# lua_config_ok CONFIG B1 B2: 0 if ./mintgate accepts CONFIG with the bench's
# environment (MINTGATE_LISTEN, MEMCACHED_1, MEMCACHED_2); reason in $TMP/check.log.
lua_config_ok() {
    if [ ! -f "$1" ]; then
        echo "$1 does not exist" >"$TMP/check.log"
        return 1
    fi
    MINTGATE_LISTEN=127.0.0.1:1 MEMCACHED_1="127.0.0.1:$2" MEMCACHED_2="127.0.0.1:$3" \
        ./mintgate --check "$1" >"$TMP/check.log" 2>&1
}

# busy_note: how busy the CPUs were over one second before the runs (ours
# idle then), for the report: the figures mean little on a machine that is not quiet.
busy_note() {
    a=$(sed -n 's/^cpu  //p' /proc/stat)
    sleep 1
    b=$(sed -n 's/^cpu  //p' /proc/stat)
    pct=$(printf '%s\n%s\n' "$a" "$b" | awk '{ t = 0; for (i = 1; i <= NF; i++) t += $i; idle = $4 + $5
        if (NR == 1) { t0 = t; i0 = idle } else printf "%.0f", (t > t0 ? 100 * (1 - (idle - i0) / (t - t0)) : 0) }')
    echo "CPUs ${pct}% busy in the second before the runs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# cpu_ticks PID...: utime+stime of the processes together, in clock ticks.
cpu_ticks() {
    for p in "$@"; do sed 's/.*) //' "/proc/$p/stat" 2>/dev/null; done |
        awk '{ s += $12 + $13 } END { print s + 0 }'
}

# busy_ticks: CPU ticks the whole machine has spent busy (all CPUs) so far.
busy_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# ---- numbers ----
# kv KEY LINE: the value of KEY in an mgload key=value line.
kv() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

median() {
    [ -s "$1" ] || { echo "-"; return; }
    sort -g "$1" | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.10g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
total() { if [ -s "$1" ]; then awk '{ s += $1 } END { print s }' "$1"; else echo "-"; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f\n", a / b }'; }
# fmt FORMAT VALUE: printf that passes "-" through.
fmt() { awk -v f="$1" -v v="$2" 'BEGIN { if (v == "-" || v == "") print "-"; else printf f "\n", v }'; }

# ---- near cache (bench/hot.sh, bench/ir.sh) ----
# near_config FILE: writes the "mintgate+near" config: the gateway's near cache with
# hot-key detection, NEAR_OPTS overriding the table's fields, over one ketama pool of
# MEMCACHED_1 and MEMCACHED_2 (from the environment, as examples/bench.lua).
near_config() {
    opts=${NEAR_OPTS:-'size = "64m", ttl = 1, hot = true'}
    cat >"$1" <<LUA
-- mintgate+near, written by bench/lib.sh (near_config) for bench/hot.sh and bench/ir.sh
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }
mg.near { $opts }
mg.pool { name = "main", servers = { os.getenv("MEMCACHED_1"), os.getenv("MEMCACHED_2") } }
LUA
}

# mc_counters PORT MIN_CHUNK: "cmd_get hot_hits hot_items" of one memcached: its get
# commands (meta mg included), and the get hits and items of the slab classes whose
# chunk size is >= MIN_CHUNK. Empty if it does not answer.
mc_counters() {
    python3 - "$1" "$2" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"stats\r\nstats slabs\r\n")
buf = b""
while buf.count(b"END\r\n") < 2:
    d = s.recv(65536)
    if not d:
        sys.exit(1)
    buf += d
st, cls = {}, {}
for line in buf.decode().split("\r\n"):
    f = line.split()
    if len(f) == 3 and f[0] == "STAT":
        if ":" in f[1]:
            c, k = f[1].split(":", 1)
            cls.setdefault(c, {})[k] = int(f[2])
        else:
            st[f[1]] = f[2]
big = [c for c in cls.values() if c.get("chunk_size", 0) >= int(sys.argv[2])]
print(st["cmd_get"], sum(c.get("get_hits", 0) for c in big), sum(c.get("used_chunks", 0) for c in big))
PY
}
