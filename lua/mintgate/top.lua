--- mintgate.top: the pure part of mintgate-top (tools/mintgate-top.lua), a live terminal
-- view of a gateway: parse what the endpoint answered (`stats` replies on the admin or data
-- port, or a Prometheus text exposition from the metrics endpoint) into one sample shape,
-- compute rates between two samples, and render a frame as a string. No I/O here, so
-- that busted can test all of it.
--
-- A sample (what `from_stats` and `from_metrics` return) holds cumulative counters as
-- the gateway reports them; `view(prev, cur)` turns two samples into rates over the time
-- between them (the caller stamps `sample.time`, in seconds); `render(view, opts)` draws
-- one frame, each line at most `opts.width` (default 80) columns of printable ASCII.
local M = {}

local INF = math.huge
local floor, max = math.floor, math.max
local fmt = string.format

-----------------------------------------------------------------------------------------
-- Small helpers

local function num(v)
  if v == nil then return nil end
  return tonumber(v)
end

--- A byte string made printable: bytes outside 0x20..0x7e as \xNN, a backslash as \\.
-- Keys come from clients and may hold anything (base64 meta keys decode to any byte).
-- @tparam string s
-- @treturn string printable ASCII
function M.escape(s)
  s = tostring(s)
  return (s:gsub("[%z\1-\31\127-\255\\]", function(c)
    if c == "\\" then return "\\\\" end
    return fmt("\\x%02x", c:byte())
  end))
end

--- s cut to at most w columns; a cut string ends with "+".
-- @tparam string s printable ASCII
-- @tparam number w columns
function M.fit(s, w)
  s = tostring(s)
  if w <= 0 then return "" end
  if #s <= w then return s end
  if w == 1 then return "+" end
  return s:sub(1, w - 1) .. "+"
end
local fit = M.fit

