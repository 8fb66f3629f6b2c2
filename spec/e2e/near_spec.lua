-- The near cache (README "Near cache") end to end against real memcached: a write through
-- the gateway is seen at once from every connection (every worker); a write through
-- another gateway within ttl; the memory bound under a flood of distinct values; a herd
-- winner is never answered from it, nor is a stale value; hot keys found by the detector
-- are served near and marked in `stats hotkeys`; meta reads keep memcached's own flags.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"
local socket = require "socket"

local function addr(p) return "127.0.0.1:" .. p.port end

-- A config: pool "main" over mcs with the near options (Lua source), extra lines after.
local function config(mcs, pool_near, extra)
  local s = {}
  for i, m in ipairs(mcs) do s[i] = string.format("%q", addr(m)) end
  return table.concat({
    'local mg = require "mintgate"',
    'local main = mg.pool { name = "main", servers = { ' .. table.concat(s, ", ") .. ' }' ..
      (pool_near and (", near = " .. pool_near) or "") .. ' }',
    extra or "",
    'mg.route { default = main }',
  }, "\n") .. "\n"
end

local function near_stats(port)
  local c = client.connect(port)
  local s = c:stats("stats near")
  c:close()
  local t = {}
  for k, v in pairs(s) do t[k] = tonumber(v) or v end
  return t
end

