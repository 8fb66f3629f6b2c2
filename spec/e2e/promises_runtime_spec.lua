-- README promises about serving through failures, end to end (real memcached, the real
-- binary): a multi-get over a live and a dead backend answers the live keys and counts
-- the others in get_errors (all dead: SERVER_ERROR); pool calls from Lua fail with the
-- documented words ("backend down", "closed", "too large", "backend error", "timeout");
-- a backend that never accepts fails its requests after about the connect timeout while
-- the others keep serving; the herd lock re-grant (`md k I C<cas>`) is a no-op when
-- someone stored meanwhile.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local show = client.show

-- A fake backend that never accepts (fake_backend.lua never_accept); ready once its
-- accept queue is full.
local function never_accept(E)
  local port = env.free_port()
  local p = E:spawn({ "luajit", "spec/helpers/fake_backend.lua", tostring(port), "never_accept", "60" },
    { name = "fake:never_accept:" .. port, kind = "fake", port = port })
  assert(env.wait_until(5, function() return p:stdout():find("ready", 1, true) end, 0.02),
    "never_accept backend not ready: " .. p:stderr())
  return p
end

-- Keys spread over two servers by the gateway's placement: start memcached on both ports,
-- set n keys through a gateway over them, ask each server directly. Returns the keys on
-- port a and on port b; stops the memcached on port b (so b can host a broken backend).
local function spread(E, a, bport, prefix, n)
  local B = E:memcached { port = bport }
  local gw = E:gateway { servers = { a.port, bport }, threads = 1 }
  local c = client.connect(gw.port)
  local da, db = client.connect(a.port), client.connect(bport)
  local on_a, on_b = {}, {}
  for i = 1, n do
    local k = prefix .. i
    assert.equal("STORED", c:set(k, "x"))
    if da:value(k) then on_a[#on_a + 1] = k elseif db:value(k) then on_b[#on_b + 1] = k end
  end
  c:close(); da:close(); db:close()
  assert.equal(0, (E:stop(gw)))
  E:stop(B)
  return on_a, on_b
end

local function stat(port, name, cmd)
  local c = client.connect(port, { name = "stats:" .. port })
  local s = c:stats(cmd)
  c:close()
  return s[name]
end

describe("a multi-get over a live and a dead backend", function()
  local E, G, DPORT, live, dead, gw

  lazy_setup(function()
    env.require_binary()
    E = env.new("promises_get_errors")
    G = E:memcached()
    DPORT = env.free_port()
    live, dead = spread(E, G, DPORT, "ge:", 240)
    assert(#live >= 80 and #dead >= 80, string.format("keys not spread: %d live, %d dead", #live, #dead))
    local d = client.connect(G.port)
    for _, k in ipairs(live) do assert.equal("STORED", d:set(k, "v-" .. k)) end
    d:close()
    -- nobody listens on DPORT now: refused
    gw = E:gateway { servers = { G.port, DPORT }, threads = 1,
      args = { "--connect-timeout", "0.3", "--timeout", "0.5", "--retry-timeout", "1" } }
  end)
  lazy_teardown(function()
    if E then E:teardown() end
  end)
  after_each(function() E:close_clients() end)

  it("answers the live keys in order and counts the dead ones in get_errors", function()
    local c = E:client(gw.port)
    for round = 1, 3 do -- before and after the dead backend is ejected
      local before = tonumber(c:stats().get_errors)
      assert(before, "stats has no get_errors")
      local keys = { live[1], dead[1], live[2], dead[2], dead[3], live[3] }
      c:send("get " .. table.concat(keys, " ") .. "\r\n")
      local items, order = c:get_reply(3)
      assert.same({ live[1], live[2], live[3] }, order, "round " .. round)
      for _, k in ipairs(order) do assert.equal("v-" .. k, items[k].value) end
      assert.equal(before + 3, tonumber(c:stats().get_errors), "round " .. round)
    end
  end)

  it("all keys dead: SERVER_ERROR, nothing else", function()
    local c = E:client(gw.port)
    for _, verb in ipairs { "get", "gets" } do
      local l = c:cmd(verb .. " " .. dead[4] .. " " .. dead[5] .. " " .. dead[6], 3)
      assert.matches("^SERVER_ERROR ", l)
      assert.is_false(c:has_data(0.2), "more after the SERVER_ERROR: " .. show(c:drain()))
    end
    assert.matches("^SERVER_ERROR ", c:cmd("get " .. dead[7], 3))
    assert.equal("STORED", c:set(live[4], "still")) -- the connection goes on
  end)

  it("a long get (over 64 keys) whose last piece is all dead still ends with END", function()
    -- README: such lines are taken 64 keys at a time, "the reply is one stream of VALUE
    -- lines and one END"; and SERVER_ERROR only "when every key failed"
    local c = E:client(gw.port)
    local keys, want = {}, {}
    for i = 1, 32 do
      keys[#keys + 1] = live[10 + i]; want[#want + 1] = live[10 + i]
      keys[#keys + 1] = dead[10 + i]
    end
    for i = 1, 6 do keys[#keys + 1] = dead[50 + i] end -- keys 65..70: all on the dead one
    local before = tonumber(c:stats().get_errors)
    c:send("get " .. table.concat(keys, " ") .. "\r\n")
    local items, order, last = c:retrieval(nil, 3)
    assert.same(want, order)
    for _, k in ipairs(order) do assert.equal("v-" .. k, items[k].value) end
    assert.equal("END", last, "the reply to a 70-key get with 32 hits ended with " .. show(last))
    assert.is_false(c:has_data(0.2), "more after the reply: " .. show(c:drain()))
    assert.equal(before + 38, tonumber(c:stats().get_errors))
  end)

  it("a long get with every key dead: SERVER_ERROR, nothing else", function()
    local c = E:client(gw.port)
    local keys = {}
    for i = 1, 70 do keys[i] = dead[i] end
    assert.matches("^SERVER_ERROR ", c:cmd("get " .. table.concat(keys, " "), 3))
    assert.is_false(c:has_data(0.2), "more after the SERVER_ERROR: " .. show(c:drain()))
  end)
end)

describe("pool calls that fail return nil and the documented word", function()
  local E, gw, G
  local BIG = 1200 * 1024 -- over memcached's 1 MB item limit, under the gateway's -I 2m

  lazy_setup(function()
    env.require_binary()
    E = env.new("promises_pool_errors")
    G = E:memcached()
    local refused = env.free_port()
    local closer = E:fake_backend(env.free_port(), "close_mid_value")
    local garbage = E:fake_backend(env.free_port(), "garbage")
    local hung = E:fake_backend(env.free_port(), "hang")
    local na = never_accept(E)
    gw = E:gateway { threads = 2, args = { "-I", "2m" }, config = string.format([[
local mg = require "mintgate"
local opts = { connect_timeout = 0.4, timeout = 0.4, failure_limit = 1000 }
local function pool(name, port)
  return mg.pool { name = name, servers = { "127.0.0.1:" .. port }, connect_timeout = opts.connect_timeout,
                   timeout = opts.timeout, failure_limit = opts.failure_limit }
end
local pools = { live = pool("live", %d), refused = pool("refused", %d), closer = pool("closer", %d),
                garbage = pool("garbage", %d), hung = pool("hung", %d), noaccept = pool("noaccept", %d) }
local calls = {
  get = function(p) return p:get("pk") end,
  set = function(p) return p:set("pk", "v", 0, 0) end,
  add = function(p) return p:add("pk2", "v", 0, 0) end,
  delete = function(p) return p:delete("pk") end,
  touch = function(p) return p:touch("pk", 10) end,
  incr = function(p) return p:incr("pk", 1) end,
  decr = function(p) return p:decr("pk", 1) end,
  huge = function(p) return p:set("pk", string.rep("x", %d), 0, 0) end, -- over -I
  big = function(p) return p:set("pk", string.rep("x", %d), 0, 0) end,  -- over memcached's
}
mg.route(function(req)
  local name, call = req.key:match("^probe:(%%w+):(%%w+)$")
  if name then
    local a, b = calls[call](pools[name])
    assert(pools.live:set("result:" .. req.key, tostring(a) .. "|" .. tostring(b), 0, 0))
  end
  return pools.live
end)
]], G.port, refused, closer.port, garbage.port, hung.port, na.port, 3 * 1024 * 1024, BIG) }
  end)
  lazy_teardown(function()
    if E then E:teardown() end
  end)
  after_each(function() E:close_clients() end)

  -- Run pool call `call` on pool `name` (inside a route function) and return what it
  -- returned ("a|b") and the seconds the client's request took.
  local function probe(name, call)
    local c = E:client(gw.port, { timeout = 4 })
    local t0 = env.now()
    local line = c:cmd("get probe:" .. name .. ":" .. call, 4)
    local t = env.now() - t0
    assert.equal("END", line, "the client's own request " .. name .. ":" .. call)
    local v = c:value("result:probe:" .. name .. ":" .. call)
    assert(v, "no result stored for " .. name .. ":" .. call)
    return v, t
  end

  it("a live pool answers (control)", function()
    assert.equal("true|nil", (probe("live", "set")))
    assert.equal("v|0", (probe("live", "get")))
    assert.equal("nil|not a number", (probe("live", "incr")))
  end)

  it("a refused backend: \"backend down\" for every call", function()
    for _, call in ipairs { "get", "set", "add", "delete", "touch", "incr", "decr" } do
      assert.equal("nil|backend down", (probe("refused", call)), call)
    end
  end)

  it("a backend that closes in the middle of a reply: \"closed\"", function()
    assert.equal("nil|closed", (probe("closer", "get")))
    assert.equal("nil|closed", (probe("closer", "set")))
  end)

  it("a value over -I: \"too large\", at once", function()
    local v, t = probe("live", "huge")
    assert.equal("nil|too large", v)
    assert(t < 0.5, string.format("took %.2f s", t))
  end)

  it("a value memcached refuses as too large: \"too large\"", function()
    assert.equal("nil|too large", (probe("live", "big")))
  end)

  it("a backend answering garbage: \"backend error\"", function()
    assert.equal("nil|backend error", (probe("garbage", "get")))
  end)

  it("a hung backend and one that never accepts: \"timeout\" after about the timeout", function()
    for _, name in ipairs { "hung", "noaccept" } do
      local v, t = probe(name, "get")
      assert.equal("nil|timeout", v, name)
      assert(t >= 0.3 and t < 1.5, string.format("%s: took %.2f s (timeout 0.4 s)", name, t))
    end
  end)
end)

describe("a backend that never accepts (connect timeout)", function()
  local E, G, NPORT, good, stuck, na, gw
  local CT = 0.5

  lazy_setup(function()
    env.require_binary()
    E = env.new("promises_connect_timeout")
    G = E:memcached()
    NPORT = env.free_port()
    good, stuck = spread(E, G, NPORT, "ct:", 60)
    assert(#good >= 5 and #stuck >= 5, "keys not spread")
    local d = client.connect(G.port)
    for _, k in ipairs(good) do assert.equal("STORED", d:set(k, "v-" .. k)) end
    d:close()
    local p = E:spawn({ "luajit", "spec/helpers/fake_backend.lua", tostring(NPORT), "never_accept", "60" },
      { name = "fake:never_accept:" .. NPORT, kind = "fake", port = NPORT })
    assert(env.wait_until(5, function() return p:stdout():find("ready", 1, true) end, 0.02),
      "never_accept backend not ready: " .. p:stderr())
    na = p
    gw = E:gateway { servers = { G.port, NPORT }, threads = 1,
      args = { "--connect-timeout", tostring(CT), "--timeout", "3", "--failure-limit", "100" } }
  end)
  lazy_teardown(function()
    if E then E:teardown() end
  end)
  after_each(function() E:close_clients() end)

  it("its keys get SERVER_ERROR after about the connect timeout; the other backend serves meanwhile", function()
    local a, b = E:client(gw.port, { timeout = 5 }), E:client(gw.port)
    for round = 1, 2 do
      local t0 = env.now()
      a:send("get " .. stuck[round] .. "\r\n")
      for i = 1, 3 do assert.equal("v-" .. good[i], b:value(good[i])) end
      local t_good = env.now() - t0
      assert.is_false(a:has_data(0), "the stuck key was answered before the good ones")
      local l = a:line(5)
      local t = env.now() - t0
      assert.matches("^SERVER_ERROR ", l)
      assert(t >= CT * 0.8, string.format("failed after %.2f s: sooner than the connect timeout (%.1f s)", t, CT))
      assert(t < CT + 0.7, string.format("failed after %.2f s (connect timeout %.1f s)", t, CT))
      assert(t_good < CT * 0.8, string.format("good keys took %.2f s", t_good))
    end
    -- counted as timeouts of that backend; the good one is up
    local s = b:stats("stats backends")
    local pre = "backend:127.0.0.1:" .. NPORT .. ":"
    assert(tonumber(s[pre .. "timeouts"] or "0") >= 2, "timeouts: " .. tostring(s[pre .. "timeouts"]))
    assert.equal("up", s["backend:127.0.0.1:" .. G.port .. ":state"])
    -- a multi-get over both: the good keys, END
    local items, order = b:get(good[1], stuck[3], good[2])
    assert.same({ good[1], good[2] }, order)
    assert.equal("v-" .. good[2], items[good[2]].value)
    assert.is_true(na:alive())
  end)
end)

-----------------------------------------------------------------------------------------
-- herd: README "If the winner never stores, the gateway that handed out the win marks the
-- item stale again after `lock` seconds (`md k I C<cas>`, a no-op if anyone stored
-- meanwhile), so another client wins".

describe("herd lock re-grant (grace = 10, lock = 1)", function()
  local E, mc, A, B
  local LOCK = 1

  local function herd(port) return tonumber(stat(port, "lock_expired", "stats herd")) end

  -- Remaining TTL of key on the backend (`mg k t`: no R flag, no win taken on a fresh item).
  local function ttl(key)
    local d = client.connect(mc.port)
    local l = d:cmd("mg " .. key .. " t")
    d:close()
    return tonumber(l:match("^HD t(%-?%d+)") or "")
  end

  -- Set key through gateway port with exptime 1 (stored 1 + grace) and wait until the
  -- stale window is open (remaining TTL down to grace).
  local function expire(port, key, value)
    local c = client.connect(port)
    assert.equal("STORED", c:cmd(string.format("set %s 0 1 %d\r\n%s", key, #value, value)))
    c:close()
    assert(env.wait_until(4, function() local t = ttl(key); return t and t <= 10 end, 0.05),
      "the stale window of " .. key .. " did not open")
  end

  local function get(port, key)
    local c = client.connect(port)
    local items = c:get(key)
    c:close()
    return items[key] and items[key].value
  end

  lazy_setup(function()
    env.require_binary()
    E = env.new("promises_herd_regrant")
    mc = E:memcached()
    local config = string.format([[
local mg = require "mintgate"
local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
mg.stale { grace = 10, lock = %d, wait = 50 }
mg.route { default = main }
]], mc.port, LOCK)
    A = E:gateway { threads = 1, config = config }
    B = E:gateway { threads = 1, config = config }
  end)
  lazy_teardown(function()
    if E then E:teardown() end
  end)

  it("control: the winner never stores; after lock seconds another client wins", function()
    expire(A.port, "rg:1", "old")
    assert.is_nil(get(A.port, "rg:1"), "the first reader past the TTL should win (a miss)")
    assert.equal("old", get(A.port, "rg:1"))
    assert.equal("old", get(B.port, "rg:1"))
    local before = herd(A.port)
    env.sleep(LOCK + 0.5)
    assert.equal(before + 1, herd(A.port), "lock_expired")
    assert.is_nil(get(B.port, "rg:1"), "nobody won again after the lock expired")
    assert.equal("old", get(A.port, "rg:1"))
  end)

  it("someone stored through another gateway meanwhile: the re-grant is a no-op", function()
    expire(A.port, "rg:2", "old")
    assert.is_nil(get(A.port, "rg:2"), "the first reader past the TTL should win (a miss)")
    local b = client.connect(B.port)
    assert.equal("STORED", b:set("rg:2", "fresh", 0, 100))
    b:close()
    local before = herd(A.port)
    env.sleep(LOCK + 0.5)
    assert.equal(before + 1, herd(A.port), "lock_expired: A's md I C<cas> went out")
    -- the fresh value is not marked stale: every reader gets it, nobody wins a miss
    for i = 1, 3 do
      assert.equal("fresh", get(A.port, "rg:2"), "read " .. i .. " through A")
      assert.equal("fresh", get(B.port, "rg:2"), "read " .. i .. " through B")
    end
    assert(ttl("rg:2") > 50, "the fresh item's TTL changed")
  end)

  it("someone stored directly on memcached meanwhile: the re-grant is a no-op", function()
    expire(A.port, "rg:3", "old")
    assert.is_nil(get(A.port, "rg:3"))
    local d = client.connect(mc.port)
    assert.equal("STORED", d:set("rg:3", "direct", 0, 100))
    d:close()
    env.sleep(LOCK + 0.5)
    for i = 1, 3 do assert.equal("direct", get(A.port, "rg:3"), "read " .. i) end
  end)

  it("the winner stored through the same gateway: no re-grant at all, the value stays", function()
    expire(A.port, "rg:4", "old")
    assert.is_nil(get(A.port, "rg:4"))
    local before = herd(A.port)
    local a = client.connect(A.port)
    assert.equal("STORED", a:set("rg:4", "mine", 0, 100))
    a:close()
    env.sleep(LOCK + 0.5)
    assert.equal(before, herd(A.port), "lock_expired counted although the winner stored")
    for i = 1, 3 do assert.equal("mine", get(B.port, "rg:4"), "read " .. i) end
  end)
end)
