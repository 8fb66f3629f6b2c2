-- mg.failover (issue 12, item 2): children in order; a key whose server is down, hangs or
-- errs moves on to the next child (`on` selects which); writes that land on a child after
-- the first live at most `ttl` seconds (observed on the gutter server itself); deletes
-- reach every child; `on_miss` moves reads on after a miss. Real memcached throughout:
-- killed, SIGSTOPped (hung) and restarted.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local SIGSTOP, SIGCONT = 19, 18

local ttl_on, value_on = client.ttl_on, client.value_on

describe("mg.failover", function()
  local E
  lazy_setup(function() E = env.new("failover") end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  local function gateway(main, gutter, opts)
    return E:gateway { threads = 2, config = string.format([[
      local mg = require "mintgate"
      local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" }, timeout = 0.3,
        connect_timeout = 0.3, failure_limit = 1, retry_timeout = 30 }
      local gutter = mg.pool { name = "gutter", servers = { "127.0.0.1:%d" } }
      mg.route { default = mg.failover { main, gutter, name = "fo", %s } }
    ]], main.port, gutter.port, opts or "ttl = 10") }
  end

  it("serves from the first pool while it is up: the gutter sees nothing", function()
    local A, G = E:memcached(), E:memcached()
    local gw = gateway(A, G)
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("k1", "v1", 0, 100))
    assert.equal("v1", c:value("k1"))
    assert.equal("v1", value_on(A.port, "k1"))
    assert.is_nil(value_on(G.port, "k1"))
    local st = E:client(gw.port):stats("stats routes")
    assert.equal("main", st["route:fo:child:0"])
    assert.equal("0", st["route:fo:fallbacks"])
  end)

  it("a dead first pool: writes land on the gutter with their TTL capped, reads follow", function()
    local A, G = E:memcached(), E:memcached()
    local gw = gateway(A, G)
    local c = E:client(gw.port)
    E:stop(A)
    assert.equal("STORED", c:set("k2", "v2", 0, 100))     -- TTL 100 -> 10 on the gutter
    assert.equal("STORED", c:set("k3", "v3", 0, 0))       -- never expires -> 10
    assert.equal("HD", c:cmd("ms k4 2 T500\r\nv4"))        -- meta: T500 -> T10
    assert.equal("HD", c:cmd("ms k5 2 T5\r\nv5"))          -- already within the cap
    assert.equal("v2", c:value("k2"))
    for _, k in ipairs { "k2", "k3", "k4" } do
      local t = ttl_on(G.port, k)
      assert(t and t > 0 and t <= 10, k .. " has TTL " .. tostring(t) .. " on the gutter")
    end
    local t5 = ttl_on(G.port, "k5")
    assert(t5 and t5 <= 5, "k5 has TTL " .. tostring(t5))
    local st = E:client(gw.port):stats("stats routes")
    assert(tonumber(st["route:fo:fallbacks"]) >= 5, st["route:fo:fallbacks"])
    assert(tonumber(st["route:fo:fallback_writes"]) >= 4, st["route:fo:fallback_writes"])
    assert.equal("0", st["route:fo:failed"])
  end)

  it("a delete reaches every child, so a gutter copy cannot outlive it", function()
    local A, G = E:memcached(), E:memcached()
    local gw = gateway(A, G)
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("d1", "main-copy"))
    local g = client.connect(G.port)
    assert.equal("STORED", g:set("d1", "gutter-copy"))
    g:close()
    assert.equal("DELETED", c:cmd("delete d1"))
    assert.equal(true, env.wait_until(2, function() return value_on(G.port, "d1") == nil end, 0.02))
    assert.is_nil(value_on(A.port, "d1"))
    -- meta delete too
    assert.equal("STORED", c:set("d2", "x"))
    g = client.connect(G.port)
    assert.equal("STORED", g:set("d2", "y"))
    g:close()
    assert.equal("HD", c:cmd("md d2"))
    assert.equal(true, env.wait_until(2, function() return value_on(G.port, "d2") == nil end, 0.02))
  end)

  it("a hung first pool: its keys are answered from the gutter after the timeout", function()
    local A, G = E:memcached(), E:memcached()
    local gw = gateway(A, G)
    local c = E:client(gw.port)
    local g = client.connect(G.port)
    assert.equal("STORED", g:set("h1", "from-gutter"))
    g:close()
    A:signal(SIGSTOP)
    local t0 = env.now()
    assert.equal("from-gutter", c:value("h1"))
    local took = env.now() - t0
    A:signal(SIGCONT)
    assert(took < 2, string.format("took %.2f s", took))
  end)

  it("on = { \"down\" }: a timeout does not move on", function()
    local A, G = E:memcached(), E:memcached()
    local gw = gateway(A, G, [[on = { "down" }]])
    local c = E:client(gw.port)
    A:signal(SIGSTOP)
    local l = c:cmd("get h2", 5)
    A:signal(SIGCONT)
    assert.equal("SERVER_ERROR backend timeout", l)
    local st = E:client(gw.port):stats("stats routes")
    assert.equal("0", st["route:fo:fallbacks"])
    assert.equal("1", st["route:fo:failed"])
  end)

  it("a staleness policy keeps working through the route, on the pool that serves", function()
    local A, G = E:memcached(), E:memcached()
    local gw = E:gateway { threads = 1, config = string.format([[
      local mg = require "mintgate"
      mg.stale { grace = 30, lock = 2, wait = 50 }
      local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" }, timeout = 0.3,
        connect_timeout = 0.3, failure_limit = 1, retry_timeout = 30 }
      local gutter = mg.pool { name = "gutter", servers = { "127.0.0.1:%d" } }
      mg.route { default = mg.failover { main, gutter, name = "fo", ttl = 10 } }
    ]], A.port, G.port) }
    local c, c2 = E:client(gw.port), E:client(gw.port)
    E:stop(A)
    assert.same({}, c:get("hk")) -- a cold miss on the gutter: this client regenerates
    local st = E:client(gw.port):stats("stats pools")
    assert.equal("1", st["pool:gutter:herd_wins"])
    -- a second client meanwhile waits for the value (wait = 50 ms), then misses
    assert.same({}, c2:get("hk"))
    assert.equal("STORED", c:set("hk", "fresh", 0, 100))
    local t = ttl_on(G.port, "hk") -- 100 capped to 10, then the 30 s grace as for any pool
    assert(t and t > 30 and t <= 40, "TTL on the gutter: " .. tostring(t))
    assert.equal("fresh", c2:value("hk"))
  end)

  it("every child down: the client gets the last child's error", function()
    local A, G = E:memcached(), E:memcached()
    local gw = gateway(A, G)
    E:stop(A)
    E:stop(G)
    local c = E:client(gw.port)
    assert.matches("^SERVER_ERROR", c:cmd("set z 0 0 1\r\nz", 5))
    assert.matches("^SERVER_ERROR", c:cmd("get z", 5))
  end)

  it("on_miss: a read that misses moves on; a route function may return the route", function()
    local A, B = E:memcached(), E:memcached()
    local gw = E:gateway { threads = 1, config = string.format([[
      local mg = require "mintgate"
      local a = mg.pool { name = "a", servers = { "127.0.0.1:%d" } }
      local b = mg.pool { name = "b", servers = { "127.0.0.1:%d" } }
      local miss = mg.failover { a, b, on_miss = true, name = "miss" }
      mg.route(function(req)
        if req.key:sub(1, 5) == "only:" then return a end
        return miss
      end)
    ]], A.port, B.port) }
    local d = client.connect(B.port)
    assert.equal("STORED", d:set("old:1", "from-b"))
    assert.equal("STORED", d:set("only:1", "from-b"))
    d:close()
    local c = E:client(gw.port)
    assert.equal("from-b", c:value("old:1"))
    c:send("mg old:1 v\r\n")
    local line, v = c:meta_reply()
    assert.equal("VA 6", line)
    assert.equal("from-b", v)
    assert.is_nil(c:value("only:1")) -- pool a alone: a miss is a miss
    assert.is_nil(c:value("nowhere"))
    local st = E:client(gw.port):stats("stats routes")
    assert.equal("3", st["route:miss:misses_moved"])
  end)

  it("refuses what it cannot do, with the reason", function()
    local A = E:memcached()
    local function check(body)
      local path = E.dir .. "/bad-failover.lua"
      env.write_file(path, string.format([[
        local mg = require "mintgate"
        local a = mg.pool { name = "a", servers = { "127.0.0.1:%d" } }
        local b = mg.pool { name = "b", servers = { "127.0.0.1:%d" } }
        %s
      ]], A.port, A.port + 0, body))
      local rc, out, err = env.run({ env.bin, "--check", path }, { timeout = 10 })
      return rc, out .. err
    end
    local rc, msg = check([[mg.route { default = mg.failover { a } }]])
    assert.equal(1, rc)
    assert.matches("at least two pools", msg)
    rc, msg = check([[local r = mg.failover { a, b }
      for _ = 1, 4 do r = mg.failover { r, b } end]])
    assert.equal(1, rc)
    assert.matches("routes nest at most 4 deep", msg)
    rc, msg = check([[mg.failover { a, b, ttl = -1 }]])
    assert.equal(1, rc)
    assert.matches("'ttl'", msg)
    rc, msg = check([[mg.failover { a, b, on = { "sometimes" } }]])
    assert.equal(1, rc)
    assert.matches("'on'", msg)
    rc, msg = check([[mg.switch { name = "s", fleet = { pool = mg.failover { a, b } } }]])
    assert.equal(1, rc)
    assert.matches("fleet.pool must be a pool", msg)
    rc = check([[mg.route { ["x:"] = mg.failover { a, b, ttl = 5 }, default = a }]])
    assert.equal(0, rc)
  end)

  it("examples/failover_gutter.lua: a dead main server's keys are served by the gutter", function()
    local gw, mcs = env.start_example(E, "failover_gutter", 3)
    local c = E:client(gw.port)
    for i = 1, 20 do assert.equal("STORED", c:set("ex:" .. i, "v" .. i)) end
    E:stop(mcs[1])
    for i = 1, 20 do assert.equal("STORED", c:set("ex:" .. i, "w" .. i, 0, 3600)) end
    for i = 1, 20 do assert.equal("w" .. i, c:value("ex:" .. i)) end
    local on_gutter = 0
    for i = 1, 20 do
      local t = ttl_on(mcs[3].port, "ex:" .. i)
      if t then
        on_gutter = on_gutter + 1
        assert(t > 0 and t <= 10, "gutter TTL " .. t)
      end
    end
    assert(on_gutter > 0, "no key went to the gutter")
  end)
end)
