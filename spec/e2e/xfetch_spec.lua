-- The xfetch staleness policy (probabilistic early recomputation, Vattani et al. 2015)
-- end to end against real memcached: a reader refreshes a key *before* it expires (one
-- reader, the others keep getting the value), the recompute time delta is measured from a
-- win to the winner's store (stats pools herd_regen_ms) and then drives the early draws,
-- and delta = 0 measured means no early refresh at all (the item expires as usual).
--
-- Timing: memcached's clock ticks in whole seconds; the specs poll a key every 50 ms over
-- the last seconds of a 3 s TTL and only assert what the draw makes near-certain. The
-- gateway wins a reader at a remaining count of n seconds when delta * beta * -ln(u) >= n,
-- so with delta = 1 s a read in the last second wins with probability e^-1 = 0.37: 20
-- reads of it all missing the draw would be a 1e-4 event.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local function addr(p) return "127.0.0.1:" .. p.port end

local function config(mcs, stale)
  local s = {}
  for i, m in ipairs(mcs) do s[i] = string.format("%q", addr(m)) end
  return table.concat({
    'local mg = require "mintgate"',
    'local main = mg.pool { name = "main", servers = { ' .. table.concat(s, ", ") .. ' } }',
    'mg.stale(' .. stale .. ')',
    'mg.route { default = main }',
  }, "\n") .. "\n"
end

-- True when some backend still holds key (`me`: never takes a win token).
local function backend_has(mcs, key)
  for _, m in ipairs(mcs) do
    local c = client.connect(m.port)
    local l = c:cmd("me " .. key)
    c:close()
    if l:match("^ME ") then return true end
    assert(l == "EN", "unexpected reply to me " .. key .. ": " .. client.show(l))
  end
  return false
end

local function pool_stat(port, name)
  local c = client.connect(port)
  local s = c:stats("stats pools")
  c:close()
  return tonumber(s["pool:main:" .. name])
end

-- Poll key through c every 50 ms for up to `bound` seconds until a get misses. Returns
-- the number of hits before it and whether the backend still held the item right after
-- the miss (true: the miss was an early refresh, not an expiry).
local function poll_until_miss(c, mcs, key, bound)
  local hits = 0
  local ok, early = env.wait_until(bound, function()
    local items = c:get(key)
    if items[key] then
      hits = hits + 1
      return false
    end
    return true, backend_has(mcs, key)
  end, 0.05)
  assert(ok, "no miss within " .. bound .. " s")
  return hits, early
end

describe("xfetch", function()
  local E, mcs

  lazy_setup(function()
    env.require_binary()
    E = env.new("xfetch")
    mcs = { E:memcached(), E:memcached() }
  end)
  lazy_teardown(function()
    if E then E:teardown() end
  end)
  after_each(function() E:close_clients() end)

  it("with delta fixed at 1 s, one reader refreshes before the expiry and the others keep the value", function()
    local aport = env.free_port()
    local gw = E:gateway { threads = 2, args = { "-A", "127.0.0.1:" .. aport },
                           config = config(mcs, '{ base = "xfetch", delta = 1000 }') }
    local a = E:client(gw.port, { name = "a" })
    local b = E:client(gw.port, { name = "b" })
    local adm = client.connect(aport)
    local explain = adm:stats("route get xf:1")
    adm:close()
    assert.equal("grace=0 lock=5 wait_ms=50 coalesce guard xfetch beta=1 delta_ms=1000", explain.policy)
    assert.equal("STORED", a:set("xf:1", "v1", 0, 3))
    assert.equal(3, client.ttl_on(mcs[1].port, "xf:1") or client.ttl_on(mcs[2].port, "xf:1"),
      "no grace: the TTL is stored as given")
    local _, early = poll_until_miss(a, mcs, "xf:1", 5)
    assert.is_true(early, "the miss should come while memcached still holds the item")
    -- the winner regenerates; meanwhile everybody else is answered the value
    for _ = 1, 5 do assert.equal("v1", b:value("xf:1")) end
    assert.equal("v1", a:value("xf:1"), "the winner's next read, before its store, is a hit")
    env.sleep(0.2)
    assert.equal("STORED", a:set("xf:1", "v2", 0, 3))
    assert.equal("v2", b:value("xf:1"))
    -- the recompute time was measured from the win to the store
    local regen = pool_stat(gw.port, "herd_regen_ms")
    assert(regen and regen >= 150 and regen < 3000, "herd_regen_ms " .. tostring(regen))
    E:stop(gw)
  end)

  it("measured: no delta, no early refresh; a cold win and its store teach delta; then early refreshes", function()
    local gw = E:gateway { threads = 1, config = config(mcs, '"xfetch"') }
    local a = E:client(gw.port, { name = "a" })
    assert.equal(0, pool_stat(gw.port, "herd_regen_ms"))
    -- no delta yet: the key lives its full TTL and then misses like any other
    assert.equal("STORED", a:set("xf:2", "v1", 0, 2))
    local _, early = poll_until_miss(a, mcs, "xf:2", 5)
    assert.is_false(early, "without a measured delta the first miss is the expiry")
    -- that miss was a cold win (the lease): store 1.2 s later, delta ~ 1.2 s
    env.sleep(1.2)
    assert.equal("STORED", a:set("xf:2", "v2", 0, 3))
    local regen = pool_stat(gw.port, "herd_regen_ms")
    assert(regen and regen >= 1150 and regen < 3000, "herd_regen_ms " .. tostring(regen))
    -- now a read in the last second wins early with probability e^(-1/1.2) = 0.43: 20 reads
    _, early = poll_until_miss(a, mcs, "xf:2", 5)
    assert.is_true(early, "with delta measured the refresh should come before the expiry")
    E:stop(gw)
  end)

  it("an early winner that stores after the item expired still stores (expiry is not a write)", function()
    local gw = E:gateway { threads = 1, config = config(mcs, '{ base = "xfetch", delta = 3000 }') }
    local a = E:client(gw.port, { name = "a" })
    assert.equal("STORED", a:set("xf:4", "v1", 0, 2))
    local _, early = poll_until_miss(a, mcs, "xf:4", 4)
    assert.is_true(early, "an early win (delta 3 s against a 2 s TTL)")
    env.sleep(2.1) -- the regeneration outlives the item
    assert.is_false(backend_has(mcs, "xf:4"), "the item expired meanwhile")
    assert.equal("STORED", a:set("xf:4", "v2", 0, 100))
    assert.equal("v2", E:client(gw.port):value("xf:4"), "the refreshed value was dropped")
    E:stop(gw)
  end)

  it("beta = 0 turns the early refresh off (the rest of the policy stays)", function()
    local gw = E:gateway { threads = 1, config = config(mcs, '{ base = "xfetch", delta = 1000, beta = 0 }') }
    local a = E:client(gw.port, { name = "a" })
    assert.equal("STORED", a:set("xf:3", "v1", 0, 2))
    local _, early = poll_until_miss(a, mcs, "xf:3", 5)
    assert.is_false(early, "beta = 0: the key expires before anyone refreshes it")
    E:stop(gw)
  end)
end)
