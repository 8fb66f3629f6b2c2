-- Worker threads: a gateway with -t 4 and 40 client connections working at once, each on
-- its own keys; every reply must be the right one for its connection.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local CONNS, ROUNDS, PER_ROUND = 40, 25, 8

describe("worker threads", function()
  local E, gw

  lazy_setup(function()
    E = env.new("threads")
    local a, b = E:memcached(), E:memcached()
    gw = E:gateway { servers = { a.port, b.port }, threads = 4 }
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  it("40 connections with interleaved pipelined sets and gets all get their own answers", function()
    local cs = {}
    for i = 1, CONNS do cs[i] = client.connect(gw.port, { timeout = 5 }) end
    -- a round trip on each, so that the gateway has accepted them all
    for _, c in ipairs(cs) do c:send("version\r\n") end
    for _, c in ipairs(cs) do assert.matches("^VERSION ", c:line()) end
    local stats = client.connect(gw.port)
    local s = stats:stats()
    assert(tonumber(s.curr_connections) >= CONNS + 1, "curr_connections " .. tostring(s.curr_connections))
    for r = 1, ROUNDS do
      -- every connection has a batch in flight before any reply is read
      for i, c in ipairs(cs) do
        local req = {}
        for j = 1, PER_ROUND do
          local key = string.format("th:%d:%d", i, j)
          local val = string.format("c%d-r%d-k%d-%s", i, r, j, ("x"):rep((i * j + r) % 200))
          req[#req + 1] = string.format("set %s %d 0 %d\r\n%s\r\n", key, i, #val, val)
        end
        local keys = {}
        for j = 1, PER_ROUND do keys[j] = string.format("th:%d:%d", i, j) end
        req[#req + 1] = "get " .. table.concat(keys, " ") .. "\r\n"
        req[#req + 1] = string.format("incr th:%d:n 1\r\n", i)
        c:send(table.concat(req))
      end
      for i, c in ipairs(cs) do
        for j = 1, PER_ROUND do
          assert.equal("STORED", c:line(), string.format("conn %d round %d set %d", i, r, j))
        end
        local items, order = c:get_reply()
        assert.equal(PER_ROUND, #order, string.format("conn %d round %d: %d values", i, r, #order))
        for j = 1, PER_ROUND do
          local key = string.format("th:%d:%d", i, j)
          assert.equal(key, order[j])
          local want = string.format("c%d-r%d-k%d-%s", i, r, j, ("x"):rep((i * j + r) % 200))
          assert.equal(want, items[key].value, string.format("conn %d round %d key %s", i, r, key))
          assert.equal(i, items[key].flags)
        end
        local n = c:line()
        if r == 1 then
          assert.equal("NOT_FOUND", n)
          assert.equal("STORED", c:set(string.format("th:%d:n", i), "1"))
        else
          assert.equal(tostring(r), n, string.format("conn %d counter", i))
        end
      end
    end
    for _, c in ipairs(cs) do c:close() end
    local after = stats:stats()
    assert(tonumber(after.cmd_set) - tonumber(s.cmd_set) >= CONNS * ROUNDS * PER_ROUND,
      "cmd_set did not count every set: " .. s.cmd_set .. " -> " .. after.cmd_set)
    stats:close()
    assert.is_true(gw:alive(), "the gateway died")
  end)

  it("connections opened and closed in a burst leave the gateway serving", function()
    local c = client.connect(gw.port)
    for i = 1, 3 do assert.equal("STORED", c:set(string.format("th:%d:%d", i, i), "x")) end
    local base = tonumber(c:stats().curr_connections)
    for _ = 1, 5 do
      local cs = {}
      for i = 1, CONNS do
        cs[i] = client.connect(gw.port)
        cs[i]:send("get th:1:1 th:2:2 th:3:3\r\n")
      end
      for i = 1, CONNS, 2 do cs[i]:close() end -- half go away without reading
      for i = 2, CONNS, 2 do
        local _, order = cs[i]:get_reply()
        assert.same({ "th:1:1", "th:2:2", "th:3:3" }, order)
        cs[i]:close()
      end
    end
    assert.matches("^VERSION ", c:cmd("version"))
    local ok = env.wait_until(3, function()
      return tonumber(c:stats().curr_connections) <= base
    end, 0.05)
    assert(ok, "curr_connections does not come back down after clients close")
    c:close()
  end)
end)
