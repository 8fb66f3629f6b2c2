--- mintgate.lab: the pure part of mintgate-lab (tools/mintgate-lab.lua), which runs a
-- simulated application against real gateways and real memcached servers and measures
-- what a staleness policy does: database load, stale reads, client latency.
--
-- Here: the command line, the workload (Zipf key choice, writes, a hot-key burst), the
-- simulated database (a version and a write time per version, per key), the memcached
-- reply parsers the clients use, the statistics collector (per-second series, stale ages,
-- fill episodes, percentiles) and the outputs (markdown table, JSON, gnuplot input). No
-- I/O, no clock: every function takes the time it needs, so that busted tests all of it.
local M = {}

local floor, ceil, max, min = math.floor, math.ceil, math.max, math.min
local fmt = string.format

-----------------------------------------------------------------------------------------
-- Command line

M.USAGE = [[
usage: mintgate-lab [options] POLICY.lua [POLICY2.lua ...]
  Runs each POLICY (a mintgate config script; the lab declares pool "main" over its own
  memcached servers and routes to it when the script declares no pool; LAB_SERVERS holds
  their addresses) on fresh memcached servers and gateways, drives them with a simulated
  application and database, and reports per policy: hit ratio, database reads per second,
  regenerations per fill, stale reads and their age, get latency, errors.

  --servers N        memcached servers per policy (default 2)
  --gateways N       gateways per policy, ./mintgate -t 1 each (default 2)
  --duration S       seconds of load per policy (default 10)
  --clients N        simulated application clients, spread over the gateways (default 32)
  --rate OPS         total operations per second the clients aim at (default 4000;
                     0: each client starts its next operation at once)
  --workload W       the built-in model from the options below (default), a preset
                     twitter:clusterN (Twitter's cache fleet, OSDI 2020; --workload list
                     shows them), or FILE.lua (a Lua workload file)
  --trace FILE       replay a trace instead: every operation as recorded, at its own
                     pace (--speed X: X times faster)
  --trace-format F   mintgate (a gateway's mg.trace / admin trace) | twitter (the public
                     cache-trace CSV) (default: twitter for *.csv, else mintgate)
  --speed X          replay speed (default 1)
  --record-trace F   the gateways record what the lab sends (mg.trace, every key) and the
                     lab merges their traces into F (with several policies: F.<policy>)
  --ttl-cap S        a preset's TTLs (minutes to days in production) capped at S (30)
  --keys N           distinct keys (default 1000; a preset's default: 10000)
  --zipf S           Zipf exponent of key popularity (default 0.9; 0: uniform)
  --write-ratio R    share of operations that update the database (default 0.05)
  --read-ratio R     share of reads; the rest are writes (default 1 - write ratio - incr)
  --incr-ratio R     share of counter increments (incr on counter keys) (default 0)
  --on-write W       what a writer then does to the cache: delete | set | none
                     (default delete)
  --ttl S            TTL of values set after a regeneration (default 5)
  --regen-ms MS      time a regeneration takes after its database read (default 20)
  --value-size N     bytes per value (default 100)
  --timeout S        a request unanswered this long is an error (default 2)
  --burst            hot-key burst: from 1/3 to 2/3 of the run one key gets half the reads
  --mass-expiry      every key is set with the same TTL just before the run
  --seed N           random seed (default 1)
  --json FILE        write the results (with per-second series) as JSON
  --png FILE         plot database reads/s and stale reads/s per policy (gnuplot)
  --gateway BIN      the gateway binary (default: MINTGATE_BIN, else ./mintgate next to
                     the lab)
  -v, --verbose      say what is started and stopped (with pids) on stderr
  -h, --help         this text
exit status: 0, 1 (a run failed: a process did not start, a script error), 2 (bad usage)
]]

--- The defaults of every option.
M.DEFAULTS = {
  servers = 2, gateways = 2, duration = 10, clients = 32, rate = 4000, keys = 1000,
  zipf = 0.9, write_ratio = 0.05, on_write = "delete", ttl = 5, regen_ms = 20,
  value_size = 100, timeout = 2, burst = false, mass_expiry = false, seed = 1,
  verbose = false, incr_ratio = 0, speed = 1, ttl_cap = 30,
}

-- flag -> { option name, kind, lower bound, integer? }
local NUMERIC = {
  ["--servers"] = { "servers", 1, true }, ["--gateways"] = { "gateways", 1, true },
  ["--duration"] = { "duration", 0.1 }, ["--clients"] = { "clients", 1, true },
  ["--rate"] = { "rate", 0 }, ["--keys"] = { "keys", 1, true }, ["--zipf"] = { "zipf", 0 },
  ["--write-ratio"] = { "write_ratio", 0 }, ["--ttl"] = { "ttl", 1, true },
  ["--regen-ms"] = { "regen_ms", 0 }, ["--value-size"] = { "value_size", 16, true },
  ["--timeout"] = { "timeout", 0.01 }, ["--seed"] = { "seed", 0, true },
  ["--read-ratio"] = { "read_ratio", 0 }, ["--incr-ratio"] = { "incr_ratio", 0 },
  ["--speed"] = { "speed", 0.001 }, ["--ttl-cap"] = { "ttl_cap", 1, true },
}
local STRING = { ["--json"] = "json", ["--png"] = "png", ["--gateway"] = "gateway",
                 ["--workload"] = "workload", ["--trace"] = "trace",
                 ["--record-trace"] = "record_trace" }
local TRACE_FORMATS = { mintgate = true, twitter = true }
local FLAG = { ["--burst"] = "burst", ["--mass-expiry"] = "mass_expiry", ["--verbose"] = "verbose",
               ["-v"] = "verbose" }
local ON_WRITE = { delete = true, set = true, none = true }

--- Parse the command line. Returns opts (every option, defaults filled in, opts.policies
-- the script paths), or nil and a message for bad usage, or "help".
-- @tparam {string,...} argv
function M.parse_args(argv)
  local o = {}
  for k, v in pairs(M.DEFAULTS) do o[k] = v end
  o.policies = {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local flag, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    flag = flag or a
    local function value()
      if inline then return inline end
      i = i + 1
      if argv[i] == nil then return nil end
      return argv[i]
    end
    if a == "-h" or a == "--help" then
      return "help"
    elseif NUMERIC[flag] then
      local spec = NUMERIC[flag]
      local v = tonumber(value())
      if not v or v ~= v or v == math.huge then return nil, flag .. " needs a number" end
      if v < spec[2] then return nil, flag .. " must be at least " .. spec[2] end
      if spec[3] and v ~= floor(v) then return nil, flag .. " needs a whole number" end
      o[spec[1]] = v
      o[spec[1] .. "_given"] = true
    elseif STRING[flag] then
      local v = value()
      if not v or v == "" then return nil, flag .. " needs a value" end
      o[STRING[flag]] = v
    elseif flag == "--trace-format" then
      local v = value()
      if not TRACE_FORMATS[v or ""] then return nil, "--trace-format must be mintgate or twitter" end
      o.trace_format = v
    elseif flag == "--on-write" then
      local v = value()
      if not ON_WRITE[v or ""] then return nil, "--on-write must be delete, set or none" end
      o.on_write = v
    elseif FLAG[a] then
      o[FLAG[a]] = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      return nil, "unknown option " .. a
    else
      o.policies[#o.policies + 1] = a
    end
    i = i + 1
  end
  if o.workload == "list" then return "list" end
  if o.read_ratio_given then
    if o.write_ratio_given then return nil, "--read-ratio and --write-ratio: give one" end
    o.write_ratio = 1 - o.read_ratio - o.incr_ratio
    if o.write_ratio < -1e-9 then return nil, "--read-ratio and --incr-ratio add up to over 1" end
    o.write_ratio = max(0, o.write_ratio)
  end
  if o.write_ratio + o.incr_ratio > 1 + 1e-9 then
    return nil, "--write-ratio and --incr-ratio add up to over 1"
  end
  if o.trace and o.workload then return nil, "--trace and --workload: give one" end
  if #o.policies == 0 then return nil, "no POLICY.lua given" end
  o.read_ratio = 1 - o.write_ratio - o.incr_ratio
  return o
end

--- A policy's display name: its file name without directory and ".lua".
function M.policy_name(path)
  return (path:match("([^/]*)$"):gsub("%.lua$", ""))
end

-----------------------------------------------------------------------------------------
-- The wrapper script each gateway runs

--- The config script a lab gateway runs for the policy at `policy_path`: LAB_SERVERS
-- from MINTGATE_LAB_SERVERS ("host:port,..."), the policy itself, then — when the policy
-- declared no pool — pool "main" over LAB_SERVERS, and the default route to it unless
-- the policy routed already.
-- @tparam string policy_path
-- @treturn string Lua source
function M.wrapper_script(policy_path)
  return table.concat({
    "-- generated by mintgate-lab: the lab's servers, then the policy under test",
    "local mg = require \"mintgate\"",
    "LAB_SERVERS = {}",
    "for s in (os.getenv(\"MINTGATE_LAB_SERVERS\") or \"\"):gmatch(\"[^,]+\") do",
    "  LAB_SERVERS[#LAB_SERVERS + 1] = s",
    "end",
    fmt("dofile(%q)", policy_path),
    "if os.getenv(\"MINTGATE_LAB_TRACE\") then -- --record-trace: every key",
    "  mg.trace { path = os.getenv(\"MINTGATE_LAB_TRACE\"), sample = 1 }",
    "end",
    "if #mg._state.pools == 0 then",
    "  local main = mg.pool { name = \"main\", servers = LAB_SERVERS }",
    "  if mg._state.route == nil and mg._state.route_fn == nil then",
    "    mg.route { default = main }",
    "  end",
    "end",
    "",
  }, "\n")
end

--- The gateways' traces (files at `paths`, read with read(path) -> text or nil) merged
-- into one: the first file's header line, then every data line ordered by its time.
function M.merge_traces(paths, read)
  local header, lines = nil, {}
  for _, path in ipairs(paths) do
    for l in (read(path) or ""):gmatch("[^\n]+") do
      if l:sub(1, 1) == "#" then
        header = header or l
      else
        lines[#lines + 1] = { tonumber(l:match("^(%S+)")) or 0, #lines, l }
      end
    end
  end
  table.sort(lines, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[2] < b[2]
  end)
  local out = { header or "# mintgate-trace v1" }
  for i, e in ipairs(lines) do out[i + 1] = e[3] end
  return table.concat(out, "\n") .. "\n"
end

-----------------------------------------------------------------------------------------
-- Workload

--- The cumulative distribution of Zipf(s) over ranks 1..n (rank i has weight 1/i^s;
-- s = 0 is uniform).
-- @treturn {number,...} cdf, cdf[n] == 1
function M.zipf_cdf(n, s)
  local cdf, sum = {}, 0
  for i = 1, n do
    sum = sum + 1 / i ^ s
    cdf[i] = sum
  end
  for i = 1, n do cdf[i] = cdf[i] / sum end
  cdf[n] = 1
  return cdf
end

--- The rank for a uniform u in [0, 1): the smallest i with cdf[i] > u (binary search).
function M.zipf_pick(cdf, u)
  local lo, hi = 1, #cdf
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    if cdf[mid] > u then hi = mid else lo = mid + 1 end
  end
  return lo
end

--- The backend-facing key of rank i.
function M.key_name(i) return "lab:" .. i end

--- A workload: `w:next_op(t, rand)` picks the next operation at t seconds into the run,
-- drawing uniform numbers from rand(). Returns "read" or "write", and the key's rank.
-- With opts.burst, from duration/3 to 2*duration/3 half of the reads go to one key
-- (the 10th most popular: hot, but not the hottest already).
function M.new_workload(opts)
  local w = { cdf = M.zipf_cdf(opts.keys, opts.zipf), write_ratio = opts.write_ratio }
  if opts.burst then
    w.burst_key = min(10, opts.keys)
    w.burst_from, w.burst_to = opts.duration / 3, 2 * opts.duration / 3
  end
  function w.next_op(self, t, rand)
    if rand() < self.write_ratio then return "write", M.zipf_pick(self.cdf, rand()) end
    if self.burst_key and t >= self.burst_from and t < self.burst_to and rand() < 0.5 then
      return "read", self.burst_key
    end
    return "read", M.zipf_pick(self.cdf, rand())
  end
  return w
end

-----------------------------------------------------------------------------------------
-- The simulated database: per key a version (1 at the start) and when each version was
-- written.

--- A database where every key (any rank, created on first use: a trace's keys are not
-- known up front) is at version 1, written at time t. n is kept for the callers that
-- know their key count; it changes nothing.
function M.new_db(n, t) -- luacheck: ignore n
  local db = { t0 = t }
  db.version = setmetatable({}, { __index = function() return 1 end })
  db.times = setmetatable({}, { __index = function(times, k)
    local v = { t }
    rawset(times, k, v)
    return v
  end })
  return db
end

--- Write key k at time t; returns its new version.
function M.db_write(db, k, t)
  local v = db.version[k] + 1
  db.version[k] = v
  db.times[k][v] = t
  return v
end

--- How far a value of version v of key k, read at time t, is behind the database as it
-- was at version `current` (the version when the read was sent): nil when v is current,
-- else the seconds since the write that replaced v.
function M.stale_age(db, k, v, current, t)
  if v >= current then return nil end
  local replaced = db.times[k][v + 1]
  return replaced and max(0, t - replaced) or 0
end

--- A value that carries version v, padded with "x" to `size` bytes.
function M.encode_value(v, size)
  local head = "v" .. v .. ":"
  return head .. string.rep("x", max(0, size - #head))
end

--- The version a value carries, or nil when it is not a lab value.
function M.decode_version(s)
  return tonumber(s:match("^v(%d+):"))
end

-----------------------------------------------------------------------------------------
-- Replies

local function is_error(line)
  return line == "ERROR" or line:match("^SERVER_ERROR") or line:match("^CLIENT_ERROR")
end

--- Parse one reply to `get` from the front of buf. Returns the result and the rest of
-- buf, or nil when buf does not hold the whole reply yet. The result is
-- { hit = true, value = s }, { hit = false } or { error = line }.
function M.parse_get_reply(buf)
  local line, rest = buf:match("^(.-)\r\n(.*)$")
  if not line then return nil end
  if line == "END" then return { hit = false }, rest end
  local n = line:match("^VALUE %S+ %d+ (%d+)")
  if not n then
    if is_error(line) then return { error = line }, rest end
    return { error = "unexpected reply: " .. line:sub(1, 80) }, ""
  end
  n = tonumber(n)
  if #rest < n + 7 then return nil end
  local value, tail = rest:sub(1, n), rest:sub(n + 1, n + 7)
  if tail ~= "\r\nEND\r\n" then
    return { error = "unexpected reply after a value" }, ""
  end
  return { hit = true, value = value }, rest:sub(n + 8)
end

--- Parse one single-line reply (to set or delete) from the front of buf: the result
-- { line = s } or { error = line }, and the rest; nil when no whole line is there yet.
-- `ok` lists the lines that mean success (others are errors).
function M.parse_line_reply(buf, ok)
  local line, rest = buf:match("^(.-)\r\n(.*)$")
  if not line then return nil end
  if ok[line] then return { line = line }, rest end
  return { error = line }, rest
end

-----------------------------------------------------------------------------------------
-- Statistics

--- The p-quantile (0 < p <= 1) of a list of numbers, nearest rank; nil when empty. The
-- list is sorted in place.
function M.percentile(list, p)
  local n = #list
  if n == 0 then return nil end
  if not list.sorted then
    table.sort(list)
    list.sorted = true
  end
  return list[max(1, min(n, ceil(p * n)))]
end

local Stats = {}
Stats.__index = Stats

--- A collector for one policy's run. Times given to its methods are seconds since the
-- start of the run; events before 0 (a prefill) are not counted.
function M.new_stats()
  return setmetatable({
    reads = 0, hits = 0, misses = 0, writes = 0, errors = 0, db_reads = 0,
    fills = 0, stale = 0, error_kinds = setmetatable({}, M.OBJECT),
    sent = setmetatable({}, M.OBJECT), -- command -> how many the clients sent
    late = 0, -- replayed operations sent over 100 ms after their time (the lab lagged)
    latency = {}, stale_ages = {},
    per_s = { reads = {}, db_reads = {}, stale = {} },
    open = {}, -- key -> true while a fill episode of it is open
  }, Stats)
end

local function bump(series, t)
  local s = floor(t) + 1
  series[s] = (series[s] or 0) + 1
end

--- A get answered after `latency` seconds: outcome "hit" or "miss".
function Stats:get(t, latency, outcome)
  self.reads = self.reads + 1
  if outcome == "hit" then self.hits = self.hits + 1 else self.misses = self.misses + 1 end
  self.latency[#self.latency + 1] = latency
  bump(self.per_s.reads, t)
end

--- A hit whose value was `age` seconds behind the database.
function Stats:stale_read(t, age)
  self.stale = self.stale + 1
  self.stale_ages[#self.stale_ages + 1] = age
  bump(self.per_s.stale, t)
end

--- A regeneration's database read of key k. A fill episode of k starts at the first such
-- read after the last completed set of k (or the start) and ends at the next completed
-- set of k: regenerations per fill = database reads / episodes (1 = no herd).
function Stats:db_read(t, k)
  self.db_reads = self.db_reads + 1
  bump(self.per_s.db_reads, t)
  if not self.open[k] then
    self.open[k] = true
    self.fills = self.fills + 1
  end
end

--- A set of key k was stored (a regeneration's, or a writer's): its episode ends.
function Stats:filled(k)
  self.open[k] = nil
end

--- A database write.
function Stats:write()
  self.writes = self.writes + 1
end

--- A command (get, set, delete, incr, touch, add) sent to a gateway.
function Stats:sent_cmd(cmd)
  self.sent[cmd] = (self.sent[cmd] or 0) + 1
end

--- A request that failed: an error reply, a timeout, a closed connection.
function Stats:error(what)
  self.errors = self.errors + 1
  local kind = tostring(what):match("^(%S+)") or "?"
  self.error_kinds[kind] = (self.error_kinds[kind] or 0) + 1
end

-- The first n seconds of a per-second series; events after them (a reply read just after
-- the run's end) go into the last second, so the series adds up to the totals.
local function series(t, n)
  local out = {}
  for i = 1, n do out[i] = t[i] or 0 end
  for i, v in pairs(t) do
    if i > n then out[n] = out[n] + v end
  end
  return out
end

local function round(x, digits)
  if x == nil then return nil end
  local m = 10 ^ (digits or 3)
  return floor(x * m + 0.5) / m
end

--- The result of a run of `duration` seconds: the numbers the table, the JSON and the
-- plot show. Latencies in ms, ages in seconds.
function Stats:summary(name, duration)
  local secs = max(1, ceil(duration - 1e-9))
  local db = series(self.per_s.db_reads, secs)
  local worst = 0
  -- the worst whole second (a last partial second would understate it; it is in the mean)
  for i = 1, max(1, floor(duration)) do worst = max(worst, db[i]) end
  local ms = function(p)
    local v = M.percentile(self.latency, p)
    return v and round(v * 1000, 3)
  end
  return {
    policy = name, duration = duration,
    reads = self.reads, writes = self.writes, hits = self.hits, misses = self.misses,
    hit_ratio = self.reads > 0 and round(self.hits / self.reads, 4) or nil,
    db_reads = self.db_reads, db_reads_per_s = round(self.db_reads / duration, 2),
    db_reads_worst_s = worst, fills = self.fills,
    regens_per_fill = self.fills > 0 and round(self.db_reads / self.fills, 3) or nil,
    stale_reads = self.stale,
    stale_share = self.reads > 0 and round(self.stale / self.reads, 5) or nil,
    stale_age_p50 = round(M.percentile(self.stale_ages, 0.5), 3),
    stale_age_p99 = round(M.percentile(self.stale_ages, 0.99), 3),
    stale_age_max = round(M.percentile(self.stale_ages, 1), 3),
    latency_p50_ms = ms(0.5), latency_p99_ms = ms(0.99), latency_p999_ms = ms(0.999),
    errors = self.errors, error_kinds = self.error_kinds, commands = self.sent,
    late_ops = self.late,
    series = { db_reads = db, stale = series(self.per_s.stale, secs),
               reads = series(self.per_s.reads, secs) },
  }
end

-----------------------------------------------------------------------------------------
-- Outputs

local function cell(v, f)
  if v == nil then return "-" end
  return fmt(f or "%s", v)
end

--- The results (a list of summaries) as a markdown table, one row per policy.
function M.render_table(results)
  local out = {
    "| policy | hit ratio | DB reads/s (mean / worst s) | regens per fill | misses | stale reads " ..
    "| stale age s (p50 / p99 / max) | get ms (p50 / p99 / p99.9) | errors |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  }
  for _, r in ipairs(results) do
    out[#out + 1] = fmt("| %s | %s | %s / %s | %s | %s | %s (%s %%) | %s / %s / %s | %s / %s / %s | %s |",
      r.policy, cell(r.hit_ratio, "%.3f"), cell(r.db_reads_per_s, "%.1f"), cell(r.db_reads_worst_s),
      cell(r.regens_per_fill, "%.2f"), cell(r.misses), cell(r.stale_reads),
      cell(r.stale_share and r.stale_share * 100, "%.2f"),
      cell(r.stale_age_p50, "%.3f"), cell(r.stale_age_p99, "%.3f"), cell(r.stale_age_max, "%.3f"),
      cell(r.latency_p50_ms, "%.2f"), cell(r.latency_p99_ms, "%.2f"), cell(r.latency_p999_ms, "%.2f"),
      cell(r.errors))
  end
  return table.concat(out, "\n") .. "\n"
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    local map = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return map[c] or fmt("\\u%04x", c:byte())
  end) .. '"'
end

--- The metatable that makes an empty table encode as {} (else it is []).
M.OBJECT = {}

--- v (nil, booleans, numbers, strings, arrays and string-keyed tables) as JSON, object
-- keys sorted, numbers with 14 significant digits; NaN and infinities become null. An
-- empty table is [] unless its metatable is M.OBJECT. Raises on other types.
function M.to_json(v)
  local t = type(v)
  if v == nil then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if v == floor(v) and math.abs(v) < 2 ^ 53 then return fmt("%d", v) end
    return fmt("%.14g", v)
  end
  if t == "string" then return json_string(v) end
  if t ~= "table" then error("to_json: cannot encode a " .. t) end
  local n = #v
  if n > 0 or (next(v) == nil and getmetatable(v) ~= M.OBJECT) then
    local parts = {}
    for i = 1, n do parts[i] = M.to_json(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do
    if type(k) ~= "string" then error("to_json: object keys must be strings") end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = json_string(k) .. ":" .. M.to_json(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- gnuplot's input: one block per policy (blocks separated by two blank lines, so that
-- `index i` selects one), lines "second db_reads stale_reads".
function M.plot_data(results)
  local blocks = {}
  for _, r in ipairs(results) do
    local lines = { "# " .. r.policy }
    for i, d in ipairs(r.series.db_reads) do
      lines[#lines + 1] = fmt("%d %d %d", i - 1, d, r.series.stale[i] or 0)
    end
    blocks[#blocks + 1] = table.concat(lines, "\n")
  end
  return table.concat(blocks, "\n\n\n") .. "\n"
end

local function gp_string(s)
  return '"' .. tostring(s):gsub('[\\"]', "\\%0"):gsub("%c", " ") .. '"'
end

--- A gnuplot script drawing two panels (database reads per second, stale reads per
-- second), one line per policy, into png_path from data_path (M.plot_data's text).
function M.plot_script(results, data_path, png_path)
  local function plots(column)
    local p = {}
    for i, r in ipairs(results) do
      p[i] = fmt("%s index %d using 1:%d with linespoints title %s", gp_string(data_path), i - 1,
        column, gp_string(r.policy))
    end
    return "plot " .. table.concat(p, ", \\\n     ")
  end
  return table.concat({
    "set terminal pngcairo size 900,700 noenhanced", -- policy names as they are (a_b)
    "set output " .. gp_string(png_path),
    "set multiplot layout 2,1 title \"mintgate-lab\"",
    "set key outside right",
    "set grid",
    "set xlabel \"second\"",
    "set ylabel \"DB reads/s\"",
    "set yrange [0:*]",
    plots(2),
    "set ylabel \"stale reads/s\"",
    plots(3),
    "unset multiplot",
    "",
  }, "\n")
end

return M
