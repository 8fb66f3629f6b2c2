-- `stats pools`: per pool, its servers, whether a staleness policy applies, herd counters
-- and a cumulative histogram of backend reply latency (DESIGN.md §8).
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local CONFIG = [[
local mg = require "mintgate"
local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
local plain = mg.pool { name = "plain", servers = { "127.0.0.1:%d" }, stale = "none" }
mg.stale { grace = 10, lock = 2, wait = 100 }
mg.route { ["p:"] = plain, default = main }
]]

describe("stats pools", function()
  local E, gw

  lazy_setup(function()
    env.require_binary()
    E = env.new("stats_pools")
    local a, b = E:memcached(), E:memcached()
    gw = E:gateway { threads = 1, config = string.format(CONFIG, a.port, b.port) }
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  local function pools()
    local c = client.connect(gw.port)
    local s = c:stats("stats pools")
    c:close()
    return s
  end

  it("names each pool's servers and whether a staleness policy applies", function()
    local s = pools()
    assert.equal("1", s["pool:main:servers"])
    assert.equal("yes", s["pool:main:stale"])
    assert.equal("no", s["pool:plain:stale"])
  end)

  it("counts every backend reply in its pool's latency histogram, cumulatively", function()
    local before = pools()
    local c = client.connect(gw.port)
    for i = 1, 20 do assert.equal("STORED", c:set("k" .. i, "v")) end
    for i = 1, 20 do assert.equal("v", c:value("k" .. i)) end
    for i = 1, 5 do assert.equal("STORED", c:set("p:" .. i, "v")) end
    c:close()
    local after = pools()
    local function n(s, k) return tonumber(s[k]) or 0 end
    assert.equal(40, n(after, "pool:main:latency_count") - n(before, "pool:main:latency_count"))
    assert.equal(5, n(after, "pool:plain:latency_count") - n(before, "pool:plain:latency_count"))
    -- cumulative: never decreasing, and the largest bound holds all of them here
    local prev = 0
    for _, b in ipairs { 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000,
                         500000, 1000000 } do
      local v = n(after, "pool:main:latency_le_" .. b .. "us")
      assert(v >= prev, "latency buckets must be cumulative at " .. b)
      prev = v
    end
    assert.equal(n(after, "pool:main:latency_count"), prev)
  end)

  it("counts herd events per pool", function()
    local a, b = client.connect(gw.port), client.connect(gw.port)
    local before = pools()
    assert.same({}, a:get("cold:1")) -- the lease: a refresher win in pool main
    assert.same({}, b:get("cold:1")) -- waits 100 ms, then misses
    local after = pools()
    a:close()
    b:close()
    local function d(k) return (tonumber(after[k]) or 0) - (tonumber(before[k]) or 0) end
    assert.equal(1, d("pool:main:herd_wins"))
    assert.equal(1, d("pool:main:herd_waits"))
    assert.equal(1, d("pool:main:herd_wait_timeouts"))
    assert.equal(0, d("pool:plain:herd_wins"))
  end)
end)
