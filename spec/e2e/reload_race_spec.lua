-- Reloads, switch changes and `stats backends` while two workers serve cold misses under a
-- staleness policy (herd waits in flight). Under the ThreadSanitizer build (make tsan-test)
-- this found a worker freeing a config generation that another worker's herd waits still
-- read, and stats reading backend arrays a reload was replacing; under any build the
-- gateway must keep answering and stop cleanly.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"

local SIGHUP = 1

describe("reload under load", function()
  local E, gw, admin

  lazy_setup(function()
    env.require_binary()
    E = env.new("reload_race")
    local a, b = E:memcached(), E:memcached()
    admin = env.free_port()
    gw = E:gateway { threads = 2, args = { "-A", "127.0.0.1:" .. admin }, config = string.format([[
      local mg = require "mintgate"
      mg.pool { name = "main", servers = { "127.0.0.1:%d", "127.0.0.1:%d" } }
      mg.stale { grace = 5, lock = 1, wait = 300 }
      mg.switch { name = "s", percent = 50 }
    ]], a.port, b.port) }
  end)
  lazy_teardown(function() if E then E:teardown() end end)

  it("keeps serving through reloads, switch changes and stats, with no sanitizer report", function()
    assert(io.open("bench/mgload", "rb"), "bench/mgload is not built (make bench/mgload)")
    local load = E:spawn({ "bench/mgload", "--port", tostring(gw.port), "--conns", "12",
      "--threads", "2", "--keys", "40", "--ratio", "8:2", "--duration", "6", "--seed", "7" },
      { name = "mgload", kind = "load" })
    local c = E:client(admin)
    local gen0 = tonumber(E:client(gw.port):stats()["config_generation"])
    local deadline, last_hup, hups = env.now() + 6, env.now(), 0
    local pct = 0
    while env.now() < deadline do
      pct = (pct + 37) % 101
      assert.equal("OK", c:cmd("switch s " .. pct))
      local st = c:stats("stats backends")
      assert.truthy(next(st), "stats backends answered nothing")
      if env.now() - last_hup > 1.5 then
        gw:signal(SIGHUP)
        hups = hups + 1
        last_hup = env.now()
      end
      env.sleep(0.02)
    end
    -- its exit status is written by the wrapper a moment after it exits: wait for that
    assert.truthy(env.wait_until(15, function() return load:exit_code() ~= nil end, 0.1),
      "mgload hung")
    assert.equal(0, load:exit_code(), "mgload failed:\n" .. load:stderr())
    local out = load:stdout()
    assert.matches(" errors=0 ", out, "the load saw errors:\n" .. out)
    assert.truthy(env.wait_until(5, function()
      return tonumber(E:client(gw.port):stats()["config_generation"]) >= gen0 + hups
    end, 0.1), "not every SIGHUP was taken")
    assert.is_true(gw:alive())
    local log = gw:stderr()
    assert.is_nil(log:find("Sanitizer", 1, true), log)
  end)
end)

describe("the longest client key follows the config", function()
  local E, gw, path, mc, admin

  local function config(hash_long)
    env.write_file(path, string.format([[
      local mg = require "mintgate"
      mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
      mg.keys { style = "django", prefix = "p", hash_long = %s }
    ]], mc.port, tostring(hash_long)))
  end

  lazy_setup(function()
    env.require_binary()
    E = env.new("reload_key_max")
    mc = E:memcached()
    path = E.dir .. "/keymax.lua"
    config(true)
    admin = env.free_port()
    gw = E:gateway { threads = 2, args = { "-A", "127.0.0.1:" .. admin, path } }
  end)
  lazy_teardown(function() if E then E:teardown() end end)

  it("is lowered again when a reload drops hash_long", function()
    local long = ("k"):rep(300)
    local c = E:client(gw.port)
    assert.equal("STORED", c:set(long, "v"))
    config(false)
    -- the admin reload answers OK once every worker runs the new config (a SIGHUP's
    -- reload reaches the workers a moment later, longer on a loaded machine)
    assert.equal("OK", env.admin_cmd(admin, "reload"))
    for _ = 1, 4 do -- both workers
      local d = E:client(gw.port)
      -- refused by the parser, as memcached refuses it: the line alone, so the data
      -- block is read as a command of its own
      d:send("set " .. long .. " 0 0 5\r\nhello\r\n")
      assert.equal("CLIENT_ERROR bad command line format", d:line())
      assert.equal("ERROR", d:line())
      d:close()
    end
  end)
end)
