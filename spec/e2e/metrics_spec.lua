-- The Prometheus endpoint (issue 13): `--metrics ADDR:PORT` / `mg.metrics` serve GET /metrics
-- in the text format 0.0.4. Checked with Debian's `promtool check metrics`, scraped by a real
-- Prometheus server (`rate()` of commands, `histogram_quantile()` of get latency through its
-- HTTP API), histogram counts equal to the requests sent, `stats` and the metrics agreeing,
-- bad HTTP answered 400/404/405/431 while the gateway keeps serving.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local socket = require "socket"

-- One HTTP exchange on 127.0.0.1:port: raw request in, (status, headers text, body) out.
local function http_raw(port, request)
  local s = assert(socket.tcp())
  s:settimeout(5)
  assert(s:connect("127.0.0.1", port))
  assert(s:send(request))
  local data = {}
  while true do
    local chunk, err, partial = s:receive(8192)
    if chunk then data[#data + 1] = chunk end
    if not chunk then
      if partial and #partial > 0 then data[#data + 1] = partial end
      if err == "closed" or err == "timeout" then break end
    end
  end
  s:close()
  local all = table.concat(data)
  local head, body = all:match("^(.-)\r\n\r\n(.*)$")
  local status = tonumber((head or all):match("^HTTP/1%.1 (%d+)"))
  return status, head, body
end

local function scrape(port)
  local status, head, body = http_raw(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
  assert.equal(200, status, head)
  return body, head
end

-- The value of the series whose name and labels are exactly series ("name{a=\"b\"}").
local function value(body, series)
  for line in body:gmatch("[^\n]+") do
    local name, v = line:match("^(%S+) (%S+)$")
    if name == series then return tonumber(v) end
  end
  return nil
end

describe("metrics endpoint", function()
  local E
  lazy_setup(function() E = env.new("metrics") end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  local function gateway(mc, opts)
    opts = opts or {}
    local mport = env.free_port()
    local gw = E:gateway { threads = opts.threads or 2, servers = { mc.port },
      args = { "--metrics", "127.0.0.1:" .. mport } }
    assert(env.wait_until(5, function() return env.port_open(mport) end, 0.02),
      "the metrics port never opened")
    return gw, mport
  end

  it("passes promtool check metrics, with the names the issue lists", function()
    local A = E:memcached()
    local gw, mport = gateway(A)
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("k", "v"))
    assert.equal("v", c:value("k"))
    local body = scrape(mport)
    local rc, out, err = env.run({ "promtool", "check", "metrics" }, { stdin = body })
    assert.equal(0, rc, out .. err)
    for _, name in ipairs {
      "mintgate_commands_total", "mintgate_command_duration_seconds_bucket",
      "mintgate_backend_requests_total", "mintgate_backend_errors_total",
      "mintgate_backend_duration_seconds_bucket", "mintgate_backend_up",
      "mintgate_herd_wins_total", "mintgate_herd_stale_hits_total", "mintgate_herd_waits_total",
      "mintgate_connections", "mintgate_connections_total", "mintgate_config_reloads_total",
      "mintgate_lua_memory_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes",
      "process_open_fds", "process_start_time_seconds",
    } do
      assert(body:find("\n" .. name .. "[{ ]"), name .. " missing")
    end
    assert.equal(1, value(body,
      string.format('mintgate_backend_up{pool="default",server="127.0.0.1:%d"}', A.port)))
  end)

  it("histogram counts equal the requests sent; stats and metrics agree", function()
    local A = E:memcached()
    local gw, mport = gateway(A)
    local c = E:client(gw.port)
    for i = 1, 50 do assert.equal("STORED", c:set("h" .. i, "v")) end
    for i = 1, 120 do c:value("h" .. (i % 60)) end -- 100 hits, 20 misses
    assert.equal("VERSION", c:cmd("version"):match("^VERSION"))
    local body = scrape(mport)
    assert.equal(120, value(body, 'mintgate_commands_total{command="get"}'))
    assert.equal(120, value(body, 'mintgate_command_duration_seconds_count{command="get"}'))
    assert.equal(120, value(body,
      'mintgate_command_duration_seconds_bucket{command="get",le="+Inf"}'))
    assert.equal(50, value(body, 'mintgate_commands_total{command="set"}'))
    assert.equal(1, value(body, 'mintgate_commands_total{command="version"}'))
    local srv = string.format('pool="default",server="127.0.0.1:%d"', A.port)
    assert.equal(170, value(body, "mintgate_backend_duration_seconds_count{" .. srv .. "}"))
    assert.equal(170, value(body, "mintgate_backend_requests_total{" .. srv .. "}"))
    -- buckets are cumulative and end at the count
    local prev = 0
    for line in body:gmatch("[^\n]+") do
      local v = line:match('^mintgate_command_duration_seconds_bucket{command="get",le="[^"]+"} (%d+)$')
      if v then
        assert(tonumber(v) >= prev, line)
        prev = tonumber(v)
      end
    end
    assert.equal(120, prev)
    local st = E:client(gw.port):stats("stats")
    body = scrape(mport) -- after the stats client's connection
    assert.equal(tonumber(st.get_hits), value(body, "mintgate_get_hits_total"))
    assert.equal(tonumber(st.get_misses), value(body, "mintgate_get_misses_total"))
    assert.equal(100, value(body, "mintgate_get_hits_total"))
    assert.equal(tonumber(st.total_connections), value(body, "mintgate_connections_total"))
  end)

  it("backend errors by kind, and up = 0 for an ejected server", function()
    local A = E:memcached()
    local gw, mport = gateway(A, { threads = 1 })
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("e", "v"))
    E:stop(A)
    for _ = 1, 3 do assert.matches("^SERVER_ERROR", c:cmd("get e", 5)) end
    local body = scrape(mport)
    local srv = string.format('pool="default",server="127.0.0.1:%d"', A.port)
    local errs = 0
    for _, kind in ipairs { "down", "closed", "error", "timeout" } do
      errs = errs + value(body, "mintgate_backend_errors_total{" .. srv .. ',kind="' .. kind .. '"}')
    end
    assert(errs >= 3, "errors by kind: " .. errs)
    assert.equal(0, value(body, "mintgate_backend_up{" .. srv .. "}"))
  end)

  it("bad HTTP gets 400/404/405/431; the gateway keeps serving and scraping", function()
    local A = E:memcached()
    local gw, mport = gateway(A)
    assert.equal(404, (http_raw(mport, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")))
    assert.equal(405, (http_raw(mport, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n")))
    local st, head = http_raw(mport, "DELETE /metrics HTTP/1.1\r\n\r\n")
    assert.equal(405, st)
    assert.matches("Allow: GET, HEAD", head)
    assert.equal(400, (http_raw(mport, "GARBAGE\r\n\r\n")))
    assert.equal(400, (http_raw(mport, "GET metrics HTTP/1.1\r\n\r\n")))
    assert.equal(400, (http_raw(mport, "GET /metrics HTTP/9.9\r\n\r\n")))
    assert.equal(400, (http_raw(mport, "GET /met\0rics HTTP/1.1\r\n\r\n")))
    assert.equal(431, (http_raw(mport, "GET /metrics HTTP/1.1\r\nX: " .. ("a"):rep(9000))))
    local hs, hh, hb = http_raw(mport, "HEAD /metrics HTTP/1.1\r\n\r\n")
    assert.equal(200, hs)
    assert.matches("Content%-Length: %d+", hh)
    assert.equal("", hb)
    -- a client that connects and sends nothing, and many at once, do not stop a scrape
    local idle = {}
    for i = 1, 80 do
      idle[i] = socket.tcp()
      idle[i]:settimeout(1)
      idle[i]:connect("127.0.0.1", mport)
    end
    for _, s in ipairs(idle) do s:close() end
    assert(scrape(mport):find("mintgate_commands_total"))
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("still", "ok"))
    assert.equal("ok", c:value("still"))
  end)

  it("mg.metrics in the script; a real Prometheus scrapes it: rate() and histogram_quantile()", function()
    local A, B = E:memcached(), E:memcached()
    local mport = env.free_port()
    local gw = E:gateway { threads = 2, config = string.format([[
      local mg = require "mintgate"
      mg.metrics { "127.0.0.1:%d" }
      mg.switch { name = "canary", percent = 10 }
      local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
      local gutter = mg.pool { name = "gutter", servers = { "127.0.0.1:%d" } }
      mg.route { default = mg.failover { main, gutter, ttl = 10, name = "fo" } }
    ]], mport, A.port, B.port) }
    assert(env.wait_until(5, function() return env.port_open(mport) end, 0.02))
    local dir = env.mktemp_dir()
    local f = assert(io.open(dir .. "/prometheus.yml", "w"))
    f:write(string.format([[
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: mintgate
    static_configs:
      - targets: ["127.0.0.1:%d"]
]], mport))
    f:close()
    local pport = env.free_port()
    local prom = E:spawn({ "prometheus", "--config.file=" .. dir .. "/prometheus.yml",
      "--storage.tsdb.path=" .. dir .. "/data", "--web.listen-address=127.0.0.1:" .. pport,
      "--log.level=warn" }, { name = "prometheus", kind = "prometheus", port = pport })
    E:wait_listening(prom, 30)
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("p", "v"))
    local function query(q)
      local st, _, body = http_raw(pport, "GET /api/v1/query?query=" ..
        q:gsub("[^%w%-_.~]", function(ch) return string.format("%%%02X", ch:byte()) end) ..
        " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      if st ~= 200 or not body then return nil end
      return tonumber(body:match('"value":%[[%d.]+,"([%d.eE+-]+)"%]'))
    end
    local rate, p99
    local ok = env.wait_until(40, function()
      for i = 1, 200 do c:value("p" .. (i % 3)) end
      rate = query('rate(mintgate_commands_total{command="get"}[5s])')
      p99 = query('histogram_quantile(0.99, sum by (le) ' ..
        '(rate(mintgate_command_duration_seconds_bucket{command="get"}[5s])))')
      return rate and rate > 0 and p99 and p99 > 0
    end, 0.5)
    assert(ok, string.format("prometheus: rate %s, p99 %s", tostring(rate), tostring(p99)))
    assert(p99 < 5, "p99 " .. p99)
    -- the Grafana dashboard: every metric it queries is in /metrics, every query is valid
    local f2 = assert(io.open("examples/grafana/mintgate.json"))
    local dash = f2:read("*a")
    f2:close()
    local body = scrape(mport)
    local exprs = 0
    for raw in dash:gmatch('"expr": "(.-[^\\])"') do
      exprs = exprs + 1
      local expr = raw:gsub('\\"', '"'):gsub("\\\\", "\\")
      for name in expr:gmatch("[%a_][%w_]*") do
        if name:match("^mintgate_") or name:match("^process_") then
          assert(body:find("\n" .. name .. "[{ ]"), "the dashboard queries " .. name ..
            ", which /metrics does not have")
        end
      end
      local q = expr:gsub("%$__rate_interval", "5s"):gsub("%$job", ".*")
      local st = http_raw(pport, "GET /api/v1/query?query=" ..
        q:gsub("[^%w%-_.~]", function(ch) return string.format("%%%02X", ch:byte()) end) ..
        " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.equal(200, st, "prometheus refused the dashboard's query " .. q)
    end
    assert(exprs >= 15, exprs .. " queries in the dashboard")
    prom:stop(5)
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
