#!/bin/sh
# spec/run_rock.sh: the README's install command, as a new user runs it on Debian 12
# (luarocks 3.8 checks for Lua headers on every build and defaults to whichever Lua it was
# set up for; the gateway embeds LuaJIT, whose headers are Lua 5.1's):
#   luarocks --lua-version 5.1 make mintgate-scm-1.rockspec LUA_INCDIR=/usr/include/luajit-2.1
# run into a temporary tree (--tree), then: the rock is listed, bin/mintgate runs, and plain
# LuaJIT loads `mintgate` and `mintgate.stale` from the tree. The tree is removed after.
# Writes "N passed, N failed" to build/results/rock.txt.
cd "$(dirname "$0")/.." || exit 2
mkdir -p build/results
result=build/results/rock.txt
passed=0
failed=0
check() { # check NAME EXIT-STATUS
    if [ "$2" = 0 ]; then
        passed=$((passed + 1)); echo "  ok: $1"
    else
        failed=$((failed + 1)); echo "  FAILED: $1"
    fi
}
finish() {
    echo "$passed passed, $failed failed" >"$result"
    echo "rock: $passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit $?
}
command -v luarocks >/dev/null || { echo "luarocks not installed (make deps)"; failed=1; finish; }
tree=$(mktemp -d /tmp/mintgate-rock.XXXXXX) || { failed=1; finish; }
trap 'rm -rf "$tree"' EXIT
trap 'exit 130' INT TERM

timeout 600 luarocks --lua-version 5.1 --tree "$tree" make mintgate-scm-1.rockspec \
    LUA_INCDIR=/usr/include/luajit-2.1 >"$tree.log" 2>&1
st=$?
tail -n 5 "$tree.log"
rm -f "$tree.log"
check "luarocks --lua-version 5.1 make mintgate-scm-1.rockspec LUA_INCDIR=/usr/include/luajit-2.1 (exit $st)" "$st"
luarocks --lua-version 5.1 --tree "$tree" list --porcelain 2>/dev/null | grep -q '^mintgate	scm-1	installed'
check "the tree lists mintgate scm-1" $?
"$tree/bin/mintgate" --version >/dev/null 2>&1
check "$tree/bin/mintgate --version" $?
lp="$tree/share/lua/5.1/?.lua;$tree/share/lua/5.1/?/init.lua"
LUA_PATH="$lp" luajit -e '
  local mg = require "mintgate"
  assert(type(mg.pool) == "function", "mintgate.pool")
  assert(require("mintgate.stale"), "mintgate.stale")
  assert(package.searchpath("mintgate", package.path):find("/share/lua/5.1/", 1, true), "from the tree")
' 2>&1
check "luajit loads mintgate and mintgate.stale from the tree" $?
finish
