-- The Lua request phase against real memcached, with a config written for the purpose:
-- what route functions, key functions and hooks see (req.command, req.key, req.client),
-- what pool calls return (values, misses, false, nil + error word), that a pool call
-- waiting on a hung backend does not hold up other clients, and that a Lua error fails
-- only its own request with SERVER_ERROR while the connection and the gateway go on.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local CONFIG = [[
local mg = require "mintgate"
local main = mg.pool { name = "main", servers = { "127.0.0.1:%d", "127.0.0.1:%d" } }
local hung = mg.pool { name = "hung", servers = { "127.0.0.1:%d" }, timeout = 1,
                       failure_limit = 100 }

mg.route(function(req)
  local k = req.key
  if k:find("^boom:") then error("route exploded for " .. k) end
  if k:find("^nl:") then error("first line\r\nVALUE injected 0 1\r\nEND", 0) end
  if k:find("^long:") then error(string.rep("e", 1000), 0) end
  if k:find("^notapool:") then return 42 end
  if k:find("^fakepool:") then return { _id = 65536 } end -- not a pool the config declared
  if k:find("^yield:") then coroutine.yield("from the script") end
  if k:find("^trace:") then
    local ok, err = main:set("seen:" .. k, req.command .. " " .. req.client)
    if not ok then error("trace: " .. tostring(err)) end
  end
  if k:find("^nil:") then return nil end -- no pool: the first pool
  return main
end)

mg.keys(function(key)
  if key:find("^kerr:") then error("key function failed", 0) end
  if key:find("^ktable:") then error({}) end
  if key:find("^kbad:") then return {} end
  if key:find("^re:") then return "rewritten:" .. key:sub(4) end
  return nil
end)

local function results(...)
  local t, n = { ... }, select("#", ...)
  for i = 1, n do t[i] = tostring(t[i]) end
  return table.concat(t, ",", 1, n)
end

mg.on("set", function(req, pool)
  local k = req.key
  if k:find("^hboom:") then error("set hook failed", 0) end
  if k:find("^hyield:") then coroutine.yield() end
  if k == "probe" then
    local r = {}
    local function add(...) r[#r + 1] = results(...) end
    add(pool:set("p:a", "va", 0, 42))
    add(pool:get("p:a"))
    add(pool:get("p:none"))
    add(pool:add("p:a", "x"))
    add(pool:add("p:b", "vb"))
    add(pool:delete("p:b"))
    add(pool:delete("p:b"))
    add(pool:touch("p:a", 100))
    add(pool:touch("p:none", 100))
    add(pool:set("p:n", "10"))
    add(pool:incr("p:n", 5))
    add(pool:decr("p:n", 20))
    add(pool:incr("p:none"))
    add(pool:incr("p:a"))
    local ok, err = pcall(pool.get, pool, "bad key")
    add(ok, err and err:match("bad key") and "raised" or err)
    assert(pool:set("probe:result", table.concat(r, "|")))
  end
  if k == "slow" then
    local v, err = hung:get("anything")
    assert(pool:set("slow:result", results(v, err)))
  end
end)

mg.on("miss", function(req, pool)
  if req.key:find("^fill:") then pool:set(req.key, "filled by the miss hook") end
  if req.key:find("^mboom:") then error("miss hook failed", 0) end
end)

mg.on("delete", function(req, pool)
  if req.key:find("^dboom:") then error("delete hook failed", 0) end
  if req.key:find("^dtrace:") then pool:set("seen:" .. req.key, req.command) end
end)
]]

describe("Lua request phase", function()
  local E, gw, mcs

  local function connect(port) return E:client(port or gw.port) end

  local function backend_value(k)
    for _, m in ipairs(mcs) do
      local d = client.connect(m.port)
      local v = d:value(k)
      d:close()
      if v then return v end
    end
  end

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_request_phase")
    mcs = { E:memcached(), E:memcached() }
    local hung_port = env.free_port()
    E:fake_backend(hung_port, "hang", 120)
    gw = E:gateway { threads = 1, config = string.format(CONFIG, mcs[1].port, mcs[2].port, hung_port) }
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  after_each(function() E:close_clients() end)

  describe("what the script sees", function()
    it("req.command, req.key and req.client in the route function", function()
      local c = connect()
      assert.equal("STORED", c:set("trace:1", "x"))
      c:get("trace:2", "trace:3")
      assert.equal("NOT_FOUND", c:cmd("delete trace:4"))
      assert.equal("NOT_FOUND", c:cmd("incr trace:5 1"))
      assert.equal("NOT_FOUND", c:cmd("touch trace:6 1"))
      c:send("gat 0 trace:7\r\n"); c:get_reply()
      assert.equal("EN", c:cmd("mg trace:8 v"))
      local want = { ["trace:1"] = "set", ["trace:2"] = "get", ["trace:3"] = "get",
                     ["trace:4"] = "delete", ["trace:5"] = "incr", ["trace:6"] = "touch",
                     ["trace:7"] = "gat", ["trace:8"] = "mg" }
      for k, cmd in pairs(want) do
        local seen = c:value("seen:" .. k)
        assert.is_string(seen, "route function did not run for " .. k)
        local got_cmd, peer = seen:match("^(%S+) (%S+)$")
        assert.equal(cmd, got_cmd, "req.command for " .. k)
        assert.matches("^127%.0%.0%.1", peer, "req.client for " .. k)
      end
    end)

    it("a get of many keys: each key routed on its own, in batches, in order", function()
      -- 150 keys resolve in batches of up to 64 per coroutine turn; pool calls (trace:)
      -- wait inside a batch; an error (boom:, kerr:) fails its key only.
      local c = connect()
      local keys, want = {}, {}
      for i = 1, 150 do
        local kind = ({ "ok", "boom", "trace", "re", "kerr", "nil" })[i % 6 + 1]
        local k = kind .. ":b" .. i
        keys[#keys + 1] = k
        if kind == "ok" or kind == "re" or kind == "nil" then
          assert.equal("STORED", c:set(k, "v" .. i))
          want[#want + 1] = k
        end
      end
      c:send("get " .. table.concat(keys, " ") .. "\r\n")
      local items, order = c:get_reply()
      assert.same(want, order)
      for _, k in ipairs(want) do
        assert.equal("v" .. k:match("%d+$"), items[k].value, k)
      end
      assert.equal("v3", backend_value("rewritten:b3"), "the key function's key for re:b3")
      for i = 1, 150 do
        if i % 6 == 2 then
          local seen = c:value("seen:trace:b" .. i)
          assert.is_string(seen, "the route function's pool call for trace:b" .. i)
          assert.matches("^get 127%.0%.0%.1", seen)
        end
      end
      assert.equal("STORED", c:set("ok:after", "fine"))
      assert.equal("fine", c:value("ok:after"))
    end)

    it("a key function's key is what memcached stores; replies show the client's key", function()
      local c = connect()
      assert.equal("STORED", c:set("re:x", "rw", 9))
      assert.equal("rw", backend_value("rewritten:x"))
      assert.is_nil(backend_value("re:x"))
      c:send("get re:x\r\n")
      assert.equal("VALUE re:x 9 2", c:line())
      assert.equal("rw", c:line())
      assert.equal("END", c:line())
    end)

    it("a route function returning nil sends the key to the first pool", function()
      local c = connect()
      assert.equal("STORED", c:set("nil:k", "v"))
      assert.equal("v", backend_value("nil:k"))
      assert.equal("v", c:value("nil:k"))
    end)

    it("pool calls return values, misses, true/false, numbers and nil + error", function()
      local c = connect()
      assert.equal("STORED", c:set("probe", "go"))
      local want = table.concat({
        "true",            -- set
        "va,42",           -- get: value, flags
        "nil",             -- get: miss
        "false",           -- add over an existing key
        "true",            -- add
        "true",            -- delete
        "false",           -- delete: not found
        "true",            -- touch
        "false",           -- touch: not found
        "true",            -- set
        "15",              -- incr
        "0",               -- decr floors at 0
        "nil",             -- incr: not found
        "nil,not a number", -- incr on a non-number
        "false,raised",    -- a bad key raises (misuse)
      }, "|")
      assert.equal(want, c:value("probe:result"))
    end)

    it("the miss hook can fill the cache (read-through)", function()
      local c = connect()
      assert.same({}, c:get("fill:1"))
      assert.equal("filled by the miss hook", c:value("fill:1"))
    end)

    it("the delete hook runs with req.command = delete", function()
      local c = connect()
      assert.equal("NOT_FOUND", c:cmd("delete dtrace:1"))
      assert.equal("delete", c:value("seen:dtrace:1"))
    end)

    it("a pool call waiting on a hung backend holds up no other client (one worker)", function()
      local slow = connect()
      local t0 = env.now()
      slow:send("set slow 0 0 1\r\nx\r\n")
      -- meanwhile, on the same (only) worker, other requests are answered at once
      local other = connect()
      for i = 1, 20 do
        assert.equal("STORED", other:set("fast:" .. i, "f"))
        assert.equal("f", other:value("fast:" .. i))
      end
      assert(env.now() - t0 < 0.8, "other requests waited for the hook's pool call")
      assert.equal("STORED", slow:line(5))
      assert(env.now() - t0 >= 0.9, "the hung pool call did not wait for its timeout")
      assert.equal("nil,timeout", slow:value("slow:result"))
    end)
  end)

  describe("Lua errors", function()
    it("a route function error fails that request with SERVER_ERROR lua: <message>", function()
      local c = connect()
      local l = c:cmd("set boom:1 0 0 5\r\nvalue")
      assert.matches("^SERVER_ERROR lua: ", l)
      assert.matches("route exploded for boom:1", l, 1, true)
      -- the value was swallowed; the connection goes on
      assert.equal("STORED", c:set("ok:1", "fine"))
      assert.equal("fine", c:value("ok:1"))
      for _, cmd in ipairs { "delete boom:1", "incr boom:1 1", "decr boom:1 1", "touch boom:1 1" } do
        local r = c:cmd(cmd)
        assert.matches("^SERVER_ERROR lua: ", r, nil, false)
        assert.matches("route exploded", r, 1, true)
      end
      assert.matches("^SERVER_ERROR lua: .*route exploded", c:cmd("mg boom:1 v"))
      assert.equal("fine", c:value("ok:1"))
    end)

    it("a get whose every key failed: SERVER_ERROR lua error (see the gateway log)", function()
      local c = connect()
      assert.equal("SERVER_ERROR lua error (see the gateway log)", c:cmd("get boom:1"))
      assert.equal("SERVER_ERROR lua error (see the gateway log)", c:cmd("get boom:1 boom:2"))
      assert.equal("SERVER_ERROR lua error (see the gateway log)", c:cmd("gets boom:3"))
      assert.equal("STORED", c:set("ok:2", "v"))
    end)

    it("a get where some keys failed answers the others", function()
      local c = connect()
      assert.equal("STORED", c:set("ok:3", "v3"))
      local items, order = c:get("ok:3", "boom:1", "ok:3")
      assert.same({ "ok:3", "ok:3" }, order)
      assert.equal("v3", items["ok:3"].value)
    end)

    it("key function errors and bad results", function()
      local c = connect()
      assert.equal("SERVER_ERROR lua: key function failed", c:cmd("set kerr:1 0 0 1\r\nx"))
      assert.matches("^SERVER_ERROR lua", c:cmd("set ktable:1 0 0 1\r\nx"))
      assert.equal("SERVER_ERROR lua: key function returned no string", c:cmd("set kbad:1 0 0 1\r\nx"))
      assert.equal("SERVER_ERROR lua: route function returned no pool", c:cmd("set notapool:1 0 0 1\r\nx"))
      assert.equal("SERVER_ERROR lua: route function returned no pool", c:cmd("set fakepool:1 0 0 1\r\nx"))
      assert.equal("STORED", c:set("ok:fp", "v"))
      for _, m in ipairs(mcs) do -- were fakepool:* routed anywhere, they would be hits
        local d = client.connect(m.port)
        assert.equal("STORED", d:set("fakepool:2", "x"))
        assert.equal("STORED", d:set("fakepool:3", "x"))
        d:close()
      end
      local items, order = c:get("fakepool:2", "ok:fp", "fakepool:3")
      assert.same({ "ok:fp" }, order, "a made-up pool table must fail its key, not route it")
      assert.equal("v", items["ok:fp"].value)
      assert.equal("SERVER_ERROR lua error (see the gateway log)", c:cmd("get kerr:1"))
      assert.equal("STORED", c:set("ok:4", "v"))
    end)

    it("a script that calls coroutine.yield itself fails that request, never hangs it", function()
      local c = connect()
      local msg = "^SERVER_ERROR lua: .*coroutine%.yield is not allowed here %(only pool calls wait%)$"
      assert.matches(msg, c:cmd("set yield:1 0 0 1\r\nx"))
      assert.equal("SERVER_ERROR lua error (see the gateway log)", c:cmd("get yield:1"))
      assert.matches(msg, c:cmd("set hyield:1 0 0 1\r\nx"))
      assert.equal("x", c:value("hyield:1"))
      -- the coroutines that yielded are gone; the next keys resolve as usual
      for i = 1, 20 do assert.equal("STORED", c:set("ok:y" .. i, "v" .. i)) end
      local items = c:get("ok:y1", "yield:2", "ok:y20")
      assert.equal("v1", items["ok:y1"].value)
      assert.equal("v20", items["ok:y20"].value)
    end)

    it("an error message is one reply line, at most 200 bytes of it", function()
      local c = connect()
      assert.equal("SERVER_ERROR lua: first line", c:cmd("set nl:1 0 0 1\r\nx"))
      local l = c:cmd("set long:1 0 0 1\r\nx")
      assert.matches("^SERVER_ERROR lua: e+$", l)
      assert(#l <= #"SERVER_ERROR lua: " + 200, "error line is " .. #l .. " bytes")
      assert.equal("STORED", c:set("ok:5", "v"))
      assert.is_false(c:has_data(0.2), "bytes after the error line: " .. c:drain())
    end)

    it("a hook error answers SERVER_ERROR lua: <message>; the write itself happened", function()
      local c = connect()
      assert.equal("SERVER_ERROR lua: set hook failed", c:cmd("set hboom:1 0 0 1\r\nx"))
      assert.equal("x", c:value("hboom:1"))
      assert.equal("STORED", c:set("dboom:1", "y"))
      assert.equal("SERVER_ERROR lua: delete hook failed", c:cmd("delete dboom:1"))
      assert.is_nil(c:value("dboom:1"))
      assert.equal("SERVER_ERROR lua error (see the gateway log)", c:cmd("get mboom:1"))
      assert.equal("STORED", c:set("ok:6", "v"))
    end)

    it("logs the error with its traceback", function()
      assert.truthy(env.wait_until(2, function()
        return gw:stderr():find("route exploded for boom:1", 1, true)
      end), "the gateway log does not have the Lua error")
    end)

    it("thousands of errors later the gateway serves as before, Lua memory bounded", function()
      local c = connect()
      for round = 1, 30 do
        local t = {}
        for i = 1, 100 do
          t[#t + 1] = string.format("set boom:%d:%d 0 0 1\r\nx\r\nget kerr:%d\r\n", round, i, i)
        end
        c:send(table.concat(t))
        for _ = 1, 100 do
          assert.matches("^SERVER_ERROR lua: ", c:line())
          assert.equal("SERVER_ERROR lua error (see the gateway log)", c:line())
        end
      end
      assert.equal("STORED", c:set("ok:7", "v"))
      assert.equal("v", c:value("ok:7"))
      assert.is_true(gw:alive())
      env.sleep(1.2) -- lua_memory_kb is sampled about once a second
      local raw = c:stats()["lua_memory_kb"]
      local kb = tonumber(raw)
      assert(kb, "stats has no lua_memory_kb number (got " .. tostring(raw) .. ")")
      assert(kb > 0, "lua_memory_kb = 0: the Lua states' memory was not sampled")
      assert(kb < 8192, "lua_memory_kb = " .. kb)
    end)
  end)
end)

describe("a config with hooks only (no route or key function)", function()
  local E, gw

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_hooks_only")
    local m = E:memcached()
    gw = E:gateway { threads = 1, config = string.format([[
      local mg = require "mintgate"
      local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
      mg.route { default = main }
      mg.on("set", function(req, pool)
        if req.key == "post" then pool:delete("page") end
      end)
    ]], m.port) }
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  it("serves every command and runs the hook", function()
    local c = client.connect(gw.port)
    assert.equal("STORED", c:set("page", "p"))
    assert.equal("p", c:value("page"))
    assert.equal("STORED", c:set("post", "x"))
    assert.is_nil(c:value("page"))
    assert.equal("DELETED", c:cmd("delete post"))
    c:close()
  end)
end)
