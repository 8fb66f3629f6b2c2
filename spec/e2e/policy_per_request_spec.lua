-- A route function choosing the staleness policy per request: `return pool, "name"`, with
-- names from mg.policy or the built-in ones. The TTL memcached keeps shows which applied.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local CONFIG = [[
local mg = require "mintgate"
local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
mg.stale { grace = 20, lock = 2, wait = 0 }
mg.policy("short", { grace = 3, lock = 1, wait = 0 })
mg.route(function(req)
  local p = req.key:sub(1, 2)
  if p == "s:" then return main, "short" end
  if p == "n:" then return main, "none" end
  if p == "x:" then return main, "no-such-policy" end
  return main
end)
]]

describe("staleness policy chosen per request", function()
  local E, gw, mc

  lazy_setup(function()
    env.require_binary()
    E = env.new("policy_per_request")
    mc = E:memcached()
    gw = E:gateway { threads = 1, config = string.format(CONFIG, mc.port) }
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  -- remaining TTL memcached holds for key
  local function ttl(key)
    local d = client.connect(mc.port)
    local line = d:cmd("mg " .. key .. " t")
    d:close()
    return tonumber(line:match(" t(%-?%d+)")), line
  end

  it("applies the named policy, the built-in none, or the default", function()
    local c = client.connect(gw.port)
    for _, k in ipairs { "s:1", "n:1", "d:1" } do assert.equal("STORED", c:set(k, "v", 0, 100)) end
    c:close()
    local s, n, d = ttl("s:1"), ttl("n:1"), ttl("d:1")
    assert(s >= 101 and s <= 103, "short: 100 + 3 grace, got " .. tostring(s))
    assert(n >= 98 and n <= 100, "none: as given, got " .. tostring(n))
    assert(d >= 118 and d <= 120, "default: 100 + 20 grace, got " .. tostring(d))
  end)

  it("an unknown policy name fails that request only", function()
    local c = client.connect(gw.port)
    assert.equal("SERVER_ERROR lua: unknown staleness policy no-such-policy",
                 c:set("x:1", "v", 0, 100))
    assert.equal("STORED", c:set("d:2", "v"))
    c:close()
  end)
end)

describe("staleness policy per key of a multi-key get", function()
  local E, gw, mc

  lazy_setup(function()
    env.require_binary()
    E = env.new("policy_per_key")
    mc = E:memcached()
    gw = E:gateway { threads = 1, config = string.format([[
local mg = require "mintgate"
local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
mg.stale { grace = 20, lock = 5, wait = 50 }
mg.policy("waity", { grace = 3, lock = 5, wait = 50 })
mg.route(function(req)
  local p = req.key:sub(1, 2)
  if p == "w:" then return main, "waity" end
  if p == "n:" then return main, "none" end
  return main
end)
]], mc.port) }
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  it("cold misses take a lease under the herd policies, none under 'none'", function()
    -- 90 keys resolve in two batches; each key's policy decides what its miss does.
    local c = client.connect(gw.port)
    local keys = {}
    for i = 1, 30 do
      for _, p in ipairs { "w:", "n:", "d:" } do keys[#keys + 1] = p .. "m" .. i end
    end
    assert.same({}, c:get(unpack(keys)))
    c:close()
    local d = client.connect(mc.port)
    for _, k in ipairs(keys) do
      local lease = d:cmd("mg mintgate:lease:" .. k .. " v")
      if k:sub(1, 2) == "n:" then
        assert.equal("EN", lease, "policy none took a lease for " .. k)
      else
        assert.matches("^VA ", lease, "no lease for " .. k .. " under a herd policy")
        d:line() -- the lease's value
      end
    end
    d:close()
  end)
end)
