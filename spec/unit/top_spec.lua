-- mintgate.top alone (mintgate-top's pure part): the endpoint argument, `stats` replies
-- and a Prometheus exposition parsed into samples, rates between two samples, the
-- histogram quantile, and frames that fit their width and show keys escaped.
assert(jit ~= nil, "specs must run under LuaJIT")

local top = require "mintgate.top"

local INF = math.huge

-- `stats` replies as the gateway writes them (core/stats_render.c, backend.c, switch.c).
local STATS = table.concat({
  "STAT pid 4242", "STAT uptime 3723", "STAT time 1796082805",
  "STAT version 1.6.0-mintgate-0.1.0", "STAT rusage_user 1.500000", "STAT rusage_system 0.500000",
  "STAT curr_connections 7", "STAT total_connections 120", "STAT cmd_get 1000",
  "STAT cmd_set 300", "STAT cmd_flush 0", "STAT cmd_touch 5", "STAT cmd_meta 20",
  "STAT get_hits 900", "STAT get_misses 100", "STAT delete_hits 10", "STAT delete_misses 2",
  "STAT incr_hits 1", "STAT incr_misses 0", "STAT decr_hits 0", "STAT decr_misses 0",
  "STAT threads 4", "END", "",
}, "\r\n")

local BACKENDS = table.concat({
  "STAT backend:127.0.0.1:11311:state up", "STAT backend:127.0.0.1:11311:requests 800",
  "STAT backend:127.0.0.1:11311:writes 400", "STAT backend:127.0.0.1:11311:errors 3",
  "STAT backend:127.0.0.1:11311:timeouts 1", "STAT backend:127.0.0.1:11311:ejections 0",
  "STAT backend:127.0.0.1:11311:busy 0", "STAT backend:127.0.0.1:11311:inflight 2",
  "STAT backend:unix:/run/mc.sock:state down", "STAT backend:unix:/run/mc.sock:requests 50",
  "STAT backend:unix:/run/mc.sock:errors 9", "STAT backend:unix:/run/mc.sock:timeouts 0",
  "END", "",
}, "\r\n")

local SWITCHES = table.concat({
  "STAT switch:canary:percent 12.500", "STAT switch:canary:on 25", "STAT switch:canary:off 175",
  "STAT switch:new:cache:percent 0.000", "STAT switch:new:cache:on 0",
  "STAT switch:new:cache:off 40", "STAT switch:new:cache:fleet main/mintgate:switch:x", "END", "",
}, "\r\n")

local function pool_lines(name, servers, buckets, count)
  local t = { "STAT pool:" .. name .. ":servers " .. #servers }
  for i, s in ipairs(servers) do t[#t + 1] = string.format("STAT pool:%s:server:%d %s", name, i - 1, s) end
  t[#t + 1] = "STAT pool:" .. name .. ":stale no"
  t[#t + 1] = "STAT pool:" .. name .. ":herd_wins 0"
  local bounds = { 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
                   1000000 }
  for i, b in ipairs(bounds) do
    t[#t + 1] = string.format("STAT pool:%s:latency_le_%dus %d", name, b, buckets[i] or count)
  end
  t[#t + 1] = string.format("STAT pool:%s:latency_count %d", name, count)
  return table.concat(t, "\r\n")
end

local function pools(main, other)
  return pool_lines("main", { "127.0.0.1:11311" }, main, main[#main]) .. "\r\n" ..
    pool_lines("side", { "127.0.0.1:11311", "unix:/run/mc.sock" }, other, other[#other]) ..
    "\r\nEND\r\n"
end

local ROUTES = table.concat({
  "STAT route:fo:kind failover", "STAT route:fo:child:0 main", "STAT route:fo:child:1 side",
  "STAT route:fo:ttl 10", "STAT route:fo:on_miss no", "STAT route:fo:requests 60",
  "STAT route:fo:fallbacks 6", "STAT route:fo:failed 1", "END", "",
}, "\r\n")

local function stats_replies(overrides)
  local r = {
    stats = top.parse_stats(STATS), backends = top.parse_stats(BACKENDS),
    switches = top.parse_stats(SWITCHES),
    pools = top.parse_stats(pools({ 10, 20, 30 }, { 5, 5, 5 })),
    hotkeys = nil, routes = top.parse_stats(ROUTES),
  }
  for k, v in pairs(overrides or {}) do r[k] = v end
  return r
end

-- A /metrics exposition written by hand from the names the metrics endpoint will use.
local function exposition(o)
  o = o or {}
  local get, set = o.get or 1000, o.set or 200
  local hits, misses = o.hits or 900, o.misses or 100
  local b = o.buckets or { 500, 900, 990, 1000 } -- le 0.0001, 0.001, 0.01, +Inf for get
  return table.concat({
    "# HELP mintgate_commands_total Commands by command.",
    "# TYPE mintgate_commands_total counter",
    'mintgate_commands_total{command="get"} ' .. get,
    'mintgate_commands_total{command="set"} ' .. set,
    "# TYPE mintgate_command_duration_seconds histogram",
    'mintgate_command_duration_seconds_bucket{command="get",le="0.0001"} ' .. b[1],
    'mintgate_command_duration_seconds_bucket{command="get",le="0.001"} ' .. b[2],
    'mintgate_command_duration_seconds_bucket{command="get",le="0.01"} ' .. b[3],
    'mintgate_command_duration_seconds_bucket{command="get",le="+Inf"} ' .. b[4],
    'mintgate_command_duration_seconds_sum{command="get"} 0.5',
    'mintgate_command_duration_seconds_count{command="get"} ' .. b[4],
    'mintgate_command_duration_seconds_bucket{command="set",le="0.0001"} 0',
    'mintgate_command_duration_seconds_bucket{command="set",le="0.001"} ' .. set,
    'mintgate_command_duration_seconds_bucket{command="set",le="0.01"} ' .. set,
    'mintgate_command_duration_seconds_bucket{command="set",le="+Inf"} ' .. set,
    "mintgate_get_hits_total " .. hits,
    "mintgate_get_misses_total " .. misses,
    'mintgate_backend_up{pool="main",server="127.0.0.1:11311"} 1',
    'mintgate_backend_up{pool="main",server="127.0.0.1:11312"} 0',
    'mintgate_backend_requests_total{pool="main",server="127.0.0.1:11311"} ' .. (o.req or 5000),
    'mintgate_backend_requests_total{pool="main",server="127.0.0.1:11312"} 10',
    'mintgate_backend_errors_total{pool="main",server="127.0.0.1:11311",kind="timeout"} 2',
    'mintgate_backend_errors_total{pool="main",server="127.0.0.1:11311",kind="refused"} 3',
    'mintgate_backend_errors_total{pool="main",server="127.0.0.1:11312",kind="refused"} '
      .. (o.err2 or 10),
    'mintgate_switch_percent{switch="canary"} 12.5',
    'mintgate_switch_keys_total{switch="canary",side="on"} ' .. (o.on or 10),
    'mintgate_switch_keys_total{switch="canary",side="off"} ' .. (o.off or 90),
    'mintgate_hotkey_requests_per_second{rank="1",pool="main",key="user:\\"42\\"\\n"} 150.5',
    'mintgate_hotkey_requests_per_second{rank="2",pool="main"} 20',
    'mintgate_route_requests_total{route="fo",kind="failover"} ' .. (o.route_req or 40),
    'mintgate_route_fallbacks_total{route="fo",kind="failover"} 4',
    'mintgate_route_failed_total{route="fo",kind="failover"} 1',
    'mintgate_route_replays_sent_total{route="fo",kind="failover"} 9',
    "mintgate_connections 12",
    "mintgate_connections_total 345",
    "process_cpu_seconds_total " .. (o.cpu or 10),
    "process_resident_memory_bytes 35651584",
    "process_start_time_seconds 1000",
    "",
  }, "\n")
end

describe("mintgate.top", function()
  describe("the endpoint argument", function()
    it("takes HOST:PORT, [v6]:PORT, a bare port, unix:/path and http:// URLs", function()
      local e = top.parse_endpoint("127.0.0.1:11299")
      assert.same({ "127.0.0.1", 11299 }, { e.host, e.port })
      assert.is_nil(e.http)
      e = top.parse_endpoint("[::1]:9150")
      assert.same({ "::1", 9150 }, { e.host, e.port })
      e = top.parse_endpoint("11299")
      assert.same({ "127.0.0.1", 11299 }, { e.host, e.port })
      e = top.parse_endpoint("unix:/run/mintgate-admin.sock")
      assert.equal("/run/mintgate-admin.sock", e.unix)
      e = top.parse_endpoint("http://10.0.0.1:9150")
      assert.same({ "10.0.0.1", 9150, "/metrics", true }, { e.host, e.port, e.path, e.http })
      e = top.parse_endpoint("http://gw:9150/other/path")
      assert.equal("/other/path", e.path)
    end)

    it("refuses what is not one", function()
      for _, bad in ipairs { "", "host", "host:", "host:0", "host:70000", "ftp://h:1", "a:b:c" } do
        local e, err = top.parse_endpoint(bad)
        assert.is_nil(e, bad)
        assert.is_string(err)
      end
    end)
  end)

  describe("stats replies", function()
    it("parses STAT lines into names and values, stopping at END", function()
      local t = top.parse_stats("STAT a 1\r\nSTAT fleet main/k x y\r\nEND\r\nSTAT after 1\r\n")
      assert.same({ a = "1", fleet = "main/k x y" }, t)
    end)

    it("answers nil and the line for a refused command", function()
      assert.same({ nil, "ERROR" }, { top.parse_stats("ERROR\r\n") })
      assert.same({ nil, "CLIENT_ERROR bad command line format" },
        { top.parse_stats("CLIENT_ERROR bad command line format\r\n") })
      assert.equal("end", top.reply_end("END"))
      assert.equal("error", top.reply_end("SERVER_ERROR out of memory"))
      assert.is_nil(top.reply_end("STAT END 1"))
    end)

    it("makes a sample: commands, hits, backends with their pools, switches, routes", function()
      local s = top.from_stats(stats_replies())
      assert.equal("stats", s.source)
      assert.same({ 3723, 4, 7, 120, 900, 100, 2 },
        { s.uptime, s.threads, s.conns, s.conns_total, s.hits, s.misses, s.cpu })
      assert.same({ get = 1000, set = 300, delete = 12, incr = 1, decr = 0, touch = 5, meta = 20,
                    flush = 0 }, s.commands)
      -- backend names hold colons; pools come from `stats pools`; errors count timeouts
      assert.equal(2, #s.backends)
      local a, b = s.backends[1], s.backends[2]
      assert.same({ "127.0.0.1:11311", "main,side", "up", 800, 4, 2 },
        { a.server, a.pool, a.state, a.requests, a.errors, a.inflight })
      assert.same({ "unix:/run/mc.sock", "side", "down", 50, 9 },
        { b.server, b.pool, b.state, b.requests, b.errors })
      -- switch names hold colons too; the fleet line is not a switch
      assert.equal(2, #s.switches)
      assert.same({ name = "canary", percent = 12.5, on = 25, off = 175 }, s.switches[1])
      assert.same({ name = "new:cache", percent = 0, on = 0, off = 40 }, s.switches[2])
      -- the child lines are not routes of their own
      assert.same({ { name = "fo", kind = "failover", requests = 60, fallbacks = 6, failed = 1 } },
        s.routes)
      -- no `stats hotkeys` in this gateway: n/a
      assert.is_nil(s.hotkeys)
      assert.is_string(s.hotkeys_na)
    end)

    it("sums the pools' latency histograms into one, bounds in seconds", function()
      local s = top.from_stats(stats_replies())
      local h = s.latency
      assert.equal(14, #h)
      assert.same({ le = 0.0001, count = 15 }, h[1])
      assert.same({ le = 0.0002, count = 25 }, h[2])
      assert.same({ le = 0.0005, count = 35 }, h[3])
      assert.same({ le = 1, count = 35 }, h[13])
      assert.same({ le = INF, count = 35 }, h[14])
    end)

    it("reads hot keys when the gateway has `stats hotkeys`", function()
      local hk = top.parse_stats(table.concat({
        "STAT hotkeys_sample 64", "STAT hotkey:2:key b", "STAT hotkey:2:rps 5.5",
        "STAT hotkey:2:error_rps 0.0", "STAT hotkey:2:pool side",
        "STAT hotkey:1:key a\\x20key", "STAT hotkey:1:rps 90", "STAT hotkey:1:get_rps 90",
        "STAT hotkey:1:pool main", "END",
      }, "\r\n"))
      local s = top.from_stats(stats_replies { hotkeys = hk })
      assert.same({ { rank = 1, key = "a\\x20key", rate = 90, pool = "main" },
                    { rank = 2, key = "b", rate = 5.5, pool = "side" } }, s.hotkeys)
    end)
  end)

  describe("the Prometheus text format", function()
    it("parses names, labels with escapes, values and timestamps; skips comments", function()
      local list, bad, types = top.parse_prometheus(table.concat({
        "# HELP x_total A counter.", "# TYPE x_total counter",
        'x_total{a="1",b="q\\"uote\\\\back\\nnl"} 3 1700000000000',
        'y { a = "x" , } 2.5e3',
        "z NaN", "w +Inf", "v -Inf", "u{} 7",
        "", "   ", "broken{a=1} 1", 'also_broken{a="x"}', "nolabel",
      }, "\n"))
      assert.equal(3, bad)
      assert.equal("counter", types.x_total)
      assert.equal(6, #list)
      assert.same({ name = "x_total", labels = { a = "1", b = 'q"uote\\back\nnl' }, value = 3 },
        list[1])
      assert.same({ name = "y", labels = { a = "x" }, value = 2500 }, list[2])
      assert.is_true(list[3].value ~= list[3].value) -- NaN
      assert.equal(INF, list[4].value)
      assert.equal(-INF, list[5].value)
      assert.same({ name = "u", labels = {}, value = 7 }, list[6])
    end)

    it("reads an HTTP response: Content-Length, chunked, status", function()
      local st, h, body = top.parse_http("HTTP/1.1 200 OK\r\nContent-Type: text/plain; " ..
        "version=0.0.4\r\nContent-Length: 5\r\n\r\nhello world")
      assert.same({ 200, "hello" }, { st, body })
      assert.equal("text/plain; version=0.0.4", h["content-type"])
      st, h, body = top.parse_http("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n")
      assert.same({ 200, "hello world", "chunked" }, { st, body, h["transfer-encoding"] })
      st = top.parse_http("HTTP/1.0 404 Not Found\r\n\r\nno")
      assert.equal(404, st)
      assert.is_nil((top.parse_http("SSH-2.0-OpenSSH\r\n\r\n")))
      assert.is_nil((top.parse_http("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")))
      assert.is_nil((top.parse_http("HTTP/1.1 200 OK\r\n")))
    end)

    it("makes a sample from the metrics: commands, hits, backends, switches, hot keys", function()
      local s = top.from_metrics(top.parse_prometheus(exposition()), 4600)
      assert.equal("metrics", s.source)
      assert.same({ get = 1000, set = 200 }, s.commands)
      assert.same({ 900, 100, 12, 345, 10, 35651584, 3600 },
        { s.hits, s.misses, s.conns, s.conns_total, s.cpu, s.rss, s.uptime })
      assert.equal(2, #s.backends)
      assert.same({ "main", "127.0.0.1:11311", "up", 5000, 5 },
        { s.backends[1].pool, s.backends[1].server, s.backends[1].state, s.backends[1].requests,
          s.backends[1].errors })
      assert.same({ "down", 10, 10 },
        { s.backends[2].state, s.backends[2].requests, s.backends[2].errors })
      assert.same({ { name = "canary", percent = 12.5, on = 10, off = 90 } }, s.switches)
      assert.same({ { rank = 1, key = 'user:"42"\n', pool = "main", rate = 150.5 },
                    { rank = 2, pool = "main", rate = 20 } }, s.hotkeys)
      -- all commands' histograms merged, and each command's kept
      assert.same({ { le = 0.0001, count = 500 }, { le = 0.001, count = 1100 },
                    { le = 0.01, count = 1190 }, { le = INF, count = 1200 } }, s.latency)
      assert.equal(4, #s.cmd_latency.set)
      assert.same({ { name = "fo", kind = "failover", requests = 40, fallbacks = 4, failed = 1 } },
        s.routes)
    end)

    it("says n/a for hot keys when the exposition has none", function()
      local s = top.from_metrics(top.parse_prometheus("mintgate_connections 1\n"))
      assert.is_nil(s.hotkeys)
      assert.is_string(s.hotkeys_na)
    end)
  end)

  describe("histogram_quantile", function()
    local q = top.histogram_quantile
    local h = { { le = 0.1, count = 10 }, { le = 0.2, count = 20 }, { le = INF, count = 20 } }

    it("interpolates linearly inside the bucket, the first one starting at 0", function()
      assert.near(0.05, q(0.25, h), 1e-12)
      assert.near(0.1, q(0.5, h), 1e-12)
      assert.near(0.15, q(0.75, h), 1e-12)
      assert.near(0.198, q(0.99, h), 1e-12)
    end)

    it("answers the highest finite bound for a rank in +Inf", function()
      local g = { { le = 0.1, count = 10 }, { le = 0.2, count = 20 }, { le = INF, count = 100 } }
      assert.equal(0.2, q(0.99, g))
    end)

    it("takes buckets in any order, merges equal bounds, mends non-monotonic counts", function()
      local g = { { le = INF, count = 20 }, { le = 0.2, count = 20 }, { le = 0.1, count = 10 } }
      assert.near(0.15, q(0.75, g), 1e-12)
      local m = { { le = 0.1, count = 5 }, { le = 0.1, count = 5 }, { le = 0.2, count = 20 },
                  { le = INF, count = 20 } }
      assert.near(0.15, q(0.75, m), 1e-12)
      local n = { { le = 0.1, count = 12 }, { le = 0.2, count = 10 }, { le = INF, count = 12 } }
      assert.near(0.1 * 0.99 * 12 / 12, q(0.99, n), 1e-12)
    end)

    it("is NaN without observations, without +Inf or with one bucket; +-Inf out of range", function()
      local nan = function(x) return x ~= x end
      assert.is_true(nan(q(0.5, { { le = 0.1, count = 0 }, { le = INF, count = 0 } })))
      assert.is_true(nan(q(0.5, { { le = 0.1, count = 3 }, { le = 0.2, count = 4 } })))
      assert.is_true(nan(q(0.5, { { le = INF, count = 4 } })))
      assert.is_true(nan(q(0.5, nil)))
      assert.equal(-INF, q(-0.1, h))
      assert.equal(INF, q(1.1, h))
    end)

    it("handles a first bucket with a bound <= 0", function()
      assert.equal(0, q(0.1, { { le = 0, count = 5 }, { le = 1, count = 10 }, { le = INF, count = 10 } }))
    end)
  end)

  describe("rates between two samples", function()
    local function two_stats()
      local a = top.from_stats(stats_replies())
      local st2 = STATS:gsub("cmd_get 1000", "cmd_get 1400"):gsub("get_hits 900", "get_hits 1200")
                       :gsub("get_misses 100", "get_misses 200"):gsub("cmd_set 300", "cmd_set 340")
                       :gsub("total_connections 120", "total_connections 124")
                       :gsub("rusage_user 1.5", "rusage_user 2.0")
      local b = top.from_stats(stats_replies {
        stats = top.parse_stats(st2),
        backends = top.parse_stats((BACKENDS:gsub("requests 800", "requests 1200")
                                      :gsub("errors 3", "errors 7"))),
        switches = top.parse_stats((SWITCHES:gsub("on 25", "on 35"):gsub("off 175", "off 205"))),
        -- 40 new replies in main: 10 under 100 us, the other 30 under 200 us
        pools = top.parse_stats(pools({ 20, 60, 70 }, { 5, 5, 5 })),
      })
      a.time, b.time = 100, 102
      return a, b
    end

    it("divides counter deltas by the time between the samples", function()
      local v = top.view(two_stats())
      assert.equal(2, v.dt)
      assert.equal((400 + 40) / 2, v.ops)
      assert.equal("get", v.commands[1].name)
      assert.equal(200, v.commands[1].rate)
      assert.equal(20, v.commands[2].rate)
      assert.equal(2, v.conns_rate)
      assert.near(0.25, v.cpu, 1e-9)
      -- the interval's hit ratio (300 hits, 100 misses), not the cumulative one
      assert.near(0.75, v.hit_ratio, 1e-12)
      assert.near(1200 / 1400, v.hit_ratio_all, 1e-12)
      assert.same({ 200, 2 }, { v.backends[1].req_rate, v.backends[1].err_rate })
      assert.same({ 0, 0 }, { v.backends[2].req_rate, v.backends[2].err_rate })
      assert.same({ 5, 15, 0.25 }, { v.switches[1].on_rate, v.switches[1].off_rate,
                                     v.switches[1].share })
    end)

    it("takes p99 from the interval's buckets only", function()
      local v = top.view(two_stats())
      -- 40 new: rank 39.6 of 40, in (100, 200] us holding 30 after 10
      assert.near(0.0001 + 0.0001 * (29.6 / 30), v.p99, 1e-12)
    end)

    it("shows no rates from one sample, and a reset counter counts from zero", function()
      local a, b = two_stats()
      local v = top.view(nil, a)
      assert.is_nil(v.ops)
      assert.is_nil(v.hit_ratio)
      assert.is_nil(v.backends[1].req_rate)
      -- a restarted gateway: its counters are smaller than before
      local v2 = top.view(b, (function() a.time = 104; return a end)())
      assert.equal(1000 / 2, v2.commands[1].rate)
    end)

    it("computes metrics rates, hit ratio and p99 per command", function()
      local a = top.from_metrics(top.parse_prometheus(exposition()))
      local b = top.from_metrics(top.parse_prometheus(exposition {
        get = 2000, set = 300, hits = 1800, misses = 200, req = 6000, err2 = 20, on = 30,
        off = 100, cpu = 10.5, buckets = { 1490, 1900, 1990, 2000 },
      }))
      a.time, b.time = 10, 11
      local v = top.view(a, b)
      assert.equal(1100, v.ops)
      assert.near(0.9, v.hit_ratio, 1e-12)
      assert.same({ 1000, 0 }, { v.backends[1].req_rate, v.backends[1].err_rate })
      assert.same({ 0, 10 }, { v.backends[2].req_rate, v.backends[2].err_rate })
      assert.near(20 / 30, v.switches[1].share, 1e-12)
      assert.near(0.5, v.cpu, 1e-12)
      -- get: 1000 new: 990 <= 100 us, 10 more <= 1 ms, 0 above: p99 at rank 990 = 100 us
      assert.near(0.0001, v.commands[1].p99, 1e-12)
      -- all: 1100 new (get's 1000 + set's 100 under 1 ms): rank 1089
      local expect = 0.0001 + (0.001 - 0.0001) * ((1089 - 990) / (1100 - 990))
      assert.near(expect, v.p99, 1e-12)
    end)
  end)

  describe("a frame", function()
    local function printable(frame)
      for line in (frame .. "\n"):gmatch("(.-)\n") do
        assert(not line:find("[^\32-\126]"), "a byte outside printable ASCII in: " .. line)
      end
    end
    local function widest(frame)
      local w = 0
      for line in (frame .. "\n"):gmatch("(.-)\n") do w = math.max(w, #line) end
      return w
    end

    local function metrics_view(o)
      local a = top.from_metrics(top.parse_prometheus(exposition()))
      local b = top.from_metrics(top.parse_prometheus(exposition(o or {
        get = 2000, set = 300, hits = 1800, misses = 200, req = 6000,
        buckets = { 1490, 1900, 1990, 2000 },
      })))
      a.time, b.time = 10, 11
      local v = top.view(a, b)
      v.endpoint, v.source, v.clock = "127.0.0.1:9150", "metrics", "12:00:01"
      return v
    end

    it("shows the numbers of the view", function()
      local f = top.render(metrics_view())
      assert.truthy(f:find("ops/s 1100", 1, true), f)
      assert.truthy(f:find("hit 90.0%", 1, true), f)
      assert.truthy(f:find("get 1000 (p99 0.100ms)", 1, true), f)
      assert.truthy(f:find("total: cmds 2300  hits 1800  misses 200  conns 345", 1, true), f)
      assert.truthy(f:find("127.0.0.1:11311%s+main%s+up%s+1000%s+0"), f)
      assert.truthy(f:find("127.0.0.1:11312%s+main%s+down%s+0%s+0"), f)
      assert.truthy(f:find('user:"42"\\x0a', 1, true), f)
      assert.truthy(f:find("(key hidden)", 1, true), f)
      assert.truthy(f:find("canary%s+12.500%%"), f)
      assert.equal("mintgate-top 127.0.0.1:9150 (metrics)", f:match("^(.-)%s%s+"))
      assert.truthy(f:match("^[^\n]*12:00:01\n"), f)
    end)

    it("says n/a for hot keys the endpoint has not, and (none) for empty tables", function()
      local a = top.from_stats(stats_replies { backends = {}, switches = {} })
      local b = top.from_stats(stats_replies { backends = {}, switches = {} })
      a.time, b.time = 1, 2
      local v = top.view(a, b)
      v.endpoint, v.source = "127.0.0.1:11299", "stats"
      local f = top.render(v)
      assert.truthy(f:find("HOT KEY  n/a (this gateway has no `stats hotkeys`)", 1, true), f)
      assert.truthy(f:find("p99 - (backend)", 1, true), f)
      assert.truthy(f:find("up 1h02m03s  threads 4", 1, true), f)
      local _, nones = f:gsub("%(none%)", "")
      assert.equal(2, nones)
      assert.truthy(f:find("fo%s+failover"), f)
    end)

    it("fits 80 columns and escapes control bytes, whatever the names and keys", function()
      local long = string.rep("k", 300)
      local nasty = "a\0b\r\n\27[2Jc\255\\"
      local expo = exposition() .. table.concat({
        string.format('mintgate_backend_up{pool="%s",server="%s"} 1', long, nasty .. long),
        string.format('mintgate_switch_percent{switch="%s"} 100', nasty .. long),
        string.format('mintgate_hotkey_requests_per_second{rank="3",pool="%s",key="%s"} 1e9',
          long, "k\\n\0\27[31m" .. long),
        string.format('mintgate_commands_total{command="%s"} 5', long),
        "",
      }, "\n")
      local a = top.from_metrics(top.parse_prometheus(expo))
      local b = top.from_metrics(top.parse_prometheus(expo))
      a.time, b.time = 1, 2
      local v = top.view(a, b)
      v.endpoint, v.source, v.clock = nasty .. long, "metrics", "00:00:00"
      v.error = "error " .. nasty .. long
      for _, w in ipairs { 80, 60, 40, 120 } do
        local f = top.render(v, { width = w })
        printable(f)
        assert.is_true(widest(f) <= w, "wider than " .. w .. ":\n" .. f)
      end
      local f = top.render(v)
      assert.truthy(f:find("k\\x0a\\x00\\x1b[31m", 1, true), f)
      assert.truthy(f:find("a\\x00b\\x0d\\x0a\\x1b[2Jc\\xff\\\\", 1, true), f)
      assert.truthy(f:find("1.00G", 1, true), f)
    end)

    it("keeps to a height, saying how many lines were left out", function()
      local f = top.render(metrics_view(), { height = 8 })
      local lines = {}
      for l in (f .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
      assert.equal(8, #lines)
      assert.truthy(lines[8]:match("^%(%d+ more lines"), f)
    end)

    it("shows the error and a waiting line before the first sample", function()
      local v = top.view(nil, nil)
      v.endpoint, v.error = "127.0.0.1:1", "connection refused"
      local f = top.render(v)
      assert.truthy(f:find("! connection refused", 1, true), f)
      assert.truthy(f:find("waiting for the first sample", 1, true), f)
    end)

    it("escape() leaves printable ASCII alone and writes the rest as \\xNN", function()
      assert.equal("plain key:1", top.escape("plain key:1"))
      assert.equal("\\x00\\x7f\\x80\\\\", top.escape("\0\127\128\\"))
    end)

    it("formats numbers compactly", function()
      assert.same({ "-", "0", "3.5", "812", "12.3k", "1.23M", "4.56G" },
        { top.fmt_num(nil), top.fmt_num(0.01), top.fmt_num(3.5), top.fmt_num(812),
          top.fmt_num(12345), top.fmt_num(1234567), top.fmt_num(4.56e9) })
      assert.same({ "0.120ms", "1.50ms", "250ms", "-" },
        { top.fmt_ms(0.00012), top.fmt_ms(0.0015), top.fmt_ms(0.25), top.fmt_ms(0 / 0) })
      assert.same({ "42s", "5m03s", "1h02m03s", "3d04h05m" },
        { top.fmt_uptime(42), top.fmt_uptime(303), top.fmt_uptime(3723),
          top.fmt_uptime(3 * 86400 + 4 * 3600 + 5 * 60 + 6) })
    end)
  end)
end)
