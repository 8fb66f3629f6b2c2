-- mg.shadow (issue 12, item 5): main serves; a sticky share of keys is also sent to the
-- copy pool; its replies never reach the client and its failures never show; classic
-- reads count mismatches. The share is a switch, changed at run time from the admin port.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local direct_value = client.value_on

-- How many of prefix0..prefix(n-1) port holds.
local function count_on(port, prefix, n)
  local d = client.connect(port)
  local found = 0
  for i = 0, n - 1, 100 do
    local keys = {}
    for j = i, math.min(i + 100, n) - 1 do keys[#keys + 1] = prefix .. j end
    for _ in pairs(d:get(table.unpack(keys))) do found = found + 1 end
  end
  d:close()
  return found
end

local function set_n(c, prefix, n)
  local req = {}
  for i = 0, n - 1 do req[#req + 1] = string.format("set %s%d 0 0 1\r\nv\r\n", prefix, i) end
  c:send(table.concat(req))
  for i = 0, n - 1 do assert.equal("STORED", c:line(10), prefix .. i) end
end

describe("mg.shadow", function()
  local E
  lazy_setup(function() E = env.new("shadow") end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  -- A gateway with the shadow route "sh"; returns it and its admin port.
  local function gateway(M, T, percent)
    local admin = env.free_port()
    local gw = E:gateway { threads = 2, config = string.format([[
      local mg = require "mintgate"
      mg.admin { "127.0.0.1:%d" }
      local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
      local test = mg.pool { name = "test", servers = { "127.0.0.1:%d" }, timeout = 0.2,
        connect_timeout = 0.2 }
      mg.route { default = mg.shadow { main, copy = test, percent = %s, name = "sh" } }
    ]], admin, M.port, T.port, tostring(percent)) }
    return gw, admin
  end

  it("at 100 %: writes reach both, reads answer from main and count the copy's mismatches", function()
    local M, T = E:memcached(), E:memcached()
    local gw = gateway(M, T, 100)
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("s1", "same"))
    assert.equal("STORED", c:set("s2", "main-value"))
    assert(env.wait_until(2, function() return direct_value(T.port, "s2") == "main-value" end, 0.02))
    local d = client.connect(T.port)
    assert.equal("STORED", d:set("s2", "test-value")) -- the copy now differs
    d:close()
    assert.equal("same", c:value("s1"))
    assert.equal("main-value", c:value("s2"))
    assert.is_nil(c:value("s3")) -- a miss on both: no mismatch
    assert.equal("DELETED", c:cmd("delete s1"))
    assert(env.wait_until(2, function() return direct_value(T.port, "s1") == nil end, 0.02),
      "the delete did not reach the copy")
    local st
    assert(env.wait_until(2, function()
      st = E:client(gw.port):stats("stats routes")
      return st["route:sh:shadow_mismatches"] == "1"
    end, 0.05), "mismatches: " .. tostring(st and st["route:sh:shadow_mismatches"]))
    assert.equal("shadow", st["route:sh:kind"])
    assert.equal("0", st["route:sh:shadow_errors"])
    assert(tonumber(st["route:sh:shadow_copies"]) >= 6, st["route:sh:shadow_copies"])
  end)

  it("a sticky share of keys at 5 %, none at 0 %, and the share changes at run time", function()
    local M, T = E:memcached(), E:memcached()
    local gw = gateway(M, T, 5)
    local c = E:client(gw.port)
    set_n(c, "p:", 2000)
    assert.equal(2000, count_on(M.port, "p:", 2000))
    local on_t
    env.wait_until(2, function()
      local n = count_on(T.port, "p:", 2000)
      local stable = n == on_t
      on_t = n
      return stable and n > 0
    end, 0.1)
    assert(on_t >= 50 and on_t <= 160, "keys on the copy at 5 %: " .. on_t)
    -- sticky: the same keys again, not new ones
    set_n(c, "p:", 2000)
    env.sleep(0.2)
    assert.equal(on_t, count_on(T.port, "p:", 2000))    local st = E:client(gw.port):stats("stats switches")
    assert.truthy(st["switch:shadow.test:percent"], "the shadow's switch is listed")
  end)

  it("at 0 % nothing is copied; raised from the admin port, the copies start", function()
    local M, T = E:memcached(), E:memcached()
    local gw, admin = gateway(M, T, 0)
    local c = E:client(gw.port)
    set_n(c, "z:", 300)
    env.sleep(0.2)
    assert.equal(0, count_on(T.port, "z:", 300))
    assert.equal("OK", env.admin_cmd(admin, "switch shadow.test 100"))
    set_n(c, "z:", 300)
    assert(env.wait_until(2, function() return count_on(T.port, "z:", 300) == 300 end, 0.05))
  end)

  it("a dead copy pool: clients see nothing of it; its failures are counted", function()
    local M, T = E:memcached(), E:memcached()
    local gw = gateway(M, T, 100)
    E:stop(T)
    local c = E:client(gw.port)
    for i = 1, 50 do assert.equal("STORED", c:set("d" .. i, "v" .. i)) end
    for i = 1, 50 do assert.equal("v" .. i, c:value("d" .. i)) end
    assert.equal("DELETED", c:cmd("delete d1"))
    local st = E:client(gw.port):stats("stats routes")
    assert(tonumber(st["route:sh:shadow_errors"]) > 0, st["route:sh:shadow_errors"])
    assert.equal("0", st["route:sh:shadow_mismatches"])
  end)

  it("examples/shadow.lua: raised to 100 % from the admin port, every write is copied", function()
    local gw, mcs = env.start_example(E, "shadow", 2)
    assert.equal("OK", env.admin_cmd(gw.admin_port, "switch shadow.test 100"))
    local c = E:client(gw.port)
    set_n(c, "x:", 200)
    assert(env.wait_until(2, function() return count_on(mcs[2].port, "x:", 200) == 200 end, 0.05))
    assert.equal("OK", env.admin_cmd(gw.admin_port, "switch shadow.test 0"))
    set_n(c, "y:", 200)
    env.sleep(0.2)
    assert.equal(0, count_on(mcs[2].port, "y:", 200))
    assert.equal(200, count_on(mcs[1].port, "y:", 200))
  end)
end)
