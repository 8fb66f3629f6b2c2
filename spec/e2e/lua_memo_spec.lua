-- mg.memo: resolutions (pool, policy, backend key) kept per worker by client key, so a key
-- seen before is routed without calling Lua. The route and key functions here note each
-- call in a file (a side effect a pure function would not have, used only to count calls).
-- Covered: hits skip the functions; the same answers as without a memo over many keys
-- (one key at a time, batches that mix hits and misses, a 65-key get); an admin switch
-- change taking effect at once for memoized keys; functions reading req.command kept per
-- command, and ones reading req.user or req.client never kept; the size bound under many
-- keys; errors and pool calls never kept; a reload starting an empty memo.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

-- A config over pools a and b (memcached ports pa, pb) with an admin listener, a switch
-- "to-b" at percent, a key function "app:" .. key, the route function body route (req
-- in scope; it may use a, b, sw, note) and the memo line memo ("" for none). Each call
-- of either function appends a line to the file log.
local function config(o)
  return string.format([[
local mg = require "mintgate"
mg.admin { "127.0.0.1:%d" }
%s
local a = mg.pool { name = "a", servers = { "127.0.0.1:%d" } }
local b = mg.pool { name = "b", servers = { "127.0.0.1:%d" } }
local sw = mg.switch { name = "to-b", percent = %s }
local function note(what)
  local f = assert(io.open(%q, "a"))
  f:write(what, "\n")
  f:close()
end
mg.keys(function(key) note("k " .. key) return "app:" .. key end)
mg.route(function(req)
  note("r " .. req.key)
  %s
end)
%s
]], o.admin, o.extra or "", o.pa, o.pb, tostring(o.percent or 0), o.log, o.route, o.memo or "")
end

local SWITCHED = "if sw:on(req.key) then return b end return a"

-- Lines in file path (0 when it does not exist).
local function lines(path)
  local s = env.read_file(path) or ""
  local n = 0
  for _ in s:gmatch("\n") do n = n + 1 end
  return n
end

-- The memo's counters (`stats` on the admin port: the data port may want authentication).
local function memo_stats(port)
  local c = client.connect(port)
  local s = c:stats()
  c:close()
  local out = {}
  for _, k in ipairs { "hits", "misses", "evictions", "uncacheable", "entries", "capacity" } do
    out[k] = tonumber(s["lua_memo_" .. k])
  end
  return out
end

