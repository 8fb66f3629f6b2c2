-- Lua memory stays flat: 100,000 requests through a route function (asking a switch) and
-- a Lua key function that builds a new string per key, on two workers. After a warm-up,
-- the workers' Lua heaps (`stats` lua_memory_kb) and the process's VmRSS (not checked
-- under ASan, whose quarantine holds freed memory) must not grow by more than a few MB.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local LUA_GROWTH_KB = 4096
local RSS_GROWTH_KB = 8192

describe("Lua memory over 100,000 requests", function()
  local E, gw

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_memory")
    local a, b = E:memcached(), E:memcached()
    gw = E:gateway { threads = 2, config = string.format([[
      local mg = require "mintgate"
      local main = mg.pool { name = "main", servers = { "127.0.0.1:%d", "127.0.0.1:%d" } }
      local side = mg.pool { name = "side", servers = { "127.0.0.1:%d" } }
      local sw = mg.switch { name = "side", percent = 30 }
      mg.route(function(req)
        if sw:on(req.key) then return side end
        return main
      end)
      mg.keys(function(key, req)
        return "mem:" .. #req.key .. ":" .. key:upper()
      end)
    ]], a.port, b.port, a.port) }
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  -- n requests over 4 connections, pipelined 100 at a time: a set and a get of a new key
  -- each time (two requests), every reply checked.
  local serial = 0
  local function load(n)
    local cs = {}
    for i = 1, 4 do
      cs[i] = E:client(gw.port)
    end
    local done = 0
    while done < n do
      for _, c in ipairs(cs) do
        local t = {}
        for _ = 1, 50 do
          serial = serial + 1
          local k = "key:" .. serial
          t[#t + 1] = "set " .. k .. " 0 0 5\r\nvalue\r\nget " .. k .. "\r\n"
        end
        c:send(table.concat(t))
      end
      for _, c in ipairs(cs) do
        for _ = 1, 50 do
          local l = c:line()
          if l ~= "STORED" then error("set answered " .. l) end
          local items = c:get_reply()
          local _, it = next(items)
          if not it or it.value ~= "value" then error("get did not find the value just set") end
        end
      end
      done = done + 4 * 100
    end
    for _, c in ipairs(cs) do c:close() end
  end

  local function measure()
    env.sleep(1.2) -- lua_memory_kb is sampled about once a second per worker
    local c = client.connect(gw.port)
    local s = c:stats()
    c:close()
    return tonumber(s.lua_memory_kb), env.rss_kb(gw.pid)
  end

  it("stays flat after a warm-up", function()
    load(20000)
    local lua0, rss0 = measure()
    assert.is_number(rss0)
    load(100000)
    local lua1, rss1 = measure()
    io.stdout:write(string.format("\n  lua_memory_kb %s -> %s, VmRSS %d -> %d KB\n",
      tostring(lua0), tostring(lua1), rss0, rss1))
    assert(lua0, "stats has no lua_memory_kb")
    assert(lua1 - lua0 < LUA_GROWTH_KB,
      string.format("Lua memory grew from %d to %d KB over 100,000 requests", lua0, lua1))
    -- a sanitizer build keeps freed memory in quarantine (256 MB): VmRSS says nothing there
    local maps = env.read_file("/proc/" .. gw.pid .. "/maps") or ""
    if not maps:find("libasan", 1, true) then
      assert(rss1 - rss0 < RSS_GROWTH_KB,
        string.format("VmRSS grew from %d to %d KB over 100,000 requests", rss0, rss1))
    end
    assert.is_true(gw:alive())
  end)
end)
