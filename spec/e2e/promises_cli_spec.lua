-- README promises about the command line and the process, end to end (real memcached, the
-- real binary): `-c` refuses the connection after N and counts it; `-l unix:/path`
-- serves clients on a unix socket; `-l`/`-A` win over the script's mg.listen/mg.admin;
-- mg.admin { on_data_port = true } takes admin commands on the data port (refused
-- otherwise); SIGTERM and SIGINT deliver the replies in flight and exit 0 within 2 s.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"
local unix = require "socket.unix"

local SIGINT, SIGTERM = 2, 15
-- README: "SIGTERM/SIGINT stop accepting, let requests in flight finish (at most 2 s) and
-- exit". The slack covers process exit itself (ASan's leak check, a loaded machine).
local DRAIN_MAX, EXIT_SLACK = 2.0, 0.6

local function pool_config(mc_port, extra)
  return string.format([[
local mg = require "mintgate"
%s
local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
mg.switch { name = "canary", percent = 0 }
mg.route { default = main }
]], extra or "", mc_port)
end

-- A slow backend (spec/helpers/fake_backend.lua `slow`): memcached's replies held `delay` s.
local function slow_backend(E, upstream, delay)
  local port = env.free_port()
  local p = E:spawn({ "luajit", "spec/helpers/fake_backend.lua", tostring(port), "slow", "60",
    tostring(upstream), tostring(delay) }, { name = "fake:slow:" .. port, kind = "fake", port = port })
  return E:wait_listening(p, 5)
end

-- Wait for p to exit; returns the seconds from t0 and its exit status (nil if it did not).
local function wait_exit(p, t0, bound)
  env.wait_until(bound, function() return not p:alive() end, 0.01)
  local t = env.now() - t0
  env.wait_until(2, function() return p:exit_code() ~= nil end, 0.01)
  return t, p:exit_code()
end

describe("-c (max connections)", function()
  local E, gw

  lazy_setup(function()
    env.require_binary()
    E = env.new("promises_maxconns")
    local mc = E:memcached()
    gw = E:gateway { servers = { mc.port }, threads = 2, args = { "-c", "3" } }
  end)
  lazy_teardown(function()
    if E then E:teardown() end
  end)

  it("serves N connections, refuses the N+1th (closed, counted in rejected_connections), " ..
     "takes a new one after a close", function()
    -- wait_listening's probe connection may still be counted: let it go first
    local a = env.wait_until(3, function()
      local c = client.connect(gw.port)
      c:send("version\r\n")
      local l = c:try_line(1)
      if l and l:match("^VERSION ") then return c end
      c:close()
    end, 0.05)
    assert(a, "a first connection is not served")
    assert(env.wait_until(3, function() return a:stats().curr_connections == "1" end),
      "connections other than this one are still counted")
    local b, c = E:client(gw.port), E:client(gw.port)
    assert.matches("^VERSION ", b:cmd("version"))
    assert.matches("^VERSION ", c:cmd("version"))
    local before = tonumber(a:stats().rejected_connections)
    assert(before, "stats has no rejected_connections")
    assert.equal("3", a:stats().max_connections)

    local d = E:client(gw.port)
    d:try_send("version\r\n", 1)
    assert.is_true(d:closed(2), "the 4th connection was not closed")
    local got = d:drain()
    assert.is_nil(got:find("VERSION", 1, true), "the 4th connection was served: " .. client.show(got))
    -- the worker counts it right after the close, maybe after our stats read: poll
    env.wait_until(2, function() return tonumber(a:stats().rejected_connections) > before end, 0.02)
    assert.equal(before + 1, tonumber(a:stats().rejected_connections))
    -- the three are still served
    assert.matches("^VERSION ", b:cmd("version"))
    assert.matches("^VERSION ", c:cmd("version"))

    -- one leaves: a new connection is served again (once the gateway saw the close)
    b:close()
    local e = env.wait_until(3, function()
      local n = client.connect(gw.port)
      n:try_send("version\r\n", 1)
      local l = n:try_line(1)
      if l and l:match("^VERSION ") then return n end
      n:close()
    end, 0.05)
    assert(e, "no connection is served after one of the three closed")
    assert.equal("STORED", e:set("maxconns:k", "v"))
    e:close()
    a:close()
  end)
end)