describe("mg.memo", function()
  local E, A, B

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_memo")
    A, B = E:memcached(), E:memcached()
  end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() E:close_clients() end)

  -- A gateway for the options of config (admin port and log file filled in).
  local n = 0
  local function gateway(o, threads)
    n = n + 1
    o.pa, o.pb = o.pa or A.port, o.pb or B.port
    o.admin = env.free_port()
    o.log = string.format("%s/calls-%d.log", E.dir, n)
    local gw = E:gateway { threads = threads or 1, config = config(o) }
    assert(env.wait_until(5, function() return env.port_open(o.admin) end), "no admin listener")
    gw.admin_port, gw.log = o.admin, o.log
    return gw
  end

  it("answers a key it has without calling the functions; a reload starts it empty", function()
    local gw = gateway { route = SWITCHED, percent = 50, memo = "mg.memo { size = 1000 }" }
    local c = E:client(gw.port)
    for i = 1, 100 do assert.equal("STORED", c:set("hit:" .. i, "v" .. i)) end
    assert.equal(200, lines(gw.log), "one route and one key function call per key")
    for i = 1, 100 do assert.equal("v" .. i, c:value("hit:" .. i)) end
    local keys = {}
    for i = 1, 100 do keys[i] = "hit:" .. i end
    local items = c:get(unpack(keys)) -- a batch: all from the memo
    for i = 1, 100 do assert.equal("v" .. i, items["hit:" .. i].value) end
    assert.equal(200, lines(gw.log), "no call for a key the memo has")
    assert.same({ hits = 200, misses = 100, evictions = 0, uncacheable = 0, entries = 100,
      capacity = 1000 }, memo_stats(gw.admin_port))

    assert.equal("OK", env.admin_cmd(gw.admin_port, "reload"))
    assert.equal(0, memo_stats(gw.admin_port).entries, "a new state, a new memo")
    assert.equal("v1", c:value("hit:1"))
    assert.equal(202, lines(gw.log))
    assert.equal("v1", c:value("hit:1"))
    assert.equal(202, lines(gw.log))
  end)

  it("gives the answers the functions give, one key at a time and in batches", function()
    local plain = gateway({ route = SWITCHED, percent = 30 }, 2)
    local memo = gateway({ route = SWITCHED, percent = 30, memo = "mg.memo { size = 100000 }" }, 2)
    local p = E:client(plain.port)
    local m = E:client(memo.port)
    local N = 2000
    for i = 1, N do assert.equal("STORED", p:set("same:" .. i, "v" .. i)) end
    for i = 1, N, 2 do assert.equal("v" .. i, m:value("same:" .. i)) end -- odd keys memoized
    for round = 1, 2 do -- batches: half hits, half misses; then all hits
      for first = 1, N, 100 do
        local keys = {}
        for i = first, first + 99 do keys[#keys + 1] = "same:" .. i end
        local items = m:get(unpack(keys))
        for i = first, first + 99 do
          assert.equal("v" .. i, items["same:" .. i] and items["same:" .. i].value,
            "same:" .. i .. " round " .. round)
        end
      end
    end
    for i = 1, N do assert.equal("v" .. i, m:value("same:" .. i)) end
    -- writes through the memo land where the plain gateway looks
    for i = 1, 200 do assert.equal("STORED", m:set("w:" .. i, "w" .. i)) end
    for i = 1, 200 do assert.equal("w" .. i, p:value("w:" .. i)) end
    -- 65 keys: a batch of 64, then one key alone (its backend key after the batch's)
    for _, c in ipairs { p, m, m } do
      local keys = {}
      for i = 1, 65 do keys[i] = "same:" .. (i * 7) end
      local items = c:get(unpack(keys))
      for i = 1, 65 do assert.equal("v" .. (i * 7), items[keys[i]] and items[keys[i]].value) end
    end
    local st = memo_stats(memo.admin_port)
    -- odd keys, the second round of batches, every key alone again, two 65-key gets
    assert.equal(N / 2 + N + N + 2 * 65, st.hits)
    assert.equal(0, st.uncacheable)
    -- every key went where the switch sends it, under app:
    local on_b = 0
    for i = 1, N do
      local va, vb = client.value_on(A.port, "app:same:" .. i), client.value_on(B.port, "app:same:" .. i)
      assert.is_true((va == nil) ~= (vb == nil), "same:" .. i .. " on exactly one pool")
      if vb then on_b = on_b + 1 end
    end
    assert.is_true(on_b > N * 0.2 and on_b < N * 0.4, "30 % switched: " .. on_b)
  end)

  it("follows a switch changed from the admin port at once, memoized keys too", function()
    local gw = gateway({ route = SWITCHED, percent = 0, memo = "mg.memo { size = 1000 }" }, 2)
    local keys = {}
    for i = 1, 50 do
      keys[i] = "sw:" .. i
      assert.equal("STORED", client.set_on(A.port, "app:" .. keys[i], "A"))
      assert.equal("STORED", client.set_on(B.port, "app:" .. keys[i], "B"))
    end
    local conns = { E:client(gw.port), E:client(gw.port), E:client(gw.port) }
    local function all(want)
      for _, c in ipairs(conns) do
        for _, k in ipairs(keys) do assert.equal(want, c:value(k), k) end
        local items = c:get(unpack(keys))
        for _, k in ipairs(keys) do assert.equal(want, items[k] and items[k].value, k) end
      end
    end
    all("A")
    all("A")
    local calls = lines(gw.log)
    local before = memo_stats(gw.admin_port)
    assert.equal("OK", env.admin_cmd(gw.admin_port, "switch to-b 100"))
    all("B")
    assert.is_true(lines(gw.log) > calls, "the switched keys were resolved again")
    assert.is_true(memo_stats(gw.admin_port).misses > before.misses)
    calls = lines(gw.log)
    all("B")
    assert.equal(calls, lines(gw.log), "and memoized again")
    assert.equal("OK", env.admin_cmd(gw.admin_port, "switch to-b 0"))
    all("A")
    -- the same value again changes nothing: the memo keeps its entries
    calls = lines(gw.log)
    assert.equal("OK", env.admin_cmd(gw.admin_port, "switch to-b 0"))
    all("A")
    assert.equal(calls, lines(gw.log))
  end)

  it("keeps a function reading req.command per command", function()
    local gw = gateway { memo = "mg.memo { size = 1000 }",
      route = 'if req.command == "set" then return a end return b' }
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("cmd:1", "to-a"))
    assert.equal("to-a", client.value_on(A.port, "app:cmd:1"))
    assert.is_nil(c:value("cmd:1"), "gets go to b")
    assert.equal("STORED", client.set_on(B.port, "app:cmd:1", "on-b"))
    assert.equal("on-b", c:value("cmd:1"))
    assert.equal("STORED", c:set("cmd:1", "to-a 2"))
    assert.equal("to-a 2", client.value_on(A.port, "app:cmd:1"))
    assert.equal("on-b", c:value("cmd:1"))
    assert.equal(4, lines(gw.log), "set and get resolved once each")
    local st = memo_stats(gw.admin_port)
    assert.equal(3, st.hits, "the second get, the second set, the third get")
    assert.equal(2, st.entries)
  end)

  it("never keeps a function reading req.user or req.client", function()
    local users = E.dir .. "/users"
    env.write_file(users, "u1:p1\nu2:p2\n")
    local gw = gateway { memo = "mg.memo { size = 1000 }",
      extra = string.format("mg.auth { file = %q }", users),
      route = 'if req.user == "u1" then return a end return b' }
    assert.equal("STORED", client.set_on(A.port, "app:user:1", "A"))
    assert.equal("STORED", client.set_on(B.port, "app:user:1", "B"))
    local function auth(user, pw)
      local c = E:client(gw.port)
      local cred = user .. " " .. pw
      assert.equal("STORED", c:cmd(string.format("set auth 0 0 %d\r\n%s", #cred, cred)))
      return c
    end
    local c1, c2 = auth("u1", "p1"), auth("u2", "p2")
    for _ = 1, 3 do
      assert.equal("A", c1:value("user:1"))
      assert.equal("B", c2:value("user:1"))
      local items = c2:get("user:1", "user:1")
      assert.equal("B", items["user:1"].value)
    end
    local st = memo_stats(gw.admin_port)
    assert.equal(0, st.hits)
    assert.equal(0, st.entries)
    assert.equal(12, st.uncacheable)

    local gc = gateway { memo = "mg.memo { size = 1000 }",
      route = 'if req.client:find("127.0.0.1", 1, true) then return a end return b' }
    local c = E:client(gc.port)
    for _ = 1, 3 do assert.equal("A", c:value("user:1")) end
    assert.equal(6, lines(gc.log))
    assert.equal(0, memo_stats(gc.admin_port).hits)
  end)

  it("holds at most its size under many distinct keys", function()
    local gw = gateway { route = SWITCHED, percent = 50, memo = "mg.memo { size = 64 }" }
    local c = E:client(gw.port)
    for i = 1, 1000 do assert.equal("STORED", c:set("many:" .. i, "v" .. i)) end
    for i = 1, 1000 do assert.equal("v" .. i, c:value("many:" .. i)) end
    local st = memo_stats(gw.admin_port)
    assert.equal(64, st.capacity)
    assert.is_true(st.entries <= 64 and st.entries > 32, "entries " .. st.entries)
    assert.is_true(st.evictions >= 2000 - 64 - st.hits, "evictions " .. st.evictions)
    -- a key seen just now is there
    local calls = lines(gw.log)
    assert.equal("v1000", c:value("many:1000"))
    assert.equal(calls, lines(gw.log))
  end)

  it("never keeps an error or a resolution that made a pool call", function()
    local gw = gateway { memo = "mg.memo { size = 1000 }", route = [[
      if req.key:sub(1, 4) == "bad:" then error("refused " .. req.key) end
      if req.key:sub(1, 3) == "io:" then a:get("probe") end
      return a]] }
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("ok:1", "fine"))
    assert.equal("STORED", c:set("io:1", "io"))
    for _ = 1, 3 do
      assert.matches("^SERVER_ERROR", c:cmd("get bad:1"))
      local items = c:get("bad:2", "ok:1")
      assert.equal("fine", items["ok:1"].value)
      assert.is_nil(items["bad:2"])
      assert.equal("io", c:value("io:1"))
    end
    local log = env.read_file(gw.log)
    local function count(what)
      local k = 0
      for _ in log:gmatch("r " .. what:gsub("%p", "%%%0") .. "\n") do k = k + 1 end
      return k
    end
    assert.equal(3, count("bad:1"))
    assert.equal(3, count("bad:2"))
    assert.equal(4, count("io:1"), "the set and every get")
    assert.equal(1, count("ok:1"), "only its set")
    local st = memo_stats(gw.admin_port)
    assert.equal(6 + 4, st.uncacheable)
    assert.equal(1, st.entries)
    assert.is_true(gw:alive())
  end)
end)
