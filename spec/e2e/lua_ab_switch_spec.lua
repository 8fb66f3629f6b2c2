-- examples/ab_switch.lua against real memcached: a switch at 10 % sends about a tenth of
-- the keys to the canary pool, always the same ones; the admin listener moves the share
-- at run time (`switch canary 100` / `0`), `stats switches` counts; admin words are
-- refused on the data port. Then fleet mode: a switch that follows a value kept in
-- memcached.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local start_example = env.start_example

-- Store every key (pipelined, 100 at a time); each must answer STORED.
local function set_many(c, keys, value)
  for i = 1, #keys, 100 do
    local last, t = math.min(i + 99, #keys), {}
    for j = i, last do t[#t + 1] = string.format("set %s 0 0 %d\r\n%s\r\n", keys[j], #value, value) end
    c:send(table.concat(t))
    for j = i, last do
      local l = c:line()
      if l ~= "STORED" then error("set " .. keys[j] .. ": " .. l, 2) end
    end
  end
end

-- The keys of list that port has (asked directly, 50 per get): key -> value.
local function present(port, keys)
  local c = client.connect(port)
  local found = {}
  for i = 1, #keys, 50 do
    local batch = {}
    for j = i, math.min(i + 49, #keys) do batch[#batch + 1] = keys[j] end
    local items = c:get(unpack(batch))
    for k, it in pairs(items) do found[k] = it.value end
  end
  c:close()
  return found
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function keys_of(prefix, n)
  local t = {}
  for i = 1, n do t[i] = prefix .. i end
  return t
end

describe("examples/ab_switch.lua", function()
  local E, gw, mcs

  local function connect(port) return E:client(port or gw.port) end

  local function admin(cmd)
    local c = connect(gw.admin_port)
    local l = c:cmd(cmd)
    c:close()
    return l
  end

  -- where each key is: "main" (M1 or M2), "canary" (M3); fails if a key is on both sides
  local function sides(keys)
    local a, b, cn = present(mcs[1].port, keys), present(mcs[2].port, keys), present(mcs[3].port, keys)
    local on_canary, on_main = {}, {}
    for _, k in ipairs(keys) do
      local m = a[k] or b[k]
      assert(not (m and cn[k]), "key " .. k .. " is on both main and canary")
      assert(m or cn[k], "key " .. k .. " is on no server")
      if cn[k] then on_canary[k] = true else on_main[k] = true end
    end
    return on_canary, on_main
  end

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_ab_switch")
    gw, mcs = start_example(E, "ab_switch", 3)
    assert(env.wait_until(5, function() return env.port_open(gw.admin_port) end),
      "the admin listener (MINTGATE_ADMIN) is not open")
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  after_each(function() E:close_clients() end)

  local canary_at_10

  it("at 10 %, about a tenth of 2000 keys land on the canary (5-15 %)", function()
    local c = connect()
    local keys = keys_of("ab:", 2000)
    set_many(c, keys, "v")
    local on_canary = sides(keys)
    local n = count(on_canary)
    assert(n >= 100 and n <= 300,
      string.format("%d of 2000 keys (%.1f %%) on the canary, want 5-15 %%", n, n / 20))
    canary_at_10 = on_canary
  end)

  it("is sticky: the same keys stored again land on the same side, all read back", function()
    assert(canary_at_10, "needs the previous test")
    local c = connect()
    local keys = keys_of("ab:", 2000)
    set_many(c, keys, "again")
    local on_canary = sides(keys)
    assert.same(canary_at_10, on_canary)
    -- reads follow the switch too: every key is found, with the new value
    for i = 1, #keys, 50 do
      local batch = { unpack(keys, i, math.min(i + 49, #keys)) }
      local items, order = c:get(unpack(batch))
      assert.same(batch, order)
      for _, k in ipairs(batch) do assert.equal("again", items[k].value) end
    end
  end)

  it("stats switches counts on and off per key routed", function()
    local s = connect(gw.admin_port):stats("stats switches")
    assert.equal("10.000", s["switch:canary:percent"])
    local on, off = tonumber(s["switch:canary:on"]), tonumber(s["switch:canary:off"])
    assert.is_number(on)
    assert.is_number(off)
    -- 2000 sets twice and 2000 gets: at least 6000 decisions, a tenth or so on
    assert(on + off >= 6000, "on + off = " .. (on + off))
    assert(on >= 3 * 100 and on <= 3 * 300, "on = " .. on)
    -- the data port answers stats switches as well
    local d = connect():stats("stats switches")
    assert.equal("10.000", d["switch:canary:percent"])
  end)

  it("admin `switch canary 100` sends every new request to the canary, `0` none", function()
    local c = connect()
    assert.equal("OK", admin("switch canary 100"))
    assert.equal("100.000", connect(gw.admin_port):stats("stats switches")["switch:canary:percent"])
    local keys = keys_of("all:", 300)
    set_many(c, keys, "x")
    local on_canary = sides(keys)
    assert.equal(300, count(on_canary))

    assert.equal("OK", admin("switch canary 0"))
    keys = keys_of("none:", 300)
    set_many(c, keys, "x")
    on_canary = sides(keys)
    assert.equal(0, count(on_canary))
    -- the "all:" keys now route to main, where they are not: misses, not errors
    local items = c:get("all:1", "all:2", "all:3")
    assert.same({}, items)
  end)

  it("raising the share only adds keys: the 10 % keys stay on the canary at 20 %", function()
    assert(canary_at_10, "needs the first test")
    assert.equal("OK", admin("switch canary 20"))
    local c = connect()
    local ks = {}
    for k in pairs(canary_at_10) do ks[#ks + 1] = k end
    table.sort(ks)
    for i = 1, #ks, 50 do
      local batch = { unpack(ks, i, math.min(i + 49, #ks)) }
      local items = c:get(unpack(batch))
      assert.equal(#batch, count(items), "some 10 % canary keys are not read from the canary at 20 %")
    end
    assert.equal("OK", admin("switch canary 10"))
  end)

  -- Golden keys (core/test/test_switch.c has their buckets): the route function's
  -- sw:on (through LuaJIT's FFI) must place them exactly as the C table says, or a
  -- fleet of gateways (or one across an upgrade) would move keys between sides.
  local GOLDEN_ON_AT_10 = { "user:27", "user:29", "user:179", "user:240", "user:7076" }
  local GOLDEN_OFF_AT_10 = { "user:28", "user:1", "user:2", "user:3", "session:42", "games",
    "canary", "ab:1", "mintgate", "key with space" }

  -- The golden keys on the canary side: set through the gateway, then found directly.
  local function golden_on_canary(value)
    local c = connect()
    local keys = {}
    for _, k in ipairs(GOLDEN_ON_AT_10) do keys[#keys + 1] = k end
    for _, k in ipairs(GOLDEN_OFF_AT_10) do
      if not k:find(" ", 1, true) then keys[#keys + 1] = k end
    end
    -- a run at another percentage may have left a key on the other side: start clean
    for _, m in ipairs(mcs) do
      local d = client.connect(m.port)
      for _, k in ipairs(keys) do
        local l = d:cmd("delete " .. k)
        assert(l == "DELETED" or l == "NOT_FOUND", "delete " .. k .. ": " .. l)
      end
      d:close()
    end
    set_many(c, keys, value)
    local on = sides(keys)
    local list = {}
    for k in pairs(on) do list[#list + 1] = k end
    table.sort(list)
    return list
  end

  local function sorted(t)
    local c = { unpack(t) }
    table.sort(c)
    return c
  end

  it("golden keys: at 10 % exactly the keys test_switch.c says are on go to the canary", function()
    assert.equal("10.000", connect(gw.admin_port):stats("stats switches")["switch:canary:percent"])
    assert.same(sorted(GOLDEN_ON_AT_10), golden_on_canary("g10"))
    -- user:28's bucket is 10220: off at 10 %, on from 10.221 %
    assert.equal("OK", admin("switch canary 10.22"))
    assert.same(sorted(GOLDEN_ON_AT_10), golden_on_canary("g1022"))
    assert.equal("OK", admin("switch canary 10.221"))
    local want = sorted(GOLDEN_ON_AT_10)
    want[#want + 1] = "user:28"
    table.sort(want)
    assert.same(want, golden_on_canary("g10221"))
    assert.equal("OK", admin("switch canary 10"))
  end)

  local function generation()
    return tonumber(connect(gw.admin_port):stats()["config_generation"])
  end

  local function percent_now()
    return connect(gw.admin_port):stats("stats switches")["switch:canary:percent"]
  end

  it("a reload (admin `reload`) keeps the switch's current value, not the script's 10 %", function()
    assert.equal("OK", admin("switch canary 10.221"))
    local gen = assert(generation(), "stats has no config_generation")
    assert.equal("OK", admin("reload"))
    assert.equal(gen + 1, generation(), "the reload did not load a new config generation")
    assert.equal("10.221", percent_now())
    -- and it is the value routing uses on every worker: user:28 is on from 10.221 %
    local want = sorted(GOLDEN_ON_AT_10)
    want[#want + 1] = "user:28"
    table.sort(want)
    assert.same(want, golden_on_canary("greload"))
    assert.equal("OK", admin("switch canary 10"))
  end)

  it("a reload by SIGHUP keeps the switch's current value too", function()
    assert.equal("OK", admin("switch canary 37.5"))
    local gen = assert(generation(), "stats has no config_generation")
    gw:signal(1) -- SIGHUP
    assert(env.wait_until(10, function() return generation() == gen + 1 end, 0.05),
      "SIGHUP did not load a new config generation (still " .. tostring(generation()) .. ")")
    assert.equal("37.500", percent_now())
    assert.equal("OK", admin("switch canary 10"))
    assert.equal("10.000", percent_now())
  end)

  it("fractional percentages are kept to 0.001", function()
    assert.equal("OK", admin("switch canary 12.5"))
    assert.equal("12.500", connect(gw.admin_port):stats("stats switches")["switch:canary:percent"])
    assert.equal("OK", admin("switch canary 10"))
  end)

  it("admin errors: unknown switch, bad percent, bad usage; the admin connection goes on", function()
    local a = connect(gw.admin_port)
    assert.matches("^CLIENT_ERROR ", a:cmd("switch nosuch 5"))
    assert.matches("^CLIENT_ERROR ", a:cmd("switch canary 101"))
    assert.matches("^CLIENT_ERROR ", a:cmd("switch canary -1"))
    assert.matches("^CLIENT_ERROR ", a:cmd("switch canary abc"))
    assert.matches("^CLIENT_ERROR ", a:cmd("switch canary"))
    assert.matches("^CLIENT_ERROR ", a:cmd("switch canary 5 6"))
    assert.equal("10.000", a:stats("stats switches")["switch:canary:percent"])
    assert.matches("^VERSION ", a:cmd("version"))
  end)

  it("the data port refuses admin words and keeps the connection", function()
    local c = connect()
    local refused = "CLIENT_ERROR admin commands are only accepted on the admin port"
    assert.equal(refused, c:cmd("switch canary 100"))
    assert.equal(refused, c:cmd("reload"))
    assert.equal("10.000", c:stats("stats switches")["switch:canary:percent"])
    assert.equal("STORED", c:set("dp:k", "v"))
    assert.equal("v", c:value("dp:k"))
  end)

  it("the admin port serves ordinary commands too", function()
    local a = connect(gw.admin_port)
    assert.equal("STORED", a:set("adm:k", "v"))
    assert.equal("v", a:value("adm:k"))
    local conns = a:stats()["curr_connections"]
    assert(conns and conns:match("^%d+$") and tonumber(conns) >= 1,
      "curr_connections should count this connection, got " .. tostring(conns))
  end)

  it("the gateway is still up", function()
    assert.is_true(gw:alive())
  end)
end)

describe("fleet switch (a value kept in memcached)", function()
  local E, gw, main_ports, canary_port, admin_port

  local function connect(port) return E:client(port or gw.port) end

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_fleet_switch")
    local a, b, cn = E:memcached(), E:memcached(), E:memcached()
    main_ports, canary_port = { a.port, b.port }, cn.port
    admin_port = env.free_port()
    gw = E:gateway { threads = 2, args = { "-A", "127.0.0.1:" .. admin_port },
                     config = string.format([[
      local mg = require "mintgate"
      local main = mg.pool { name = "main", servers = { "127.0.0.1:%d", "127.0.0.1:%d" } }
      local canary = mg.pool { name = "canary", servers = { "127.0.0.1:%d" } }
      local sw = mg.switch { name = "canary", percent = 0,
                             fleet = { pool = main, key = "mintgate:switch:canary" } }
      mg.route(function(req)
        if req.key:sub(1, 9) ~= "mintgate:" and sw:on(req.key) then return canary end
        return main
      end)
    ]], a.port, b.port, cn.port) }
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  local function percent()
    return connect():stats("stats switches")["switch:canary:percent"]
  end

  -- Gets the main memcached servers have answered (the gateway's fleet poll is one `mg`
  -- about once a second on the one that holds the key).
  local function main_gets()
    local n = 0
    for _, port in ipairs(main_ports) do
      local c = client.connect(port)
      local v = c:stats()["cmd_get"]
      c:close()
      n = n + assert(tonumber(v), "memcached stats without cmd_get")
    end
    return n
  end

  -- Wait until the gateway has read the fleet key twice more, so that at least one read
  -- saw what was stored before this call.
  local function wait_polls()
    local base = main_gets()
    local last
    assert(env.wait_until(6, function()
      last = main_gets()
      return last >= base + 2
    end, 0.1), string.format("the gateway did not poll the fleet key (main gets %d -> %s)", base,
      tostring(last)))
  end

  -- Wait until the gateway has logged that it ignored the fleet value v.
  local function wait_ignored(v)
    local needle = "ignoring fleet value '" .. v .. "'"
    assert(env.wait_until(6, function() return gw:stderr():find(needle, 1, true) end, 0.1),
      "the gateway did not log <" .. needle .. ">; its log:\n" .. env.tail(gw:stderr(), 20))
  end

  local function on_canary(prefix, n)
    local c = connect()
    local keys = keys_of(prefix, n)
    set_many(c, keys, "f")
    return count(present(canary_port, keys))
  end

  it("starts at the declared percent while the key is absent", function()
    wait_polls()
    assert.equal("0.000", percent())
    assert.equal(0, on_canary("f0:", 200))
  end)

  it("keeps the switch's key out of reach of data-port clients", function()
    local c = connect()
    assert.equal("CLIENT_ERROR key is in the gateway's reserved namespace",
      c:set("mintgate:switch:canary", "100"))
    assert.equal("CLIENT_ERROR key is in the gateway's reserved namespace",
      c:cmd("mg bWludGdhdGU6c3dpdGNoOmNhbmFyeQ== b v"))
    -- nothing reached memcached, and the gateway, having read the key since, stays at 0
    assert.same({}, present(main_ports[1], { "mintgate:switch:canary" }))
    assert.same({}, present(main_ports[2], { "mintgate:switch:canary" }))
    wait_polls()
    assert.equal("0.000", percent())
    assert.equal(0, on_canary("fdata:", 100))
  end)

  it("follows the value stored in the pool within a few seconds", function()
    -- the trusted writer: a connection on the admin listener
    local c = connect(admin_port)
    assert.equal("STORED", c:set("mintgate:switch:canary", "100"))
    -- the key is in main, where a fleet of gateways would read it
    local m = present(main_ports[1], { "mintgate:switch:canary" })
    local n = present(main_ports[2], { "mintgate:switch:canary" })
    assert.equal("100", m["mintgate:switch:canary"] or n["mintgate:switch:canary"])
    assert.truthy(env.wait_until(4, function() return percent() == "100.000" end, 0.1),
      "switch did not follow the fleet value 100: " .. tostring(percent()))
    assert.equal(200, on_canary("f100:", 200))

    assert.equal("STORED", c:set("mintgate:switch:canary", "25.5"))
    assert.truthy(env.wait_until(4, function() return percent() == "25.500" end, 0.1),
      "switch did not follow the fleet value 25.5: " .. tostring(percent()))
  end)

  it("ignores a value out of range and keeps the last good one", function()
    local c = connect(admin_port)
    assert.equal("STORED", c:set("mintgate:switch:canary", "0"))
    assert.truthy(env.wait_until(4, function() return percent() == "0.000" end, 0.1))
    assert.equal("STORED", c:set("mintgate:switch:canary", "250"))
    wait_ignored("250")
    assert.equal("0.000", percent())
    -- a number followed by junk is not a percentage (it used to be read as 12)
    assert.equal("STORED", c:set("mintgate:switch:canary", "12abc"))
    wait_ignored("12abc")
    assert.equal("0.000", percent())
    -- nor is hex or an exponent (strtod read 0x10 as 16); the admin's rules apply
    assert.equal("STORED", c:set("mintgate:switch:canary", "0x10"))
    wait_ignored("0x10")
    assert.equal("0.000", percent())
    assert.equal(0, on_canary("fbad:", 100))
    assert.is_true(gw:alive())
  end)
end)
