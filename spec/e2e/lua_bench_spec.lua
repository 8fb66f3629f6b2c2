-- examples/bench.lua (the "mintgate+lua" target of bench/run.sh and bench/ir.sh) and
-- examples/bench_memo.lua (bench/ir.sh's "mintgate+lua-memo": its key transform in Lua,
-- under mg.memo) against real memcached: each passes --check with the benchmark's
-- environment, and serves: keys are stored as "app:" + key, about 10 % of them are
-- switched by the route function, and every key is read back through the gateway (with
-- the memo, the reads come from it: the switch is asked once per key).
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

for _, ex in ipairs { "bench", "bench_memo" } do
  describe("examples/" .. ex .. ".lua", function()
    local E, gw, mcs
    local script = "examples/" .. ex .. ".lua"
    local memo = ex == "bench_memo"

    lazy_setup(function()
      env.require_binary()
      E = env.new("lua_bench")
      mcs = { E:memcached(), E:memcached() }
      local port = env.free_port()
      -- as bench/run.sh starts it
      gw = E:gateway { listen = false, port = port, threads = 1, args = { "-c", "20000", script },
        env = { MINTGATE_LISTEN = "127.0.0.1:" .. port, MEMCACHED_1 = "127.0.0.1:" .. mcs[1].port,
                MEMCACHED_2 = "127.0.0.1:" .. mcs[2].port } }
    end)

    lazy_teardown(function()
      if E then E:teardown() end
    end)

    it("passes --check as bench/lib.sh runs it", function()
      local rc, out, err = env.run({ env.bin, "--check", script }, { env = {
        MINTGATE_LISTEN = "127.0.0.1:1", MEMCACHED_1 = "127.0.0.1:2", MEMCACHED_2 = "127.0.0.1:3" } })
      assert.equal(0, rc, out .. err)
    end)

    it("stores keys as app:<key>, switches about 10 %, reads every key back", function()
      local c = E:client(gw.port)
      local n = 1000
      for i = 1, n do assert.equal("STORED", c:set("b:" .. i, "v" .. i)) end
      for i = 1, n, 50 do
        local ks = {}
        for j = i, math.min(i + 49, n) do ks[#ks + 1] = "b:" .. j end
        local _, order = c:get(unpack(ks))
        assert.same(ks, order)
      end
      -- on the backends, only prefixed keys
      local found = 0
      for _, m in ipairs(mcs) do
        local d = client.connect(m.port)
        for i = 1, n, 50 do
          local ks, raw = {}, {}
          for j = i, math.min(i + 49, n) do
            ks[#ks + 1] = "app:b:" .. j
            raw[#raw + 1] = "b:" .. j
          end
          for _ in pairs(d:get(unpack(ks))) do found = found + 1 end
          assert.same({}, d:get(unpack(raw)))
        end
        d:close()
      end
      assert.equal(n, found)
      local s = c:stats("stats switches")
      assert.equal("10.000", s["switch:next:percent"])
      local on, off = tonumber(s["switch:next:on"]), tonumber(s["switch:next:off"])
      local asked = memo and n or 2 * n -- with the memo, only the sets ran the route function
      assert.equal(asked, on + off)
      assert(on > 0.05 * asked and on < 0.15 * asked, "switched " .. on .. " of " .. asked)
      local st = c:stats()
      assert.equal(memo and n or 0, tonumber(st.lua_memo_hits))
      assert.equal(memo and n or 0, tonumber(st.lua_memo_misses))
    end)
  end)
end
