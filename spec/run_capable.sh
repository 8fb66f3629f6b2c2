#!/bin/sh
# spec/run_capable.sh BINARY: memccapable's text-protocol tests (-a), then its binary ones
# (-b, CAPABLE_EXPECT_BIN: 27, every one memcached 1.6.18 itself passes) through the gateway,
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
expect_bin=${CAPABLE_EXPECT_BIN:-27}
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
# run_one FLAG EXPECT: one memccapable run; adds to passed/failed and why.
passed=0; failed=0; why=""
run_one() {
    out=$(timeout 120 memccapable -h 127.0.0.1 -p "$pg" "$1" -t 5 2>&1)
    rc=$?
    echo "$out"
    # A result may follow a reply on the same line or start a line of its own; count markers.
    mark() { echo "$out" | grep -o "\\[$1\\]" | wc -l | tr -d ' '; }
    p=$(mark pass); f=$(mark FAIL); s=$(mark skip)
    [ "$rc" = 0 ] || why="$why; memccapable $1 exited $rc"
    [ "$s" = 0 ] || why="$why; $1: $s skipped"
    [ "$p" = "$2" ] || why="$why; $1: $p of the $2 expected passes"
    echo "memccapable $1 through $what: $p passed, $f failed"
    passed=$((passed + p)); failed=$((failed + f))
}
run_one -a "$expect"
run_one -b "$expect_bin"
if [ -n "$why" ] && [ "$failed" = 0 ]; then failed=1; fi
echo "$passed passed, $failed failed" >"$result"
echo "memccapable -a and -b through $what: $passed passed, $failed failed${why:+ (${why#; })}"
[ -z "$why" ] && [ "$failed" = 0 ]
