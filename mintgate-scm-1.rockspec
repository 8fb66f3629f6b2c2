-- mintgate-scm-1.rockspec: the gateway binary and its Lua config modules as a rock.
--
--   luarocks --lua-version 5.1 make mintgate-scm-1.rockspec LUA_INCDIR=/usr/include/luajit-2.1
--       (into the system tree, /usr/local; add --local for ~/.luarocks, --tree DIR)
--
-- Debian 12's luarocks 3.8 checks for Lua headers even for this build, and may default to
-- another Lua: hence Lua 5.1 and LuaJIT's headers. spec/run_rock.sh (make test) runs it.
-- Builds ./mintgate with the Makefile (Debian packages: `make deps`) and installs it as
-- bin/mintgate, with `mintgate` and `mintgate.stale` as Lua modules and the examples in
-- the rock's directory. The gateway embeds LuaJIT (Lua 5.1): it finds the modules in the
-- system tree by default; for another tree put that tree on LUA_PATH (`luarocks path`) or
-- MINTGATE_LUA_PATH.
rockspec_format = "3.0"
package = "mintgate"
version = "scm-1"

source = {
  url = "git+file://.", -- set to the published repository once there is one
}

description = {
  license = "UNLICENSED", -- no license chosen yet: nothing is granted
  summary = "A memcached-protocol cache gateway with Lua configuration",
  detailed = [[
mintgate speaks the memcached text and meta protocols to applications and the meta
protocol to pools of memcached servers behind it (ketama placement as libmemcached),
with thundering-herd protection for classic clients, named pools, prefix or Lua
routing, key transforms (django-newcache, Django, prefix), feature switches, hooks and
live reload. The C core runs on libev; a LuaJIT script configures it.
]],
  labels = { "memcached", "proxy", "cache", "gateway" },
}

dependencies = {
  "lua ~> 5.1", -- the modules run inside the gateway's LuaJIT
}

external_dependencies = {
  LIBEV = { header = "ev.h" },
  LUAJIT = { header = "luajit-2.1/luajit.h" },
  LIBMEMCACHED = { header = "libmemcached/memcached.h" },
}

build = {
  type = "command",
  build_command = "make mintgate",
  install = {
    bin = { mintgate = "mintgate" },
    lua = {
      ["mintgate"] = "lua/mintgate/init.lua",
      ["mintgate.stale"] = "lua/mintgate/stale.lua",
      ["mintgate.resolver"] = "lua/mintgate/resolver.lua",
      ["mintgate.guard"] = "lua/mintgate/guard.lua",
      ["mintgate.top"] = "lua/mintgate/top.lua",
      ["mintgate.lab"] = "lua/mintgate/lab.lua",
      ["mintgate.lab_workload"] = "lua/mintgate/lab_workload.lua",
    },
  },
  copy_directories = { "examples" },
}

test = {
  type = "command",
  command = "make spec",
}
