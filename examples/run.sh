#!/bin/sh
# examples/run.sh: `make run`: two local memcached servers and the gateway in front of them
# with examples/quickstart.lua. Ctrl-C stops all three.
. spec/lib.sh
p1=$(free_port); p2=$(free_port)
port=${PORT:-11211}
if nc -z 127.0.0.1 "$port" 2>/dev/null; then port=$(free_port); fi
start_memcached "$p1" || exit 1
start_memcached "$p2" || exit 1
export MEMCACHED_1="127.0.0.1:$p1" MEMCACHED_2="127.0.0.1:$p2" MINTGATE_LISTEN="127.0.0.1:$port"
start_bg ./mintgate -v examples/quickstart.lua
wait_port "$port" || exit 1
cat <<MSG

mintgate is listening on 127.0.0.1:$port in front of memcached on ports $p1 and $p2.
Try:
  printf 'set a 0 0 1\r\nx\r\nget a\r\n' | nc -q1 127.0.0.1 $port
  printf 'stats backends\r\n' | nc -q1 127.0.0.1 $port
Ctrl-C stops all three.
MSG
wait