describe("-l unix:/path (a data listener on a unix socket)", function()
  local E, gw, path

  local function uconnect()
    local s = assert(unix.stream())
    s:settimeout(3)
    assert(s:connect(path))
    return s
  end
  local function ucmd(s, bytes, nlines)
    assert(s:send(bytes))
    local out = {}
    for i = 1, nlines do out[i] = assert(s:receive("*l")):gsub("\r$", "") end
    return out
  end

  lazy_setup(function()
    env.require_binary()
    E = env.new("promises_unix")
    local mc = E:memcached()
    path = E.dir .. "/data.sock"
    gw = E:gateway { servers = { mc.port }, threads = 2, args = { "-l", "unix:" .. path } }
  end)
  lazy_teardown(function()
    if E then E:teardown() end
  end)

  it("is a socket file; clients on it are served, the same cache as over TCP", function()
    local p = io.popen("stat -c '%F %a' " .. env.shquote(path))
    local st = p:read("*l") or ""
    p:close()
    assert.matches("^socket ", st)
    local s = uconnect()
    assert.same({ "STORED" }, ucmd(s, "set ux:1 5 0 3\r\nabc\r\n", 1))
    assert.same({ "VALUE ux:1 5 3", "abc", "END" }, ucmd(s, "get ux:1\r\n", 3))
    s:close()
    local c = E:client(gw.port)
    assert.equal("abc", c:value("ux:1"))
    assert.equal("STORED", c:set("ux:2", "tcp"))
    -- many connections at once (both workers share the one socket): all served
    local conns = {}
    for i = 1, 12 do conns[i] = uconnect() end
    for i, u in ipairs(conns) do
      assert.same({ "VALUE ux:2 0 3", "tcp", "END" }, ucmd(u, "get ux:2\r\n", 3), "connection " .. i)
    end
    for _, u in ipairs(conns) do u:close() end
  end)

  it("is removed when the gateway stops", function()
    assert.equal(0, (E:stop(gw, 10)))
    -- not env.file_exists: io.open fails on a socket file that is still there
    local r = os.execute("test -e " .. env.shquote(path))
    assert.is_false(r == 0 or r == true, path .. " is still there")
  end)
end)

describe("-l and -A win over mg.listen and mg.admin", function()
  local E, mc

  lazy_setup(function()
    env.require_binary()
    E = env.new("promises_listen_wins")
    mc = E:memcached()
  end)
  lazy_teardown(function()
    if E then E:teardown() end
  end)

  it("the script's listeners are used without the flags (control)", function()
    local p1, a1 = env.free_port(), env.free_port()
    while a1 == p1 do a1 = env.free_port() end
    local gw = E:gateway { listen = false, port = p1, threads = 1, config = pool_config(mc.port,
      string.format('mg.listen { "127.0.0.1:%d" }\nmg.admin { "127.0.0.1:%d" }', p1, a1)) }
    assert(env.wait_until(5, function() return env.port_open(a1) end), "no admin listener")
    local c = E:client(a1)
    assert.equal("OK", c:cmd("switch canary 5"))
    c:close()
    assert.equal(0, (E:stop(gw)))
  end)

  it("with -l and -A only the flags' addresses listen, and a reload keeps it so", function()
    local p1, a1, a2 = env.free_port(), env.free_port(), env.free_port()
    local script_ports = string.format('mg.listen { "127.0.0.1:%d" }\nmg.admin { "127.0.0.1:%d" }', p1, a1)
    local gw = E:gateway { threads = 2, args = { "-A", "127.0.0.1:" .. a2 },
      config = pool_config(mc.port, script_ports) }
    assert.is_true(gw.port ~= p1)
    assert(env.wait_until(5, function() return env.port_open(a2) end), "no admin listener on -A's address")
    local admin = E:client(a2)
    assert.equal("OK", admin:cmd("switch canary 7"))
    assert.equal("OK", admin:cmd("reload", 10))
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("lw:1", "v"))
    assert.equal("CLIENT_ERROR admin commands are only accepted on the admin port", c:cmd("switch canary 9"))
    assert.is_false(env.port_open(p1), "mg.listen's address listens although -l was given")
    assert.is_false(env.port_open(a1), "mg.admin's address listens although -A was given")
    E:close_clients()
    assert.equal(0, (E:stop(gw)))
  end)
end)

describe("mg.admin { on_data_port = true }", function()
  local E, mc

  lazy_setup(function()
    env.require_binary()
    E = env.new("promises_on_data_port")
    mc = E:memcached()
  end)
  lazy_teardown(function()
    if E then E:teardown() end
  end)
  after_each(function() E:close_clients() end)

  it("takes admin commands and reserved keys on the data port", function()
    local gw = E:gateway { threads = 2, config = pool_config(mc.port, "mg.admin { on_data_port = true }") }
    -- every worker: several connections
    for i = 1, 4 do
      local c = E:client(gw.port)
      assert.equal("OK", c:cmd("switch canary " .. (10 + i)))
      assert.equal(string.format("%.3f", 10 + i), c:stats("stats switches")["switch:canary:percent"])
      assert.equal("STORED", c:set("mintgate:switch:x" .. i, "1"))
    end
    assert.equal("OK", E:client(gw.port):cmd("reload", 10))
    E:close_clients()
    assert.equal(0, (E:stop(gw)))
  end)

  it("without it (on_data_port = false) the data port refuses them", function()
    local gw = E:gateway { threads = 2, config = pool_config(mc.port, "mg.admin { on_data_port = false }") }
    for _ = 1, 4 do
      local c = E:client(gw.port)
      assert.equal("CLIENT_ERROR admin commands are only accepted on the admin port", c:cmd("switch canary 50"))
      assert.equal("CLIENT_ERROR admin commands are only accepted on the admin port", c:cmd("reload"))
      assert.equal("CLIENT_ERROR key is in the gateway's reserved namespace",
        c:cmd("set mintgate:switch:x 0 0 1\r\n1"))
      assert.equal("0.000", c:stats("stats switches")["switch:canary:percent"])
    end
    E:close_clients()
    assert.equal(0, (E:stop(gw)))
  end)
end)

