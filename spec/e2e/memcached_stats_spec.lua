-- memcached's own stats through the gateway, as real clients ask for them: plain `stats`
-- carries the backends' curr_items, total_items, bytes, limit_maxbytes and evictions summed
-- (fetched in the background, at most about a second old), `stats items`, `stats slabs`,
-- `stats sizes` sum the backends' lines, `stats settings` and `stats conns` are the
-- gateway's own, `version` is a bare x.y.z, and a dead or hung backend makes none of them
-- slow or fail. Checked against each memcached's own stats and with libmemcached's memcstat.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local function stats_of(port, cmd)
  local c = client.connect(port)
  local t, order = c:stats(cmd)
  c:close()
  return t, order
end

local function n(t, k) return tonumber(t[k] or "") end

local function show(t, keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(t[k]) end
  return table.concat(parts, " ")
end

describe("memcached's stats through the gateway", function()
  local E, gw, a, b

  lazy_setup(function()
    env.require_binary()
    E = env.new("memcached_stats")
    a, b = E:memcached(), E:memcached()
    gw = E:gateway { threads = 2, servers = { a.port, b.port } }
    -- small values (slab class 1) and larger ones (another class) on both servers
    local c = client.connect(gw.port)
    for i = 1, 60 do assert.equal("STORED", c:set("ms:small:" .. i, "v" .. i)) end
    for i = 1, 20 do assert.equal("STORED", c:set("ms:big:" .. i, string.rep("x", 3000))) end
    c:close()
  end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() E:close_clients() end)

  -- the backends' own numbers, summed
  local function direct_sum(cmd, keys)
    local sa, sb = stats_of(a.port, cmd), stats_of(b.port, cmd)
    local t = {}
    for _, k in ipairs(keys) do t[k] = (n(sa, k) or 0) + (n(sb, k) or 0) end
    return t, sa, sb
  end

  local SUMMED = { "curr_items", "total_items", "bytes", "limit_maxbytes", "evictions" }

  -- Wait until the gateway's plain stats show the backends' sums (it fetches them about
  -- once a second); returns the sums and the gateway's stats.
  local function settled()
    local want, got
    local ok = env.wait_until(3, function()
      want, got = direct_sum("stats", SUMMED), stats_of(gw.port)
      for _, k in ipairs(SUMMED) do
        if n(got, k) ~= want[k] then return false end
      end
      return true
    end, 0.05)
    assert(ok, "gateway: " .. show(got, SUMMED) .. "; want: " .. show(want, SUMMED))
    return want, got
  end

  it("plain stats sums curr_items, total_items, bytes, limit_maxbytes, evictions", function()
    local _, sa, sb = direct_sum("stats", SUMMED)
    assert(n(sa, "curr_items") > 0 and n(sb, "curr_items") > 0, "keys on both servers")
    local want, got = settled()
    assert.equal(80, want.curr_items)
    assert.equal("2", got.backend_stats_servers)
    -- the gateway's own fields are still its own
    assert(n(got, "cmd_set") >= 80, "cmd_set " .. tostring(got.cmd_set))
  end)

  it("is at most about a second old", function()
    local before = n(stats_of(gw.port), "curr_items")
    local c = E:client(gw.port)
    for i = 1, 10 do assert.equal("STORED", c:set("ms:fresh:" .. i, "v")) end
    local t0 = env.now()
    local ok = env.wait_until(3, function()
      return n(stats_of(gw.port), "curr_items") == before + 10
    end, 0.02)
    local took = env.now() - t0
    assert(ok, "curr_items never grew by 10")
    assert(took <= 1.6, string.format("the sets showed in stats after %.2f s", took))
    for i = 1, 10 do c:cmd("delete ms:fresh:" .. i) end
  end)

  it("memcstat reports the pool's items and bytes, and memcached's version", function()
    local want = settled()
    local rc, out, err = env.run({ "memcstat", "--servers=127.0.0.1:" .. gw.port }, { timeout = 10 })
    assert.equal(0, rc, out .. err)
    assert.equal(want.curr_items, tonumber(out:match("curr_items: (%d+)")), out)
    assert.equal(want.bytes, tonumber(out:match("\tbytes: (%d+)")), out)
    assert.truthy(out:match("version: 1%.6%.%d+\n"), out)
    rc, out, err = env.run({ "memcstat", "--servers=127.0.0.1:" .. gw.port, "-a" }, { timeout = 10 })
    assert.equal(0, rc, out .. err)
    local avg = tonumber(out:match("Average Item Size[^:]*: (%d+) bytes"))
    assert(avg and avg > 0, "memcstat -a: " .. out)
    rc, out, err = env.run({ "memcstat", "--servers=127.0.0.1:" .. gw.port, "-S" }, { timeout = 10 })
    assert.equal(0, rc, out .. err)
    assert.truthy((out .. err):match(":" .. gw.port .. " 1%.6%.%d+"), out .. err) -- on stderr
  end)

  it("version is memcached's x.y.z alone; stats names the gateway's own version", function()
    local c = E:client(gw.port)
    local line = c:cmd("version")
    local v = line:match("^VERSION (%d+%.%d+%.%d+)$")
    assert(v, "version line: " .. line)
    assert.truthy(v:match("^1%.6%."), line)
    -- node's `memcached` takes the last x.y.z of the line: it must be memcached's
    assert.equal(v, line:match("(%d+%.%d+%.%d+)$"))
    local s = stats_of(gw.port)
    assert.equal(v, s.version)
    local _, out = env.run({ env.bin, "--version" }, { timeout = 10 })
    assert.equal(out:match("mintgate (%S+)"), s.mintgate_version)
  end)

  it("stats items and stats slabs sum the backends' lines, class by class", function()
    local why
    local function fail(msg) why = msg; return false end
    local ok = env.wait_until(3, function()
      local gi, sa, sb = stats_of(gw.port, "stats items"), stats_of(a.port, "stats items"),
        stats_of(b.port, "stats items")
      local classes = 0
      for k, v in pairs(gi) do
        local cls, field = k:match("^items:(%d+):(%S+)$")
        if not cls then return fail("bad line " .. k) end
        if field == "number" then
          classes = classes + 1
          local want = (n(sa, k) or 0) + (n(sb, k) or 0)
          if tonumber(v) ~= want then return fail(k .. " " .. v .. " want " .. want) end
        end
      end
      if classes < 2 then return fail("classes " .. classes) end
      local gs, ta, tb = stats_of(gw.port, "stats slabs"), stats_of(a.port, "stats slabs"),
        stats_of(b.port, "stats slabs")
      for _, k in ipairs { "total_malloced" } do
        if n(gs, k) ~= n(ta, k) + n(tb, k) then return fail(k .. " " .. tostring(gs[k])) end
      end
      for k, v in pairs(gs) do
        if k:match("^%d+:used_chunks$") and tonumber(v) ~= (n(ta, k) or 0) + (n(tb, k) or 0) then
          return fail(k .. " " .. v)
        end
        if k:match("^%d+:chunk_size$") and tonumber(v) ~= (n(ta, k) or n(tb, k)) then
          return fail(k .. " is not the servers' chunk size: " .. v)
        end
      end
      return true
    end, 0.05)
    assert(ok, why)
  end)

  it("stats items lists classes in order, each with memcached's field order", function()
    local _, order = stats_of(gw.port, "stats items")
    local _, direct = stats_of(a.port, "stats items")
    local last = -1
    for _, k in ipairs(order) do
      local cls = tonumber(k:match("^items:(%d+):"))
      assert(cls >= last, "class " .. cls .. " after " .. last)
      last = cls
    end
    -- the first class's fields in the order memcached gives them
    local cls = direct[1]:match("^items:(%d+):")
    local mine = {}
    for _, k in ipairs(order) do if k:match("^items:" .. cls .. ":") then mine[#mine + 1] = k end end
    local theirs = {}
    for _, k in ipairs(direct) do if k:match("^items:" .. cls .. ":") then theirs[#theirs + 1] = k end end
    assert.same(theirs, mine)
  end)

  it("stats sizes answers as memcached does", function()
    local s = stats_of(gw.port, "stats sizes")
    assert.equal(stats_of(a.port, "stats sizes").sizes_status, s.sizes_status)
  end)

  it("stats settings gives the gateway's own settings in memcached's names", function()
    local s = stats_of(gw.port, "stats settings")
    assert.equal(tostring(gw.port), s.tcpport)
    assert.equal("2", s.num_threads)
    assert.equal("1048576", s.item_size_max)
    assert.truthy(s.maxconns:match("^%d+$"), s.maxconns)
    assert.equal("2", s.servers)
  end)

  it("stats conns lists the listener and the asking connection", function()
    local c = E:client(gw.port)
    local t = c:stats("stats conns")
    local mine, myport = c.sock:getsockname()
    local found, listening = false, false
    for k, v in pairs(t) do
      local fd, field = k:match("^(%d+):(%S+)$")
      assert(fd, "bad stats conns line " .. k)
      if field == "addr" and v == "tcp:" .. mine .. ":" .. myport then
        found = true
        assert.equal("tcp:127.0.0.1:" .. gw.port, t[fd .. ":listen_addr"])
        assert.equal("conn_parse_cmd", t[fd .. ":state"])
      end
      if field == "state" and v == "conn_listening" then
        listening = true
        assert.equal("tcp:127.0.0.1:" .. gw.port, t[fd .. ":addr"])
      end
    end
    assert(found, "the asking connection is not listed")
    assert(listening, "no listener listed")
  end)

  it("an unknown stats subcommand is still ERROR", function()
    local c = E:client(gw.port)
    assert.equal("ERROR", c:cmd("stats nosuch"))
    assert.equal("VERSION", c:cmd("version"):match("^(%S+)")) -- the connection goes on
  end)
end)

describe("memcached's stats through the gateway, a backend down", function()
  local E, gw, live, hung_gw

  lazy_setup(function()
    env.require_binary()
    E = env.new("memcached_stats_down")
    live = E:memcached()
    local refused, hung = env.free_port(), env.free_port()
    E:fake_backend(hung, "hang", 60) -- accepts, reads, never answers
    gw = E:gateway { threads = 1, servers = { live.port, refused } }
    hung_gw = E:gateway { threads = 1, servers = { live.port, hung } }
    assert.equal("STORED", client.set_on(live.port, "down:k", "v"))
  end)
  lazy_teardown(function() if E then E:teardown() end end)

  for _, case in ipairs { { "refused", function() return gw end },
                          { "hung", function() return hung_gw end } } do
    it("stats stays fast and counts the live server only (" .. case[1] .. ")", function()
      local g = case[2]()
      local want = n(stats_of(live.port), "curr_items")
      local ok = env.wait_until(4, function()
        local s = stats_of(g.port)
        return n(s, "curr_items") == want and s.backend_stats_servers == "1"
      end, 0.05)
      assert(ok, "curr_items never showed the live server's " .. want)
      -- across several fetch rounds (the hung one times out after 2 s), every answer is quick
      local t_end = env.now() + 3
      while env.now() < t_end do
        for _, cmd in ipairs { "stats", "stats items", "stats slabs", "stats sizes" } do
          local t0 = env.now()
          local s = stats_of(g.port, cmd)
          local took = env.now() - t0
          assert(took < 0.25, string.format("%s took %.3f s", cmd, took))
          if cmd == "stats" then
            assert(n(s, "curr_items") <= want, "curr_items " .. s.curr_items)
          end
        end
        env.sleep(0.1)
      end
    end)
  end
end)
