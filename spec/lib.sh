# spec/lib.sh: shell helpers for scripts that start servers: free ports, waiting, cleanup.
# Source it; every process started with start_bg is killed on exit.

MG_PIDS=""

free_port() {
  luajit -e 'local s = assert(require("socket").bind("127.0.0.1", 0)); local _, p = s:getsockname(); print(p); s:close()'
}

# wait_port PORT [TRIES]: until something accepts on 127.0.0.1:PORT (0.1 s per try).
wait_port() {
  i=0
  while [ "$i" -lt "${2:-50}" ]; do
    if nc -z 127.0.0.1 "$1" 2>/dev/null; then return 0; fi
    sleep 0.1; i=$((i + 1))
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# start_bg CMD...: start in the background and remember the pid for cleanup.
start_bg() {
  "$@" &
  MG_PIDS="$MG_PIDS $!"
}

memcached_user() { [ "$(id -u)" = 0 ] && echo "-u root"; }

# start_memcached PORT: a local memcached for tests and demos.
start_memcached() {
  # shellcheck disable=SC2046
  start_bg memcached $(memcached_user) -p "$1" -U 0 -l 127.0.0.1 -t 1 -m 64
  wait_port "$1"
}

cleanup() {
  for p in $MG_PIDS; do kill "$p" 2>/dev/null; done
  for p in $MG_PIDS; do
    i=0
    while kill -0 "$p" 2>/dev/null && [ "$i" -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$p" 2>/dev/null
  done
  MG_PIDS=""
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
