-- README promises about reloads, end to end (real memcached, the real binary): a reload
-- keeps the connections to backends whose address is unchanged (memcached's own
-- connection counters do not move), requests in flight finish on the old config (a get
-- held at a slow backend during the reload is answered by the old route), and `stats`
-- config_generation goes up by one per reload and stays put on a failed one.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local function slow_backend(E, upstream, delay)
  local port = env.free_port()
  local p = E:spawn({ "luajit", "spec/helpers/fake_backend.lua", tostring(port), "slow", "60",
    tostring(upstream), tostring(delay) }, { name = "fake:slow:" .. port, kind = "fake", port = port })
  return E:wait_listening(p, 5)
end

describe("reload", function()
  local E, gw, m1, m2, slow, dir, script, admin_port

  -- A config: pool "one" on m1 (always), pool "two" on m2, pool "slow" on the slow proxy
  -- in front of m2; `target` names the pool every key goes to; `extra` is more Lua.
  local function config(target, extra)
    return string.format([[
local mg = require "mintgate"
mg.admin { "127.0.0.1:%d" }
local pools = {
  one = mg.pool { name = "one", servers = { "127.0.0.1:%d" } },
  two = mg.pool { name = "two", servers = { "127.0.0.1:%d" } },
  slow = mg.pool { name = "slow", servers = { "127.0.0.1:%d" }, timeout = 5 },
}
%s
mg.route(function(req) return pools[%q] end)
]], admin_port, m1.port, m2.port, slow.port, extra or "", target)
  end

  -- replaced atomically, so that a reload never reads a half-written file
  local function write(text) env.replace_file(script, text) end

  local function admin(cmd) return env.admin_cmd(admin_port, cmd) end

  local function generation(c)
    local g = c:stats().config_generation
    assert(g and g:match("^%d+$"), "stats config_generation: " .. tostring(g))
    return tonumber(g)
  end

  lazy_setup(function()
    env.require_binary()
    E = env.new("promises_reload")
    m1, m2 = E:memcached(), E:memcached()
    slow = slow_backend(E, m2.port, 1.0)
    dir = env.mktemp_dir()
    script = dir .. "/reload.lua"
    admin_port = env.free_port()
    write(config("one"))
    gw = E:gateway { threads = 2, args = { script } }
    assert(env.wait_until(5, function() return env.port_open(admin_port) end), "no admin listener")
  end)
  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. env.shquote(dir)) end
    if E then E:teardown() end
  end)
  after_each(function() E:close_clients() end)

  it("keeps the connections to an unchanged backend (memcached's counters do not move)", function()
    local watch = E:client(m1.port) -- memcached's own view; this connection stays open
    -- traffic through many connections, so that both workers connect to m1
    local function traffic(tag)
      for i = 1, 16 do
        local c = client.connect(gw.port)
        assert.equal("STORED", c:set("keep:" .. tag .. ":" .. i, "v"))
        c:close()
      end
    end
    traffic("a")
    -- worker 0 opens a connection of its own to each backend for memcached's stats
    -- (memstats.c) within its first second: let it be there before counting
    assert(env.wait_until(5, function()
      local c = client.connect(gw.port)
      local n = tonumber(c:stats().backend_stats_servers)
      c:close()
      return n == 3
    end, 0.05), "the stats poller never reached every backend")
    local s0 = watch:stats()
    for round = 1, 3 do
      -- the script changes (a new pool, a new route), m1's address does not
      write(config("one", string.format("local r%d = %d", round, round)))
      assert.equal("OK", admin("reload"))
      traffic("b" .. round)
    end
    local s1 = watch:stats()
    assert.equal(s0.total_connections, s1.total_connections,
      "m1 accepted new connections across the reloads")
    assert.equal(s0.curr_connections, s1.curr_connections)
  end)

  it("a get in flight at a slow backend during a reload is answered by the old route", function()
    local d2, d1 = E:client(m2.port), E:client(m1.port)
    assert.equal("STORED", d2:set("fl:1", "old-route"))
    assert.equal("STORED", d1:set("fl:1", "new-route"))
    write(config("slow"))
    assert.equal("OK", admin("reload"))
    local c = E:client(gw.port, { timeout = 5 })
    -- the slow pool holds replies 1 s: the set through it takes that long too
    local t0 = env.now()
    c:send("get fl:1\r\n")
    env.sleep(0.3) -- the get is at the slow backend
    write(config("one"))
    assert.equal("OK", admin("reload"))
    local n = E:client(gw.port)
    assert.equal("new-route", n:value("fl:1"), "a new request after the reload")
    assert.is_false(c:has_data(0), "the old request was answered before its backend did")
    local items = c:get_reply(5)
    assert.equal("old-route", items["fl:1"] and items["fl:1"].value, "the request in flight")
    assert(env.now() - t0 >= 0.9, "answered sooner than the slow backend could")
    -- the connection goes on, on the new config
    assert.equal("new-route", c:value("fl:1"))
  end)

  it("config_generation: +1 per reload, on every worker; unchanged on a failed reload", function()
    local conns = {}
    for i = 1, 6 do conns[i] = E:client(gw.port) end -- both workers
    local g0 = generation(conns[1])
    for _, c in ipairs(conns) do assert.equal(g0, generation(c)) end
    write(config("one", "local x = 1"))
    assert.equal("OK", admin("reload"))
    for _, c in ipairs(conns) do assert.equal(g0 + 1, generation(c)) end
    write(config("two", "local x = 2"))
    assert.equal("OK", admin("reload"))
    for _, c in ipairs(conns) do assert.equal(g0 + 2, generation(c)) end
    -- broken scripts: the old config and its generation stay
    write(config("one") .. "\nerror('broken on purpose')\n")
    assert.matches("^SERVER_ERROR reload failed", admin("reload"))
    write("this is not lua")
    assert.matches("^SERVER_ERROR reload failed", admin("reload"))
    for _, c in ipairs(conns) do assert.equal(g0 + 2, generation(c)) end
    -- a good one again: a higher generation than any before
    write(config("one"))
    assert.equal("OK", admin("reload"))
    local g = generation(conns[1])
    assert(g > g0 + 2, "generation after a good reload: " .. g)
    for _, c in ipairs(conns) do assert.equal(g, generation(c)) end
  end)
end)
