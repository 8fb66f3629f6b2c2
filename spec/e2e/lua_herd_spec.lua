-- examples/herd.lua (the config bench/herd.sh runs) against real memcached: its policy
-- mg.stale { grace = 10, lock = 2, wait = 300 } is in force: past a value's TTL one client
-- gets a miss and everyone else the old value; on a cold miss the others wait up to
-- 300 ms for the winner's set; a winner that never stores loses the lock after 2 s.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"

local start_example = env.start_example

describe("examples/herd.lua", function()
  local E, gw

  local function connect() return E:client(gw.port) end

  local function herd()
    local s = connect():stats("stats herd")
    local t = {}
    for k, v in pairs(s) do t[k] = tonumber(v) end
    return t
  end

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_herd")
    gw = start_example(E, "herd", 2)
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  after_each(function() E:close_clients() end)

  it("past the TTL one client regenerates, the others get the old value at once", function()
    local a, b, c = connect(), connect(), connect()
    local before = herd()
    assert.equal("STORED", a:set("hot:1", "old", 0, 1))
    env.sleep(2.2)
    assert.same({}, a:get("hot:1"), "the first reader past the TTL should win (a miss)")
    local t0 = env.now()
    assert.equal("old", b:value("hot:1"))
    assert.equal("old", c:value("hot:1"))
    assert(env.now() - t0 < 0.2, "stale hits were not immediate")
    assert.equal("STORED", a:set("hot:1", "new", 0, 1))
    assert.equal("new", b:value("hot:1"))
    local after = herd()
    assert(after.wins > before.wins, "wins did not count")
    assert(after.stale_hits >= before.stale_hits + 2, "stale_hits did not count")
  end)

  it("a cold miss: one client wins, another waits for its set", function()
    local a, b = connect(), connect()
    assert.same({}, a:get("cold:1"))
    local t0 = env.now()
    b:send("get cold:1\r\n")
    env.sleep(0.1)
    assert.equal("STORED", a:set("cold:1", "fresh"))
    local items = b:get_reply()
    assert.equal("fresh", items["cold:1"] and items["cold:1"].value,
      "the waiting client did not get the winner's value")
    assert(env.now() - t0 < 0.45, "the wait took longer than the 300 ms bound")
  end)

  it("a waiter gives up after 300 ms with a miss", function()
    local a, b = connect(), connect()
    local before = herd()
    assert.same({}, a:get("cold:2"))
    local t0 = env.now()
    assert.same({}, b:get("cold:2"))
    local took = env.now() - t0
    assert(took >= 0.25 and took < 1.0, string.format("waited %.3f s, want about 0.3", took))
    assert(herd().wait_timeouts > before.wait_timeouts, "wait_timeouts did not count")
  end)

  it("a winner that never stores loses the lock after 2 s (another client wins)", function()
    local a, b = connect(), connect()
    local before = herd()
    assert.equal("STORED", a:set("hot:2", "old", 0, 1))
    env.sleep(2.2)
    assert.same({}, a:get("hot:2"))       -- a wins, and never stores
    assert.equal("old", b:value("hot:2")) -- within the lock: stale hit
    env.sleep(2.8)
    assert.same({}, b:get("hot:2"), "after the lock the next reader should win")
    assert.equal("STORED", b:set("hot:2", "new"))
    assert.equal("new", a:value("hot:2"))
    assert(herd().lock_expired > before.lock_expired, "lock_expired did not count")
  end)

  it("a cold winner that never stores: the placeholder expires after 2 s", function()
    local a, b = connect(), connect()
    assert.same({}, a:get("cold:3"))
    env.sleep(2.5)
    local t0 = env.now()
    assert.same({}, b:get("cold:3"))
    assert(env.now() - t0 < 0.2, "the next reader waited instead of winning")
    assert.equal("STORED", b:set("cold:3", "v"))
    assert.equal("v", a:value("cold:3"))
  end)

end)
