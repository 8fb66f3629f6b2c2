#!/bin/sh
# spec/run_busted.sh [suffix] [busted args...]: run the busted suite (configured by .busted:
# LuaJIT, spec/, gtest-style output) from the repository root, print its output, write
# "N passed, N failed, N skipped" to build/results/busted[-suffix].txt (errors count as
# failed, pending tests as skipped) and exit non-zero if anything failed. MINTGATE_BIN
# selects the gateway binary (default ./mintgate), e.g.
# MINTGATE_BIN=./mintgate-asan sh spec/run_busted.sh asan.
# Floor: every spec file run (those named in the arguments, else every spec/**/*_spec.lua)
# must pass at least one test; a file with none (it did not load, or all its tests were
# filtered out, skipped or failed) counts as one failure. A busted filter option (--filter,
# --tags, ...) turns the floor off, and says so.
# Afterwards it kills whatever the specs started and did not stop (a crashed busted).
cd "$(dirname "$0")/.." || exit 2

suffix=${1:-}
[ $# -gt 0 ] && shift
mkdir -p build/results
result="build/results/busted${suffix:+-$suffix}.txt"
tmp=$(mktemp -d /tmp/mintgate-busted.XXXXXX) || exit 2

MINTGATE_SPEC_PIDS="$tmp/pids"
export MINTGATE_SPEC_PIDS
: >"$MINTGATE_SPEC_PIDS"

# Kill processes the specs registered and that still run (checking the command name, so
# that a recycled pid is left alone).
cleanup() {
    [ -f "$MINTGATE_SPEC_PIDS" ] || return 0
    while read -r pid name; do
        [ -n "$pid" ] || continue
        if kill -0 "$pid" 2>/dev/null &&
            tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Eq 'memcached|mintgate|fake_backend'; then
            echo "run_busted: killing leftover $name (pid $pid)" >&2
            kill -TERM "$pid" 2>/dev/null
            sleep 1
            kill -KILL "$pid" 2>/dev/null
        fi
    done <"$MINTGATE_SPEC_PIDS"
}
trap 'cleanup; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

if ! command -v busted >/dev/null 2>&1; then
    echo "run_busted: busted is not installed (apt-get install lua-busted)" >&2
    echo "0 passed, 1 failed" >"$result"
    exit 1
fi

echo "run_busted: gateway binary ${MINTGATE_BIN:-./mintgate}${MINTGATE_REFERENCE:+ (reference mode: specs talk to memcached directly)}"
{ busted "$@" 2>&1; echo $? >"$tmp/rc"; } | tee "$tmp/out"
rc=$(cat "$tmp/rc" 2>/dev/null || echo 1)

# Parse the gtest-style summary (strip colour codes first).
sed 's/\x1b\[[0-9;]*m//g' "$tmp/out" >"$tmp/plain"
count() { # count <label regexp> -> the number on the summary line, or 0
    n=$(grep -E "^\[ *$1 *\] [0-9]+ (tests?|errors?)" "$tmp/plain" | tail -n 1 |
        sed -E 's/^\[[^]]*\] ([0-9]+).*/\1/')
    echo "${n:-0}"
}
passed=$(count PASSED)
failed=$(count FAILED)
errors=$(count ERROR)
skipped=$(count SKIPPED)
bad=$((failed + errors))
if ! grep -q '^\[==========\] [0-9]* tests\? from' "$tmp/plain"; then
    # busted did not reach its summary (crashed, or a spec file did not load)
    echo "run_busted: FAILED: busted printed no summary (crashed, or a spec file did not load)"
    bad=$((bad + 1))
fi

# The floor: the spec files that should have run, and the passing tests of each (busted
# names a test "[       OK ] spec/e2e/x_spec.lua @ LINE: name").
floor=1
files=""
for a in "$@"; do
    case $a in
    --filter* | --filter-out* | --tags* | --exclude-tags* | -t | --name* | --exclude-names*) floor=0 ;;
    -*) ;;
    *) if [ -d "$a" ]; then files="$files $(find "$a" -name '*_spec.lua' | sort)"
       elif [ -f "$a" ]; then files="$files $a"; fi ;;
    esac
done
[ -n "$files" ] || files=$(find spec -name '*_spec.lua' | sort)
if [ "$floor" = 1 ]; then
    sed -n 's/^\[ *OK *\] \(\.\/\)\{0,1\}\([^ ]*\) @ [0-9]*: .*/\2/p' "$tmp/plain" | sort | uniq -c >"$tmp/ok"
    nfiles=0; nzero=0
    for f in $files; do
        f=${f#./}
        nfiles=$((nfiles + 1))
        n=$(awk -v f="$f" '$2 == f { print $1 }' "$tmp/ok")
        if [ -z "$n" ]; then
            echo "run_busted: FAILED: $f passed no test (the floor is one per spec file)"
            nzero=$((nzero + 1))
        fi
    done
    bad=$((bad + nzero))
    echo "run_busted: floor: $((nfiles - nzero)) of $nfiles spec files passed at least one test"
else
    echo "run_busted: floor not checked (a busted filter option was given)"
fi
if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
    echo "run_busted: FAILED: busted exited $rc"
    bad=1
fi
[ "$skipped" = 0 ] || echo "run_busted: $skipped tests skipped (pending), listed under [ SKIPPED  ] above"
echo "$passed passed, $bad failed, $skipped skipped" >"$result"
echo "run_busted: $passed passed, $bad failed, $skipped skipped (written to $result)"
[ "$bad" -eq 0 ]
