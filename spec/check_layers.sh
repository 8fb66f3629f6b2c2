#!/bin/sh
# spec/check_layers.sh: the core's layering (DESIGN.md section 11) as a check.
#
#   1 proto   parsers, renderers and pure data: nothing above them
#   2 net     client and backend connections
#   3 engine  requests, dispatch, herd, counters; reaches Lua only through plugin.h
#   4 lua     the Lua plug-in: config phase and request phase
#   5 server  main, workers, listeners, admin, stats rendering, fleet polling
#
# A file may include the headers of its own layer and of the layers below, never one
# above; and no file below the Lua layer may include a Lua header (lua.h, lauxlib.h,
# lualib.h, luajit.h) or one of ours (lua_*.h). Every core file must be placed in a
# layer (a new file is placed here on purpose). The exceptions are listed below, each
# with its reason. Writes "N passed, N failed" (files) to build/results/layers.txt;
# exits 1 on any violation.
cd "$(dirname "$0")/.." || exit 2

L1="mg.h buf log auth proto_text proto_bin proto_meta meta_render keys ketama config switch health slowlog hotkeys trace near"
L2="conn backend"
L3="request dispatch dispatch_near dispatch_explain dispatch_int.h route herd stats plugin.h"
L4="lua_api lua_resolve lua_memo lua_vm lua_co.h"
L5="main worker admin stats_render fleet metrics metrics_http memstats"

# Known upward includes, as "file:header". worker.h is the context every layer runs in
# (its loop, its backends, its counters); conn.c and backend.c hand what they parsed to
# the engine (request_dispatch, op_reply, op_fail) through request.h.
ALLOW="conn.c:worker.h backend.c:worker.h request.c:worker.h dispatch.c:worker.h dispatch_near.c:worker.h dispatch_explain.c:worker.h route.c:worker.h
herd.c:worker.h stats.c:worker.h lua_api.c:worker.h lua_resolve.c:worker.h
conn.c:request.h backend.c:request.h"

CORE=${CORE:-core}

# layer_of NAME: the layer of core file NAME (foo.c, foo.h), or nothing.
layer_of() {
    n=1
    for list in "$L1" "$L2" "$L3" "$L4" "$L5"; do
        for e in $list; do
            case $e in
            *.h) [ "$1" = "$e" ] && { echo $n; return; } ;;
            *) [ "$1" = "$e.c" ] || [ "$1" = "$e.h" ] && { echo $n; return; } ;;
            esac
        done
        n=$((n + 1))
    done
}

allowed() {
    for a in $ALLOW; do [ "$a" = "$1:$2" ] && return 0; done
    return 1
}

passed=0
failed=0
for f in "$CORE"/*.c "$CORE"/*.h; do
    name=$(basename "$f")
    me=$(layer_of "$name")
    bad=""
    if [ -z "$me" ]; then
        bad=" is in no layer (place it in spec/check_layers.sh)"
    else
        # system Lua headers and our Lua layer's, below the Lua layer
        if [ "$me" -lt 4 ]; then
            lua=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]\(lua[^>"]*\.h\|lauxlib\.h\|lualib\.h\|luajit\.h\)[>"].*/\1/p' "$f")
            for h in $lua; do bad="$bad includes the Lua header $h;"; done
        fi
        for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
            hl=$(layer_of "$h")
            [ -n "$hl" ] || continue # not a core header
            if [ "$hl" -gt "$me" ] && ! allowed "$name" "$h"; then
                bad="$bad includes $h (layer $hl) from layer $me;"
            fi
        done
    fi
    if [ -n "$bad" ]; then
        echo "check_layers: $f$bad"
        failed=$((failed + 1))
    else
        passed=$((passed + 1))
    fi
done
mkdir -p build/results
echo "$passed passed, $failed failed" >build/results/layers.txt
echo "check_layers: $passed passed, $failed failed"
[ "$failed" = 0 ]
