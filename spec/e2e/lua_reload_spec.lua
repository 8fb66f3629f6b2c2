-- Reloading the config script while serving: `reload` on the admin port and SIGHUP. The
-- script is a temp copy that each test rewrites; a reload changes routing for new
-- requests (on connections opened before it too), and a broken script keeps the old
-- config (the admin gets SERVER_ERROR reload failed: <why>, the log says it).
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local SIGHUP = 1

describe("reload", function()
  local E, gw, mcs, dir, script, admin_port

  local function connect(port) return E:client(port or gw.port) end

  -- A config routing every key to pool `target` ("a", "b" or "c": MEMCACHED 1, 2, 3),
  -- by a route function (kind "fn") or a prefix table (kind "table").
  local function config(target, kind)
    local route = kind == "table" and "mg.route { default = pools[target] }"
      or "mg.route(function(req) return pools[target] end)"
    return string.format([[
local mg = require "mintgate"
mg.admin { "127.0.0.1:%d" }
local pools = {
  a = mg.pool { name = "a", servers = { "127.0.0.1:%d" } },
  b = mg.pool { name = "b", servers = { "127.0.0.1:%d" } },
}
local target = %q
if target == "c" then pools.c = mg.pool { name = "c", servers = { "127.0.0.1:%d" } } end
%s
]], admin_port, mcs[1].port, mcs[2].port, target, mcs[3].port, route)
  end

  -- replaced atomically, so that a reload never reads a half-written file
  local function write(text) env.replace_file(script, text) end

  local function admin(cmd) return env.admin_cmd(admin_port, cmd) end

  -- Which server (1, 2, 3) holds key, asked directly; nil when none.
  local function where(key)
    for i, m in ipairs(mcs) do
      local d = client.connect(m.port)
      local v = d:value(key)
      d:close()
      if v then return i end
    end
  end

  local n = 0
  -- Store a fresh key through c and tell which server it landed on.
  local function lands(c)
    n = n + 1
    local k = "rl:" .. n
    assert.equal("STORED", c:set(k, "v"))
    return where(k)
  end

  local function log_count(text)
    local _, count = gw:stderr():gsub(text:gsub("%p", "%%%0"), "")
    return count
  end

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_reload")
    mcs = { E:memcached(), E:memcached(), E:memcached() }
    dir = env.mktemp_dir()
    script = dir .. "/reload.lua"
    admin_port = env.free_port()
    write(config("a", "fn"))
    gw = E:gateway { threads = 2, args = { script } }
    assert(env.wait_until(5, function() return env.port_open(admin_port) end), "no admin listener")
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. env.shquote(dir)) end
    if E then E:teardown() end
  end)

  local old -- a client connection opened before the first reload, used throughout

  it("serves the first config", function()
    old = client.connect(gw.port)
    assert.equal(1, lands(old))
  end)

  it("admin `reload` of a changed script changes routing, also on open connections", function()
    write(config("b", "fn"))
    assert.equal("OK", admin("reload"))
    assert.equal(2, lands(old))
    local c = connect()
    for _ = 1, 10 do assert.equal(2, lands(c)) end
    -- keys written before the reload are now looked up on b: misses, not errors
    assert.same({}, c:get("rl:1"))
  end)

  it("SIGHUP reloads the script too (a prefix table this time)", function()
    write(config("a", "table"))
    gw:signal(SIGHUP)
    local c = connect()
    -- each worker takes a SIGHUP's reload in its own time: old may be on the other one
    assert.truthy(env.wait_until(5, function() return lands(c) == 1 and lands(old) == 1 end,
      0.05), "routing did not change within 5 s of SIGHUP")
  end)

  it("a reload may add a pool (and its server)", function()
    write(config("c", "fn"))
    assert.equal("OK", admin("reload"))
    assert.equal(3, lands(old))
    assert.equal(3, lands(connect()))
  end)

  it("a script with a syntax error keeps the old config: SERVER_ERROR reload failed", function()
    local before = log_count("reload failed")
    write(config("b", "fn"):gsub("mg.route%(", "mg.route(((", 1))
    local l = admin("reload")
    assert.matches("^SERVER_ERROR reload failed: .+", l)
    assert.matches("reload.lua", l, 1, true)
    assert.equal(3, lands(old))
    assert.equal(3, lands(connect()))
    assert.truthy(env.wait_until(2, function() return log_count("reload failed") > before end),
      "the gateway log does not say the reload failed")
  end)

  it("a script that raises keeps the old config", function()
    write(config("b", "fn") .. "\nerror('deliberately broken')\n")
    local l = admin("reload")
    assert.matches("^SERVER_ERROR reload failed: ", l)
    assert.matches("deliberately broken", l, 1, true)
    assert.equal(3, lands(old))
  end)

  it("a script with a bad declaration keeps the old config", function()
    write(config("b", "fn"):gsub('servers = { "127%.0%.0%.1:(%d+)" }', 'servers = { "nohost" }', 1))
    local l = admin("reload")
    assert.matches("^SERVER_ERROR reload failed: .*mg%.pool", l)
    assert.equal(3, lands(old))
  end)

  it("a script that is gone keeps the old config", function()
    os.remove(script)
    assert.matches("^SERVER_ERROR reload failed: ", admin("reload"))
    assert.equal(3, lands(old))
  end)

  it("SIGHUP with a broken script keeps the old config and logs why", function()
    local before = log_count("reload failed")
    write("this is not lua")
    gw:signal(SIGHUP)
    assert.truthy(env.wait_until(3, function() return log_count("reload failed") > before end),
      "the gateway log does not say the SIGHUP reload failed")
    assert.is_true(gw:alive())
    assert.equal(3, lands(old))
  end)

  it("after failures a good script loads again", function()
    write(config("b", "fn"))
    assert.equal("OK", admin("reload"))
    assert.equal(2, lands(old))
  end)

  it("many reloads under load: every request answered, nothing dropped", function()
    local c = connect()
    local targets = { "a", "b" }
    for round = 1, 20 do
      write(config(targets[round % 2 + 1], round % 3 == 0 and "table" or "fn"))
      -- pipeline writes while the reload happens
      local t = {}
      for i = 1, 50 do t[#t + 1] = string.format("set load:%d:%d 0 0 1\r\nx\r\n", round, i) end
      c:send(table.concat(t))
      assert.equal("OK", admin("reload"))
      for _ = 1, 50 do assert.equal("STORED", c:line()) end
    end
    assert.is_true(gw:alive())
    old:close()
  end)
end)

