#!/bin/sh
# spec/run_valgrind.sh [BINARY]: the gateway under valgrind's memcheck with the Lua config
# of the benchmark (examples/bench.lua: route function, key transform, switch), two workers,
# in front of two real memcached servers. It takes load (single-key gets and sets, 50-key
# gets that go through the Lua batches), a reload by SIGHUP, bad input, and SIGTERM; then
# memcheck must report no error and no definite or indirect leak.
# The reload must show: config_generation in `stats` goes up within 60 s of the SIGHUP.
# Every wait is bounded: the gateway must listen within 30 s, each load run and client
# within its timeout, and exit within 60 s of SIGTERM, or it is killed (SIGKILL) and the
# run fails. Writes "N passed, N failed" to build/results/valgrind.txt.
cd "$(dirname "$0")/.." || exit 2
. spec/lib.sh
bin=${1:-./mintgate}
mkdir -p build/results
out=build/results/valgrind.txt
log=build/valgrind.log
passed=0
failed=0
check() { # check NAME CONDITION-EXIT-STATUS
    if [ "$2" = 0 ]; then
        passed=$((passed + 1)); echo "  ok: $1"
    else
        failed=$((failed + 1)); echo "  FAILED: $1"
    fi
}
finish() {
    echo "$passed passed, $failed failed" > "$out"
    echo "valgrind: $passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit $?
}

command -v valgrind >/dev/null || { echo "valgrind not installed (make deps)"; failed=1; finish; }
[ -x bench/mgload ] || { echo "bench/mgload missing (make bench/mgload)"; failed=1; finish; }
p1=$(free_port); p2=$(free_port); pg=$(free_port)
# examples/bench.lua with backend timeouts scaled for memcheck's slowdown on a busy machine
# (the 1 s default expires under load there: SERVER_ERROR backend timeout, not a bug).
conf=build/valgrind-bench.lua
cat >"$conf" <<'EOF_LUA'
local mg = require "mintgate"
local pool = mg.pool
mg.pool = function(t)
  t.timeout, t.connect_timeout = t.timeout or 10, t.connect_timeout or 10
  return pool(t)
end
dofile("examples/bench.lua")
EOF_LUA
start_memcached "$p1" && start_memcached "$p2" || { failed=1; finish; }
MINTGATE_LISTEN=127.0.0.1:$pg MEMCACHED_1=127.0.0.1:$p1 MEMCACHED_2=127.0.0.1:$p2 \
    valgrind --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=9 --log-file="$log" \
    "$bin" -t 2 "$conf" &
vg=$!
MG_PIDS="$MG_PIDS $vg"
wait_port "$pg" 300 || { failed=1; finish; }

load() { timeout 120 bench/mgload --port "$pg" --key-prefix vg: --timeout 30 "$@" 2>&1; }
generation() { # the config_generation a new connection's worker reports, or nothing (10 s)
    PORT=$pg timeout 15 luajit -e '
      local c = require("socket").tcp(); c:settimeout(10)
      assert(c:connect("127.0.0.1", tonumber(os.getenv("PORT")))); assert(c:send("stats\r\n"))
      repeat
        local l = assert(c:receive("*l"))
        local g = l:match("^STAT config_generation (%d+)")
        if g then print(g) end
      until l == "END"' 2>/dev/null
}
bad() { # bad: errors+misses of an mgload result line, or 1 if there is none or it did nothing
    line=$(echo "$1" | grep '^ops=' | tail -n 1)
    [ -n "$line" ] || { echo 1; return; }
    case $line in ops=0\ *) echo 1; return ;; esac
    e=$(echo "$line" | tr ' ' '\n' | sed -n 's/^errors=//p')
    m=$(echo "$line" | tr ' ' '\n' | sed -n 's/^misses=//p')
    echo $((e + m))
}
r=$(load --prefill --conns 20 --duration 2)
echo "$r" | tail -n 3
check "single-key gets and sets under memcheck, no errors or misses" "$(bad "$r")"
gen0=$(generation)
kill -HUP "$vg"
gen=$gen0
deadline=$(($(date +%s) + 60))
while [ -n "$gen0" ] && [ "${gen:-0}" -le "$gen0" ] && [ "$(date +%s)" -lt "$deadline" ]; do
    sleep 1; gen=$(generation)
done
[ -n "$gen0" ] && [ "${gen:-0}" -gt "$gen0" ]
check "SIGHUP reloads: config_generation ${gen0:-?} -> ${gen:-?} in stats" $?
r=$(load --conns 20 --multiget 50 --duration 5)
echo "$r" | tail -n 3
check "50-key gets after a reload, no errors or misses" "$(bad "$r")"
printf 'get\r\nset k 0 0 99999999999\r\nbogus\r\nget %0300d\r\nquit\r\n' 0 |
    timeout 10 nc -q 2 127.0.0.1 "$pg" > build/valgrind-bad.out 2>&1
grep -q '^ERROR' build/valgrind-bad.out && grep -q 'CLIENT_ERROR' build/valgrind-bad.out
check "bad input answered with memcached's errors" $?

kill -TERM "$vg"
i=0
while kill -0 "$vg" 2>/dev/null && [ "$i" -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$vg" 2>/dev/null; then
    kill -KILL "$vg" 2>/dev/null
    check "exits within 60 s of SIGTERM (killed with SIGKILL)" 1
else
    check "exits within 60 s of SIGTERM" 0
fi
wait "$vg"
rc=$?
MG_PIDS=$(echo "$MG_PIDS" | sed "s/ $vg\b//")
check "memcheck: no errors, no definite or indirect leaks (exit $rc; $log)" "$rc"
grep -Eq 'All heap blocks were freed|definitely lost: 0 bytes' "$log"
check "memcheck's leak summary" $?
grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|All heap' "$log" | sed 's/^==[0-9]*== /  /'
finish
