-- Client authentication with a config script (issue 16): mg.auth { file = ... } and its
-- reload (a changed users file takes effect for new authentications; a missing one keeps
-- the users loaded before), --auth-file winning over it, req.user in route functions
-- (examples/tenants.lua: two tenants, each on its own memcached, through binary SASL and
-- text auth), and backends that require memcached's text auth (mg.pool { auth = ... }).
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"
local bin = require "spec.helpers.bin"

-- A binary connection to port authenticated as user: the connection, or nil and the
-- SASL status.
local function sasl(port, user, password)
  local c = client.connect(port)
  local status = bin.sasl_plain(c, user, password)
  if status ~= 0 then
    c:close()
    return nil, status
  end
  return c
end

-- A text connection to port after memcached's text auth: the connection and the answer.
local function text_auth(port, user, password)
  local c = client.connect(port)
  local cred = user .. " " .. password
  return c, c:cmd(string.format("set auth 0 0 %d\r\n%s\r\n", #cred, cred))
end

describe("authentication with a config script", function()
  local E

  lazy_setup(function()
    env.require_binary()
    E = env.new("auth")
  end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() E:close_clients() end)

  describe("mg.auth and reload", function()
    local gw, mc, users, admin_port

    lazy_setup(function()
      mc = E:memcached()
      users = E.dir .. "/users"
      env.write_file(users, "alice:old-pw\n# a comment\nbob:bob-pw\n")
      admin_port = env.free_port()
      gw = E:gateway { config = string.format([[
local mg = require "mintgate"
mg.admin { "127.0.0.1:%d" }
mg.auth { file = %q }
mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
mg.route { default = "main" }
]], admin_port, users, mc.port) }
      assert(env.wait_until(5, function() return env.port_open(admin_port) end), "no admin listener")
    end)

    it("takes the users file from the script", function()
      local c = assert(sasl(gw.port, "alice", "old-pw"))
      assert.equal(0, bin.set(c, "auth:a", "1"))
      assert.equal("1", client.value_on(mc.port, "auth:a"))
      assert.same({ nil, 0x20 }, { sasl(gw.port, "alice", "bob-pw") })
      local t, answer = text_auth(gw.port, "bob", "bob-pw")
      assert.equal("STORED", answer)
      assert.equal("1", t:value("auth:a"))
    end)

    it("a reload reads the changed file: the new password is accepted, the old refused", function()
      local before = assert(sasl(gw.port, "alice", "old-pw"))
      env.replace_file(users, "alice:new-pw\n")
      assert.equal("OK", env.admin_cmd(admin_port, "reload"))
      assert.same({ nil, 0x20 }, { sasl(gw.port, "alice", "old-pw") })
      assert.is_truthy(sasl(gw.port, "alice", "new-pw"))
      assert.same({ nil, 0x20 }, { sasl(gw.port, "bob", "bob-pw") }) -- gone from the file
      local _, answer = text_auth(gw.port, "bob", "bob-pw")
      assert.equal("CLIENT_ERROR authentication failure", answer)
      -- a connection authenticated before the reload goes on
      assert.equal(0, bin.set(before, "auth:before", "still"))
      assert.equal("still", client.value_on(mc.port, "auth:before"))
    end)

    it("SIGHUP reloads it too", function()
      env.replace_file(users, "alice:hup-pw\n")
      gw:signal(1) -- SIGHUP
      assert(env.wait_until(5, function() return sasl(gw.port, "alice", "hup-pw") ~= nil end),
        "the new password was not accepted after SIGHUP")
      assert.same({ nil, 0x20 }, { sasl(gw.port, "alice", "new-pw") })
    end)

    it("a users file gone at a reload keeps the old users and logs an error", function()
      os.remove(users)
      assert.equal("OK", env.admin_cmd(admin_port, "reload"))
      assert.is_truthy(sasl(gw.port, "alice", "hup-pw"))
      assert.truthy(gw:stderr():find("reload: auth file " .. users .. ": No such file", 1, true),
        gw:stderr())
      assert.is_nil(gw:stderr():find("hup-pw", 1, true)) -- passwords are never logged
    end)
  end)

  it("--auth-file wins over mg.auth", function()
    local mc = E:memcached()
    local a, b = E.dir .. "/users-cli", E.dir .. "/users-script"
    env.write_file(a, "cli:cli-pw\n")
    env.write_file(b, "script:script-pw\n")
    local gw = E:gateway { args = { "--auth-file", a }, config = string.format([[
local mg = require "mintgate"
mg.auth { file = %q }
mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
mg.route { default = "main" }
]], b, mc.port) }
    assert.is_truthy(sasl(gw.port, "cli", "cli-pw"))
    assert.same({ nil, 0x20 }, { sasl(gw.port, "script", "script-pw") })
  end)

  describe("backends that require auth (memcached -Y)", function()
    local mc, gw, bad, none

    local function pool_config(auth)
      return string.format([[
local mg = require "mintgate"
mg.pool { name = "main", servers = { "127.0.0.1:%d" }, timeout = 1%s }
mg.route { default = "main" }
]], mc.port, auth and (", auth = " .. auth) or "")
    end

    lazy_setup(function()
      local users = E.dir .. "/backend-users"
      env.write_file(users, "gateway:backend-pw\n")
      mc = E:memcached { args = { "-Y", users } }
      gw = E:gateway { config = pool_config('{ user = "gateway", password = "backend-pw" }') }
      bad = E:gateway { config = pool_config('{ user = "gateway", password = "wrong-pw" }') }
      none = E:gateway { config = pool_config(nil) }
    end)

    it("the gateway authenticates each new connection before anything else", function()
      local c = E:client(gw.port)
      assert.equal("STORED", c:cmd("set be:k 0 0 2\r\nhi\r\n"))
      assert.equal("hi", c:value("be:k"))
      assert.equal("HD", c:cmd("ms be:m 1 T0\r\nx\r\n"))
      -- many keys at once on fresh connections (2 workers)
      for i = 1, 20 do
        local d = client.connect(gw.port)
        assert.equal("hi", d:value("be:k"), "connection " .. i)
        d:close()
      end
      -- memcached agrees: the item is there for an authenticated text client
      local m = client.connect(mc.port)
      assert.equal("STORED", m:cmd("set x 0 0 18\r\ngateway backend-pw\r\n"))
      assert.equal("hi", m:value("be:k"))
    end)

    it("memcached's own stats are fetched with the auth too (plain stats)", function()
      local c = E:client(gw.port)
      assert(env.wait_until(5, function()
        return tonumber(c:stats().curr_items or "0") >= 2
      end), "curr_items never reached the backend's count: " .. gw:stderr())
      assert.is_nil(gw:stderr():find("stats not fetched", 1, true))
    end)

    it("a wrong password or none: errors, not a hang; the password is never logged", function()
      for _, g in ipairs { bad, none } do
        local c = E:client(g.port)
        local t0 = env.now()
        local r = c:cmd("get be:k", 5)
        assert.truthy(r:match("^SERVER_ERROR") or r:match("^CLIENT_ERROR"), r)
        r = c:cmd("set be:k 0 0 2\r\nno\r\n", 5)
        assert.truthy(r:match("^SERVER_ERROR") or r:match("^CLIENT_ERROR"), r)
        assert.truthy(env.now() - t0 < 3, "took " .. (env.now() - t0) .. " s")
      end
      assert.truthy(bad:stderr():find("authentication refused", 1, true), bad:stderr())
      assert.is_nil(bad:stderr():find("wrong-pw", 1, true))
      assert.is_nil(gw:stderr():find("backend-pw", 1, true))
      assert.equal("hi", client.connect(gw.port):value("be:k")) -- the good one still works
    end)
  end)

  describe("req.user: examples/tenants.lua", function()
    local gw, mcs

    lazy_setup(function()
      gw, mcs = env.start_example(E, "tenants", 2)
    end)

    it("routes each tenant to its own pool; neither reads the other's keys", function()
      local acme = assert(sasl(gw.port, "acme", "acme-demo-pw"))
      local globex = assert(sasl(gw.port, "globex", "globex-demo-pw"))
      assert.equal(0, bin.set(acme, "cart:1", "acme's cart"))
      assert.equal(0, bin.set(globex, "cart:1", "globex's cart"))
      assert.equal(0, bin.set(globex, "globex:only", "secret"))
      assert.equal("acme's cart", client.value_on(mcs[1].port, "cart:1"))
      assert.equal("globex's cart", client.value_on(mcs[2].port, "cart:1"))
      assert.equal("secret", client.value_on(mcs[2].port, "globex:only"))
      assert.is_nil(client.value_on(mcs[1].port, "globex:only"))
      -- the same key, each its own item; the other's key is a miss for acme
      assert.equal("acme's cart", bin.get(acme, "cart:1"))
      assert.equal("globex's cart", bin.get(globex, "cart:1"))
      assert.same({ nil, 0x01 }, { bin.get(acme, "globex:only") })
    end)

    it("a text client authenticated as globex lands on globex's pool", function()
      local t, answer = text_auth(gw.port, "globex", "globex-demo-pw")
      assert.equal("STORED", answer)
      assert.equal("STORED", t:cmd("set text:k 0 0 4\r\ntext\r\n"))
      assert.equal("text", client.value_on(mcs[2].port, "text:k"))
      assert.is_nil(client.value_on(mcs[1].port, "text:k"))
      assert.equal("secret", t:value("globex:only"))
      local a = select(1, text_auth(gw.port, "acme", "acme-demo-pw"))
      assert.is_nil(a:value("text:k"))
      assert.is_nil(a:value("globex:only"))
    end)
  end)
end)
