-- mintgate-top end to end: `--once` against a gateway's admin port under load (its rates,
-- hit ratio and totals against what `stats` says, a killed memcached shown down), the
-- metrics source against a scripted /metrics endpoint (and the gateway's own, once it has
-- one), and the live view driven in tmux: it redraws, shows the numbers, and `q` or
-- Ctrl-C leave it with the terminal restored.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"
local socket = require "socket"

local TOP = "./mintgate-top"

-- Whether the gateway under test serves /metrics (--metrics ADDR:PORT).
local HAS_METRICS = (function()
  local _, out, err = env.run { env.bin, "--help" }
  return (out .. err):find("--metrics", 1, true) ~= nil
end)()

-- The counters a scrape of the gateway's /metrics shows: commands (all summed), hits,
-- misses, and each backend's up value by "pool/server". Read here with patterns, not
-- with mintgate.top, so that the two are compared with each other.
local function scrape(port)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(5)
  c:send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
  local raw = c:receive("*a")
  c:close()
  local t = { cmds = 0, up = {} }
  for line in raw:gmatch("[^\n]+") do
    local v = line:match('^mintgate_commands_total{command="[^"]*"} (%S+)$')
    if v then t.cmds = t.cmds + tonumber(v) end
    t.hits = t.hits or tonumber(line:match("^mintgate_get_hits_total (%S+)$") or "")
    t.misses = t.misses or tonumber(line:match("^mintgate_get_misses_total (%S+)$") or "")
    local pool, server, up = line:match('^mintgate_backend_up{pool="([^"]*)",server="([^"]*)"} (%S+)$')
    if pool then t.up[pool .. "/" .. server] = tonumber(up) end
  end
  return t
end

-- The numbers a frame shows, read back from its text.
local function numbers(frame)
  local function n(s)
    if not s then return nil end
    local v, suffix = s:match("^([%d%.]+)([kMG]?)$")
    if not v then return nil end
    return tonumber(v) * (({ k = 1e3, M = 1e6, G = 1e9 })[suffix] or 1)
  end
  local t = {
    ops = n(frame:match("ops/s (%S+)")),
    hit = tonumber(frame:match("\nops/s %S+  hit ([%d%.]+)%%")),
    p99_ms = tonumber(frame:match("p99 ([%d%.]+)ms")),
    get_rate = n(frame:match("per s:[^\n]- get (%S+)") or frame:match("per s: get (%S+)")),
    total_get = tonumber(frame:match("total: get (%d+)")),
    total_cmds = tonumber(frame:match("total: cmds (%d+)")),
    total_hits = tonumber(frame:match("total:[^\n]* hits (%d+)")),
    total_misses = tonumber(frame:match("total:[^\n]* misses (%d+)")),
    total_set = tonumber(frame:match("total:[^\n]* set (%d+)")),
    backends = {},
  }
  local in_backends = false
  for line in (frame .. "\n"):gmatch("(.-)\n") do
    if line:match("^BACKEND ") then
      in_backends = true
    elseif in_backends and line == "" then
      in_backends = false
    elseif in_backends then
      local server, pool, state, req, err = line:match("^(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)$")
      if server then
        t.backends[server] = { pool = pool, state = state, req = n(req), err = n(err) }
      end
    end
  end
  return t
end

