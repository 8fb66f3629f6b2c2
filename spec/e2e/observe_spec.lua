-- The slow log, the sampled request log and route introspection (issue 13, items 4 and 5).
-- Real memcached; a hung backend is a SIGSTOPped memcached.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local SIGSTOP, SIGCONT = 19, 18

-- `stats slowlog` as { entries = {line, ...}, stats = {name = value} }.
local function slowlog(port)
  local c = client.connect(port)
  local reply = c:cmd("stats slowlog")
  local lines = { reply }
  while not lines[#lines]:match("^END") do lines[#lines + 1] = c:line() end
  c:close()
  local out = { entries = {}, stats = {} }
  for _, l in ipairs(lines) do
    local n, v = l:match("^STAT (slowlog_%S+) (%d+)$")
    if n then out.stats[n] = tonumber(v) end
    local e = l:match("^STAT slow:%d+ (.*)$")
    if e then out.entries[#out.entries + 1] = e end
  end
  return out
end

-- The STAT lines of an admin `route` answer as a table.
local function route(port, cmd, key)
  local c = client.connect(port)
  local first = c:cmd("route " .. cmd .. " " .. key)
  local t, l = {}, first
  while l and not l:match("^END") do
    local n, v = l:match("^STAT (%S+) (.*)$")
    if not n then return nil, l end
    t[n] = v
    l = c:line()
  end
  c:close()
  return t
end

describe("slow log, request log, route introspection", function()
  local E
  lazy_setup(function() E = env.new("observe") end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  it("the slow log catches requests to a hanging backend, with their fields", function()
    local A = E:memcached()
    local aport = env.free_port()
    local gw = E:gateway { threads = 2, args = { "-A", "127.0.0.1:" .. aport, "--slowlog-ms", "100" },
      config = string.format([[
        local mg = require "mintgate"
        mg.route { default = mg.pool { name = "main", servers = { "127.0.0.1:%d" },
          timeout = 0.3, failure_limit = 100 } }
      ]], A.port) }
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("fast", "1"))
    assert.equal("1", c:value("fast"))
    assert.equal(0, slowlog(aport).stats.slowlog_entries)
    A:signal(SIGSTOP)
    assert(env.wait_until(2, function() -- every thread stopped before the request goes out
      local f = io.open("/proc/" .. A.pid .. "/stat")
      local st = f and f:read("*a")
      if f then f:close() end
      return st and st:match("^%d+ %b() T")
    end, 0.005), "memcached did not stop")
    local slow_reply = c:cmd("get user:slow", 5)
    assert.matches("SERVER_ERROR", slow_reply)
    A:signal(SIGCONT)
    local log = slowlog(aport)
    assert.equal(1, log.stats.slowlog_entries)
    assert.equal(100000, log.stats.slowlog_threshold_us)
    local e = log.entries[1]
    assert.matches("cmd=get key=user:slow key_len=9 pool=main server=127.0.0.1:" .. A.port, e)
    assert.matches("outcome=SERVER_ERROR\\x20backend\\x20timeout", e, 1, true)
    local us = tonumber(e:match("us=(%d+)"))
    assert(us >= 250000 and us < 2000000, "took " .. tostring(us))
    -- reset, a lower threshold at run time, off
    local a = E:client(aport)
    assert.equal("OK", a:cmd("slowlog reset"))
    assert.equal(0, slowlog(aport).stats.slowlog_entries)
    assert.equal("OK", a:cmd("slowlog 0 4"))
    for i = 1, 6 do c:value("k" .. i) end
    log = slowlog(aport)
    assert.equal(4, log.stats.slowlog_size)
    assert.equal(4, log.stats.slowlog_entries) -- bounded: the newest 4
    assert.matches("key=k6 ", log.entries[1])
    assert.equal("OK", a:cmd("slowlog off"))
    assert.equal("OK", a:cmd("slowlog reset"))
    c:value("k1")
    assert.equal(0, slowlog(aport).stats.slowlog_entries)
    assert.matches("^CLIENT_ERROR usage", a:cmd("slowlog fast"))
    assert.matches("^CLIENT_ERROR usage", a:cmd("slowlog 1 0"))
    -- the data port refuses admin commands, and the slow log (keys, client addresses)
    assert.matches("^CLIENT_ERROR admin commands", c:cmd("slowlog reset"))
    assert.matches("^CLIENT_ERROR stats slowlog is answered on the admin port only",
      c:cmd("stats slowlog"))
  end)

  it("requestlog N logs every Nth request; 0 stops it", function()
    local A = E:memcached()
    local aport = env.free_port()
    local gw = E:gateway { threads = 1, servers = { A.port }, args = { "-A", "127.0.0.1:" .. aport } }
    local a, c = E:client(aport), E:client(gw.port)
    assert.equal("OK", a:cmd("requestlog 2"))
    for i = 1, 6 do c:value("rq" .. i) end
    assert.equal("OK", a:cmd("requestlog 0"))
    for i = 7, 10 do c:value("rq" .. i) end
    local logged = 0
    assert(env.wait_until(3, function()
      logged = select(2, gw:stderr():gsub("request: time=", ""))
      return logged >= 3
    end, 0.05), "logged " .. logged)
    assert(logged <= 4, "logged " .. logged) -- 6 gets and the admin's own lines, every 2nd
    assert.is_nil(gw:stderr():find("key=rq9 ", 1, true))
    assert.matches("^CLIENT_ERROR usage", a:cmd("requestlog -1"))
  end)

  it("route COMMAND KEY answers where keys really go: chain, pool, server, key, policy, switches", function()
    local A, B, G = E:memcached(), E:memcached(), E:memcached()
    local aport = env.free_port()
    local gw = E:gateway { threads = 2, args = { "-A", "127.0.0.1:" .. aport }, config = string.format([[
      local mg = require "mintgate"
      local main = mg.pool { name = "main", servers = { "127.0.0.1:%d", "127.0.0.1:%d" },
        keys = { style = "prefix", prefix = "app:" } }
      local gutter = mg.pool { name = "gutter", servers = { "127.0.0.1:%d" }, stale = "none" }
      mg.stale "newcache" -- the default: the failover route takes it
      mg.switch { name = "canary", percent = 50 }
      mg.route { ["user:"] = mg.failover { main, gutter, ttl = 10, name = "fo" }, default = gutter }
    ]], A.port, B.port, G.port) }
    local c = E:client(gw.port)
    local on, off = 0, 0
    for i = 1, 40 do
      local key = "user:" .. i
      assert.equal("STORED", c:set(key, "v" .. i))
      local t = assert(route(aport, "get", key))
      assert.equal("failover(fo) > main", t.chain)
      assert.equal("main", t.pool)
      assert.equal("app:" .. key, t.backend_key)
      assert.matches("^grace=", t.policy)
      -- the server it names really holds the key, under the transformed name
      local port = tonumber(t.server:match(":(%d+)$"))
      assert.equal("v" .. i, client.value_on(port, "app:" .. key))
      if t["switch:canary"] == "on" then on = on + 1 else off = off + 1 end
    end
    assert(on > 5 and off > 5, string.format("canary on %d, off %d", on, off))
    local t = assert(route(aport, "set", "other"))
    assert.equal("gutter", t.chain)
    assert.equal("other", t.backend_key)
    assert.equal("none", t.policy)
    assert.equal("127.0.0.1:" .. G.port, t.server)
    local _, err = route(aport, "stats", "x")
    assert.matches("^CLIENT_ERROR usage", err)
    _, err = route(aport, "get", ("k"):rep(300))
    assert.matches("^CLIENT_ERROR", err)
  end)

  it("route runs the script's route function, as a request would", function()
    local A, B = E:memcached(), E:memcached()
    local aport = env.free_port()
    local gw = E:gateway { threads = 1, args = { "-A", "127.0.0.1:" .. aport }, config = string.format([[
      local mg = require "mintgate"
      local a = mg.pool { name = "a", servers = { "127.0.0.1:%d" } }
      local b = mg.pool { name = "b", servers = { "127.0.0.1:%d" } }
      mg.route(function(req)
        if req.key:sub(1, 2) == "b:" then return b end
        if req.key == "boom" then error("no such key") end
        if req.key == "boom2" then error("two\r\nEND\r\nlines", 0) end
        return a
      end)
    ]], A.port, B.port) }
    local t = assert(route(aport, "get", "b:1"))
    assert.equal("b", t.pool)
    assert.equal("script", t.resolved_by)
    t = assert(route(aport, "get", "x"))
    assert.equal("a", t.pool)
    t = assert(route(aport, "get", "boom"))
    assert.matches("no such key", t.error)
    t = assert(route(aport, "get", "boom2")) -- an error with line breaks stays one line
    assert.equal("SERVER_ERROR lua: two", t.error) -- cut at the first line break
    assert.equal("get", t.command)
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("b:1", "in-b"))
    assert.equal("in-b", client.value_on(B.port, "b:1"))
  end)
end)
