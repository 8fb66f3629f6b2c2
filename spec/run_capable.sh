#!/bin/sh
# spec/run_capable.sh BINARY: memccapable's text-protocol tests (-a) through the gateway,
# in front of two real memcached servers on free ports. memccapable prints `[pass]`,
# `[FAIL]` or `[skip]` after each test (a failing test may first print the reply it got)
# and exits non-zero when any failed. The run passes only when memccapable exits 0, no
# test failed or was skipped, and all CAPABLE_EXPECT (27, the ascii tests of
# libmemcached-tools 1.1) passed. Writes "N passed, N failed" to build/results/capable.txt.
# MEMCCAPABLE_PORT=P tests whatever listens on 127.0.0.1:P instead (for checking the runner
# itself, e.g. against `memcached -C`).
cd "$(dirname "$0")/.." || exit 2
. spec/lib.sh
bin=${1:-./mintgate}
expect=${CAPABLE_EXPECT:-27}
mkdir -p build/results
result=build/results/capable.txt
give_up() { echo "0 passed, 1 failed" >"$result"; echo "memccapable: $1"; exit 1; }

if [ -n "${MEMCCAPABLE_PORT:-}" ]; then
    pg=$MEMCCAPABLE_PORT
    what="127.0.0.1:$pg"
else
    p1=$(free_port); p2=$(free_port); pg=$(free_port)
    start_memcached "$p1" && start_memcached "$p2" || give_up "memcached did not start"
    start_bg "$bin" -t 2 -l "127.0.0.1:$pg" -s "127.0.0.1:$p1,127.0.0.1:$p2"
    wait_port "$pg" || give_up "$bin did not listen on $pg"
    what=$bin
fi
out=$(timeout 120 memccapable -h 127.0.0.1 -p "$pg" -a -t 5 2>&1)
rc=$?
echo "$out"
# A result may follow a reply on the same line or start a line of its own; count markers.
mark() { echo "$out" | grep -o "\\[$1\\]" | wc -l | tr -d ' '; }
passed=$(mark pass)
failed=$(mark FAIL)
skipped=$(mark skip)
why=""
[ "$rc" = 0 ] || why="$why; memccapable exited $rc"
[ "$skipped" = 0 ] || why="$why; $skipped skipped"
[ "$passed" = "$expect" ] || why="$why; $passed of the $expect expected passes"
if [ -n "$why" ] && [ "$failed" = 0 ]; then failed=1; fi
echo "$passed passed, $failed failed" >"$result"
echo "memccapable -a through $what: $passed passed, $failed failed${why:+ (${why#; })}"
[ -z "$why" ] && [ "$failed" = 0 ]
