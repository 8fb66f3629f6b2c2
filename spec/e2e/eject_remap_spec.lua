-- eject = "remap" (pylibmc's auto_eject_hosts, twemproxy's auto_eject_hosts: true): while a
-- server is ejected its keys go where libmemcached's ketama over the live servers puts
-- them, for every worker at once (server health is shared), and they move back once the
-- server answers again. build/lmc_fill, a libmemcached client set up as pylibmc's
-- Client(servers, behaviors={"ketama": True}), checks where the keys landed.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"

local function lmc_fill(servers, mode, prefix, count)
  local rc, out, err = env.run({ env.lmc_fill, "--servers", table.concat(servers, ","), "--count",
    tostring(count), "--prefix", prefix, "--mode", mode }, { timeout = 60 })
  return rc, out .. err
end

local function addr(p) return "127.0.0.1:" .. p.port end

-- Set prefix0..prefix(n-1) = "v<i>" through the gateway over 4 connections (the workers
-- take them in turn); returns up to 5 replies that were not STORED.
local function set_all(E, gw, prefix, n)
  local conns, bad = {}, {}
  for j = 1, 4 do
    local c, req = E:client(gw.port), {}
    for i = j - 1, n - 1, 4 do
      local v = "v" .. i
      req[#req + 1] = string.format("set %s%d 0 0 %d\r\n%s\r\n", prefix, i, #v, v)
    end
    c:send(table.concat(req))
    conns[j] = c
  end
  for j, c in ipairs(conns) do
    for i = j - 1, n - 1, 4 do
      local l = c:line(10)
      if l ~= "STORED" and #bad < 5 then bad[#bad + 1] = prefix .. i .. ": " .. l end
    end
  end
  return bad
end

-- Read prefix0..prefix(n-1) through the gateway, ignoring the answers (they eject a dead server).
local function touch_all(E, gw, prefix, n)
  local c = E:client(gw.port)
  for i = 0, n - 1 do c:send("get " .. prefix .. i .. "\r\n") end
  for _ = 0, n - 1 do
    local l = c:line(10)
    while l:match("^VALUE ") do c:line(10); l = c:line(10) end
  end
end

local function pool_script(servers, eject)
  return string.format([[
    local mg = require "mintgate"
    local main = mg.pool { name = "main", servers = { "%s" }, eject = %q,
      failure_limit = 1, retry_timeout = 3, timeout = 0.5, connect_timeout = 0.5 }
    mg.route { default = main }
  ]], table.concat(servers, '", "'), eject)
end

describe("eject = \"remap\"", function()
  local E, A, B, C, gw
  lazy_setup(function()
    if not env.file_exists(env.lmc_fill) then
      env.run({ "make", "-s", env.lmc_fill }, { timeout = 120 })
    end
    assert(env.file_exists(env.lmc_fill), env.lmc_fill .. " is missing")
    E = env.new("eject_remap")
    A, B, C = E:memcached(), E:memcached(), E:memcached()
    gw = E:gateway { threads = 2, config = pool_script({ addr(A), addr(B), addr(C) }, "remap") }
  end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  it("places keys as libmemcached does while every server is up", function()
    assert.same({}, set_all(E, gw, "pre:", 600))
    local rc, out = lmc_fill({ addr(A), addr(B), addr(C) }, "check", "pre:", 600)
    assert(rc == 0, out)
  end)

  it("sends a dead server's keys where ketama over the live servers puts them, in every worker", function()
    E:stop(C)
    touch_all(E, gw, "pre:", 60) -- some of these are C's: it is ejected
    assert.same({}, set_all(E, gw, "rm:", 1000))
    local rc, out = lmc_fill({ addr(A), addr(B) }, "check", "rm:", 1000)
    assert(rc == 0, "a libmemcached client over the live servers: " .. out)
    local st = E:client(gw.port):stats("stats backends")
    assert.equal("down", st["backend:" .. addr(C) .. ":state"])
  end)

  it("moves the keys back once the server answers again after the retry timeout", function()
    C = E:memcached { port = C.port }
    env.sleep(3.3)
    -- the first request after the rest starts a probe (`mn`) in each worker; C answers it
    -- and is up for all of them: every key then goes back to its own server
    local rc, out
    local back = env.wait_until(5, function()
      touch_all(E, gw, "pre:", 60)
      assert.same({}, set_all(E, gw, "back:", 1000))
      rc, out = lmc_fill({ addr(A), addr(B), addr(C) }, "check", "back:", 1000)
      return rc == 0
    end, 0.1)
    assert(back, "a libmemcached client over all three servers: " .. out)
    local st = E:client(gw.port):stats("stats backends")
    assert.equal("0", st["backend:" .. addr(A) .. ":errors"])
  end)
end)

describe("eject = \"fail\" (the default) and --eject", function()
  local E, A, B
  lazy_setup(function()
    E = env.new("eject_fail")
    A, B = E:memcached(), E:memcached()
  end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  it("fails a dead server's keys with SERVER_ERROR backend down", function()
    local gw = E:gateway { threads = 2, config = pool_script({ addr(A), addr(B) }, "fail") }
    local dead = E:memcached()
    local gw2 = E:gateway { threads = 1, config = pool_script({ addr(A), addr(dead) }, "fail") }
    E:stop(dead)
    touch_all(E, gw2, "f:", 40)
    local bad = set_all(E, gw2, "f:", 200)
    assert.is_true(#bad > 0, "some keys were on the dead server")
    assert.truthy(bad[1]:match("SERVER_ERROR backend down$"), bad[1])
    assert.same({}, set_all(E, gw, "ok:", 100))
  end)

  it("--eject remap does the same for the -s pool", function()
    local dead = E:memcached()
    local gw = E:gateway { threads = 2, servers = { A.port, dead.port },
      args = { "--eject", "remap", "--failure-limit", "1", "--retry-timeout", "30" } }
    E:stop(dead)
    touch_all(E, gw, "s:", 40)
    assert.same({}, set_all(E, gw, "s:", 400))
    local rc, out = lmc_fill({ addr(A) }, "check", "s:", 400)
    assert(rc == 0, out)
  end)

  it("refuses another eject mode", function()
    local rc, out, err = env.run({ env.bin, "--eject", "spread" }, { timeout = 10 })
    assert.equal(2, rc)
    assert.truthy((out .. err):match("%-%-eject wants fail or remap"))
  end)
end)

describe("an ejected server is probed, not tried with client requests", function()
  local E
  lazy_setup(function() E = env.new("eject_probe") end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  it("answers its keys at once while a probe waits on a hanging server, and rests longer each time", function()
    local M = E:memcached()
    local port = M.port
    local gw = E:gateway { threads = 1, servers = { port }, args = { "-v", "--failure-limit", "1",
      "--retry-timeout", "0.4", "--timeout", "0.3", "--connect-timeout", "0.3" } }
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("pk", "one"))
    E:stop(M)
    local fake = E:fake_backend(port, "hang", 30) -- accepts, reads, never answers
    assert.matches("^SERVER_ERROR", c:cmd("get pk", 5)) -- ejected
    -- for 2.5 s (several rests and probes) every request answers at once: none waits on it
    local t_end, worst, n = env.now() + 2.5, 0, 0
    while env.now() < t_end do
      local t0 = env.now()
      assert.equal("SERVER_ERROR backend down", c:cmd("get pk", 5))
      worst = math.max(worst, env.now() - t0)
      n = n + 1
      env.sleep(0.02)
    end
    assert(worst < 0.2, string.format("a request waited %.3f s on the hanging server", worst))
    local log = gw:stderr()
    assert.matches("probe failed, resting 0%.8s", log) -- 0.4 s, then doubled
    assert.matches("probe failed, resting 1%.6s", log)
    -- a real memcached on the port answers the probe: the key's server is back
    E:stop(fake)
    E:memcached { port = port }
    local back = env.wait_until(10, function()
      return c:cmd("set pk 0 0 3\r\ntwo", 5) == "STORED"
    end, 0.1)
    assert(back, "the server is not back 10 s after it answers again")
    assert.equal("two", c:value("pk"))
    assert.matches("back after its probe", gw:stderr())
    assert(n > 20)
  end)
end)

describe("max_inflight", function()
  local E
  lazy_setup(function() E = env.new("max_inflight") end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  local SIGSTOP, SIGCONT = 19, 18

  it("past the limit a hung server's keys get SERVER_ERROR backend busy at once; the rest wait", function()
    local M = E:memcached()
    local gw = E:gateway { threads = 1, config = string.format([[
      local mg = require "mintgate"
      mg.route { default = mg.pool { name = "m", servers = { "127.0.0.1:%d" },
        max_inflight = 4, timeout = 5 } }
    ]], M.port) }
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("mi", "v"))
    M:signal(SIGSTOP)
    local t0 = env.now()
    c:send(string.rep("get mi\r\n", 10))
    env.sleep(0.3)
    M:signal(SIGCONT)
    for i = 1, 4 do
      assert.equal("VALUE mi 0 1", c:line(5), "get " .. i)
      assert.equal("v", c:line(5))
      assert.equal("END", c:line(5))
    end
    for i = 5, 10 do assert.equal("SERVER_ERROR backend busy", c:line(5), "get " .. i) end
    assert(env.now() - t0 < 4, "the queued gets timed out instead")
    local st = E:client(gw.port):stats("stats backends")
    assert.equal("6", st["backend:127.0.0.1:" .. M.port .. ":busy"])
    assert.equal("0", st["backend:127.0.0.1:" .. M.port .. ":errors"])
    assert.equal("v", c:value("mi"))
  end)

  it("--max-inflight wants a whole number of at least 1", function()
    local rc, out, err = env.run({ env.bin, "--max-inflight", "0" }, { timeout = 10 })
    assert.equal(2, rc)
    assert.truthy((out .. err):match("%-%-max%-inflight wants"))
  end)
end)

describe("unix socket servers", function()
  local E
  lazy_setup(function() E = env.new("unix_servers") end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  it("\"unix:/path\" in a pool: served, and placed as libmemcached places a \"/path\" server", function()
    local sock = E.dir .. "/mc.sock"
    E:memcached_unix(sock)
    local A = E:memcached()
    local gw = E:gateway { threads = 2, config = string.format([[
      local mg = require "mintgate"
      mg.route { default = mg.pool { name = "m", servers = { "unix:%s", "127.0.0.1:%d" } } }
    ]], sock, A.port) }
    assert.same({}, set_all(E, gw, "u:", 1000))
    local rc, out = lmc_fill({ sock, addr(A) }, "check", "u:", 1000)
    assert(rc == 0, "libmemcached over the same two servers: " .. out)
    local _, alone = lmc_fill({ sock }, "check", "u:", 1000)
    local on_sock = tonumber(alone:match("ok (%d+)"))
    assert(on_sock and on_sock > 300 and on_sock < 700, "keys on the socket server: " .. alone)
  end)

  it("-s takes unix:/path too; a bad path is refused", function()
    local sock = E.dir .. "/mc2.sock"
    E:memcached_unix(sock)
    local gw = E:gateway { threads = 1, servers = { "unix:" .. sock } }
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("x", "y"))
    assert.equal("y", c:value("x"))
    local rc, out, err = env.run({ env.bin, "-l", "127.0.0.1:" .. env.free_port(), "-s",
      "unix:rel,127.0.0.1:1" }, { timeout = 10 })
    assert.is_not.equal(0, rc, out .. err)
    assert.truthy((out .. err):match("bad server 'unix:rel'"), out .. err)
  end)
end)

describe("connections = N", function()
  local E
  lazy_setup(function() E = env.new("connections") end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  -- memcached's own count of client connections (ours included), minus the asking one.
  local function conns_on(port)
    local d = require("spec.helpers.client").connect(port)
    local st = d:stats("stats")
    d:close()
    return tonumber(st.curr_connections) - 1
  end

  it("opens N connections per server per worker; a key's commands stay in order", function()
    local M = E:memcached()
    local base = conns_on(M.port)
    local gw = E:gateway { threads = 2, config = string.format([[
      local mg = require "mintgate"
      mg.route { default = mg.pool { name = "m", servers = { "127.0.0.1:%d" }, connections = 4 } }
    ]], M.port) }
    local cs = {}
    for j = 1, 8 do cs[j] = E:client(gw.port) end
    -- every client pipelines, per key, set v1 / get / set v2 / get
    for j, c in ipairs(cs) do
      local req = {}
      for i = 1, 200 do
        local k = "c" .. j .. ":" .. i
        req[#req + 1] = string.format("set %s 0 0 2\r\nv1\r\nget %s\r\nset %s 0 0 2\r\nv2\r\nget %s\r\n",
          k, k, k, k)
      end
      c:send(table.concat(req))
    end
    for j, c in ipairs(cs) do
      for i = 1, 200 do
        local k = "c" .. j .. ":" .. i
        assert.equal("STORED", c:line(10))
        assert.equal("v1", c:get_reply(10)[k].value, k)
        assert.equal("STORED", c:line(10))
        assert.equal("v2", c:get_reply(10)[k].value, k)
      end
    end
    local n = conns_on(M.port) - base
    -- 4 per worker, and the one worker 0 fetches memcached's own stats on (memstats.c)
    assert(n >= 4 and n <= 9, "gateway connections to memcached: " .. n)
    local st = E:client(gw.port):stats("stats backends")
    local reqs = tonumber(st["backend:127.0.0.1:" .. M.port .. ":requests"])
    assert(reqs >= 8 * 200 * 4, "requests counted over every connection: " .. tostring(reqs))
  end)

  it("--connections wants 1 to 64", function()
    local rc, out, err = env.run({ env.bin, "--connections", "65" }, { timeout = 10 })
    assert.equal(2, rc)
    assert.truthy((out .. err):match("%-%-connections wants"))
  end)
end)
