-- mg.replicate (issue 12, item 3): every write and delete reaches each replica; the client
-- waits for all of them, a majority, or the first (async) and gets the worst answer of
-- those; reads go to the first, a random, the fastest replica, or fail over. A delete a
-- replica misses while it is unreachable is replayed before it serves reads again. Real
-- memcached; a delaying proxy (spec/helpers/fake_backend.lua slow) stands for a replica
-- that is cut off while keeping its data.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local dvalue, dset = client.value_on, client.set_on

local function stat(port, name)
  local d = client.connect(port)
  local st = d:stats("stats")
  d:close()
  return tonumber(st[name])
end

describe("mg.replicate", function()
  local E
  lazy_setup(function() E = env.new("replicate") end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  -- A gateway over ports with route "rep" declared by opts (Lua table fields).
  local function gateway(ports, opts, threads)
    local pools, names = {}, {}
    for i, p in ipairs(ports) do
      pools[#pools + 1] = string.format([[local p%d = mg.pool { name = "r%d", servers = {
        "127.0.0.1:%d" }, timeout = 0.3, connect_timeout = 0.3, failure_limit = 1,
        retry_timeout = 1 }]], i, i, p)
      names[#names + 1] = "p" .. i
    end
    return E:gateway { threads = threads or 2, config = "local mg = require 'mintgate'\n" ..
      table.concat(pools, "\n") .. string.format(
      "\nmg.route { default = mg.replicate { %s, name = 'rep', %s } }\n",
      table.concat(names, ", "), opts or "") }
  end

  it("writes and deletes reach every replica; reads = first reads the first", function()
    local A, B = E:memcached(), E:memcached()
    local gw = gateway({ A.port, B.port })
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("k1", "v1"))
    assert.equal("v1", dvalue(A.port, "k1"))
    assert.equal("v1", dvalue(B.port, "k1"))
    assert.equal("STORED", dset(B.port, "k1", "only-on-b"))
    assert.equal("v1", c:value("k1"))
    assert.equal("DELETED", c:cmd("delete k1"))
    assert.is_nil(dvalue(A.port, "k1"))
    assert.is_nil(dvalue(B.port, "k1"))
    assert.equal("HD", c:cmd("ms k2 2\r\nv2"))
    assert.equal("v2", dvalue(B.port, "k2"))
    assert.equal("NOT_FOUND", c:cmd("incr k3 5", 5))
    local st = E:client(gw.port):stats("stats routes")
    assert.equal("replicate", st["route:rep:kind"])
    assert.equal("all", st["route:rep:writes"])
  end)

  it("writes = all answers the worst; majority a majority's; async the first's", function()
    local A, B, C = E:memcached(), E:memcached(), E:memcached()
    local all = gateway({ A.port, B.port, C.port }, [[writes = "all"]])
    local maj = gateway({ A.port, B.port, C.port }, [[writes = "majority"]])
    local async = gateway({ A.port, B.port, C.port }, [[writes = "async"]])
    -- NOT_STORED on one replica is worse than STORED: add where only C has the key
    assert.equal("STORED", dset(C.port, "a1", "c"))
    assert.equal("NOT_STORED", E:client(all.port):cmd("add a1 0 0 1\r\nx"))
    assert.equal("x", dvalue(A.port, "a1"))
    assert.equal("STORED", dset(C.port, "a2", "c"))
    assert.equal("STORED", E:client(maj.port):cmd("add a2 0 0 1\r\nx")) -- 2 of 3 did it
    assert.equal("STORED", dset(C.port, "a3", "c"))
    assert.equal("STORED", E:client(async.port):cmd("add a3 0 0 1\r\nx"))
    -- one replica dead
    E:stop(C)
    assert.matches("^SERVER_ERROR", E:client(all.port):cmd("set d1 0 0 1\r\nx", 5))
    assert.equal("x", dvalue(A.port, "d1"))
    assert.equal("STORED", E:client(maj.port):cmd("set d2 0 0 1\r\nx", 5))
    assert.equal("STORED", E:client(async.port):cmd("set d3 0 0 1\r\nx", 5))
    E:stop(B)
    assert.matches("^SERVER_ERROR", E:client(maj.port):cmd("set d4 0 0 1\r\nx", 5))
    local st = E:client(maj.port):stats("stats routes")
    assert(tonumber(st["route:rep:replica_errors"]) >= 2, st["route:rep:replica_errors"])
  end)

  it("reads = random spreads reads; reads = failover moves on from a dead replica", function()
    local A, B = E:memcached(), E:memcached()
    local rnd = gateway({ A.port, B.port }, [[reads = "random"]], 1)
    local c = E:client(rnd.port)
    assert.equal("STORED", c:set("r1", "v"))
    local a0, b0 = stat(A.port, "get_hits"), stat(B.port, "get_hits")
    for _ = 1, 200 do assert.equal("v", c:value("r1")) end
    local a1, b1 = stat(A.port, "get_hits") - a0, stat(B.port, "get_hits") - b0
    assert.equal(200, a1 + b1)
    assert(a1 > 40 and b1 > 40, string.format("A %d, B %d", a1, b1))
    local fo = gateway({ A.port, B.port }, [[reads = "failover"]], 1)
    local f = E:client(fo.port)
    assert.equal("STORED", f:set("r2", "both"))
    E:stop(A)
    assert.equal("both", f:value("r2"))
  end)

  it("a delete a replica missed while cut off is replayed before it serves reads again", function()
    local A, B = E:memcached(), E:memcached()
    local port = env.free_port()
    local function proxy()
      local p = E:spawn({ "luajit", "spec/helpers/fake_backend.lua", tostring(port), "slow", "60",
        tostring(B.port), "0" }, { name = "proxy", kind = "fake", port = port })
      E:wait_listening(p, 5)
      return p
    end
    local px = proxy()
    -- B (through the proxy) first: reads come from it while it is up
    local gw = gateway({ port, A.port }, [[reads = "first"]], 1)
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("x1", "old"))
    assert.equal("old", dvalue(B.port, "x1"))
    E:stop(px) -- B is cut off, its data intact
    assert.matches("SERVER_ERROR", c:cmd("delete x1", 5)) -- all: B's part failed
    assert.is_nil(dvalue(A.port, "x1"))
    assert.equal("old", dvalue(B.port, "x1"), "B kept the value it missed the delete of")
    local st = E:client(gw.port):stats("stats routes")
    assert.equal("1", st["route:rep:replays_queued"])
    proxy() -- the same port again: B reachable
    -- every read after B is back misses: B serves none before the delete is replayed
    local t_end = env.now() + 3
    while env.now() < t_end do
      assert.is_nil(c:value("x1"), "a read saw the deleted value")
      env.sleep(0.02)
    end
    assert(env.wait_until(3, function() return dvalue(B.port, "x1") == nil end, 0.05),
      "the missed delete never reached B")
  end)

  it("examples/replicated.lua: a session survives its first pool, a plain key goes to main", function()
    local gw, mcs = env.start_example(E, "replicated", 3)
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("session:42", "alice"))
    assert.equal("STORED", c:set("page:1", "html"))
    assert.equal("alice", dvalue(mcs[1].port, "session:42"))
    assert.equal("alice", dvalue(mcs[2].port, "session:42"))
    assert.equal("html", dvalue(mcs[3].port, "page:1"))
    assert.is_nil(dvalue(mcs[1].port, "page:1"))
    E:stop(mcs[1])
    assert.equal("alice", c:value("session:42"))
  end)
end)
