-- examples/named_pools.lua against real memcached: session:* keys live only on the
-- sessions server (MEMCACHED_3), every other key only on main (MEMCACHED_1/2); a multi-get
-- across both pools is answered in order; a dead sessions server fails session keys only.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local start_example = env.start_example

-- How many of keys each server holds (direct gets, 50 keys per get).
local function counts(mcs, keys)
  local n = {}
  for i, m in ipairs(mcs) do
    local c = client.connect(m.port)
    n[i] = 0
    for j = 1, #keys, 50 do
      local items = c:get(unpack(keys, j, math.min(j + 49, #keys)))
      for _ in pairs(items) do n[i] = n[i] + 1 end
    end
    c:close()
  end
  return n
end

local function keys_of(prefix, n)
  local t = {}
  for i = 1, n do t[i] = prefix .. i end
  return t
end

describe("examples/named_pools.lua", function()
  local E, gw, mcs

  local function connect(port) return E:client(port or gw.port) end

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_named_pools")
    gw, mcs = start_example(E, "named_pools", 3)
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  after_each(function() E:close_clients() end)

  it("session:* keys land only on the sessions server", function()
    local c = connect()
    local keys = keys_of("session:", 200)
    for _, k in ipairs(keys) do assert.equal("STORED", c:set(k, "s")) end
    assert.same({ 0, 0, 200 }, counts(mcs, keys))
  end)

  it("other keys land only on main, spread over both of its servers", function()
    local c = connect()
    local keys = keys_of("page:", 200)
    for i = 1, 100 do keys[#keys + 1] = "user:" .. i end
    for i = 1, 20 do keys[#keys + 1] = "sessionless" .. i end -- no colon: not the prefix
    for _, k in ipairs(keys) do assert.equal("STORED", c:set(k, "m")) end
    local n = counts(mcs, keys)
    assert.equal(0, n[3])
    assert.equal(#keys, n[1] + n[2])
    assert(n[1] > 20 and n[2] > 20, string.format("main is not spread: %d / %d", n[1], n[2]))
  end)

  it("a multi-get across both pools answers in request order", function()
    local c = connect()
    assert.equal("STORED", c:set("session:mix", "S", 1))
    assert.equal("STORED", c:set("page:mix", "P", 2))
    local items, order = c:get("page:mix", "session:nosuch", "session:mix", "page:mix")
    assert.same({ "page:mix", "session:mix", "page:mix" }, order)
    assert.same({ flags = 1, value = "S" }, items["session:mix"])
    assert.same({ flags = 2, value = "P" }, items["page:mix"])
  end)

  it("stats pools lists both pools", function()
    local s = connect():stats("stats pools")
    local text = {}
    for k, v in pairs(s) do text[#text + 1] = k .. " " .. v end
    text = table.concat(text, "\n")
    assert.matches("main", text, 1, true)
    assert.matches("sessions", text, 1, true)
  end)

  it("with the sessions server dead, session keys fail fast and main keys still work", function()
    E:stop(mcs[3])
    local c = connect()
    local t0 = env.now()
    for i = 1, 5 do
      assert.matches("^SERVER_ERROR", c:set("session:dead" .. i, "x"))
    end
    assert(env.now() - t0 < 3, "session failures took too long")
    assert.equal("STORED", c:set("page:alive", "ok"))
    assert.equal("ok", c:value("page:alive"))
    local items = c:get("page:alive", "session:1")
    assert.equal("ok", items["page:alive"].value)
    assert.is_nil(items["session:1"])
  end)
end)
