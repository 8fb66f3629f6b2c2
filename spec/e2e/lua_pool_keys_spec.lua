-- Whose key transform applies: a pool's own `keys` (a function or a style table) wins over
-- `mg.keys` (a function or a table), whether the pool was chosen by a prefix table or by
-- a route function. A pool's key function used to be accepted and then ignored, and a
-- global key function hid every pool's own style table.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local POOLS = [[
  local mg = require "mintgate"
  local a = mg.pool { name = "a", servers = { "127.0.0.1:%d" },
                      keys = function(key, req) return "A:" .. key end }
  local b = mg.pool { name = "b", servers = { "127.0.0.1:%d" },
                      keys = { style = "prefix", prefix = "B:" } }
  local c = mg.pool { name = "c", servers = { "127.0.0.1:%d" } }
  mg.keys(function(key, req) return "G:" .. key end)
]]

for _, how in ipairs { "prefix table", "route function" } do
  describe("per-pool key transforms chosen by a " .. how, function()
    local E, gw, mc

    lazy_setup(function()
      env.require_binary()
      E = env.new("lua_pool_keys")
      mc = E:memcached()
      local route = how == "prefix table" and [[
        mg.route { ["a:"] = a, ["b:"] = b, default = c }
      ]] or [[
        mg.route(function(req)
          local p = req.key:sub(1, 2)
          if p == "a:" then return a elseif p == "b:" then return b end
          return c
        end)
      ]]
      gw = E:gateway { threads = 2, config = string.format(POOLS, mc.port, mc.port, mc.port) .. route }
    end)
    lazy_teardown(function() if E then E:teardown() end end)

    it("gives each pool's keys its own transform", function()
      local g = E:client(gw.port)
      for _, k in ipairs { "a:1", "b:1", "x:1" } do assert.equal("STORED", g:set(k, "v" .. k)) end
      -- a multi-key get resolves its keys in one batch
      local items = g:get("a:1", "b:1", "x:1", "a:2")
      assert.equal("va:1", items["a:1"].value)
      assert.equal("vb:1", items["b:1"].value)
      assert.equal("vx:1", items["x:1"].value)
      local d = client.connect(mc.port)
      assert.equal("va:1", d:value("A:a:1"), "pool a's own function")
      assert.equal("vb:1", d:value("B:b:1"), "pool b's own style table, not mg.keys'")
      assert.equal("vx:1", d:value("G:x:1"), "mg.keys' function for a pool without its own")
      assert.is_nil(d:value("G:a:1"))
      assert.is_nil(d:value("G:b:1"))
      d:close()
    end)
  end)
end

describe("a key whose resolver coroutine cannot be had", function()
  local E, gw

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_resolver_oom")
    local mc = E:memcached()
    gw = E:gateway { threads = 1, env = { MINTGATE_FAULT = "no-coroutines" },
      config = string.format(POOLS, mc.port, mc.port, mc.port) .. [[
        mg.route { ["a:"] = a, default = c }
      ]] }
  end)
  lazy_teardown(function() if E then E:teardown() end end)

  it("fails with the resolver's error, not with another key's pool", function()
    local c = E:client(gw.port)
    -- it used to go on with whatever pool the last resolution left, and answer
    -- CLIENT_ERROR bad command line format
    assert.equal("SERVER_ERROR out of memory", c:set("a:1", "v"))
    assert.equal("SERVER_ERROR out of memory", c:cmd("delete x:1"))
    assert.is_true(gw:alive())
  end)
end)

describe("a hook's pool", function()
  local E, gw, mc

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_hook_pool")
    mc = E:memcached()
    gw = E:gateway { threads = 1, config = string.format([[
      local mg = require "mintgate"
      local a = mg.pool { name = "a", servers = { "127.0.0.1:%d" }, keys = { prefix = "A:" } }
      local b = mg.pool { name = "b", servers = { "127.0.0.1:%d" }, keys = { prefix = "B:" } }
      mg.route { ["b:"] = b, default = a }
      mg.on("set", function(req, pool)
        -- a script may drop the module from package.loaded: hooks must not depend on it
        package.loaded.mintgate = nil
        local ok = pool:set("seen:" .. req.key, pool == b and "b" or pool == a and "a" or "?")
        assert(ok)
      end)
    ]], mc.port, mc.port) }
  end)
  lazy_teardown(function() if E then E:teardown() end end)

  it("is the pool the key went to, every time", function()
    local c = E:client(gw.port)
    for i = 1, 3 do
      assert.equal("STORED", c:set("b:" .. i, "x"))
      assert.equal("STORED", c:set("a:" .. i, "x"))
    end
    local d = client.connect(mc.port)
    for i = 1, 3 do -- keys of pool calls are backend keys, used as they are
      assert.equal("b", d:value("seen:b:" .. i))
      assert.equal("a", d:value("seen:a:" .. i))
    end
    d:close()
  end)
end)