describe("stop signals drain", function()
  local E, mc

  lazy_setup(function()
    env.require_binary()
    E = env.new("promises_drain")
    mc = E:memcached()
    local d = client.connect(mc.port)
    for i = 1, 16 do assert.equal("STORED", d:set("dr:" .. i, "value-" .. i)) end
    d:close()
  end)
  lazy_teardown(function()
    if E then E:teardown() end
  end)
  after_each(function() E:close_clients() end)

  for _, sig in ipairs { { SIGTERM, "SIGTERM" }, { SIGINT, "SIGINT" } } do
    it(sig[2] .. ": replies held at a slow backend are delivered, exit 0 within 2 s", function()
      local slow = slow_backend(E, mc.port, 0.8)
      local gw = E:gateway { servers = { slow.port }, threads = 2, args = { "--timeout", "5" } }
      local conns = {}
      for i = 1, 8 do
        local c = client.connect(gw.port, { timeout = 4 })
        -- one get, then a pipelined get of two keys and a version behind it
        c:send(string.format("get dr:%d\r\nget dr:%d dr:%d\r\nversion\r\n", i, i + 8, i))
        conns[i] = c
      end
      env.sleep(0.25) -- the gets are at the slow backend now
      for _, c in ipairs(conns) do assert.is_false(c:has_data(0), "answered before the signal") end
      local t0 = env.now()
      gw:signal(sig[1])
      for i, c in ipairs(conns) do
        local items = c:get_reply(4)
        assert.equal("value-" .. i, items["dr:" .. i] and items["dr:" .. i].value, "connection " .. i)
        items = c:get_reply(4)
        assert.equal("value-" .. (i + 8), items["dr:" .. (i + 8)] and items["dr:" .. (i + 8)].value)
        assert.equal("value-" .. i, items["dr:" .. i] and items["dr:" .. i].value)
        assert.matches("^VERSION ", c:line(4))
        c:close()
      end
      local t, rc = wait_exit(gw, t0, DRAIN_MAX + 3)
      assert(t < DRAIN_MAX + EXIT_SLACK, string.format("exited %.2f s after %s", t, sig[2]))
      assert.equal(0, rc, "exit status")
      E:stop(gw)
      E:stop(slow)
    end)
  end

  it("SIGTERM with requests stuck at a hung backend on both workers: exit 0 within 2 s", function()
    local hport = env.free_port()
    local hung = E:fake_backend(hport, "hang")
    local gw = E:gateway { servers = { hport }, threads = 2, args = { "--timeout", "10" } }
    local conns = {}
    for i = 1, 12 do -- SO_REUSEPORT spreads them over both workers
      local c = client.connect(gw.port, { timeout = 6 })
      c:send("get dr:" .. i .. "\r\n")
      conns[i] = c
    end
    env.sleep(0.3)
    local t0 = env.now()
    gw:signal(SIGTERM)
    local t, rc = wait_exit(gw, t0, DRAIN_MAX + 5)
    assert(t < DRAIN_MAX + EXIT_SLACK, string.format("exited %.2f s after SIGTERM (at most 2 s)", t))
    assert.equal(0, rc, "exit status")
    for i, c in ipairs(conns) do assert.is_true(c:closed(1), "connection " .. i .. " left open") end
    for _, c in ipairs(conns) do c:close() end
    E:stop(gw)
    E:stop(hung)
  end)

  it("SIGTERM: a big pipelined batch whose replies the client has not read yet is delivered", function()
    local big = string.rep("b", 200 * 1024)
    local d = client.connect(mc.port)
    assert.equal("STORED", d:set("dr:big", big))
    d:close()
    local gw = E:gateway { servers = { mc.port }, threads = 2 }
    local c = client.connect(gw.port, { timeout = 4 })
    local N = 48 -- 9.6 MB of replies: more than the gateway and the kernel buffer at once
    c:send(string.rep("get dr:big\r\n", N) .. "version\r\n")
    env.sleep(0.3)
    local t0 = env.now()
    gw:signal(SIGTERM)
    for i = 1, N do
      local items = c:get_reply(4)
      assert(items["dr:big"] and items["dr:big"].value == big, "reply " .. i .. " of " .. N)
    end
    assert.matches("^VERSION ", c:line(4))
    c:close()
    local t, rc = wait_exit(gw, t0, DRAIN_MAX + 3)
    assert(t < DRAIN_MAX + EXIT_SLACK, string.format("exited %.2f s after SIGTERM", t))
    assert.equal(0, rc, "exit status")
    E:stop(gw)
  end)
end)
