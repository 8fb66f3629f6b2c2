-- Placement: the gateway puts keys exactly where libmemcached's ketama (pylibmc with
-- ketama: True) puts them, so a fleet moves behind it without a cold cache.
-- build/lmc_fill (a libmemcached client) writes straight into the backends; every key is
-- then read back through the gateway, and the other way round.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local N = 10000

-- Run build/lmc_fill; returns its exit code and output.
local function lmc_fill(servers, mode, prefix, count)
  local rc, out, err = env.run({ env.lmc_fill, "--servers", table.concat(servers, ","), "--count",
    tostring(count), "--prefix", prefix, "--mode", mode }, { timeout = 60 })
  return rc, out .. err
end

-- Read keys prefix0..prefix(n-1) over c, pipelined 100 keys per get and 20 gets per send.
-- Returns the number of hits whose value is right, and a few wrong/missing keys.
local function read_back(c, prefix, n)
  local ok, bad = 0, {}
  local per_get, per_send = 100, 20
  local i = 0
  while i < n do
    local req, batch = {}, {}
    for _ = 1, per_send do
      if i >= n then break end
      local keys = {}
      for j = i, math.min(i + per_get, n) - 1 do keys[#keys + 1] = prefix .. j end
      i = i + #keys
      batch[#batch + 1] = keys
      req[#req + 1] = "get " .. table.concat(keys, " ") .. "\r\n"
    end
    c:send(table.concat(req))
    for _, keys in ipairs(batch) do
      local items = c:get_reply(10)
      for _, k in ipairs(keys) do
        local want = "v" .. k:sub(#prefix + 1)
        if items[k] and items[k].value == want then
          ok = ok + 1
        elseif #bad < 5 then
          bad[#bad + 1] = k .. "=" .. (items[k] and client.show(items[k].value) or "miss")
        end
      end
    end
  end
  return ok, bad
end

describe("placement", function()
  local E, A, B, gw

  lazy_setup(function()
    if not env.file_exists(env.lmc_fill) then
      env.run({ "make", "-s", env.lmc_fill }, { timeout = 120 })
    end
    assert(env.file_exists(env.lmc_fill), env.lmc_fill .. " is missing (make " .. env.lmc_fill .. ")")
    E = env.new("placement")
    A, B = E:memcached(), E:memcached()
    gw = E:gateway { servers = { A.port, B.port } }
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  local function addr(p) return "127.0.0.1:" .. p.port end

  it("10,000 keys stored by libmemcached ketama are all found through the gateway", function()
    local rc, out = lmc_fill({ addr(A), addr(B) }, "set", "pl:", N)
    assert(rc == 0, "lmc_fill set failed (" .. tostring(rc) .. "): " .. out)
    local c = client.connect(gw.port)
    local ok, bad = read_back(c, "pl:", N)
    c:close()
    assert(ok == N, string.format("%d of %d keys found through the gateway; e.g. %s", ok, N,
      table.concat(bad, ", ")))
  end)

  it("and lmc_fill, pointed at the gateway, checks them all", function()
    local rc, out = lmc_fill({ addr(gw) }, "check", "pl:", N)
    assert(rc == 0, "lmc_fill check through the gateway failed (" .. tostring(rc) .. "): " .. out)
  end)

  it("the keys really are split across both backends", function()
    local a, b = client.connect(A.port), client.connect(B.port)
    local on_a = read_back(a, "pl:", N)
    local on_b = read_back(b, "pl:", N)
    a:close()
    b:close()
    assert.equal(N, on_a + on_b)
    assert(on_a > N * 0.3 and on_b > N * 0.3,
      string.format("uneven split: %d on A, %d on B", on_a, on_b))
  end)

  it("keys written through the gateway are where libmemcached looks for them", function()
    local c = client.connect(gw.port)
    local req = {}
    for i = 0, 1999 do
      local v = "v" .. i
      req[#req + 1] = string.format("set gw:%d 0 0 %d\r\n%s\r\n", i, #v, v)
    end
    c:send(table.concat(req))
    for i = 0, 1999 do assert.equal("STORED", c:line(10), "set gw:" .. i) end
    c:close()
    local rc, out = lmc_fill({ addr(A), addr(B) }, "check", "gw:", 2000)
    assert(rc == 0, "lmc_fill check on the backends failed (" .. tostring(rc) .. "): " .. out)
  end)
end)
