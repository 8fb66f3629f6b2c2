-- Admin exposure: an admin listener on a non-loopback address (0.0.0.0, [::]) needs an
-- explicit opt-in (--admin-public, or mg.admin { ..., public = true }), else the gateway
-- refuses to start and says how to opt in. A shared secret (--admin-secret-file, or
-- mg.admin { secret_file = ... }) makes every admin connection send `auth <secret>`
-- before any admin command, on admin listeners and on data ports that take admin
-- commands; a few bad secrets close the connection. Loopback admin listeners without a
-- secret work as before.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"

local CONFIG = [[
local mg = require "mintgate"
local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
mg.switch { name = "canary", percent = 0 }
mg.route { default = main }
%s
]]

local AUTH_REQUIRED = "CLIENT_ERROR authentication required"
local BAD_SECRET = "CLIENT_ERROR bad secret"
local SECRET = "s3cret-Value_42"

describe("admin exposure and the shared secret", function()
  local E, mc, dir

  lazy_setup(function()
    env.require_binary()
    E = env.new("admin_auth")
    mc = E:memcached()
    dir = env.mktemp_dir()
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. env.shquote(dir)) end
    if E then E:teardown() end
  end)

  local function write(name, text, mode)
    local path = dir .. "/" .. name
    env.write_file(path, text)
    os.execute("chmod " .. (mode or "600") .. " " .. env.shquote(path))
    return path
  end

  local function config(extra)
    return write("config-" .. env.free_port() .. ".lua", string.format(CONFIG, mc.port, extra or ""))
  end

  -- Start the gateway expecting it to refuse: exit status and stderr.
  local function refused(args)
    local argv = { env.bin, "-t", "1", "-l", "127.0.0.1:" .. env.free_port() }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local rc, out, err = env.run(argv, { timeout = 5 })
    assert(rc ~= 0 and rc ~= 124, table.concat(args, " ") .. ": exit status " .. tostring(rc) ..
      " (124: it started and served)\n" .. out .. err)
    return err
  end

  local function percent(c)
    return c:stats("stats switches")["switch:canary:percent"]
  end

  it("refuses -A on 0.0.0.0 and [::] without --admin-public, saying how to opt in", function()
    for _, addr in ipairs { "0.0.0.0:" .. env.free_port(), "[::]:" .. env.free_port() } do
      local err = refused { "-A", addr, config() }
      assert(err:find("--admin-public", 1, true), addr .. ": " .. err)
      assert(err:find("loopback", 1, true), addr .. ": " .. err)
    end
  end)

  it("refuses mg.admin on a public address without public = true", function()
    local err = refused { config('mg.admin { "0.0.0.0:' .. env.free_port() .. '" }') }
    assert(err:find("public = true", 1, true), err)
  end)

  it("refuses admin commands on a public data port without the opt-in", function()
    local argv = { env.bin, "-t", "1", "-l", "0.0.0.0:" .. env.free_port(),
                   config("mg.admin { on_data_port = true }") }
    local rc, out, err = env.run(argv, { timeout = 5 })
    assert(rc ~= 0 and rc ~= 124, "exit status " .. tostring(rc) .. "\n" .. out .. err)
    assert(err:find("--admin-public", 1, true), err)
  end)

  it("refuses a missing, empty or malformed secret file", function()
    for _, path in ipairs { dir .. "/nosuch", write("empty", ""), write("spaces", "two words\n"),
                            write("lines", "one\ntwo\n") } do
      local err = refused { "-A", "127.0.0.1:" .. env.free_port(), "--admin-secret-file", path,
                            config() }
      assert(err:find("secret", 1, true), path .. ": " .. err)
    end
  end)

  it("--admin-public opens it, with a warning that no secret protects it", function()
    local admin_port = env.free_port()
    local gw = E:gateway { servers = { mc.port }, threads = 1,
                           args = { "-A", "0.0.0.0:" .. admin_port, "--admin-public" } }
    local log = ""
    env.wait_until(5, function() -- the warning may land a moment after the port accepts
      log = gw:stderr()
      return log:lower():find("public", 1, true) and log:lower():find("no secret", 1, true)
    end, 0.05)
    assert(log:lower():find("public", 1, true) and log:lower():find("no secret", 1, true), log)
    local c = E:client(admin_port)
    assert.matches("^CLIENT_ERROR ", c:cmd("switch canary 10")) -- no switches with -s; no auth
    assert.equal("CLIENT_ERROR usage: reload", c:cmd("reload x"))
    c:close()
    E:stop(gw)
  end)

  describe("with --admin-secret-file on a public listener", function()
    local gw, admin_port

    lazy_setup(function()
      admin_port = env.free_port()
      local secret = write("secret", SECRET .. "\n")
      gw = E:gateway { threads = 2, args = { "-A", "0.0.0.0:" .. admin_port, "--admin-public",
        "--admin-secret-file", secret, config() } }
    end)

    after_each(function() E:close_clients() end)

    it("logs that the public listener has a secret", function()
      local log = ""
      -- the start-up warning may reach the log file a moment after the port accepts
      env.wait_until(5, function()
        log = gw:stderr():lower()
        return log:find("public", 1, true) and log:find("secret", 1, true)
      end, 0.05)
      assert(log:find("public", 1, true) and log:find("secret", 1, true), log)
      assert.is_nil(log:find(SECRET:lower(), 1, true), "the secret is in the log")
    end)

    it("answers admin commands before auth with authentication required", function()
      local c = E:client(admin_port)
      assert.equal(AUTH_REQUIRED, c:cmd("switch canary 10"))
      assert.equal(AUTH_REQUIRED, c:cmd("reload"))
      assert.equal("0.000", percent(c)) -- ordinary commands are served as on a data port
    end)

    it("takes the right secret, then admin commands", function()
      local c = E:client(admin_port)
      assert.equal(BAD_SECRET, c:cmd("auth wrong"))
      assert.equal(BAD_SECRET, c:cmd("auth " .. SECRET .. "x"))
      assert.equal("CLIENT_ERROR usage: auth SECRET", c:cmd("auth"))
      assert.equal("OK", c:cmd("auth " .. SECRET))
      local d = E:client(admin_port)
      assert.equal(BAD_SECRET, d:cmd("auth " .. SECRET:sub(1, -2)))
      assert.equal("CLIENT_ERROR usage: auth SECRET", d:cmd("auth " .. SECRET .. " x"))
      assert.equal(AUTH_REQUIRED, d:cmd("reload"))
      assert.equal("OK", c:cmd("switch canary 15"))
      assert.equal("15.000", percent(c))
      -- authentication is per connection
      local e = E:client(admin_port)
      assert.equal(AUTH_REQUIRED, e:cmd("switch canary 20"))
      assert.equal("15.000", percent(e))
    end)

    it("lets only an authenticated admin connection write the gateway's own keys", function()
      local reserved = "CLIENT_ERROR key is in the gateway's reserved namespace"
      local c = E:client(admin_port)
      assert.equal(reserved, c:set("mintgate:switch:canary", "50"))
      assert.equal("OK", c:cmd("auth " .. SECRET))
      assert.equal("STORED", c:set("mintgate:switch:canary", "50"))
      assert.equal(reserved, E:client(gw.port):cmd("delete mintgate:switch:canary"))
    end)

    it("closes the connection after three bad secrets", function()
      local c = E:client(admin_port)
      assert.equal(BAD_SECRET, c:cmd("auth a"))
      assert.equal(BAD_SECRET, c:cmd("auth b"))
      assert.equal(BAD_SECRET, c:cmd("auth c"))
      assert.is_true(c:closed(2), "still open after three bad secrets")
      local d = E:client(admin_port) -- others are not affected
      assert.equal("OK", d:cmd("auth " .. SECRET))
    end)

    it("is still running", function()
      assert.is_true(gw:alive())
    end)
  end)

  it("mg.admin { public = true, secret_file = } does the same from the script", function()
    local admin_port = env.free_port()
    local secret = write("secret2", SECRET)
    local gw = E:gateway { threads = 1, args = { config(string.format(
      'mg.admin { "0.0.0.0:%d", public = true, secret_file = %q }', admin_port, secret)) } }
    local c = E:client(admin_port)
    assert.equal(AUTH_REQUIRED, c:cmd("switch canary 5"))
    assert.equal("OK", c:cmd("auth " .. SECRET))
    assert.equal("OK", c:cmd("switch canary 5"))
    E:close_clients()
    E:stop(gw)
  end)

  it("a secret applies to loopback listeners and to admin commands on the data port", function()
    local admin_port = env.free_port()
    local secret = write("secret3", SECRET .. "\r\n")
    local gw = E:gateway { threads = 1, args = { "-A", "127.0.0.1:" .. admin_port,
      "--admin-secret-file", secret, config("mg.admin { on_data_port = true }") } }
    for _, port in ipairs { admin_port, gw.port } do
      local c = E:client(port)
      assert.equal(AUTH_REQUIRED, c:cmd("switch canary 7"))
      assert.equal(BAD_SECRET, c:cmd("auth nope"))
      assert.equal("OK", c:cmd("auth " .. SECRET))
      assert.equal("OK", c:cmd("switch canary 7"))
    end
    E:close_clients()
    E:stop(gw)
  end)

  it("loopback without a secret takes admin commands at once, as before", function()
    local admin_port = env.free_port()
    local gw = E:gateway { threads = 1, args = { "-A", "127.0.0.1:" .. admin_port, config() } }
    local c = E:client(admin_port)
    assert.equal("OK", c:cmd("switch canary 3"))
    assert.equal("3.000", percent(c))
    E:close_clients()
    E:stop(gw)
  end)
end)
