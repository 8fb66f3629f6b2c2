-- mg.warmup (issue 12, item 4): reads try cold; a miss reads warm, and warm's hit is
-- answered and added to cold with its remaining TTL (or `ttl`); writes go to cold,
-- deletes to both. Observed on the memcached servers themselves. Then
-- examples/migrate_warmup.lua: a switch moves keys to a new pool that fills as it goes.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local ttl_on, value_on, set_on = client.ttl_on, client.value_on, client.set_on

describe("mg.warmup", function()
  local E, C, W, gw
  lazy_setup(function()
    E = env.new("warmup")
    C, W = E:memcached(), E:memcached()
    gw = E:gateway { threads = 2, config = string.format([[
      local mg = require "mintgate"
      local cold = mg.pool { name = "cold", servers = { "127.0.0.1:%d" } }
      local warm = mg.pool { name = "warm", servers = { "127.0.0.1:%d" } }
      mg.route { default = mg.warmup { cold = cold, warm = warm, ttl = 60, name = "wu" } }
    ]], C.port, W.port) }
  end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  it("a miss on cold reads warm; the hit fills cold with its remaining TTL", function()
    assert.equal("STORED", set_on(W.port, "w1", "from-warm", 7, 500))
    local c = E:client(gw.port)
    local items = c:get("w1")
    assert.equal("from-warm", items.w1.value)
    assert.equal("7", tostring(items.w1.flags))
    local filled = env.wait_until(2, function() return ttl_on(C.port, "w1") ~= nil end, 0.02)
    assert(filled, "w1 was not added to cold")
    local t = ttl_on(C.port, "w1")
    assert(t > 490 and t <= 500, "cold TTL " .. t)
    assert.equal("from-warm", value_on(C.port, "w1"))
    -- the next read is a cold hit
    assert.equal("from-warm", c:value("w1"))
    local st = E:client(gw.port):stats("stats routes")
    assert.equal("warmup", st["route:wu:kind"])
    assert.equal("1", st["route:wu:fills"])
  end)

  it("a warm value without a TTL gets the route's ttl on cold", function()
    assert.equal("STORED", set_on(W.port, "w2", "forever"))
    assert.equal("forever", E:client(gw.port):value("w2"))
    assert(env.wait_until(2, function() return ttl_on(C.port, "w2") ~= nil end, 0.02))
    local t = ttl_on(C.port, "w2")
    assert(t > 50 and t <= 60, "cold TTL " .. t)
  end)

  it("cold's value wins; writes go to cold only; a miss on both is a miss", function()
    assert.equal("STORED", set_on(W.port, "w3", "old"))
    assert.equal("STORED", set_on(C.port, "w3", "new"))
    local c = E:client(gw.port)
    assert.equal("new", c:value("w3"))
    assert.equal("STORED", c:set("w4", "written"))
    assert.equal("written", value_on(C.port, "w4"))
    assert.is_nil(value_on(W.port, "w4"))
    assert.is_nil(c:value("nowhere"))
  end)

  it("a delete reaches both pools", function()
    assert.equal("STORED", set_on(W.port, "w5", "a"))
    assert.equal("STORED", set_on(C.port, "w5", "b"))
    assert.equal("DELETED", E:client(gw.port):cmd("delete w5"))
    assert(env.wait_until(2, function()
      return value_on(W.port, "w5") == nil
    end, 0.02), "w5 is still on warm")
    assert.is_nil(value_on(C.port, "w5"))
    assert.is_nil(E:client(gw.port):value("w5"), "deleted, then read back through warm")
  end)
end)

describe("examples/migrate_warmup.lua", function()
  local E
  lazy_setup(function() E = env.new("migrate_warmup") end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  it("a switch moves keys to the new pool, which fills from the old one as they are read", function()
    local gw, mcs = env.start_example(E, "migrate_warmup", 2)
    local old, new = mcs[1], mcs[2]
    local c = E:client(gw.port)
    for i = 1, 50 do assert.equal("STORED", c:set("m:" .. i, "v" .. i, 0, 900)) end
    assert.is_nil(value_on(new.port, "m:1"))
    assert.equal("OK", env.admin_cmd(gw.admin_port, "switch migrate 100"))
    for i = 1, 50 do assert.equal("v" .. i, c:value("m:" .. i), "m:" .. i) end
    local filled = env.wait_until(2, function()
      return value_on(new.port, "m:50") == "v50"
    end, 0.02)
    assert(filled, "the new pool did not fill")
    for i = 1, 50 do
      assert.equal("v" .. i, value_on(new.port, "m:" .. i))
    end
    -- writes now go to the new pool only
    assert.equal("STORED", c:set("m:1", "changed"))
    assert.equal("changed", value_on(new.port, "m:1"))
    assert.equal("v1", value_on(old.port, "m:1"))
  end)
end)
