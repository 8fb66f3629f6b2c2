#!/bin/sh
# spec/run_capable.sh BINARY: memccapable's text-protocol tests through the gateway,
# in front of two real memcached servers on free ports.
. spec/lib.sh
bin=${1:-./mintgate}
mkdir -p build/results
p1=$(free_port); p2=$(free_port); pg=$(free_port)
start_memcached "$p1" && start_memcached "$p2" || { echo "0 passed, 1 failed" > build/results/capable.txt; exit 1; }
start_bg "$bin" -t 2 -l "127.0.0.1:$pg" -s "127.0.0.1:$p1,127.0.0.1:$p2"
wait_port "$pg" || { echo "0 passed, 1 failed" > build/results/capable.txt; exit 1; }
out=$(timeout 120 memccapable -h 127.0.0.1 -p "$pg" -a -t 5 2>&1)
echo "$out"
passed=$(echo "$out" | grep -c '\[pass\]')
failed=$(echo "$out" | grep -c '\[fail\]')
[ "$passed" -gt 0 ] || failed=$((failed + 1))
echo "$passed passed, $failed failed" > build/results/capable.txt
echo "memccapable -a through mintgate: $passed passed, $failed failed"
[ "$failed" = 0 ]