local function widest(frame)
  local w = 0
  for line in (frame .. "\n"):gmatch("(.-)\n") do w = math.max(w, #line) end
  return w
end

-- A scripted /metrics endpoint in this process: body(n) is the exposition for the nth
-- scrape. step(wait) serves what arrives within wait seconds, one connection at a time
-- (mintgate-top opens one per scrape); anything that is not a GET gets a 400, as an HTTP
-- server answers mintgate-top's `version` probe.
local function metrics_server(body)
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  local self = { port = tonumber(port), scrapes = 0, probes = 0, served = {} }
  function self.step(wait)
    srv:settimeout(wait)
    local c = srv:accept()
    if not c then return false end
    c:settimeout(2)
    local first = c:receive("*l")
    if first and first:match("^GET /metrics HTTP/1%.1$") then
      repeat
        local l = c:receive("*l")
      until not l or l == ""
      self.scrapes = self.scrapes + 1
      local b = body(self.scrapes)
      self.served[self.scrapes] = b
      local head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
      if self.scrapes % 2 == 0 then -- every other scrape chunked, as some servers send it
        c:send(head .. "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" ..
          string.format("%x\r\n%s\r\n0\r\n\r\n", #b, b))
      else
        c:send(head .. "Content-Length: " .. #b .. "\r\nConnection: close\r\n\r\n" .. b)
      end
    else
      self.probes = self.probes + 1
      c:send("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    end
    c:close()
    return true
  end
  function self.close() srv:close() end
  return self
end

-- The exposition of the nth scrape: counters growing by a fixed step per scrape.
local function exposition(n)
  return table.concat({
    "# TYPE mintgate_commands_total counter",
    'mintgate_commands_total{command="get"} ' .. (1000 * n),
    'mintgate_commands_total{command="set"} ' .. (100 * n),
    "# TYPE mintgate_command_duration_seconds histogram",
    'mintgate_command_duration_seconds_bucket{command="get",le="0.0005"} ' .. (900 * n),
    'mintgate_command_duration_seconds_bucket{command="get",le="0.001"} ' .. (1000 * n),
    'mintgate_command_duration_seconds_bucket{command="get",le="+Inf"} ' .. (1000 * n),
    'mintgate_command_duration_seconds_sum{command="get"} ' .. (0.4 * n),
    'mintgate_command_duration_seconds_count{command="get"} ' .. (1000 * n),
    "mintgate_get_hits_total " .. (800 * n),
    "mintgate_get_misses_total " .. (200 * n),
    'mintgate_backend_up{pool="main",server="127.0.0.1:11311"} 1',
    'mintgate_backend_up{pool="main",server="127.0.0.1:11312"} 0',
    'mintgate_backend_requests_total{pool="main",server="127.0.0.1:11311"} ' .. (1100 * n),
    'mintgate_backend_errors_total{pool="main",server="127.0.0.1:11312",kind="refused"} ' .. n,
    'mintgate_switch_percent{switch="canary"} 25',
    'mintgate_switch_keys_total{switch="canary",side="on"} ' .. (25 * n),
    'mintgate_switch_keys_total{switch="canary",side="off"} ' .. (75 * n),
    'mintgate_hotkey_requests_per_second{rank="1",pool="main",key="hot\\nkey\27"} 420', -- an escaped newline, a raw ESC
    "mintgate_connections 7",
    "mintgate_connections_total 99",
    "",
  }, "\n")
end

describe("mintgate-top", function()
  local E, mc, gw, admin, mport, tmux_sock, top_dir

  lazy_setup(function()
    env.require_binary()
    E = env.new("top")
    mc = E:memcached()
    admin = env.free_port()
    while admin == mc.port do admin = env.free_port() end
    -- one worker: `stats backends` shows the state its worker sees, and that is the one
    -- that served the load; a killed server stays ejected for the rest of the file
    local args = { "-A", "127.0.0.1:" .. admin, "--retry-timeout", "60" }
    if HAS_METRICS then
      mport = env.free_port()
      while mport == admin or mport == mc.port do mport = env.free_port() end
      args[#args + 1] = "--metrics"
      args[#args + 1] = "127.0.0.1:" .. mport
    end
    gw = E:gateway { servers = { mc.port }, threads = 1, args = args }
    assert(env.wait_until(5, function() return env.port_open(admin) end), "no admin listener")
    if mport then
      assert(env.wait_until(5, function() return env.port_open(mport) end), "no metrics listener")
    end
    local p = io.popen("pwd")
    top_dir = p:read("*l")
    p:close()
  end)

  lazy_teardown(function()
    if tmux_sock then os.execute("tmux -S " .. env.shquote(tmux_sock) .. " kill-server 2>/dev/null") end
    if E then E:teardown() end
  end)

  local function stats(cmd)
    local c = client.connect(admin)
    local s = c:stats(cmd)
    c:close()
    return s
  end

  -- Run mintgate-top with argv (its own process, registered for teardown), calling
  -- between() until it exits. Returns its exit code, stdout and stderr.
  local function run_top(argv, between, bound)
    local full = { TOP }
    for _, a in ipairs(argv) do full[#full + 1] = a end
    local p = E:spawn(full, { name = "mintgate-top" })
    local deadline = env.now() + (bound or 15)
    while p:alive() and env.now() < deadline do
      if between then between() else env.sleep(0.02) end
    end
    local rc = p:stop(2)
    return rc, p:stdout(), p:stderr()
  end

  it("--help and bad usage", function()
    local rc, out = env.run { TOP, "--help" }
    assert.equal(0, rc)
    assert.truthy(out:find("usage: mintgate-top", 1, true))
    local rc2, _, err = env.run { TOP, "--interval", "x", "127.0.0.1:1" }
    assert.equal(2, rc2)
    assert.truthy(err:find("--interval", 1, true))
    assert.equal(2, (env.run { TOP }))
    local rc3, _, err3 = env.run { TOP, "--once", "--stats", "127.0.0.1:" .. env.free_port() }
    assert.equal(1, rc3)
    assert.truthy(err3:find("refused", 1, true), err3)
  end)

  it("--once on the admin port: rates and hit ratio of the load, the backend up", function()
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("top:hot", "v"))
    local before = stats()
    local t0 = env.now()
    local gets = 0
    -- three hits, one miss, over and over, while mintgate-top takes its two samples
    local rc, out, err = run_top({ "--once", "127.0.0.1:" .. admin }, function()
      for _ = 1, 3 do
        assert.equal("v", c:value("top:hot"))
      end
      assert.is_nil(c:value("top:cold"))
      gets = gets + 4
    end)
    local elapsed = env.now() - t0
    local after = stats()
    assert.equal(0, rc, err)
    assert.is_true(widest(out) <= 80, out)
    local n = numbers(out)
    assert.equal(gets, tonumber(after.cmd_get) - tonumber(before.cmd_get))
    -- the rate over its one-second window against the average over the whole run
    local avg = gets / elapsed
    assert.is_truthy(n.get_rate, out)
    assert(n.get_rate > 0.4 * avg and n.get_rate < 2.5 * avg,
      string.format("get rate %s, average %.0f/s:\n%s", tostring(n.get_rate), avg, out))
    assert(n.ops >= n.get_rate, out)
    assert(math.abs(n.hit - 75) <= 2, "hit ratio of three hits to one miss:\n" .. out)
    assert.is_number(n.p99_ms, out)
    -- totals: taken during the load, so between before and after
    assert(n.total_get > tonumber(before.cmd_get) and n.total_get <= tonumber(after.cmd_get), out)
    local b = n.backends["127.0.0.1:" .. mc.port]
    assert.is_table(b, out)
    assert.same({ "default", "up" }, { b.pool, b.state })
    assert(b.req > 0, out)
    -- the hot-key detector's view: the key taking three of every four gets is first
    assert.truthy(out:find("\n%s+1 top:hot%s+%d+ default"), out)
  end)

  it("--once at rest: the totals are stats' counters, exactly, and the rates 0", function()
    local c = E:client(gw.port)
    for i = 1, 10 do assert.equal("STORED", c:set("top:k" .. i, "v")) end
    for i = 1, 15 do c:value("top:k" .. i) end
    local rc, out, err = run_top { "--once", "--interval", "0.3", "127.0.0.1:" .. admin }
    assert.equal(0, rc, err)
    local s = stats()
    local n = numbers(out)
    assert.same({ tonumber(s.cmd_get), tonumber(s.get_hits), tonumber(s.get_misses),
                  tonumber(s.cmd_set) },
                { n.total_get, n.total_hits, n.total_misses, n.total_set }, out)
    assert.equal(0, n.ops, out)
    assert.equal(0, n.get_rate, out)
    -- the data port answers the same
    local rc2, out2 = run_top { "--once", "--interval", "0.2", "127.0.0.1:" .. gw.port }
    assert.equal(0, rc2)
    assert.equal(n.total_get, numbers(out2).total_get)
  end)

  it("--metrics against a /metrics endpoint: the numbers the exposition shows", function()
    local srv = metrics_server(exposition)
    local rc, out, err = run_top({ "--once", "--metrics", "127.0.0.1:" .. srv.port },
      function() srv.step(0.05) end)
    srv.close()
    assert.equal(0, rc, err)
    assert.equal(2, srv.scrapes)
    local n = numbers(out)
    -- one scrape later: 1000 gets and 100 sets more over about a second
    assert(n.ops > 1100 / 1.5 and n.ops < 1100 / 0.9, out)
    assert.equal(80, n.hit, out)
    -- all new gets under 1 ms, 90 % under 500 us: p99 = 0.5 + 0.5 * (990-900)/(1000-900)
    assert.equal(0.95, n.p99_ms, out)
    assert.equal(2200, n.total_cmds, out)
    assert.same({ 1600, 400 }, { n.total_hits, n.total_misses })
    assert.same({ "main", "up", 0 }, { n.backends["127.0.0.1:11311"].pool,
      n.backends["127.0.0.1:11311"].state, n.backends["127.0.0.1:11311"].err })
    assert.equal("down", n.backends["127.0.0.1:11312"].state)
    assert.truthy(out:find("hot\\x0akey\\x1b", 1, true), out)
    assert.truthy(out:find("canary%s+25.000%%%s+%S+%s+%S+%s+25.0%%"), out)
    -- without --metrics: the `version` probe gets an HTTP answer, so it scrapes
    local srv2 = metrics_server(exposition)
    local rc2, out2 = run_top({ "--once", "--interval", "0.3", "127.0.0.1:" .. srv2.port },
      function() srv2.step(0.05) end)
    srv2.close()
    assert.equal(0, rc2)
    assert.equal(1, srv2.probes)
    assert.truthy(out2:find("(metrics)", 1, true), out2)
    assert.equal(2200, numbers(out2).total_cmds)
  end)

  if HAS_METRICS then
    it("--once on the gateway's own /metrics: at rest, the numbers a scrape shows", function()
      local c = E:client(gw.port)
      assert.equal("STORED", c:set("m:1", "v"))
      for _ = 1, 30 do c:value("m:1") end
      for _ = 1, 10 do c:value("m:none") end
      local rc, out, err = run_top { "--once", "--interval", "0.3", "127.0.0.1:" .. mport }
      assert.equal(0, rc, err)
      assert.truthy(out:find("(metrics)", 1, true), out) -- found by the probe
      local m, n = scrape(mport), numbers(out)
      assert.same({ m.cmds, m.hits, m.misses }, { n.total_cmds, n.total_hits, n.total_misses }, out)
      assert.equal(1, m.up["default/127.0.0.1:" .. mc.port])
      assert.equal("up", n.backends["127.0.0.1:" .. mc.port].state, out)
      assert.equal(0, n.ops, out)
    end)
  else
    pending("--once on the gateway's own /metrics (this gateway has no --metrics yet)")
  end

  -- tmux: a session of its own server (socket in the spec's temp dir, no user config)
  local function tmux(args)
    local t = { "tmux", "-f", "/dev/null", "-S", tmux_sock }
    for _, a in ipairs(args) do t[#t + 1] = a end
    local q = {}
    for i, a in ipairs(t) do q[i] = env.shquote(a) end
    local p = io.popen(table.concat(q, " ") .. " 2>&1")
    local out = p:read("*a")
    p:close()
    return out
  end
  local function pane(name) return tmux { "capture-pane", "-p", "-t", name } end
  -- Start mintgate-top in a 100x40 tmux session; after it exits the pane says how, and
  -- whether the terminal is back in canonical mode (stty), then lingers a little.
  local function start_session(name, argv)
    tmux_sock = tmux_sock or (E.dir .. "/tmux.sock")
    local q = {}
    for i, a in ipairs(argv) do q[i] = env.shquote(a) end
    local cmd = table.concat(q, " ") .. '; echo "top exited $?"; ' ..
      "if stty -a | tr ' ' '\\n' | grep -qx -- -icanon; then echo 'tty raw'; " ..
      "else echo 'tty restored'; fi; sleep 20"
    local out = tmux { "new-session", "-d", "-s", name, "-x", "100", "-y", "40", "-c", top_dir, cmd }
    assert.equal("", out)
    -- the tmux server in the run's list too, so that spec/run_busted.sh stops it (and the
    -- mintgate-top in it) should busted itself die before the teardown
    local pid = tonumber(tmux { "display-message", "-p", "-t", name, "#{pid}" }:match("%d+") or "")
    local f = pid and io.open(E.pidfile, "a")
    if f then
      f:write(pid, " tmux-mintgate-top\n")
      f:close()
    end
  end

  it("in tmux: redraws the admin port's numbers, q quits and restores the terminal", function()
    start_session("stats", { TOP, "--interval", "0.5", "127.0.0.1:" .. admin })
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("top:tmux", "v"))
    -- under load: the frame shows gets per second and the backend up
    local seen = env.wait_until(10, function()
      for _ = 1, 50 do c:value("top:tmux") end
      local p = pane("stats")
      local n = numbers(p)
      local b = n.backends["127.0.0.1:" .. mc.port]
      return n.get_rate and n.get_rate > 0 and b and b.state == "up" and n.hit == 100 and p
    end, 0.05)
    assert(seen, "no frame with the load in it:\n" .. pane("stats"))
    assert.is_true(widest(seen) <= 80, seen)
    -- at rest: its totals become stats' counters, and the rates fall to 0
    local s
    local rest = env.wait_until(5, function()
      s = stats()
      local p = pane("stats")
      local n = numbers(p)
      return n.total_get == tonumber(s.cmd_get) and n.total_hits == tonumber(s.get_hits)
        and n.total_misses == tonumber(s.get_misses) and n.get_rate == 0 and p
    end, 0.1)
    assert(rest, "totals never matched stats (cmd_get " .. tostring(s and s.cmd_get) .. "):\n"
      .. pane("stats"))
    tmux { "send-keys", "-t", "stats", "q" }
    local done = env.wait_until(5, function()
      local p = pane("stats")
      return p:find("top exited", 1, true) and p:find("tty %a+") and p
    end, 0.05)
    assert(done, "still running after q:\n" .. pane("stats"))
    assert.truthy(done:find("top exited 0", 1, true), done)
    assert.truthy(done:find("tty restored", 1, true), done)
  end)

  if HAS_METRICS then
    it("in tmux on the gateway's own /metrics: the load, then a scrape's totals", function()
      start_session("own-metrics", { TOP, "--metrics", "--interval", "0.5", "127.0.0.1:" .. mport })
      local c = E:client(gw.port)
      assert.equal("STORED", c:set("top:m", "v"))
      local seen = env.wait_until(10, function()
        for _ = 1, 50 do c:value("top:m") end
        local p = pane("own-metrics")
        local n = numbers(p)
        local b = n.backends["127.0.0.1:" .. mc.port]
        return n.get_rate and n.get_rate > 0 and n.p99_ms and b and b.state == "up" and p
      end, 0.05)
      assert(seen, "no frame with the load in it:\n" .. pane("own-metrics"))
      local m
      local rest = env.wait_until(5, function()
        m = scrape(mport)
        local p = pane("own-metrics")
        local n = numbers(p)
        return n.total_cmds == m.cmds and n.total_hits == m.hits and n.total_misses == m.misses
          and n.get_rate == 0 and p
      end, 0.1)
      assert(rest, "totals never matched a scrape (commands " .. tostring(m and m.cmds) .. "):\n"
        .. pane("own-metrics"))
      tmux { "send-keys", "-t", "own-metrics", "q" }
      assert(env.wait_until(5, function()
        return pane("own-metrics"):find("top exited 0", 1, true)
      end, 0.05), "still running after q:\n" .. pane("own-metrics"))
    end)
  else
    pending("in tmux on the gateway's own /metrics (this gateway has no --metrics yet)")
  end

  it("in tmux: the metrics endpoint's numbers; Ctrl-C quits and restores the terminal", function()
    local srv = metrics_server(exposition)
    start_session("metrics", { TOP, "--metrics", "--interval", "0.5", "127.0.0.1:" .. srv.port })
    local shown
    env.wait_until(10, function()
      srv.step(0.05)
      local p = pane("metrics")
      local n = numbers(p)
      -- the totals are one of the last two expositions served (a scrape may be on its way)
      local k = srv.scrapes
      local ok = n.total_cmds and k >= 3 and (n.total_cmds == 1100 * k or n.total_cmds == 1100 * (k - 1))
        and n.hit == 80 and n.p99_ms == 0.95 and p:find("hot\\x0akey\\x1b", 1, true)
        and n.backends["127.0.0.1:11312"] and n.backends["127.0.0.1:11312"].state == "down"
      if ok then shown = p end
      return ok
    end, 0)
    assert(shown, "the metrics never showed:\n" .. pane("metrics"))
    tmux { "send-keys", "-t", "metrics", "C-c" }
    local done = env.wait_until(5, function()
      srv.step(0.02)
      local p = pane("metrics")
      return p:find("top exited", 1, true) and p:find("tty %a+") and p
    end, 0)
    srv.close()
    assert(done, "still running after Ctrl-C:\n" .. pane("metrics"))
    assert.truthy(done:find("top exited 0", 1, true), done)
    assert.truthy(done:find("tty restored", 1, true), done)
  end)

  it("--once after the memcached is killed: the backend shown as stats shows it, down", function()
    local c = E:client(gw.port)
    mc:stop()
    -- failed requests eject the server (failure limit 2); it rests 60 s
    assert(env.wait_until(5, function()
      c:cmd("get top:gone")
      local st = stats("stats backends")["backend:127.0.0.1:" .. mc.port .. ":state"]
      return st == "down"
    end, 0.05), "the backend never went down")
    local rc, out, err = run_top { "--once", "--interval", "0.3", "127.0.0.1:" .. admin }
    assert.equal(0, rc, err)
    local b = numbers(out).backends["127.0.0.1:" .. mc.port]
    assert.is_table(b, out)
    assert.equal("down", b.state, out)
  end)
end)