describe("near cache", function()
  local E, mcs

  lazy_setup(function()
    env.require_binary()
    E = env.new("near")
    mcs = { E:memcached(), E:memcached() }
  end)
  lazy_teardown(function()
    if E then E:teardown() end
  end)
  after_each(function() E:close_clients() end)

  it("a write through the gateway is seen at once from every connection (every worker)", function()
    local gw = E:gateway { threads = 4, config = config(mcs, '{ ttl = 5, prefixes = { "feed:" } }') }
    local cs = {}
    for i = 1, 8 do cs[i] = E:client(gw.port, { name = "c" .. i }) end
    for i = 0, 2 do assert.equal("STORED", cs[1]:set("feed:" .. i, "start", 0, 100)) end
    for round = 1, 60 do
      local key = "feed:" .. (round % 3)
      local w = cs[round % #cs + 1]
      local v = "v" .. round
      -- every connection has it near before the write (fills on every worker)
      for _, c in ipairs(cs) do c:get(key) end
      local verb = ({ "set", "set", "append" })[round % 3 + 1]
      if verb == "append" then
        assert.equal("STORED", w:cmd(string.format("append %s 0 0 %d\r\n%s", key, #v, v)))
        v = nil
      else
        assert.equal("STORED", w:set(key, v, round, 100))
      end
      local want = v or client.value_on(mcs[1].port, key) or client.value_on(mcs[2].port, key)
      for i, c in ipairs(cs) do
        assert.equal(want, c:value(key), "round " .. round .. ", connection " .. i .. " after " .. verb)
      end
    end
    -- delete, incr, touch and flush_all drop it too
    local c = cs[1]
    assert.equal("STORED", c:set("feed:n", "5", 0, 100))
    for _, o in ipairs(cs) do assert.equal("5", o:value("feed:n")) end
    assert.equal("6", c:cmd("incr feed:n 1"))
    for _, o in ipairs(cs) do assert.equal("6", o:value("feed:n")) end
    assert.equal("DELETED", c:cmd("delete feed:n"))
    for _, o in ipairs(cs) do assert.is_nil(o:value("feed:n")) end
    assert.equal("STORED", c:set("feed:f", "x", 0, 100))
    for _, o in ipairs(cs) do assert.equal("x", o:value("feed:f")) end
    assert.equal("OK", c:cmd("flush_all"))
    for _, o in ipairs(cs) do assert.is_nil(o:value("feed:f")) end
    local st = near_stats(gw.port)
    assert.equal("yes", st.near_enabled)
    assert.is_true(st.near_hits > 100, "near hits " .. st.near_hits)
    assert.is_true(st.near_invalidations >= 60)
    assert.is_true(st["pool:main:near_hits"] > 100)
    -- keys without the prefix are never near
    assert.equal("STORED", c:set("other:1", "a", 0, 100))
    local before = near_stats(gw.port).near_hits
    for _ = 1, 10 do assert.equal("a", c:value("other:1")) end
    assert.equal(before, near_stats(gw.port).near_hits)
    E:stop(gw)
  end)

  it("a write through another gateway is seen within ttl", function()
    local ga = E:gateway { threads = 2, config = config(mcs, '{ ttl = 0.5, prefixes = { "feed:" } }') }
    local gb = E:gateway { threads = 1, config = config(mcs) }
    local a = E:client(ga.port, { name = "a" })
    local b = E:client(gb.port, { name = "b" })
    for round = 1, 5 do
      assert.equal("STORED", b:set("feed:x", "old" .. round, 0, 100))
      -- a has it near (once it has seen it: a fill, then hits)
      assert.is_true(env.wait_until(3, function() return a:value("feed:x") == "old" .. round end, 0.01))
      assert.equal("old" .. round, a:value("feed:x"))
      assert.equal("STORED", b:set("feed:x", "new" .. round, 0, 100))
      local t0 = env.now()
      local ok = env.wait_until(3, function() return a:value("feed:x") == "new" .. round end, 0.01)
      local took = env.now() - t0
      assert.is_true(ok, "gateway a never saw the write through b")
      assert.is_true(took <= 0.5 + 0.25, string.format("seen after %.3f s (ttl 0.5)", took))
    end
    assert.is_true(near_stats(ga.port).near_hits >= 5)
    E:stop(ga)
    E:stop(gb)
  end)

  it("stays within its size under a flood of distinct values", function()
    local gw = E:gateway { threads = 2, config = config(mcs, '{ prefixes = { "flood:" } }',
      'mg.near { size = "256k", hot = false, ttl = 30 }') }
    local c = E:client(gw.port)
    local value = string.rep("x", 1000)
    for i = 1, 1500 do
      assert.equal("STORED", c:set("flood:" .. i, value, 0, 100))
      assert.equal(value, c:value("flood:" .. i)) -- a fill
    end
    local st = near_stats(gw.port)
    assert.is_true(st.near_bytes <= 256 * 1024, "near bytes " .. st.near_bytes)
    assert.is_true(st.near_evictions > 1000, "evictions " .. st.near_evictions)
    assert.is_true(st.near_entries > 100, "entries " .. st.near_entries)
    -- what is still there is served right
    local hits = st.near_hits
    for i = 1490, 1500 do assert.equal(value, c:value("flood:" .. i)) end
    assert.is_true(near_stats(gw.port).near_hits > hits)
    -- values over max_value are never cached
    local big = string.rep("y", 70 * 1024)
    assert.equal("STORED", c:set("flood:big", big, 0, 100))
    for _ = 1, 3 do assert.equal(big, c:value("flood:big")) end
    assert.is_true(near_stats(gw.port).near_bytes <= 256 * 1024)
    E:stop(gw)
  end)

  it("never answers a herd winner or a stale value from the near cache", function()
    local gw = E:gateway { threads = 2, config = config(mcs, '{ ttl = 10, prefixes = { "h:" } }',
      'mg.stale { grace = 10, lock = 2, wait = 0 }') }
    local a = E:client(gw.port, { name = "a" })
    local b = E:client(gw.port, { name = "b" })
    assert.equal("STORED", a:set("h:1", "old", 0, 3))
    -- near while fresh: at most the nominal remaining TTL less a second
    assert.equal("old", a:value("h:1"))
    assert.equal("old", b:value("h:1"))
    assert.is_true(near_stats(gw.port).near_hits >= 1)
    -- past the nominal TTL: exactly one miss (the winner), then the stale value
    local misses, t0 = 0, env.now()
    while misses == 0 and env.now() - t0 < 6 do
      if a:value("h:1") == nil then misses = misses + 1 end
      env.sleep(0.05)
    end
    assert.equal(1, misses, "the winner's miss came")
    local hits_before = near_stats(gw.port).near_hits
    for _ = 1, 5 do assert.equal("old", b:value("h:1"), "the others get the stale value") end
    -- the stale value came from memcached each time (X/Z: never stored near)
    assert.equal(hits_before, near_stats(gw.port).near_hits)
    assert.equal("STORED", a:set("h:1", "new", 0, 100))
    assert.equal("new", b:value("h:1"))
    E:stop(gw)
  end)

  it("finds hot keys with the detector and serves them near; stats hotkeys says so", function()
    local gw = E:gateway { threads = 2, config = config(mcs, nil,
      'mg.near { ttl = 1, hot = true, hot_rps = 50 }\nmg.hotkeys { sample = 1 }') }
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("celebrity", "v", 0, 100))
    assert.equal("STORED", c:set("nobody", "w", 0, 100))
    local ok = env.wait_until(5, function()
      for _ = 1, 50 do c:value("celebrity") end
      return near_stats(gw.port).near_hits > 100
    end, 0.01)
    assert.is_true(ok, "the hot key was never served near")
    -- published by the detector's early wake (a worker saw it reach the rate), not only
    -- by the quarter-second tick: the gateway's first publication, before it takes any
    -- request, tells the workers what rate a sample stands for, so the worker that sees
    -- the key reach its share of hot_rps wakes the publication before any tick can take it
    assert.is_true(near_stats(gw.port).near_hot_wakes >= 1, "no early wake")
    c:value("nobody")
    local s = c:stats("stats hotkeys")
    local near_of = {}
    for i = 1, 10 do
      local k = s["hotkey:" .. i .. ":key"]
      if k then near_of[k] = s["hotkey:" .. i .. ":near"] end
    end
    assert.equal("yes", near_of.celebrity)
    assert.is_not.equal("yes", near_of.nobody)
    -- a write drops it at once
    assert.equal("STORED", c:set("celebrity", "v2", 0, 100))
    assert.equal("v2", c:value("celebrity"))
    E:stop(gw)
  end)

  it("examples/near_cache.lua: feed: keys near for half a second, others not", function()
    local gw, ems = env.start_example(E, "near_cache", 2)
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("feed:home", "posts", 0, 100))
    assert.equal("STORED", c:set("user:1", "u", 0, 100))
    for _ = 1, 5 do
      assert.equal("posts", c:value("feed:home"))
      assert.equal("u", c:value("user:1"))
    end
    local st = near_stats(gw.port)
    assert.equal(5, st["pool:main:near_hits"]) -- the feed key's reads: its set filled it
    assert.equal(0.5, st["pool:main:near_ttl"])
    assert.equal("yes", st.near_hot)
    -- behind the gateway's back: served near at most half a second longer
    local owner
    for _, m in ipairs(ems) do if client.value_on(m.port, "feed:home") then owner = m end end
    assert.equal("STORED", client.set_on(owner.port, "feed:home", "fresh", 0, 100))
    local t0 = env.now()
    assert.is_true(env.wait_until(2, function() return c:value("feed:home") == "fresh" end, 0.01))
    assert.is_true(env.now() - t0 <= 0.75)
    E:stop(gw)
  end)

  it("meta reads are answered near with memcached's flags; gets answers carry the cas", function()
    local gw = E:gateway { threads = 1, config = config(mcs, '{ ttl = 5, prefixes = { "m:" } }') }
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("m:1", "abc", 42, 100))
    local items = c:gets("m:1")
    local cas = items["m:1"].cas
    assert.is_not_nil(cas)
    local again = c:gets("m:1") -- near now
    assert.equal(cas, again["m:1"].cas)
    assert.equal(42, again["m:1"].flags)
    local hits = near_stats(gw.port).near_hits
    assert.is_true(hits >= 1)
    local direct
    for _, m in ipairs(mcs) do
      local d = client.connect(m.port)
      local dl = d:cmd("mg m:1 v f c t s k Oab12")
      if not dl:match("^EN") then direct = dl; assert.equal("abc", d:line()) end
      d:close()
    end
    local function same_but_t(got, want)
      local gt, wt = got:match(" t(%d+)"), want:match(" t(%d+)")
      assert.is_true(math.abs(tonumber(gt) - tonumber(wt)) <= 1, got .. " vs " .. want)
      assert.equal((want:gsub(" t%d+", " t")), (got:gsub(" t%d+", " t")))
    end
    local l = c:cmd("mg m:1 v f c t s k Oab12")
    same_but_t(l, direct)
    assert.truthy(l:match("^VA 3 f42 c" .. cas .. " t%d+ s3 km:1 Oab12$"), l)
    assert.equal("abc", c:line())
    -- without v: HD and the flags; with q: the same (q hides misses only)
    l = c:cmd("mg m:1 s q f")
    assert.equal("HD s3 f42", l)
    assert.equal(hits + 2, near_stats(gw.port).near_hits, "both meta reads were near hits")
    -- flags only memcached knows (h: hit before, l: last access) go to memcached
    l = c:cmd("mg m:1 h f")
    assert.truthy(l:match("^HD h%d f42$"), l)
    assert.equal(hits + 2, near_stats(gw.port).near_hits)
    -- an mg that touches is a write: the entry is dropped
    assert.truthy(c:cmd("mg m:1 T50 f"):match("^HD f42"))
    assert.truthy(c:cmd("mg m:1 t"):match("^HD t%d+$"))
    assert.equal(hits + 2, near_stats(gw.port).near_hits)
    E:stop(gw)
  end)

  it("a client's pipelined writes and reads keep memcached's order and answers (express lane too)", function()
    local gw = E:gateway { threads = 2, config = config(mcs, '{ ttl = 5, prefixes = { "p:" } }') }
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("p:k", "x000", 3, 100))
    assert.equal("x000", c:value("p:k")) -- filled
    local st0 = c:stats()
    local n0 = near_stats(gw.port)
    local function value_reply(want, what)
      local items = c:get_reply()
      assert.equal(want, items["p:k"] and items["p:k"].value, what)
      assert.equal(3, items["p:k"].flags)
    end
    for i = 1, 100 do
      local v = string.format("x%03d", i)
      -- one packet: a near hit, a write, reads after the write (memcached answers them with
      -- the new value), a hit again, a miss, a gets, a version in between
      c:send(string.format("get p:k\r\nset p:k 3 0 4\r\n%s\r\nget p:k\r\nget p:k\r\n" ..
        "get p:none\r\nversion\r\ngets p:k\r\n", v))
      value_reply(string.format("x%03d", i - 1), "round " .. i .. ": the hit before the write")
      assert.equal("STORED", c:line())
      value_reply(v, "round " .. i .. ": a read after the client's own write")
      value_reply(v, "round " .. i .. ": the read after that")
      assert.equal("END", c:line())
      assert.truthy(c:line():match("^VERSION "))
      local items = c:get_reply()
      assert.equal(v, items["p:k"].value)
      assert.is_not_nil(items["p:k"].cas)
    end
    -- a burst of pipelined near hits, answered in order with the right counts
    assert.equal("x100", c:value("p:k"))
    local st1, n1 = c:stats(), near_stats(gw.port)
    c:send(string.rep("get p:k\r\n", 500) .. "gets p:k\r\n")
    for _ = 1, 501 do
      local items = c:get_reply()
      assert.equal("x100", items["p:k"].value)
    end
    local st2, n2 = c:stats(), near_stats(gw.port)
    assert.equal(501, tonumber(st2.cmd_get) - tonumber(st1.cmd_get))
    assert.equal(501, tonumber(st2.get_hits) - tonumber(st1.get_hits))
    assert.equal(501, n2.near_hits - n1.near_hits)
    assert.equal(501, tonumber(st1.cmd_get) - tonumber(st0.cmd_get)) -- 5 a round, c:value
    assert.is_true(n1.near_hits >= n0.near_hits)
    -- a client that sends its gets and closes its side still gets every answer (3.6 MB of
    -- them from the express lane)
    local big = string.rep("b", 60000)
    assert.equal("STORED", c:set("p:big", big, 0, 100))
    assert.equal(big, c:value("p:big"))
    local h = E:client(gw.port, { name = "half" })
    h:send(string.rep("get p:big\r\n", 60))
    h.sock:shutdown("send")
    socket.sleep(0.3) -- the gateway reads the end while its replies wait for the socket
    for i = 1, 60 do assert.equal(big, h:get_reply()["p:big"].value, "reply " .. i) end
    assert.is_true(h:closed())
    E:stop(gw)
  end)

  it("a write through the gateway fills the near cache with its own value once stored", function()
    local gw = E:gateway { threads = 2, config = config(mcs, '{ ttl = 5, prefixes = { "p:" } }') }
    local cs = {}
    for i = 1, 3 do cs[i] = E:client(gw.port, { name = "w" .. i }) end
    local function mc_gets()
      local n = 0
      for _, m in ipairs(mcs) do
        local d = client.connect(m.port)
        n = n + tonumber(d:stats().cmd_get)
        d:close()
      end
      return n
    end
    assert.equal("STORED", cs[1]:set("p:w", "v1", 7, 100))
    local before, n0 = mc_gets(), near_stats(gw.port)
    for _, c in ipairs(cs) do assert.equal("v1", c:value("p:w")) end
    local items = cs[2]:gets("p:w")
    assert.equal(7, items["p:w"].flags)
    assert.equal(before, mc_gets(), "the reads after the set went to memcached")
    assert.equal(4, near_stats(gw.port).near_hits - n0.near_hits)
    -- the CAS kept with it is memcached's: a cas with it stores
    assert.equal("STORED", cs[3]:cmd(string.format("cas p:w 7 100 2 %s\r\nv2", items["p:w"].cas)))
    assert.equal("v2", cs[1]:value("p:w"))
    -- the item's own TTL bounds it: set for 2 s, near for at most 1 s of it, then memcached's
    assert.equal("STORED", cs[1]:set("p:t", "short", 0, 2))
    assert.equal("short", cs[2]:value("p:t"))
    socket.sleep(2.3)
    assert.is_nil(cs[2]:value("p:t"))
    -- two clients writing one key at once: what the near cache answers afterwards is what
    -- memcached holds (a write's fill is refused when another write came between)
    for round = 1, 20 do
      for i = 1, 2 do
        local buf = {}
        for j = 1, 30 do
          local v = string.format("r%d-c%d-%02d", round, i, j)
          buf[#buf + 1] = string.format("set p:r 0 100 %d\r\n%s\r\n", #v, v)
        end
        cs[i]:send(table.concat(buf))
      end
      for i = 1, 2 do for _ = 1, 30 do assert.equal("STORED", cs[i]:line()) end end
      local want = client.value_on(mcs[1].port, "p:r") or client.value_on(mcs[2].port, "p:r")
      for _, c in ipairs(cs) do assert.equal(want, c:value("p:r"), "round " .. round) end
    end
    E:stop(gw)
  end)
end)
