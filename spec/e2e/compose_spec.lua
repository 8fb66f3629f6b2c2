-- Routes inside routes (issue 12): a route's child may be a route. The case the issue names:
-- a failover of a warm-up of a replicated pool -- writes reach both replicas, a miss there
-- reads the warm pool and fills both replicas, a delete reaches every pool under the tree,
-- and with both replicas dead the gutter takes reads and writes (TTL capped). Also a shadow
-- whose copy is a replicated route, and a replicated route whose replica is a failover.
-- Real memcached servers, killed for real.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local value_on, set_on, ttl_on = client.value_on, client.set_on, client.ttl_on

describe("routes inside routes", function()
  local E
  lazy_setup(function() E = env.new("compose") end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  local POOL = [[local %s = mg.pool { name = %q, servers = { "127.0.0.1:%d" }, timeout = 0.3,
    connect_timeout = 0.3, failure_limit = 1, retry_timeout = 30 }
  ]]

  -- failover { warmup { cold = replicate { a, b }, warm = old }, gutter, ttl = 10 }
  local function tree(A, B, OLD, G)
    local cfg = "local mg = require 'mintgate'\n" ..
      POOL:format("a", "a", A.port) .. POOL:format("b", "b", B.port) ..
      POOL:format("old", "old", OLD.port) .. POOL:format("g", "gutter", G.port) .. [[
      local rep = mg.replicate { a, b, name = "rep" }
      local warm = mg.warmup { cold = rep, warm = old, ttl = 3600, name = "warm" }
      mg.route { default = mg.failover { warm, g, ttl = 10, name = "fo" } }
    ]]
    return E:gateway { threads = 2, config = cfg }
  end

  it("a failover of a warm-up of a replicated pool: writes, warm-up fills, deletes", function()
    local A, B, OLD, G = E:memcached(), E:memcached(), E:memcached(), E:memcached()
    local gw = tree(A, B, OLD, G)
    local c = E:client(gw.port)
    -- a write goes to cold, which is both replicas; not to warm, not to the gutter
    assert.equal("STORED", c:set("w1", "v1", 0, 100))
    assert.equal("v1", value_on(A.port, "w1"))
    assert.equal("v1", value_on(B.port, "w1"))
    assert.is_nil(value_on(OLD.port, "w1"))
    assert.is_nil(value_on(G.port, "w1"))
    -- a key only warm has: read through, then added to both replicas with warm's TTL
    assert.equal("STORED", set_on(OLD.port, "w2", "from-old", 5, 200))
    local hit = c:get("w2").w2
    assert.equal("from-old", hit and hit.value)
    assert.equal(5, hit and hit.flags)
    for _, S in ipairs { A, B } do
      assert(env.wait_until(3, function() return value_on(S.port, "w2") == "from-old" end, 0.02),
        "the warm-up fill never reached a replica")
      local t = ttl_on(S.port, "w2")
      assert(t and t > 150 and t <= 200, "filled with TTL " .. tostring(t))
    end
    -- a delete reaches every pool under the tree: both replicas, warm and the gutter
    for _, S in ipairs { A, B, OLD, G } do assert.equal("STORED", set_on(S.port, "w3", "x")) end
    assert.equal("DELETED", c:cmd("delete w3"))
    for _, S in ipairs { A, B, OLD, G } do
      assert(env.wait_until(3, function() return value_on(S.port, "w3") == nil end, 0.02),
        "port " .. S.port .. " kept a deleted key")
    end
    local st = E:client(gw.port):stats("stats routes")
    assert.equal("warm", st["route:fo:child:0"])
    assert.equal("rep", st["route:warm:child:0"])
    assert(tonumber(st["route:fo:requests"]) >= 3, st["route:fo:requests"])
    assert(tonumber(st["route:rep:requests"]) >= 3, st["route:rep:requests"])
    assert.equal("1", st["route:warm:misses_moved"])
    assert.equal("2", st["route:warm:fills"]) -- one per replica
    assert.equal("0", st["route:fo:fallbacks"])
  end)

  it("the replicas dead: the gutter takes reads and writes, TTL capped; warm is not written", function()
    local A, B, OLD, G = E:memcached(), E:memcached(), E:memcached(), E:memcached()
    local gw = tree(A, B, OLD, G)
    local c = E:client(gw.port)
    E:stop(A)
    E:stop(B)
    assert.equal("STORED", c:set("d1", "v1", 0, 100))
    assert.equal("v1", value_on(G.port, "d1"))
    local t = ttl_on(G.port, "d1")
    assert(t and t > 0 and t <= 10, "gutter TTL " .. tostring(t))
    assert.is_nil(value_on(OLD.port, "d1"))
    assert.equal("v1", c:value("d1"))
    local st = E:client(gw.port):stats("stats routes")
    assert(tonumber(st["route:fo:fallbacks"]) >= 2, st["route:fo:fallbacks"])
    assert.equal("1", st["route:fo:fallback_writes"])
    assert.equal("0", st["route:fo:failed"])
  end)

  it("one replica dead: the write still reaches the other before the gutter takes it", function()
    local A, B, OLD, G = E:memcached(), E:memcached(), E:memcached(), E:memcached()
    local gw = tree(A, B, OLD, G)
    local c = E:client(gw.port)
    E:stop(A)
    assert.equal("STORED", c:set("o1", "v1", 0, 100))
    assert.equal("v1", value_on(B.port, "o1"))
    assert.equal("v1", value_on(G.port, "o1"))
  end)

  it("a shadow whose copy is a replicated route; a replica that is a failover", function()
    local M, C1, C2, R1, G = E:memcached(), E:memcached(), E:memcached(), E:memcached(),
      E:memcached()
    local gw = E:gateway { threads = 1, config = "local mg = require 'mintgate'\n" ..
      POOL:format("m", "m", M.port) .. POOL:format("c1", "c1", C1.port) ..
      POOL:format("c2", "c2", C2.port) .. POOL:format("r1", "r1", R1.port) ..
      POOL:format("g", "g", G.port) .. [[
      local shade = mg.shadow { m, copy = mg.replicate { c1, c2 }, percent = 100, name = "sh" }
      local rep2 = mg.replicate { mg.failover { r1, g, name = "r1g" }, m, name = "rep2" }
      mg.route { ["s:"] = shade, ["r:"] = rep2, default = m }
    ]] }
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("s:1", "v"))
    assert.equal("v", value_on(M.port, "s:1"))
    for _, S in ipairs { C1, C2 } do
      assert(env.wait_until(3, function() return value_on(S.port, "s:1") == "v" end, 0.02),
        "the shadow copy missed a replica of the copy route")
    end
    assert.equal("v", c:value("s:1"))
    -- the replicated route's first replica is a failover: with r1 dead its writes land on g
    assert.equal("STORED", c:set("r:1", "x", 0, 100))
    assert.equal("x", value_on(R1.port, "r:1"))
    assert.equal("x", value_on(M.port, "r:1"))
    E:stop(R1)
    assert.equal("STORED", c:set("r:2", "y", 0, 100))
    assert.equal("y", value_on(M.port, "r:2"))
    assert.equal("y", value_on(G.port, "r:2"))
    assert.equal("y", c:value("r:2"))
    assert.equal("DELETED", c:cmd("delete r:2"))
    assert(env.wait_until(3, function()
      return value_on(M.port, "r:2") == nil and value_on(G.port, "r:2") == nil
    end, 0.02), "a delete missed a pool under the replicated route")
  end)

  it("a script's key function's key holds on every pool of a route, fallbacks and copies", function()
    local A, G = E:memcached(), E:memcached()
    local gw = E:gateway { threads = 1, config = "local mg = require 'mintgate'\n" ..
      POOL:format("a", "a", A.port) .. POOL:format("g", "g", G.port) .. [[
      mg.keys(function(key) return "v2:" .. key end)
      mg.route { default = mg.failover { a, g, ttl = 10, name = "fo" } }
    ]] }
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("x", "1"))
    assert.equal("1", value_on(A.port, "v2:x"))
    -- the delete's copy to the gutter uses the function's key too
    assert.equal("STORED", set_on(G.port, "v2:x", "old"))
    assert.equal("DELETED", c:cmd("delete x"))
    assert(env.wait_until(3, function() return value_on(G.port, "v2:x") == nil end, 0.02),
      "the gutter kept v2:x")
    E:stop(A)
    assert.equal("STORED", c:set("y", "2", 0, 100))
    assert.equal("2", value_on(G.port, "v2:y"))
    assert.is_nil(value_on(G.port, "y"))
    assert.equal("2", c:value("y"))
  end)
end)
