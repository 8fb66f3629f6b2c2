-- The mintgate config module (lua/mintgate/init.lua) alone, without the gateway: what a
-- script declares ends up in mg._state as the C core expects it, and every kind of bad
-- declaration raises an error that names the problem and points at the script's line.
assert(jit ~= nil, "specs must run under LuaJIT")

local THIS_FILE = "mintgate_spec%.lua:%d+: "

-- A fresh module: it keeps its declarations in a module-level table.
local function fresh(core)
  package.loaded.mintgate = nil
  package.loaded["mintgate.stale"] = nil
  package.loaded["mintgate.core"] = nil
  package.preload["mintgate.core"] = core and function() return core end or nil
  return require "mintgate"
end

-- fn must raise an error containing text (plain), located in this file (the "script").
local function raises(fn, text)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error containing: " .. text)
  err = tostring(err)
  assert(err:find(text, 1, true), "error does not contain <" .. text .. ">: " .. err)
  assert(err:match("^[^\n]*" .. THIS_FILE),
    "error does not point at the calling script's line: " .. err)
  return err
end

describe("mintgate config module", function()
  local mg

  before_each(function() mg = fresh() end)
  after_each(function() package.preload["mintgate.core"] = nil end)

  it("starts empty", function()
    local s = mg._state
    assert.same({}, s.listen)
    assert.same({}, s.pools)
    assert.same({}, s.hooks)
    assert.same({}, s.switches)
    assert.same({}, s.admin)
    assert.is_nil(s.route)
    assert.is_nil(s.route_fn)
    assert.is_nil(s.stale)
    assert.is_nil(s.keys)
    assert.is_false(s.admin_on_data_port)
  end)

  it("keeps no state across a fresh require", function()
    mg.pool { name = "main", servers = { "127.0.0.1:1" } }
    mg = fresh()
    assert.same({}, mg._state.pools)
    mg.pool { name = "main", servers = { "127.0.0.1:1" } } -- not "declared twice"
  end)

  describe("mg.failover", function()
    it("returns a route usable as a route table's value and default", function()
      local a = mg.pool { name = "a", servers = { "127.0.0.1:1" } }
      local b = mg.pool { name = "b", servers = { "127.0.0.1:2" } }
      local r = mg.failover { a, "b", ttl = 10, on = { "down" }, on_miss = true }
      assert.equal("failover(a,b)", r.name)
      assert.same({ "a", "b" }, r.children)
      assert.equal(10, r.ttl)
      assert.same({ down = true }, r.on)
      assert.is_true(r.on_miss)
      assert.equal(r, mg._state.routes[1])
      local r2 = mg.failover { a, b }
      assert.equal("failover(a,b)#2", r2.name)
      assert.same({ down = true, timeout = true, error = true }, r2.on)
      mg.route { ["x:"] = r, default = r2 }
      assert.equal("failover(a,b)#2", mg._state.route.default)
      assert.equal("failover(a,b)", mg._state.route.prefixes[1][2])
    end)

    it("refuses what it cannot take, naming it", function()
      local a = mg.pool { name = "a", servers = { "127.0.0.1:1" } }
      local b = mg.pool { name = "b", servers = { "127.0.0.1:2" } }
      raises(function() mg.failover "a" end, "mg.failover: expected a table")
      raises(function() mg.failover { a } end, "mg.failover: needs at least two pools")
      raises(function() mg.failover { a, "nosuch" } end,
        "mg.failover: pool 2 must be a pool (from mg.pool), a route (mg.failover) or its name")
      raises(function() mg.failover { a, b, ttl = 1.5 } end, "'ttl' must be a whole number")
      raises(function() mg.failover { a, b, on = {} } end, "'on' must be a list of")
      raises(function() mg.failover { a, b, on = { "slow" } } end, "'on' must be a list of")
      raises(function() mg.failover { a, b, on_miss = 1 } end, "'on_miss' must be a boolean")
      raises(function() mg.failover { a, b, retries = 2 } end, "unknown option 'retries'")
      mg.failover { a, b, name = "fo" }
      raises(function() mg.failover { a, b, name = "fo" } end, "'fo' declared twice")
      raises(function() mg.switch { name = "s", fleet = { pool = "fo" } } end,
        "mg.switch: fleet.pool must be a pool (from mg.pool) or a pool's name")
    end)
  end)

  describe("mg.warmup", function()
    it("returns a warm-up route over cold and warm", function()
      local old = mg.pool { name = "old", servers = { "127.0.0.1:1" } }
      local new = mg.pool { name = "new", servers = { "127.0.0.1:2" } }
      local r = mg.warmup { cold = new, warm = old, ttl = 3600 }
      assert.equal("warmup", r.kind)
      assert.equal("warmup(new<old)", r.name)
      assert.same({ "new", "old" }, r.children)
      assert.equal(3600, r.ttl)
      mg.route { default = r }
      assert.equal("warmup(new<old)", mg._state.route.default)
    end)

    it("refuses what it cannot take", function()
      local a = mg.pool { name = "a", servers = { "127.0.0.1:1" } }
      local b = mg.pool { name = "b", servers = { "127.0.0.1:2" } }
      raises(function() mg.warmup { cold = a } end, "mg.warmup: 'warm' must be a pool")
      raises(function() mg.warmup { cold = a, warm = a } end, "must be two pools")
      raises(function() mg.warmup { cold = a, warm = b, ttl = -5 } end, "'ttl' must be a whole")
      raises(function() mg.warmup { cold = a, warm = b, fill = true } end, "unknown option 'fill'")
    end)
  end)

  describe("routes inside routes", function()
    it("takes a route wherever a pool is, by object or name", function()
      local a = mg.pool { name = "a", servers = { "127.0.0.1:1" } }
      local b = mg.pool { name = "b", servers = { "127.0.0.1:2" } }
      local old = mg.pool { name = "old", servers = { "127.0.0.1:3" } }
      local g = mg.pool { name = "g", servers = { "127.0.0.1:4" } }
      local rep = mg.replicate { a, b, name = "rep" }
      local warm = mg.warmup { cold = rep, warm = old, name = "warm" }
      local top = mg.failover { warm, g, ttl = 10 }
      assert.same({ "rep", "old" }, warm.children)
      assert.same({ "warm", "g" }, top.children)
      assert.equal(3, top.depth)
      assert.equal(4, top.leaves)
      assert.same({ "rep", "g" }, mg.failover { "rep", "g" }.children)
      assert.same({ "warm", "g" }, mg.shadow { warm, copy = g }.children)
    end)

    it("refuses routes nested more than 4 deep", function()
      local a = mg.pool { name = "a", servers = { "127.0.0.1:1" } }
      local b = mg.pool { name = "b", servers = { "127.0.0.1:2" } }
      local r = mg.failover { a, b }
      for _ = 2, 4 do r = mg.failover { r, b } end
      assert.equal(4, r.depth)
      raises(function() mg.failover { r, b } end, "routes nest at most 4 deep")
    end)
  end)  describe("mg.shadow", function()
    it("returns a shadow route with its switch", function()
      local main = mg.pool { name = "main", servers = { "127.0.0.1:1" } }
      local test = mg.pool { name = "test", servers = { "127.0.0.1:2" } }
      local r = mg.shadow { main, copy = test, percent = 5 }
      assert.equal("shadow", r.kind)
      assert.equal("shadow(main>test)", r.name)
      assert.same({ "main", "test" }, r.children)
      assert.equal(5, r.percent)
      assert.equal("shadow.test", r.switch)
      assert.equal("sw2", mg.shadow { main = main, copy = test, switch = "sw2" }.switch)
    end)

    it("refuses what it cannot take", function()
      local a = mg.pool { name = "a", servers = { "127.0.0.1:1" } }
      local b = mg.pool { name = "b", servers = { "127.0.0.1:2" } }
      raises(function() mg.shadow { a } end, "mg.shadow: 'copy' must be a pool")
      raises(function() mg.shadow { a, copy = a } end, "must be two pools")
      raises(function() mg.shadow { a, copy = b, percent = 101 } end, "'percent' must be a number")
      raises(function() mg.shadow { a, copy = b, switch = "a b" } end, "'switch' must be a word")
      raises(function() mg.shadow { a, copy = b, mirror = true } end, "unknown option 'mirror'")
    end)
  end)

  describe("mg.replicate", function()
    it("returns a replicated route with its modes", function()
      local a = mg.pool { name = "a", servers = { "127.0.0.1:1" } }
      local b = mg.pool { name = "b", servers = { "127.0.0.1:2" } }
      local r = mg.replicate { a, b }
      assert.equal("replicate", r.kind)
      assert.equal("first", r.reads)
      assert.equal("all", r.writes)
      r = mg.replicate { a, b, reads = "fastest", writes = "majority", name = "rep" }
      assert.equal("rep", r.name)
      assert.equal("fastest", r.reads)
      assert.equal("majority", r.writes)
    end)

    it("refuses what it cannot take", function()
      local a = mg.pool { name = "a", servers = { "127.0.0.1:1" } }
      local b = mg.pool { name = "b", servers = { "127.0.0.1:2" } }
      raises(function() mg.replicate { a } end, "needs at least two pools")
      raises(function() mg.replicate { a, b, reads = "nearest" } end, "'reads' must be")
      raises(function() mg.replicate { a, b, writes = "quorum" } end, "'writes' must be")
      raises(function() mg.replicate { a, b, copies = 2 } end, "unknown option 'copies'")
    end)
  end)

  describe("mg.metrics, mg.slowlog, mg.hotkeys", function()
    it("take their options and refuse what they cannot take", function()
      mg.metrics "127.0.0.1:9150"
      mg.metrics { "[::1]:9151" }
      assert.same({ "127.0.0.1:9150", "[::1]:9151" }, mg._state.metrics)
      raises(function() mg.metrics() end, "mg.metrics: expected a list")
      raises(function() mg.metrics "unix:/tmp/m" end, "mg.metrics: expected \"host:port\"")
      raises(function() mg.metrics { "127.0.0.1:1", tls = true } end, "unknown option 'tls'")
      mg.slowlog { threshold_ms = 50, size = 10 }
      assert.same({ threshold_ms = 50, size = 10 }, mg._state.slowlog)
      mg.slowlog { threshold_ms = false }
      assert.is_false(mg._state.slowlog.threshold_ms)
      raises(function() mg.slowlog { threshold_ms = -1 } end, "'threshold_ms' must be")
      raises(function() mg.slowlog { size = 0 } end, "'size' must be a whole number")
      raises(function() mg.slowlog { every = 2 } end, "unknown option 'every'")
      mg.hotkeys { top = 4, sample = 8, window = 5, expose_keys = true }
      assert.same({ top = 4, sample = 8, window = 5, expose_keys = true }, mg._state.hotkeys)
      raises(function() mg.hotkeys { sample = 0 } end, "'sample' must be a whole number from 1")
      raises(function() mg.hotkeys { top = 1.5 } end, "'top' must be a whole number")
      raises(function() mg.hotkeys { expose_keys = "yes" } end, "'expose_keys' must be a boolean")
      raises(function() mg.hotkeys { keys = 1 } end, "unknown option 'keys'")
    end)
  end)

  describe("mg.near and a pool's near", function()
    it("take their options over the defaults and refuse what they cannot take", function()
      mg.near {}
      assert.same({ size = 64 * 1024 * 1024, ttl = 1, hot = true, max_value = 64 * 1024,
        hot_rps = 100, hot_top = 32 }, mg._state.near)
      mg.near { size = "1m", ttl = 0.25, hot = false, max_value = "4k", hot_rps = 10, hot_top = 4 }
      assert.same({ size = 1024 * 1024, ttl = 0.25, hot = false, max_value = 4096, hot_rps = 10,
        hot_top = 4 }, mg._state.near)
      raises(function() mg.near "64m" end, "mg.near: expected a table")
      raises(function() mg.near { size = "lots" } end, "'size' must be a number of bytes")
      raises(function() mg.near { size = "1k" } end, "'size' must be at least 64k")
      raises(function() mg.near { max_value = "2m" } end, "'max_value' must be at most 1m")
      raises(function() mg.near { ttl = 0 } end, "'ttl' must be seconds, more than 0")
      raises(function() mg.near { ttl = 7200 } end, "'ttl' must be seconds")
      raises(function() mg.near { hot = 1 } end, "'hot' must be a boolean")
      raises(function() mg.near { hot_rps = 0 } end, "'hot_rps' must be a positive number")
      raises(function() mg.near { hot_top = 0.5 } end, "'hot_top' must be a whole number")
      -- the gateway publishes at most 256 hot keys (NEAR_HOT_MAX): a larger top was cut
      raises(function() mg.near { hot_top = 257 } end, "'hot_top' must be a whole number from 1 to 256")
      mg.near { hot_top = 256 }
      assert.equal(256, mg._state.near.hot_top)
      raises(function() mg.near { keys = 1 } end, "unknown option 'keys'")
      local p = mg.pool { name = "nearpool", servers = { "127.0.0.1:1" },
        near = { ttl = 0.5, prefixes = { "feed:", "top:" } } }
      assert.same({ ttl = 0.5, prefixes = { "feed:", "top:" } }, p.near)
      raises(function() mg.pool { name = "n2", servers = { "127.0.0.1:1" }, near = true } end,
        "near must be a table")
      raises(function() mg.pool { name = "n3", servers = { "127.0.0.1:1" }, near = { prefixes = { "" } } } end,
        "prefix 1 must be a non-empty string")
      raises(function() mg.pool { name = "n4", servers = { "127.0.0.1:1" }, near = { ttl = -1 } } end,
        "'ttl' must be seconds")
      raises(function() mg.pool { name = "n5", servers = { "127.0.0.1:1" }, near = { hot = true } } end,
        "unknown option 'hot'")
    end)
  end)

  describe("mg.trace", function()
    it("takes its options over the defaults", function()
      mg.trace { path = "/tmp/x.trace" }
      assert.same({ path = "/tmp/x.trace", sample = 1, hash_keys = false,
        max_size = 64 * 1024 * 1024 }, mg._state.trace)
      mg.trace { path = "/tmp/x.trace", sample = 0.01, hash_keys = true, max_size = "64m" }
      assert.same({ path = "/tmp/x.trace", sample = 0.01, hash_keys = true,
        max_size = 64 * 1024 * 1024 }, mg._state.trace)
      mg.trace { path = "/tmp/y", sample = 0, max_size = 4096 }
      assert.same({ path = "/tmp/y", sample = 0, hash_keys = false, max_size = 4096 },
        mg._state.trace)
      for size, bytes in pairs { ["512k"] = 512 * 1024, ["1g"] = 1024 ^ 3, ["10"] = 10,
        ["2MB"] = 2 * 1024 * 1024 } do
        mg.trace { path = "/tmp/y", max_size = size }
        assert.equal(bytes, mg._state.trace.max_size)
      end
    end)

    it("refuses what it cannot take", function()
      raises(function() mg.trace() end, "mg.trace: expected a table")
      raises(function() mg.trace { sample = 0.5 } end, "mg.trace: 'path' is required")
      raises(function() mg.trace { path = "" } end, "'path' must be a file path")
      raises(function() mg.trace { path = "/tmp/a\nb" } end, "'path' must be a file path")
      raises(function() mg.trace { path = "/tmp/x", sample = 1.5 } end,
        "'sample' must be a number from 0 to 1")
      raises(function() mg.trace { path = "/tmp/x", sample = 0 / 0 } end,
        "'sample' must be a number from 0 to 1")
      raises(function() mg.trace { path = "/tmp/x", hash_keys = 1 } end,
        "'hash_keys' must be a boolean")
      for _, bad in ipairs { "64x", "m", 0, 1.5, -1, true } do
        raises(function() mg.trace { path = "/tmp/x", max_size = bad } end,
          "'max_size' must be a number of bytes")
      end
      raises(function() mg.trace { path = "/tmp/x", file = "y" } end, "unknown option 'file'")
    end)
  end)

  describe("mg.listen", function()
    it("takes a list or one string; repeated calls add", function()
      mg.listen { "127.0.0.1:11211", "[::1]:11211" }
      mg.listen "0.0.0.0:1"
      assert.same({ "127.0.0.1:11211", "[::1]:11211", "0.0.0.0:1" }, mg._state.listen)
    end)

    it("refuses what is not a list of addresses", function()
      raises(function() mg.listen() end, "mg.listen: expected a list")
      raises(function() mg.listen(11211) end, "mg.listen: expected a list")
      raises(function() mg.listen {} end, "mg.listen: expected a list")
    end)

    it("refuses bad addresses", function()
      for _, a in ipairs { "127.0.0.1", "127.0.0.1:", ":11211", "host:port", "::1:11211",
                           "127.0.0.1:11211x", "[::1]" } do
        raises(function() mg.listen { a } end, "mg.listen: expected \"host:port\"")
      end
      raises(function() mg.listen { 11211 } end, "mg.listen: expected \"host:port\", got 11211")
      raises(function() mg.listen { "127.0.0.1:65536" } end, "mg.listen: port out of range")
    end)
  end)

  describe("mg.pool", function()
    it("takes backend auth { user, password }; refuses bad ones", function()
      local p = mg.pool { name = "a", servers = { "127.0.0.1:1" }, auth = { user = "gw", password = "p w" } }
      assert.same({ user = "gw", password = "p w" }, p.auth)
      local S = { "127.0.0.1:1" }
      raises(function() mg.pool { name = "b", servers = S, auth = "gw:pw" } end,
        "mg.pool 'b': 'auth' must be { user = ..., password = ... }")
      raises(function() mg.pool { name = "c", servers = S, auth = { user = "a b", password = "x" } } end,
        "mg.pool 'c': auth 'user' must be a word")
      raises(function() mg.pool { name = "d", servers = S, auth = { user = "u", password = "x\r\n" } } end,
        "mg.pool 'd': auth 'password' must be a string without line breaks")
      raises(function() mg.pool { name = "e", servers = S, auth = { user = "u" } } end,
        "mg.pool 'e': auth 'password' must be a string")
      raises(function() mg.pool { name = "f", servers = S, auth = { user = "u", password = "x", mech = 1 } } end,
        "mg.pool 'f': auth: unknown option 'mech'")
      raises(function() mg.pool { name = "g", servers = S, auth = { user = "u", password = ("x"):rep(300) } } end,
        "mg.pool 'g': auth: user and password too long")
    end)

    it("returns a pool object with its declaration", function()
      local p = mg.pool { name = "main", servers = { "127.0.0.1:11311", "10.0.0.2:11312" },
                          connect_timeout = 0.2, timeout = 0.5, failure_limit = 2,
                          retry_timeout = 5 }
      assert.equal("main", p.name)
      assert.same({ "127.0.0.1:11311", "10.0.0.2:11312" }, p.servers)
      assert.equal(0.2, p.connect_timeout)
      assert.equal(0.5, p.timeout)
      assert.equal(2, p.failure_limit)
      assert.equal(5, p.retry_timeout)
      assert.equal("mintgate.pool(main)", tostring(p))
      assert.equal(p, mg._state.pools[1])
      assert.equal(p, mg._state.by_name.main)
    end)

    it("keeps pools in declaration order", function()
      local a = mg.pool { name = "a", servers = { "127.0.0.1:1" } }
      local b = mg.pool { name = "b", servers = { "127.0.0.1:1" } } -- servers may be shared
      assert.same({ a, b }, mg._state.pools)
    end)

    it("takes its own staleness policy and key style", function()
      local p = mg.pool { name = "s", servers = { "127.0.0.1:1" }, stale = "none",
                          keys = { style = "django", prefix = "pages", version = 3 } }
      assert.is_false(p.stale)
      assert.same({ style = "django", prefix = "pages", version = "3" }, p.keys)
      local q = mg.pool { name = "q", servers = { "127.0.0.1:1" }, stale = { grace = 5 } }
      assert.equal(5, q.stale.grace)
      assert.equal("delete", q.stale.on_delete)
    end)

    it("refuses a missing or bad name", function()
      raises(function() mg.pool() end, "mg.pool: expected a table")
      raises(function() mg.pool "main" end, "mg.pool: expected a table")
      for _, n in ipairs { false, 1, "", "a b", "a\tb", "a\nb" } do
        raises(function() mg.pool { name = n, servers = { "127.0.0.1:1" } } end,
          "mg.pool: 'name' must be a non-empty string without spaces")
      end
      raises(function() mg.pool { servers = { "127.0.0.1:1" } } end, "'name' must be")
    end)

    it("refuses a name declared twice", function()
      mg.pool { name = "main", servers = { "127.0.0.1:1" } }
      raises(function() mg.pool { name = "main", servers = { "127.0.0.1:2" } } end,
        "mg.pool: pool 'main' declared twice")
    end)

    it("refuses missing, empty or bad servers", function()
      raises(function() mg.pool { name = "p" } end, "mg.pool 'p': 'servers' must be a non-empty list")
      raises(function() mg.pool { name = "p", servers = {} } end, "'servers' must be a non-empty list")
      raises(function() mg.pool { name = "p", servers = "127.0.0.1:1" } end,
        "'servers' must be a non-empty list")
      raises(function() mg.pool { name = "p", servers = { "127.0.0.1:1", "nohost" } } end,
        "mg.pool 'p' server 2: expected \"host:port\", got nohost")
      raises(function() mg.pool { name = "p", servers = { "127.0.0.1:99999" } } end,
        "port out of range")
      raises(function() mg.pool { name = "p", servers = { 11211 } } end, "server 1: expected")
    end)

    it("refuses unknown options and bad option values", function()
      raises(function() mg.pool { name = "p", servers = { "127.0.0.1:1" }, weight = 2 } end,
        "mg.pool 'p': unknown option 'weight'")
      raises(function() mg.pool { name = "p", servers = { "127.0.0.1:1" }, [1] = "x" } end,
        "mg.pool 'p': unknown option '1'")
      for _, opt in ipairs { "connect_timeout", "timeout", "failure_limit", "retry_timeout" } do
        raises(function() mg.pool { name = "p", servers = { "127.0.0.1:1" }, [opt] = -1 } end,
          "mg.pool 'p': '" .. opt .. "' must be a non-negative number")
        raises(function() mg.pool { name = "p", servers = { "127.0.0.1:1" }, [opt] = "1" } end,
          "'" .. opt .. "' must be a non-negative number")
      end
    end)

    it("takes eject, max_inflight and unix socket servers", function()
      local p = mg.pool { name = "p", servers = { "unix:/run/mc.sock", "127.0.0.1:1" },
        eject = "remap", max_inflight = 64 }
      assert.equal("remap", p.eject)
      assert.equal(64, p.max_inflight)
      assert.equal("unix:/run/mc.sock", p.servers[1])
      raises(function() mg.pool { name = "q", servers = { "127.0.0.1:1" }, eject = "spread" } end,
        "mg.pool 'q': 'eject' must be \"fail\" or \"remap\"")
      raises(function() mg.pool { name = "q", servers = { "127.0.0.1:1" }, max_inflight = -1 } end,
        "'max_inflight' must be a non-negative number")
    end)

    it("refuses a bad policy or key style", function()
      raises(function() mg.pool { name = "p", servers = { "127.0.0.1:1" }, stale = "fast" } end,
        "unknown staleness policy 'fast'")
      raises(function() mg.pool { name = "p", servers = { "127.0.0.1:1" }, stale = { grace = -1 } } end,
        "stale: 'grace' must be whole seconds >= 0")
      raises(function() mg.pool { name = "p", servers = { "127.0.0.1:1" }, keys = { style = "md5" } } end,
        "mg.keys: unknown style 'md5'")
      raises(function() mg.pool { name = "p", servers = { "127.0.0.1:1" }, keys = "django" } end,
        "mg.keys: expected a table or a function")
    end)

    it("does not register a pool whose declaration failed", function()
      pcall(mg.pool, { name = "p", servers = { "127.0.0.1:1" }, weight = 1 })
      assert.same({}, mg._state.pools)
      mg.pool { name = "p", servers = { "127.0.0.1:1" } }
    end)
  end)

  describe("mg.route", function()
    local main, sessions
    before_each(function()
      main = mg.pool { name = "main", servers = { "127.0.0.1:1" } }
      sessions = mg.pool { name = "sessions", servers = { "127.0.0.1:2" } }
    end)

    it("compiles a prefix table, sorted, with per-prefix policies", function()
      mg.route {
        ["session:"] = sessions,
        ["user:"] = { pool = main, stale = "newcache" },
        ["raw:"] = { pool = "main", stale = "none" },
        ["a:"] = { pool = sessions },
        default = "main",
      }
      local r = mg._state.route
      assert.equal("main", r.default)
      assert.equal(4, #r.prefixes)
      assert.same({ "a:", "raw:", "session:", "user:" },
        { r.prefixes[1][1], r.prefixes[2][1], r.prefixes[3][1], r.prefixes[4][1] })
      assert.same({ "a:", "sessions" }, r.prefixes[1])
      assert.same({ "raw:", "main", false }, r.prefixes[2])
      assert.same({ "session:", "sessions" }, r.prefixes[3])
      assert.equal("main", r.prefixes[4][2])
      assert.equal(60, r.prefixes[4][3].grace)
      assert.equal(60, r.prefixes[4][3].lock)
      assert.is_nil(mg._state.route_fn)
    end)

    it("takes a function instead, and the last call wins", function()
      local fn = function() return main end
      mg.route { default = main }
      mg.route(fn)
      assert.equal(fn, mg._state.route_fn)
      assert.is_nil(mg._state.route)
      mg.route { default = sessions }
      assert.is_nil(mg._state.route_fn)
      assert.equal("sessions", mg._state.route.default)
    end)

    it("allows a table without a default", function()
      mg.route { ["s:"] = sessions }
      assert.is_nil(mg._state.route.default)
      assert.equal(1, #mg._state.route.prefixes)
    end)

    it("refuses what is neither a table nor a function", function()
      raises(function() mg.route() end, "mg.route: expected a table or a function(req)")
      raises(function() mg.route "main" end, "mg.route: expected a table or a function(req)")
    end)

    it("refuses unknown pools", function()
      raises(function() mg.route { default = "nosuch" } end,
        "mg.route: default must be a pool (from mg.pool), a route (mg.failover) or its name")
      raises(function() mg.route { default = 1 } end, "mg.route: default must be a pool")
      raises(function() mg.route { ["x:"] = "nosuch" } end,
        "mg.route: prefix 'x:' must be a pool (from mg.pool), a route (mg.failover) or its name")
      raises(function() mg.route { ["x:"] = true } end, "prefix 'x:' must be a pool")
      raises(function() mg.route { ["x:"] = { stale = "none" } } end, "prefix 'x:' must be a pool")
      raises(function() mg.route { ["x:"] = { pool = "nosuch" } } end, "prefix 'x:' must be a pool")
    end)

    it("refuses a pool of another module instance by object", function()
      local other = fresh().pool { name = "elsewhere", servers = { "127.0.0.1:3" } }
      mg = fresh()
      raises(function() mg.route { default = other } end, "default must be a pool")
    end)

    it("refuses keys that are not prefixes", function()
      raises(function() mg.route { [""] = main } end,
        "mg.route: keys must be prefixes (non-empty strings) or 'default'")
      raises(function() mg.route { main } end, "keys must be prefixes")
      raises(function() mg.route { [true] = main } end, "keys must be prefixes")
    end)

    it("refuses a bad per-prefix policy", function()
      raises(function() mg.route { ["x:"] = { pool = main, stale = "eventually" } } end,
        "unknown staleness policy 'eventually'")
      raises(function() mg.route { ["x:"] = { pool = main, stale = { wait = -5 } } } end,
        "stale: 'wait' must be milliseconds from 0 to 60000")
    end)
  end)

  describe("mg.keys", function()
    it("takes each built-in style", function()
      mg.keys { style = "newcache", flavor = "staging", version = 2 }
      assert.same({ style = "newcache", flavor = "staging", version = "2" }, mg._state.keys)
      mg.keys { style = "django" }
      assert.same({ style = "django" }, mg._state.keys)
      mg.keys { style = "django", prefix = "site", version = "v7", hash_long = true }
      assert.same({ style = "django", prefix = "site", version = "v7", hash_long = true },
        mg._state.keys)
      mg.keys { style = "prefix", prefix = "app:", flavor = "prod", version = 1, hash_long = false }
      assert.same({ style = "prefix", prefix = "app:", flavor = "prod", version = "1",
                    hash_long = false }, mg._state.keys)
    end)

    it("infers the style: a flavor alone means newcache, else prefix", function()
      mg.keys { flavor = "prod", version = 3 }
      assert.equal("newcache", mg._state.keys.style)
      mg.keys { flavor = "prod", prefix = "p:" }
      assert.equal("prefix", mg._state.keys.style)
      mg.keys { prefix = "p:" }
      assert.equal("prefix", mg._state.keys.style)
      mg.keys {}
      assert.equal("prefix", mg._state.keys.style)
    end)

    it("writes whole-number versions without a decimal point", function()
      mg.keys { style = "django", version = 2.0 }
      assert.equal("2", mg._state.keys.version)
      mg.keys { style = "django", version = 2.5 }
      assert.equal("2.5", mg._state.keys.version)
      mg.keys { style = "django", version = 0 }
      assert.equal("0", mg._state.keys.version)
    end)

    it("takes a function(key, req) as it is", function()
      local fn = function(key) return "x" .. key end
      mg.keys(fn)
      assert.equal(fn, mg._state.keys)
    end)

    it("refuses bad declarations", function()
      raises(function() mg.keys() end, "mg.keys: expected a table or a function(key, req)")
      raises(function() mg.keys "django" end, "mg.keys: expected a table or a function")
      raises(function() mg.keys { style = "sha1" } end,
        "mg.keys: unknown style 'sha1' (newcache, django, prefix)")
      raises(function() mg.keys { style = "django", key_prefix = "x" } end,
        "mg.keys: unknown option 'key_prefix'")
      raises(function() mg.keys { style = 1 } end, "mg.keys: 'style' must be a string")
      raises(function() mg.keys { prefix = 5 } end, "mg.keys: 'prefix' must be a string")
      raises(function() mg.keys { flavor = true } end, "mg.keys: 'flavor' must be a string")
      raises(function() mg.keys { hash_long = "yes" } end, "mg.keys: 'hash_long' must be a boolean")
      raises(function() mg.keys { version = {} } end, "mg.keys: 'version' must be a number or a string")
      raises(function() mg.keys { version = true } end, "'version' must be a number or a string")
    end)

    it("keeps the previous default when a declaration fails", function()
      mg.keys { style = "django" }
      pcall(mg.keys, { style = "nope" })
      assert.same({ style = "django" }, mg._state.keys)
    end)
  end)

  describe("mg.stale", function()
    it("sets the default policy, normalized", function()
      mg.stale { grace = 10, lock = 2, wait = 300 }
      assert.same({ grace = 10, lock = 2, wait = 300, on_delete = "delete", coalesce = true, guard = true },
        mg._state.stale)
      mg.stale "none"
      assert.is_false(mg._state.stale)
      mg.stale "publish"
      assert.equal("mark_stale", mg._state.stale.on_delete)
    end)

    it("refuses bad policies, pointing at the script", function()
      raises(function() mg.stale "sometimes" end, "unknown staleness policy 'sometimes'")
      raises(function() mg.stale(5) end, "a staleness policy is a table or a policy name")
      raises(function() mg.stale { graze = 1 } end, "stale: unknown option 'graze'")
    end)
  end)

  describe("mg.policy", function()
    it("names policies after the built-in ones, with 0-based ids for the C core", function()
      mg.policy("short", { grace = 3, lock = 1 })
      local st = mg._state
      assert.equal(0, st.policy_ids.newcache)
      assert.equal(3, st.policy_ids.none)
      assert.equal(4, st.policy_ids.short)
      assert.equal("short", st.policies[5][1])
      assert.equal(3, st.policies[5][2].grace)
      assert.is_false(st.policies[4][2])
    end)

    it("refuses bad names, duplicates and bad policies", function()
      raises(function() mg.policy("has space", {}) end,
        "mg.policy: the name must be a word of at most 31 characters")
      raises(function() mg.policy(("x"):rep(32), {}) end,
        "mg.policy: the name must be a word of at most 31 characters")
      raises(function() mg.policy("newcache", {}) end, "mg.policy: 'newcache' exists already")
      mg.policy("mine", {})
      raises(function() mg.policy("mine", {}) end, "mg.policy: 'mine' exists already")
      raises(function() mg.policy("bad", { grace = -1 }) end, "stale: 'grace' must be whole seconds >= 0")
    end)
  end)

  describe("mg.on", function()
    it("registers set, delete and miss hooks; a second one replaces the first", function()
      local f1, f2, f3 = function() end, function() end, function() end
      mg.on("set", f1)
      mg.on("delete", f2)
      mg.on("miss", f3)
      assert.same({ set = f1, delete = f2, miss = f3 }, mg._state.hooks)
      mg.on("set", f3)
      assert.equal(f3, mg._state.hooks.set)
    end)

    it("refuses unknown events and non-functions", function()
      raises(function() mg.on("get", function() end) end, "mg.on: unknown event 'get'")
      raises(function() mg.on("Set", function() end) end, "mg.on: unknown event 'Set'")
      raises(function() mg.on(nil, function() end) end, "mg.on: unknown event 'nil'")
      raises(function() mg.on("set") end, "mg.on: expected a function")
      raises(function() mg.on("set", "print") end, "mg.on: expected a function")
    end)
  end)

  describe("mg.admin", function()
    it("takes one address or a list, repeated calls add", function()
      mg.admin "127.0.0.1:11212"
      mg.admin { "127.0.0.1:11213", "[::1]:11214" }
      assert.same({ "127.0.0.1:11212", "127.0.0.1:11213", "[::1]:11214" }, mg._state.admin)
      assert.is_false(mg._state.admin_on_data_port)
    end)

    it("refuses an empty list of addresses, and hosts with spaces", function()
      raises(function() mg.admin {} end, 'mg.admin: expected a list of "host:port"')
      raises(function() mg.admin { "a b:1" } end, 'mg.admin: expected "host:port", got a b:1')
    end)

    it("can allow admin commands on the data port", function()
      mg.admin { "127.0.0.1:11212", on_data_port = true }
      assert.is_true(mg._state.admin_on_data_port)
      mg.admin { on_data_port = false }
      assert.is_false(mg._state.admin_on_data_port)
    end)

    it("takes the public opt-in and a secret file; refuses unknown or mistyped options", function()
      assert.is_false(mg._state.admin_public)
      assert.is_nil(mg._state.admin_secret_file)
      mg.admin { "0.0.0.0:11212", public = true, secret_file = "/etc/mintgate/admin.secret" }
      assert.is_true(mg._state.admin_public)
      assert.equal("/etc/mintgate/admin.secret", mg._state.admin_secret_file)
      raises(function() mg.admin { "127.0.0.1:1", publik = true } end, "mg.admin: unknown option 'publik'")
      raises(function() mg.admin { "127.0.0.1:1", public = "yes" } end, "mg.admin: 'public' must be a boolean")
      raises(function() mg.admin { secret_file = 1 } end, "mg.admin: 'secret_file' must be a string")
      raises(function() mg.admin { secret_file = "" } end, "mg.admin: 'secret_file' must be a path")
    end)

    it("refuses bad addresses", function()
      raises(function() mg.admin() end, "mg.admin: expected a list of \"host:port\"")
      raises(function() mg.admin(11212) end, "mg.admin: expected a list")
      raises(function() mg.admin "localhost" end, "mg.admin: expected \"host:port\", got localhost")
      raises(function() mg.admin { "127.0.0.1:1", "127.0.0.1:70000" } end,
        "mg.admin: port out of range in 127.0.0.1:70000")
    end)
  end)

  describe("mg.auth", function()
    it("takes the users file; a later call replaces it", function()
      assert.is_nil(mg._state.auth_file)
      mg.auth { file = "/etc/mintgate/users" }
      assert.equal("/etc/mintgate/users", mg._state.auth_file)
      mg.auth { file = "users" }
      assert.equal("users", mg._state.auth_file)
    end)

    it("refuses anything but a table with a path", function()
      raises(function() mg.auth "users" end, "mg.auth: expected a table")
      raises(function() mg.auth {} end, "mg.auth: 'file' must be a path")
      raises(function() mg.auth { file = "" } end, "mg.auth: 'file' must be a path")
      raises(function() mg.auth { file = 1 } end, "mg.auth: 'file' must be a path")
      raises(function() mg.auth { file = "u", mechs = "PLAIN" } end, "mg.auth: unknown option 'mechs'")
    end)
  end)

  describe("mg.switch", function()
    it("declares switches with ids in order", function()
      local a = mg.switch { name = "canary", percent = 10 }
      local b = mg.switch { name = "new-pool.v2:x_y", percent = 0.001 }
      local c = mg.switch { name = "off" }
      assert.same({ 0, 1, 2 }, { a.id, b.id, c.id })
      assert.equal(10, a.percent)
      assert.equal(0.001, b.percent)
      assert.equal(0, c.percent)
      assert.same({ a, b, c }, mg._state.switches)
      assert.is_nil(a.fleet_pool)
    end)

    it("takes a fleet source, with a default key", function()
      local main = mg.pool { name = "main", servers = { "127.0.0.1:1" } }
      local a = mg.switch { name = "canary", percent = 0, fleet = { pool = main } }
      assert.equal("main", a.fleet_pool)
      assert.equal("mintgate:switch:canary", a.fleet_key)
      local b = mg.switch { name = "b", fleet = { pool = "main", key = "mintgate:ops:b" } }
      assert.equal("main", b.fleet_pool)
      assert.equal("mintgate:ops:b", b.fleet_key)
      -- outside the gateway's namespace any client could set it
      raises(function() mg.switch { name = "c", fleet = { pool = "main", key = "ops:c" } } end,
        "mg.switch: 'fleet.key' must be a key beginning with \"mintgate:\"")
    end)

    it("refuses bad declarations", function()
      raises(function() mg.switch() end, "mg.switch: expected a table")
      raises(function() mg.switch "canary" end, "mg.switch: expected a table")
      for _, n in ipairs { false, "", "a b", "a/b", "é" } do
        raises(function() mg.switch { name = n } end,
          "mg.switch: 'name' must be a word (letters, digits, _ . : -)")
      end
      for _, p in ipairs { -1, 100.5, "10", true } do
        raises(function() mg.switch { name = "s", percent = p } end,
          "mg.switch: 'percent' must be a number from 0 to 100")
      end
      mg.switch { name = "s" }
      raises(function() mg.switch { name = "s" } end, "mg.switch: switch 's' declared twice")
      raises(function() mg.switch { name = "f1", fleet = "main" } end, "mg.switch: 'fleet' must be a table")
      raises(function() mg.switch { name = "f2", fleet = {} } end,
        "fleet.pool must be a pool (from mg.pool) or a pool's name")
      raises(function() mg.switch { name = "f3", fleet = { pool = "nosuch" } } end, "fleet.pool must be a pool")
    end)

    it("outside the gateway, sw:on follows the declared ends (0 off, 100 on)", function()
      local off = mg.switch { name = "off", percent = 0 }
      local half = mg.switch { name = "half", percent = 50 }
      local on = mg.switch { name = "on", percent = 100 }
      for _, k in ipairs { "a", "user:1", "user:2", ("x"):rep(250) } do
        assert.is_false(off:on(k))
        assert.is_false(half:on(k))
        assert.is_true(on:on(k))
      end
    end)
  end)

  describe("mg.memo", function()
    it("takes a size in entries per worker", function()
      assert.is_nil(mg._state.memo)
      mg.memo { size = 100000 }
      assert.same({ size = 100000 }, mg._state.memo)
      mg.memo { size = 64 }
      assert.same({ size = 64 }, mg._state.memo)
      mg.memo { size = 16777216 }
      assert.same({ size = 16777216 }, mg._state.memo)
    end)

    it("refuses bad declarations", function()
      raises(function() mg.memo() end, "mg.memo: expected a table { size = entries }")
      raises(function() mg.memo(1000) end, "mg.memo: expected a table")
      raises(function() mg.memo {} end, "mg.memo: 'size' is required (entries per worker)")
      for _, v in ipairs { 0, 63, 16777217, 100.5, -1, "1000", true, 0 / 0, math.huge } do
        raises(function() mg.memo { size = v } end,
          "mg.memo: 'size' must be a whole number from 64 to 16777216")
      end
      raises(function() mg.memo { size = 100, bytes = 10 } end, "mg.memo: unknown option 'bytes'")
      assert.is_nil(mg._state.memo)
    end)

    it("notes in _track that a switch was asked, once mg.memo is declared", function()
      local sw = mg.switch { name = "s", percent = 50 }
      local track = mg._track
      assert.same({ sw = false, cmd = false, other = false }, track)
      sw:on("k")
      assert.is_false(track.sw) -- without a memo nothing is noted (a store per key saved)
      mg.memo { size = 64 }
      sw:on("k")
      assert.is_true(track.sw)
    end)
  end)

  describe("pool calls", function()
    it("outside the gateway raise, pointing at the caller", function()
      local p = mg.pool { name = "main", servers = { "127.0.0.1:1" } }
      raises(function() p:get("k") end, "pool:get: pool calls are only possible while serving requests")
      raises(function() p:set("k", "v") end, "pool:set: pool calls are only possible")
      raises(function() p:add("k", "v") end, "pool:add: pool calls are only possible")
      raises(function() p:delete("k") end, "pool:delete: pool calls are only possible")
      raises(function() p:touch("k", 1) end, "pool:touch: pool calls are only possible")
      raises(function() p:incr("k") end, "pool:incr: pool calls are only possible")
      raises(function() p:decr("k") end, "pool:decr: pool calls are only possible")
    end)

    it("inside the gateway go to mintgate.core.call with defaults filled in", function()
      local calls = {}
      local core = {
        call = function(...)
          calls[#calls + 1] = { ... }
          return "result", 7
        end,
        switch_on = function(id, key) return id == 1 and key == "yes" end,
      }
      mg = fresh(core)
      local p = mg.pool { name = "main", servers = { "127.0.0.1:1" } }
      local a, b = p:get("k")
      assert.same({ "result", 7 }, { a, b })
      p:set("k", "v")
      p:set("k", "v", 30, 5)
      p:add("k", "v")
      p:delete("k")
      p:touch("k")
      p:touch("k", 9)
      p:incr("n")
      p:decr("n", 4)
      local want = {
        { p, "get", "k" },
        { p, "set", "k", "v", 0, 0 },
        { p, "set", "k", "v", 30, 5 },
        { p, "add", "k", "v", 0, 0 },
        { p, "delete", "k" },
        { p, "touch", "k", 0 },
        { p, "touch", "k", 9 },
        { p, "incr", "n", 1 },
        { p, "decr", "n", 4 },
      }
      assert.equal(#want, #calls)
      for i = 1, #want do assert.same(want[i], calls[i]) end
      -- switches ask the core, by id
      mg.switch { name = "zero" }
      local s = mg.switch { name = "one", percent = 0 }
      assert.is_true(s:on("yes"))
      assert.is_false(s:on("no"))
    end)
  end)
end)
