-- examples/invalidation_hooks.lua against real memcached: storing or deleting post:<id>
-- deletes page:<id> and page:index before the client gets its answer; namespace
-- versioning through a key function: "<ns>/<rest>" is stored as "<ns>/<version>/<rest>"
-- and `incr ns:<ns> 1` invalidates the whole namespace.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local start_example = env.start_example

describe("examples/invalidation_hooks.lua", function()
  local E, gw, mcs

  local function connect(port) return E:client(port or gw.port) end

  -- The value of backend key k on whichever server has it (direct gets), or nil.
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
    E = env.new("lua_invalidation")
    gw, mcs = start_example(E, "invalidation_hooks", 2)
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  after_each(function() E:close_clients() end)

  describe("dependent keys", function()
    it("set post:1 deletes page:1 and page:index, and nothing else", function()
      local c = connect()
      assert.equal("STORED", c:set("page:1", "rendered 1"))
      assert.equal("STORED", c:set("page:2", "rendered 2"))
      assert.equal("STORED", c:set("page:index", "list"))
      assert.equal("STORED", c:set("post:1", "new text"))
      -- after STORED, the dependent pages are gone (also as seen by other clients)
      local items = connect():get("page:1", "page:index", "page:2", "post:1")
      assert.is_nil(items["page:1"])
      assert.is_nil(items["page:index"])
      assert.equal("rendered 2", items["page:2"].value)
      assert.equal("new text", items["post:1"].value)
      assert.is_nil(backend_value("page:1"))
    end)

    it("add, replace, append, prepend and cas of a post invalidate too", function()
      local c = connect()
      local function pages()
        assert.equal("STORED", c:set("page:7", "p"))
        assert.equal("STORED", c:set("page:index", "i"))
      end
      local function gone()
        local items = c:get("page:7", "page:index")
        assert.same({}, items)
      end
      pages(); assert.equal("STORED", c:cmd("add post:7 0 0 1\r\na")); gone()
      pages(); assert.equal("STORED", c:cmd("replace post:7 0 0 1\r\nb")); gone()
      pages(); assert.equal("STORED", c:cmd("append post:7 0 0 1\r\nc")); gone()
      pages(); assert.equal("STORED", c:cmd("prepend post:7 0 0 1\r\nd")); gone()
      local cas = c:gets("post:7")["post:7"].cas
      pages(); assert.equal("STORED", c:cmd("cas post:7 0 0 1 " .. cas .. "\r\ne")); gone()
      assert.equal("e", c:value("post:7"))
    end)

    it("a write that does not store does not invalidate", function()
      local c = connect()
      assert.equal("STORED", c:set("post:8", "x"))
      assert.equal("STORED", c:set("page:8", "p"))
      assert.equal("NOT_STORED", c:cmd("add post:8 0 0 1\r\ny"))
      assert.equal("p", c:value("page:8"))
    end)

    it("delete post:N invalidates, found or not", function()
      local c = connect()
      assert.equal("STORED", c:set("post:3", "x"))
      assert.equal("STORED", c:set("page:3", "p"))
      assert.equal("DELETED", c:cmd("delete post:3"))
      assert.is_nil(c:value("page:3"))
      assert.equal("STORED", c:set("page:3", "p"))
      assert.equal("NOT_FOUND", c:cmd("delete post:3"))
      assert.is_nil(c:value("page:3"))
    end)

    it("noreply writes invalidate as well", function()
      local c = connect()
      assert.equal("STORED", c:set("page:9", "p"))
      c:send("set post:9 0 0 1 noreply\r\nx\r\n")
      assert.truthy(env.wait_until(2, function() return c:value("page:9") == nil end, 0.02),
        "page:9 still there after set post:9 noreply")
    end)
  end)

  describe("namespace versioning", function()
    local function version(c, ns) return c:value("ns:" .. ns) end

    it("stores <ns>/<rest> as <ns>/<version>/<rest>, replies with the client's key", function()
      local c = connect()
      assert.equal("STORED", c:set("catalog/item:42", "shoe", 4))
      local v = version(c, "catalog")
      assert.matches("^%d+$", v, "the key function did not create the counter ns:catalog")
      assert.equal("shoe", backend_value("catalog/" .. v .. "/item:42"))
      assert.is_nil(backend_value("catalog/item:42"))
      c:send("get catalog/item:42\r\n")
      assert.equal("VALUE catalog/item:42 4 4", c:line())
      assert.equal("shoe", c:line())
      assert.equal("END", c:line())
    end)

    it("incr ns:<ns> invalidates that namespace only", function()
      local c = connect()
      assert.equal("STORED", c:set("catalog/item:1", "a"))
      assert.equal("STORED", c:set("catalog/item:2", "b"))
      assert.equal("STORED", c:set("shop/cart:1", "c"))
      local v = tonumber(version(c, "catalog"))
      assert.equal(tostring(v + 1), c:cmd("incr ns:catalog 1"))
      local items = c:get("catalog/item:1", "catalog/item:2", "shop/cart:1")
      assert.is_nil(items["catalog/item:1"])
      assert.is_nil(items["catalog/item:2"])
      assert.equal("c", items["shop/cart:1"].value)
      -- the old items are still in memcached under the old version, unreachable
      assert.equal("a", backend_value("catalog/" .. v .. "/item:1"))
      -- a new write goes to the new version
      assert.equal("STORED", c:set("catalog/item:1", "a2"))
      assert.equal("a2", backend_value("catalog/" .. (v + 1) .. "/item:1"))
      assert.equal("a2", c:value("catalog/item:1"))
    end)

    it("every worker sees the bump at once (new connections, two threads)", function()
      local writer = connect()
      assert.equal("STORED", writer:set("fresh/k", "1"))
      assert.matches("^%d+$", writer:cmd("incr ns:fresh 1"))
      for _ = 1, 8 do
        assert.is_nil(connect():value("fresh/k"))
      end
    end)

    it("a missing counter is created once and then shared", function()
      local cs = {}
      for i = 1, 6 do cs[i] = connect() end
      for i = 1, 6 do cs[i]:send("set race/k" .. i .. " 0 0 1\r\nv\r\n") end
      for i = 1, 6 do assert.equal("STORED", cs[i]:line()) end
      local v = version(cs[1], "race")
      assert.matches("^%d+$", v)
      for i = 1, 6 do assert.equal("v", backend_value("race/" .. v .. "/k" .. i)) end
    end)

    it("keys without a namespace are left as they are", function()
      local c = connect()
      assert.equal("STORED", c:set("plain-key", "p"))
      assert.equal("p", backend_value("plain-key"))
    end)
  end)

  it("the gateway is still up", function()
    assert.is_true(gw:alive())
  end)
end)