describe("reload when the workers read another script than the one checked", function()
  -- Each worker runs the script again for its own Lua state. Here the script changes
  -- between the main thread's load (which succeeds) and the workers' runs (which never
  -- require "mintgate"), as a file being rewritten during a reload would. The gateway must
  -- stay up, serving with a working config.
  local E, gw, dir, admin_port

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_reload_race")
    local m = E:memcached()
    dir = env.mktemp_dir()
    admin_port = env.free_port()
    local script = dir .. "/racy.lua"
    env.write_file(script, string.format([[
local path = %q
local f = io.open(path, "r")
local n = tonumber(f and f:read("*a") or "0") or 0
if f then f:close() end
f = io.open(path, "w"); f:write(tostring(n + 1)); f:close()
-- runs 0-2: start (main thread, 2 workers); 3: the reload's check; 4, 5: the workers
if n >= 4 then return end
local mg = require "mintgate"
mg.admin { "127.0.0.1:%d" }
mg.route { default = mg.pool { name = "main", servers = { "127.0.0.1:%d" } } }
]], dir .. "/runs", admin_port, m.port))
    gw = E:gateway { threads = 2, args = { script } }
    assert(env.wait_until(5, function() return env.port_open(admin_port) end), "no admin listener")
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. env.shquote(dir)) end
    if E then E:teardown() end
  end)

  it("keeps the gateway up and serving", function()
    local a = client.connect(admin_port)
    -- the check passed but the workers could not run the script: the admin hears it
    -- (the reply waits for the workers' outcome instead of answering OK at once)
    local reply = a:cmd("reload", 10)
    assert.truthy(reply:match("^SERVER_ERROR reload failed: worker %d+: "), reply)
    a:close()
    env.sleep(0.5)
    assert.is_true(gw:alive(), "the gateway died: " .. env.tail(gw:stderr(), 5))
    local c = client.connect(gw.port)
    for i = 1, 20 do assert.equal("STORED", c:set("race:" .. i, "v")) end
    c:close()
  end)
end)