local function pad(s, w) -- left-aligned in w columns, cut if longer
  s = fit(s, w)
  return s .. string.rep(" ", w - #s)
end

local function rpad(s, w) -- right-aligned in w columns, cut if longer
  s = fit(s, w)
  return string.rep(" ", w - #s) .. s
end

--- A rate or count in at most 7 columns: "-" for nil, "0", "3.5", "812", "12.3k",
-- "1.23M", "4.56G".
function M.fmt_num(x)
  if x == nil or x ~= x then return "-" end
  local a = math.abs(x)
  if a < 0.05 then return "0" end
  if a < 10 then return fmt("%.1f", x) end
  if a < 9999.5 then return fmt("%d", floor(x + 0.5)) end
  if a < 999950 then return fmt("%.1fk", x / 1e3) end
  if a < 999995000 then return fmt("%.2fM", x / 1e6) end
  return fmt("%.2fG", x / 1e9)
end
local fmt_num = M.fmt_num

--- A whole number (a gauge such as connections) in at most 7 columns: "42", "123456",
-- then as fmt_num ("1.23M").
function M.fmt_int(x)
  if x == nil or x ~= x then return "-" end
  if math.abs(x) < 999999.5 then return fmt("%d", floor(x + 0.5)) end
  return fmt_num(x)
end

--- A duration in seconds as milliseconds: "0.120ms", "1.50ms", "250ms"; "-" for nil/NaN.
function M.fmt_ms(s)
  if s == nil or s ~= s then return "-" end
  if s == INF then return "+Inf" end
  local ms = s * 1000
  if ms < 1 then return fmt("%.3fms", ms) end
  if ms < 100 then return fmt("%.2fms", ms) end
  return fmt("%.0fms", ms)
end
local fmt_ms = M.fmt_ms

--- A ratio (0..1) as a percentage, "93.2%"; "-" for nil.
function M.fmt_pct(r)
  if r == nil or r ~= r then return "-" end
  return fmt("%.1f%%", r * 100)
end
local fmt_pct = M.fmt_pct

--- Seconds as "42s", "5m03s", "1h02m03s", "3d04h05m"; "-" for nil.
function M.fmt_uptime(s)
  s = num(s)
  if s == nil or s < 0 then return "-" end
  s = floor(s)
  local d, h, m = floor(s / 86400), floor(s / 3600) % 24, floor(s / 60) % 60
  if d > 0 then return fmt("%dd%02dh%02dm", d, h, m) end
  if h > 0 then return fmt("%dh%02dm%02ds", h, m, s % 60) end
  if m > 0 then return fmt("%dm%02ds", m, s % 60) end
  return fmt("%ds", s)
end

--- Bytes as "512B", "34.2M", "1.50G".
function M.fmt_bytes(b)
  if b == nil then return "-" end
  if b < 1024 then return fmt("%dB", b) end
  if b < 1024 ^ 2 then return fmt("%.1fK", b / 1024) end
  if b < 1024 ^ 3 then return fmt("%.1fM", b / 1024 ^ 2) end
  return fmt("%.2fG", b / 1024 ^ 3)
end

-----------------------------------------------------------------------------------------
-- The endpoint argument

--- Parse the endpoint argument: "HOST:PORT", "[v6]:PORT", "unix:/path", or
-- "http://HOST:PORT[/path]" (which selects the metrics source).
-- @treturn table { host, port, path (HTTP path), unix, http (true for an http:// URL) },
-- or nil and an error message
function M.parse_endpoint(s)
  if type(s) ~= "string" or s == "" then return nil, "no endpoint given" end
  local ep = { text = s, path = "/metrics" }
  local rest = s
  local scheme, after = s:match("^(%a+)://(.*)$")
  if scheme then
    if scheme:lower() ~= "http" then return nil, "only http:// URLs are supported: " .. s end
    ep.http = true
    local hp, path = after:match("^([^/]*)(/.*)$")
    rest = hp or after
    if path then ep.path = path end
  end
  local upath = rest:match("^unix:(.+)$")
  if upath and not ep.http then
    ep.unix = upath
    return ep
  end
  local host, port = rest:match("^%[([^%]]+)%]:(%d+)$")
  if not host then host, port = rest:match("^([^:]+):(%d+)$") end
  if not host then
    if rest:match("^%d+$") then host, port = "127.0.0.1", rest end
  end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then
    return nil, "bad endpoint (want HOST:PORT, unix:/path or http://HOST:PORT/metrics): " .. s
  end
  ep.host, ep.port = host, port
  return ep
end

-----------------------------------------------------------------------------------------
-- The memcached text protocol source

--- What a reply line means for a `stats` reply: "end" (END), "error" (ERROR,
-- CLIENT_ERROR …, SERVER_ERROR …: the reply is that one line), or nil (a STAT line).
function M.reply_end(line)
  if line == "END" then return "end" end
  if line == "ERROR" or line:match("^CLIENT_ERROR") or line:match("^SERVER_ERROR") then
    return "error"
  end
  return nil
end

--- Parse one `stats …` reply. Returns a table name -> value (strings; the value is the
-- rest of the line, so it may hold spaces), or nil and the error line when the gateway
-- refused the command (ERROR today for `stats hotkeys` on builds without it).
function M.parse_stats(text)
  local t = {}
  for line in (text or ""):gmatch("[^\r\n]+") do
    local kind = M.reply_end(line)
    if kind == "error" then return nil, line end
    if kind == "end" then break end
    local name, value = line:match("^STAT (%S+) ?(.*)$")
    if name then t[name] = value end
  end
  return t
end

-- Names in `stats` whose sum is one command's count; get counts keys, as memcached's
-- cmd_get does, and set every storage command (cas included).
local STATS_COMMANDS = {
  { "get", { "cmd_get" } },
  { "set", { "cmd_set" } },
  { "delete", { "delete_hits", "delete_misses" } },
  { "incr", { "incr_hits", "incr_misses" } },
  { "decr", { "decr_hits", "decr_misses" } },
  { "touch", { "cmd_touch" } },
  { "meta", { "cmd_meta" } },
  { "flush", { "cmd_flush" } },
}

-- Sorted list of the keys of t.
local function sorted_keys(t)
  local k = {}
  for name in pairs(t) do k[#k + 1] = name end
  table.sort(k, function(a, b)
    if type(a) == type(b) then return a < b end
    return tostring(a) < tostring(b)
  end)
  return k
end

-- The pools' latency histograms in `stats pools`, summed into one: pool:X:latency_le_Nus
-- (cumulative) and pool:X:latency_count (all, the +Inf bucket). Bounds in seconds.
local function stats_latency(pools)
  local by_le, total, any = {}, 0, false
  for name, v in pairs(pools) do
    local us = name:match("^pool:.+:latency_le_(%d+)us$")
    if us then
      local le = tonumber(us) / 1e6
      by_le[le] = (by_le[le] or 0) + (tonumber(v) or 0)
      any = true
    elseif name:match("^pool:.+:latency_count$") then
      total = total + (tonumber(v) or 0)
      any = true
    end
  end
  if not any then return nil end
  local h = {}
  for _, le in ipairs(sorted_keys(by_le)) do h[#h + 1] = { le = le, count = by_le[le] } end
  h[#h + 1] = { le = INF, count = total }
  return h
end

-- Each pool's servers (`pool:X:server:N name`): server name -> list of pool names.
local function stats_pools_of(pools)
  local of = {}
  for _, name in ipairs(sorted_keys(pools)) do
    local pool = name:match("^pool:(.+):server:%d+$")
    if pool then
      local s = pools[name]
      of[s] = of[s] or {}
      local seen = false
      for _, p in ipairs(of[s]) do seen = seen or p == pool end
      if not seen then table.insert(of[s], pool) end
    end
  end
  return of
end

-- Rows "prefix:NAME:field value" grouped by NAME, in first-seen order of the sorted names.
local function group(t, prefix)
  local rows, by = {}, {}
  for _, name in ipairs(sorted_keys(t)) do
    local id, field = name:match("^" .. prefix .. ":(.+):([%a_][%w_]*)$")
    if id then
      local r = by[id]
      if not r then
        r = { id = id }
        by[id] = r
        rows[#rows + 1] = r
      end
      r[field] = t[name]
    end
  end
  return rows
end

-- `stats hotkeys`: hotkey:RANK:key (printable, \xNN for the rest), hotkey:RANK:rps,
-- hotkey:RANK:pool (and error_rps, get_rps, ... which the frame does not show). Returns a
-- list sorted by rank.
local function stats_hotkeys(t)
  local by, list = {}, {}
  for name, v in pairs(t) do
    local rank, field = name:match("^hotkeys?:(%d+):([%w_]+)$")
    if rank then
      rank = tonumber(rank)
      local h = by[rank]
      if not h then
        h = { rank = rank }
        by[rank] = h
        list[#list + 1] = h
      end
      if field == "key" then
        h.key = v
      elseif field == "pool" then
        h.pool = v
      elseif field == "rate" or field == "rps" or field == "per_second"
          or field == "requests_per_second" then
        h.rate = tonumber(v)
      end
    end
  end
  table.sort(list, function(a, b) return a.rank < b.rank end)
  return list
end

--- One sample from the replies to `stats`, `stats backends`, `stats switches`,
-- `stats pools`, `stats hotkeys` and `stats routes`.
-- @tparam table r { stats =, backends =, switches =, pools =, hotkeys =, routes = }: each
-- a parse_stats table, or nil when that command was refused
-- @treturn table the sample (source "stats"); time is left to the caller
function M.from_stats(r)
  local st = r.stats or {}
  local s = { source = "stats", latency_kind = "backend" }
  s.version = st.version
  s.uptime = num(st.uptime)
  s.threads = num(st.threads)
  s.pid = num(st.pid)
  s.conns = num(st.curr_connections)
  s.conns_total = num(st.total_connections)
  s.hits, s.misses = num(st.get_hits), num(st.get_misses)
  local u, sy = num(st.rusage_user), num(st.rusage_system)
  if u and sy then s.cpu = u + sy end
  s.commands = {}
  for _, c in ipairs(STATS_COMMANDS) do
    local n, seen = 0, false
    for _, name in ipairs(c[2]) do
      local v = num(st[name])
      if v then n, seen = n + v, true end
    end
    if seen then s.commands[c[1]] = n end
  end
  s.totals = {
    { "get", num(st.cmd_get) }, { "hits", s.hits }, { "misses", s.misses },
    { "set", num(st.cmd_set) }, { "conns", s.conns_total },
  }

  local pools = r.pools or {}
  s.latency = stats_latency(pools)
  local pools_of = stats_pools_of(pools)
  s.backends = {}
  for _, b in ipairs(group(r.backends or {}, "backend")) do
    s.backends[#s.backends + 1] = {
      id = b.id, server = b.id, pool = table.concat(pools_of[b.id] or {}, ","),
      state = b.state or "?", requests = num(b.requests),
      errors = (num(b.errors) or 0) + (num(b.timeouts) or 0),
      inflight = num(b.inflight),
    }
  end

  s.switches = {}
  for _, w in ipairs(group(r.switches or {}, "switch")) do
    s.switches[#s.switches + 1] = { name = w.id, percent = num(w.percent), on = num(w.on),
                                    off = num(w.off) }
  end

  if r.hotkeys then
    s.hotkeys = stats_hotkeys(r.hotkeys)
  else
    s.hotkeys_na = "this gateway has no `stats hotkeys`"
  end

  if r.routes then
    s.routes = {}
    for _, x in ipairs(group(r.routes, "route")) do
      s.routes[#s.routes + 1] = { name = x.id, kind = x.kind, requests = num(x.requests),
                                  fallbacks = num(x.fallbacks), failed = num(x.failed) }
    end
  end
  return s
end

-----------------------------------------------------------------------------------------
-- The metrics source: Prometheus text exposition format 0.0.4

local function parse_value(v)
  if v == nil then return nil end
  local l = v:lower()
  if l == "nan" then return 0 / 0 end
  if l == "+inf" or l == "inf" then return INF end
  if l == "-inf" then return -INF end
  return tonumber(v)
end
M.parse_value = parse_value

local UNESCAPE = { ["\\"] = "\\", ['"'] = '"', n = "\n" }

-- The label set at position i of line (just after "{"). Returns labels, position after
-- "}", or nil when malformed.
local function parse_labels(line, i)
  local labels = {}
  while true do
    i = line:find("[^ \t]", i) or #line + 1
    if line:sub(i, i) == "}" then return labels, i + 1 end
    local name, eq = line:match("^([%a_][%w_]*)[ \t]*=[ \t]*()", i)
    if not name or line:sub(eq, eq) ~= '"' then return nil end
    i = eq + 1
    local parts = {}
    while true do
      local c = line:sub(i, i)
      if c == "" then return nil end
      if c == '"' then break end
      if c == "\\" then
        local e = line:sub(i + 1, i + 1)
        parts[#parts + 1] = UNESCAPE[e] or ("\\" .. e)
        i = i + 2
      else
        local j = line:find('["\\]', i) or #line + 1
        parts[#parts + 1] = line:sub(i, j - 1)
        i = j
      end
    end
    labels[name] = table.concat(parts)
    i = line:find("[^ \t]", i + 1) or #line + 1
    local c = line:sub(i, i)
    if c == "," then
      i = i + 1
    elseif c ~= "}" then
      return nil
    end
  end
end

--- Parse a Prometheus text exposition (format 0.0.4).
-- @treturn table list of samples { name, labels = { … }, value }, in order
-- @treturn number lines that could not be parsed (skipped)
-- @treturn table metric family name -> type, from the # TYPE lines
function M.parse_prometheus(text)
  local out, bad, types = {}, 0, {}
  for line in (text or ""):gmatch("[^\n]+") do
    line = line:gsub("\r$", "")
    if line:match("^%s*#") then
      local name, typ = line:match("^%s*#%s+TYPE%s+(%S+)%s+(%S+)")
      if name then types[name] = typ end
    elseif line:match("%S") then
      local name, i = line:match("^%s*([%a_:][%w_:]*)()")
      local labels = {}
      if name then
        local j = line:match("^[ \t]*(){", i) -- blanks may separate tokens
        if j then labels, i = parse_labels(line, j + 1) end
      end
      local v = labels and i and line:match("^[ \t]+(%S+)", i)
      local value = parse_value(v)
      if name and value then
        out[#out + 1] = { name = name, labels = labels, value = value }
      else
        bad = bad + 1
      end
    end
  end
  return out, bad, types
end

--- Split a raw HTTP/1.x response: status code, headers (lower-case names), body (chunked
-- transfer coding undone, cut to Content-Length). nil and a message when malformed.
function M.parse_http(raw)
  local head_end = raw:find("\r\n\r\n", 1, true)
  local sep = 4
  if not head_end then
    head_end, sep = raw:find("\n\n", 1, true), 2
  end
  if not head_end then return nil, "incomplete HTTP response" end
  local head, body = raw:sub(1, head_end - 1), raw:sub(head_end + sep)
  local status = head:match("^HTTP/%d[%.%d]* (%d%d%d)")
  if not status then return nil, "not an HTTP response" end
  local headers = {}
  for name, value in head:gmatch("\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    local parts, i = {}, 1
    while true do
      local size, j = body:match("^(%x+)[^\r\n]*\r?\n()", i)
      if not size then return nil, "bad chunked body" end
      size = tonumber(size, 16)
      if size == 0 then break end
      parts[#parts + 1] = body:sub(j, j + size - 1)
      i = j + size
      i = body:match("^\r?\n()", i)
      if not i then return nil, "bad chunked body" end
    end
    body = table.concat(parts)
  elseif headers["content-length"] then
    local n = tonumber(headers["content-length"])
    if n and #body < n then return nil, "truncated HTTP body" end
    if n then body = body:sub(1, n) end
  end
  return tonumber(status), headers, body
end

-- Cumulative buckets {le, count} from a map le -> count, sorted, with equal bounds merged.
local function buckets_of(by_le)
  local h = {}
  for _, le in ipairs(sorted_keys(by_le)) do h[#h + 1] = { le = le, count = by_le[le] } end
  return h
end

--- One sample from a parsed exposition (parse_prometheus's list). now: the wall clock,
-- seconds, for the uptime (from process_start_time_seconds).
function M.from_metrics(samples, now)
  local s = { source = "metrics", latency_kind = "client", commands = {}, backends = {},
              switches = {} }
  local all_le, by_cmd = {}, {}
  local backends, switches, hot = {}, {}, {}
  local any_hist, any_hot = false, false
  local function backend(l)
    local id = (l.pool or "") .. "/" .. (l.server or "")
    local b = backends[id]
    if not b then
      b = { id = id, pool = l.pool or "", server = l.server or "", errors = 0 }
      backends[id] = b
      s.backends[#s.backends + 1] = b
    end
    return b
  end
  local routes = {}
  local function route(l)
    local x = routes[l.route]
    if not x then
      x = { name = l.route, kind = l.kind }
      routes[l.route] = x
      s.routes = s.routes or {}
      s.routes[#s.routes + 1] = x
    end
    return x
  end
  local function switch(name)
    local w = switches[name]
    if not w then
      w = { name = name }
      switches[name] = w
      s.switches[#s.switches + 1] = w
    end
    return w
  end
  for _, x in ipairs(samples) do
    local n, l, v = x.name, x.labels, x.value
    if n == "mintgate_commands_total" and l.command then
      s.commands[l.command] = (s.commands[l.command] or 0) + v
    elseif n == "mintgate_command_duration_seconds_bucket" and l.le then
      local le = parse_value(l.le)
      if le then
        any_hist = true
        all_le[le] = (all_le[le] or 0) + v
        local c = l.command or "?"
        by_cmd[c] = by_cmd[c] or {}
        by_cmd[c][le] = (by_cmd[c][le] or 0) + v
      end
    elseif n == "mintgate_get_hits_total" then
      s.hits = (s.hits or 0) + v
    elseif n == "mintgate_get_misses_total" then
      s.misses = (s.misses or 0) + v
    elseif n == "mintgate_connections" then
      s.conns = v
    elseif n == "mintgate_connections_total" then
      s.conns_total = v
    elseif n == "mintgate_backend_up" then
      local b = backend(l)
      b.state = l.state or (v >= 1 and "up" or "down")
    elseif n == "mintgate_backend_requests_total" then
      local b = backend(l)
      b.requests = (b.requests or 0) + v
    elseif n == "mintgate_backend_errors_total" then
      local b = backend(l)
      b.errors = b.errors + v
    elseif n == "mintgate_switch_percent" and l.switch then
      switch(l.switch).percent = v
    elseif n == "mintgate_switch_keys_total" and l.switch then
      local w = switch(l.switch)
      if l.side == "on" then
        w.on = (w.on or 0) + v
      elseif l.side == "off" then
        w.off = (w.off or 0) + v
      end
    elseif n == "mintgate_hotkey_requests_per_second" then
      any_hot = true
      hot[#hot + 1] = { rank = tonumber(l.rank) or (#hot + 1), key = l.key, pool = l.pool,
                        rate = v }
    elseif n == "process_cpu_seconds_total" then
      s.cpu = v
    elseif n == "process_resident_memory_bytes" then
      s.rss = v
    elseif n == "process_start_time_seconds" and now then
      s.uptime = now - v
    elseif n == "mintgate_uptime_seconds" then
      s.uptime = v
    elseif n == "mintgate_threads" or n == "mintgate_workers" then
      s.threads = v
    elseif l.route and (n == "mintgate_route_requests_total" or n == "mintgate_route_fallbacks_total"
        or n == "mintgate_route_failed_total") then
      local r = route(l)
      local f = n:match("^mintgate_route_(%a+)_total$")
      r[f] = (r[f] or 0) + v
    end
  end
  for _, b in ipairs(s.backends) do b.state = b.state or "?" end
  if any_hist then
    s.latency = buckets_of(all_le)
    s.cmd_latency = {}
    for c, by_le in pairs(by_cmd) do s.cmd_latency[c] = buckets_of(by_le) end
  end
  if any_hot then
    table.sort(hot, function(a, b) return a.rank < b.rank end)
    s.hotkeys = hot
  else
    s.hotkeys_na = "no mintgate_hotkey_* series"
  end
  local total = 0
  for _, c in pairs(s.commands) do total = total + c end
  s.totals = {
    { "cmds", next(s.commands) and total or nil }, { "hits", s.hits }, { "misses", s.misses },
    { "conns", s.conns_total },
  }
  return s
end

-----------------------------------------------------------------------------------------
-- Rates and quantiles

--- The q-quantile of a cumulative histogram, as Prometheus' histogram_quantile computes
-- it: linear interpolation inside the bucket the rank falls in, the first bucket starting
-- at 0, a rank in the +Inf bucket answering the highest finite bound.
-- @tparam number q 0..1
-- @tparam table buckets list of { le = upper bound, count = cumulative count }
-- @treturn number the quantile, NaN when there is nothing to say (no observations, no
-- +Inf bucket, fewer than two buckets)
function M.histogram_quantile(q, buckets)
  if q < 0 then return -INF end
  if q > 1 then return INF end
  local b = {}
  for _, x in ipairs(buckets or {}) do b[#b + 1] = { le = x.le, count = x.count } end
  table.sort(b, function(x, y) return x.le < y.le end)
  -- merge equal bounds, and make counts monotonic (scrapes are not atomic)
  local m = {}
  for _, x in ipairs(b) do
    if #m > 0 and m[#m].le == x.le then
      m[#m].count = m[#m].count + x.count
    else
      m[#m + 1] = x
    end
  end
  for i = 2, #m do m[i].count = max(m[i].count, m[i - 1].count) end
  if #m < 2 or m[#m].le ~= INF then return 0 / 0 end
  local total = m[#m].count
  if total == 0 then return 0 / 0 end
  local rank = q * total
  local i = 1
  while m[i].count < rank do i = i + 1 end
  if i == #m then return m[#m - 1].le end
  if i == 1 and m[1].le <= 0 then return m[1].le end
  local lo, hi, count = 0, m[i].le, m[i].count
  if i > 1 then
    lo = m[i - 1].le
    count = count - m[i - 1].count
    rank = rank - m[i - 1].count
  end
  if count <= 0 then return hi end
  return lo + (hi - lo) * (rank / count)
end

-- cur - prev for a counter; a counter that went down was reset (the gateway restarted):
-- then it counted cur since (Prometheus' rate() does the same).
local function delta(prev, cur)
  if cur == nil then return nil end
  if prev == nil then return nil end
  if cur < prev then return cur end
  return cur - prev
end
M.delta = delta

-- Bucket-wise difference of two cumulative histograms (same bounds by le).
local function hist_delta(prev, cur)
  if not prev or not cur then return nil end
  local p = {}
  for _, x in ipairs(prev) do p[x.le] = x.count end
  local out = {}
  for _, x in ipairs(cur) do
    local d = delta(p[x.le] or 0, x.count)
    out[#out + 1] = { le = x.le, count = d }
  end
  -- a reset bucket makes the difference non-cumulative: fall back to the current one
  for i = 2, #out do
    if out[i].count < out[i - 1].count then return cur end
  end
  return out
end

local function by_id(list, key)
  local t = {}
  for _, x in ipairs(list or {}) do t[x[key]] = x end
  return t
end

--- What a frame shows: two samples turned into rates over the time between them.
-- @tparam table|nil prev the previous sample (nil: no rates yet)
-- @tparam table cur the current sample (nil when the last fetch failed: then prev is shown)
-- @treturn table the view: endpoint fields are added by the caller (endpoint, error, clock)
function M.view(prev, cur)
  local s = cur or prev
  local v = { sample = s, commands = {}, backends = {}, switches = {} }
  if not s then return v end
  local dt
  if prev and cur and prev.source == cur.source and cur.time and prev.time then
    dt = cur.time - prev.time
    if dt <= 0 then dt = nil end
  end
  v.dt = dt
  local function rate(a, b)
    local d = dt and delta(a, b)
    return d and d / dt
  end
  local p = dt and prev or {}

  -- commands: rates, busiest first; totals since start
  local total, any = 0, false
  for name, n in pairs(s.commands or {}) do
    local r = rate((p.commands or {})[name], n)
    if r then total, any = total + r, true end
    local p99
    if dt and s.cmd_latency and p.cmd_latency then
      p99 = M.histogram_quantile(0.99, hist_delta(p.cmd_latency[name], s.cmd_latency[name]))
    end
    v.commands[#v.commands + 1] = { name = name, rate = r, total = n, p99 = p99 }
  end
  table.sort(v.commands, function(a, b)
    local ra, rb = a.rate or -1, b.rate or -1
    if ra ~= rb then return ra > rb end
    if a.total ~= b.total then return a.total > b.total end
    return a.name < b.name
  end)
  v.ops = any and total or nil

  local dh, dm = rate(p.hits, s.hits), rate(p.misses, s.misses)
  if dh and dm and dh + dm > 0 then v.hit_ratio = dh / (dh + dm) end
  if s.hits and s.misses and s.hits + s.misses > 0 then
    v.hit_ratio_all = s.hits / (s.hits + s.misses)
  end
  if dt then
    local q = M.histogram_quantile(0.99, hist_delta(p.latency, s.latency))
    if q == q then v.p99 = q end
  end
  v.conns_rate = rate(p.conns_total, s.conns_total)
  local cpu = rate(p.cpu, s.cpu)
  v.cpu = cpu

  local pb = by_id(p.backends, "id")
  for _, b in ipairs(s.backends or {}) do
    local o = pb[b.id] or {}
    v.backends[#v.backends + 1] = {
      server = b.server, pool = b.pool, state = b.state,
      req_rate = rate(o.requests, b.requests), err_rate = rate(o.errors, b.errors),
      inflight = b.inflight,
    }
  end

  local ps = by_id(p.switches, "name")
  for _, w in ipairs(s.switches or {}) do
    local o = ps[w.name] or {}
    local on, off = rate(o.on, w.on), rate(o.off, w.off)
    local share
    if on and off and on + off > 0 then share = on / (on + off) end
    v.switches[#v.switches + 1] = { name = w.name, percent = w.percent, on_rate = on,
                                    off_rate = off, share = share }
  end

  if s.routes then
    v.routes = {}
    local pr = by_id(p.routes, "name")
    for _, x in ipairs(s.routes) do
      local o = pr[x.name] or {}
      v.routes[#v.routes + 1] = {
        name = x.name, kind = x.kind, req_rate = rate(o.requests, x.requests),
        fallback_rate = rate(o.fallbacks, x.fallbacks), failed_rate = rate(o.failed, x.failed),
      }
    end
  end
  return v
end

-----------------------------------------------------------------------------------------
-- Rendering

-- "a b   c" with each cell padded: cells is a list of { text, width, "r" for right }.
local function row(cells)
  local out = {}
  for i, c in ipairs(cells) do
    local w = c[2]
    out[i] = (c[3] == "r") and rpad(c[1], w) or pad(c[1], w)
  end
  return (table.concat(out, " "):gsub("%s+$", ""))
end

-- Words joined with two spaces while they fit in width (the rest dropped).
local function words(list, width)
  local line = ""
  for _, w in ipairs(list) do
    local next_line = line == "" and w or (line .. "  " .. w)
    if #next_line > width then break end
    line = next_line
  end
  return line
end

--- Render one frame.
-- @tparam table v a view (M.view) plus: endpoint (text), source, error (the last fetch's
-- error, if any), clock ("12:00:01"), interval (seconds)
-- @tparam[opt] table opts width (columns, default 80), height (lines; nil: no limit),
-- hotkeys (rows, default 10)
-- @treturn string the frame: lines joined by "\n", none longer than width
function M.render(v, opts)
  opts = opts or {}
  local width = opts.width or 80
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  local s = v.sample

  -- header: endpoint and source, uptime, threads, version, clock
  local head = { "mintgate-top " .. M.escape(v.endpoint or "?") ..
                 (v.source and (" (" .. v.source .. ")") or "") }
  if s then
    head[#head + 1] = "up " .. M.fmt_uptime(s.uptime)
    if s.threads then head[#head + 1] = "threads " .. fmt("%d", s.threads) end
  end
  local h = words(head, width - 10)
  local clock = v.clock or ""
  add(h .. string.rep(" ", max(1, width - #h - #clock)) .. clock)
  if v.error then add("! " .. M.escape(v.error)) end
  if not s then
    add("waiting for the first sample...")
    return M.finish(lines, width, opts.height)
  end

  -- the summary line
  local p99 = v.p99 and fmt_ms(v.p99) or "-"
  if s.latency_kind == "backend" then p99 = p99 .. " (backend)" end
  add(words({
    "ops/s " .. fmt_num(v.ops),
    "hit " .. fmt_pct(v.hit_ratio),
    "p99 " .. p99,
    "conns " .. M.fmt_int(s.conns) .. " (+" .. fmt_num(v.conns_rate) .. "/s)",
    "cpu " .. (v.cpu and fmt("%.0f%%", v.cpu * 100) or "-"),
    s.rss and ("rss " .. M.fmt_bytes(s.rss)) or nil,
  }, width))

  -- commands by rate, busiest first
  local cmds = {}
  for _, c in ipairs(v.commands) do
    if c.total ~= 0 then -- never used since start: not worth the room
      local w = c.name .. " " .. fmt_num(c.rate)
      if c.p99 and c.p99 == c.p99 then w = w .. " (p99 " .. fmt_ms(c.p99) .. ")" end
      cmds[#cmds + 1] = w
    end
  end
  add(fit("per s: " .. (#cmds > 0 and words(cmds, width - 7) or "-"), width))

  -- totals since start: exact counters, as `stats` or the metrics show them
  local tot = {}
  for _, t in ipairs(s.totals or {}) do
    if t[2] then tot[#tot + 1] = t[1] .. " " .. fmt("%.0f", t[2]) end
  end
  if v.hit_ratio_all then tot[#tot + 1] = "hit " .. fmt_pct(v.hit_ratio_all) end
  add("total: " .. words(tot, width - 7))

  -- backends
  add("")
  add(row { { "BACKEND", 26 }, { "POOL", 16 }, { "STATE", 10 }, { "REQ/S", 9, "r" },
            { "ERR/S", 9, "r" } })
  if #v.backends == 0 then add("  (none)") end
  for _, b in ipairs(v.backends) do
    add(row { { M.escape(b.server or "?"), 26 }, { M.escape(b.pool or ""), 16 },
              { M.escape(b.state or "?"), 10 }, { fmt_num(b.req_rate), 9, "r" },
              { fmt_num(b.err_rate), 9, "r" } })
  end

  -- hot keys
  add("")
  local hk = s.hotkeys
  if not hk then
    add(row { { "HOT KEY", 8 }, { "n/a (" .. (s.hotkeys_na or "not available") .. ")", width - 9 } })
  else
    add(row { { "#", 3, "r" }, { "HOT KEY", 44 }, { "EST REQ/S", 10, "r" }, { "POOL", 18 } })
    if #hk == 0 then add("  (none)") end
    for i, k in ipairs(hk) do
      if i > (opts.hotkeys or 10) then break end
      add(row { { fmt("%d", k.rank or i), 3, "r" }, { k.key and M.escape(k.key) or "(key hidden)", 44 },
                { fmt_num(k.rate), 10, "r" }, { M.escape(k.pool or ""), 18 } })
    end
  end

  -- switches
  add("")
  add(row { { "SWITCH", 30 }, { "PERCENT", 9, "r" }, { "ON/S", 9, "r" }, { "OFF/S", 9, "r" },
            { "ON SHARE", 9, "r" } })
  if #v.switches == 0 then add("  (none)") end
  for _, w in ipairs(v.switches) do
    add(row { { M.escape(w.name), 30 },
              { w.percent and fmt("%.3f%%", w.percent) or "-", 9, "r" },
              { fmt_num(w.on_rate), 9, "r" }, { fmt_num(w.off_rate), 9, "r" },
              { fmt_pct(w.share), 9, "r" } })
  end

  -- failover, warm-up, shadow and replicated routes
  if v.routes and #v.routes > 0 then
    add("")
    add(row { { "ROUTE", 26 }, { "KIND", 10 }, { "REQ/S", 9, "r" }, { "FALLBACK/S", 10, "r" },
              { "FAILED/S", 9, "r" } })
    for _, x in ipairs(v.routes) do
      add(row { { M.escape(x.name), 26 }, { M.escape(x.kind or "?"), 10 },
                { fmt_num(x.req_rate), 9, "r" }, { fmt_num(x.fallback_rate), 10, "r" },
                { fmt_num(x.failed_rate), 9, "r" } })
    end
  end
  return M.finish(lines, width, opts.height)
end

--- Lines joined into a frame: each cut to width; with a height, cut to that many lines
-- (the last one saying how many were left out).
function M.finish(lines, width, height)
  local out = {}
  for i, l in ipairs(lines) do out[i] = fit(l, width) end
  if height and height > 0 and #out > height then
    local left = #out - height + 1
    for i = #out, height, -1 do out[i] = nil end
    out[height] = fit(fmt("(%d more lines: make the terminal taller)", left), width)
  end
  return table.concat(out, "\n")
end

return M
