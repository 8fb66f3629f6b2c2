--- mintgate.lab_workload: what mintgate-lab's simulated application asks of the cache.
--
-- One constructor, `build(opts)`, for four sources of operations: the built-in model (Zipf
-- keys, a write share, a counter share, a hot-key burst: the lab's command line), presets
-- drawn from Twitter's published per-cluster statistics (`twitter:clusterN`), a Lua
-- workload file (a table of shares, or a `next_op` function), and the replay of a trace
-- (the gateway's own, or Twitter's public CSV). Every source answers `w:next_op(t, rand)`.
-- Pure Lua: no clock (times are passed in), no I/O but reading the files it is given.
local lab = require "mintgate.lab"

local M = {}

local floor, max, min = math.floor, math.max, math.min
local fmt = string.format

M.MAX_KEY = 250          -- memcached's key length limit
M.MAX_VALUE = 65536      -- presets cap their value size here (this machine, not Twitter's)
M.MIN_VALUE = 16         -- a lab value holds its version: at least this many bytes
M.MAX_FILE_VALUE = 1000000 -- a workload file's sizes stay under memcached's 1 MB item
M.PRESET_KEYS = 10000    -- ranks a preset uses unless --keys was given
M.TTL_CAP = 30           -- a preset's TTLs are capped here unless opts.ttl_cap says otherwise

-----------------------------------------------------------------------------------------
-- Shared helpers

-- A key name for `rank` padded with "x" to `size` bytes (never past MAX_KEY, never cut
-- below "lab:<rank>", so names stay distinct). Printable, no spaces.
local function padded_name(rank, size)
  local name = "lab:" .. rank
  size = min(size or 0, M.MAX_KEY)
  if size <= #name then return name end
  return name .. string.rep("x", size - #name)
end
M.padded_name = padded_name

local function is_int(v) return type(v) == "number" and v == floor(v) and v == v end

-- The memcached operation names, by what the lab's simulated application does for each.
-- Generated models: "get", or "write" (a database write, then `after` on the cache), or
-- "incr". Replay: the literal cache command.
local GEN_KIND = {
  get = { "get" }, gets = { "get" },
  set = { "write", "set" }, add = { "write", "set" }, cas = { "write", "set" },
  replace = { "write", "set" }, append = { "write", "set" }, prepend = { "write", "set" },
  delete = { "write", "delete" }, incr = { "incr" }, decr = { "incr" },
}
local REPLAY_KIND = {
  get = "get", gets = "get", gat = "get", gats = "get",
  set = "set", add = "set", replace = "set", cas = "set", append = "set", prepend = "set",
  delete = "delete", incr = "incr", decr = "incr", touch = "touch",
}
M.REPLAY_KIND = REPLAY_KIND
local MIX_ORDER = { "write", "set", "add", "cas", "replace", "append", "prepend", "delete",
                    "incr", "decr", "get", "gets" }

-----------------------------------------------------------------------------------------
-- The generator behind the built-in model, the presets and table workload files

-- A generated workload from a model:
--   cdf          Zipf cdf over the ranks (lab.zipf_cdf)
--   mix          list of { share, kind, after } in a fixed order; one rand() picks one
--   ttl, size    a number, or a function(rand) -> number
--   hot          optional { from, to, key, share, reads_only }: in [from, to) a further
--                rand() < share sends the op to `key` (only reads when reads_only)
-- The draws are, per op: one for the mix, one for the hot key (only inside the window,
-- only for the ops it applies to), one for the Zipf rank; then the ttl and size
-- functions' own. With the built-in model this is exactly lab.new_workload's sequence.
local function generator(w, model)
  local mix, cdf, hot = model.mix, model.cdf, model.hot
  local cum, acc = {}, 0
  for i, m in ipairs(mix) do
    acc = acc + m[1]
    cum[i] = acc
  end
  cum[#mix] = math.huge -- rounding never leaves an op unpicked
  local ttl, size = model.ttl, model.size
  function w.next_op(_, t, rand)
    local u, m = rand(), mix[#mix]
    for i = 1, #mix do
      if u < cum[i] then m = mix[i] break end
    end
    local kind, key = m[2]
    if hot and t >= hot.from and t < hot.to and (kind == "get" or not hot.reads_only)
       and rand() < hot.share then
      key = hot.key
    else
      key = lab.zipf_pick(cdf, rand())
    end
    local op = { kind = kind, key = key,
                 ttl = type(ttl) == "function" and ttl(rand) or ttl,
                 size = type(size) == "function" and size(rand) or size }
    if kind == "write" then op.after = m[3] end
    return op
  end
  return w
end

-- opts.burst as lab.new_workload has it: the 10th rank gets half the reads in the middle
-- third of the run.
local function burst(opts, keys)
  if not opts.burst then return nil end
  return { from = opts.duration / 3, to = 2 * opts.duration / 3, key = min(10, keys),
           share = 0.5, reads_only = true }
end

-----------------------------------------------------------------------------------------
-- Built-in model

local function build_builtin(opts)
  local wr, ir = opts.write_ratio or 0, opts.incr_ratio or 0
  if ir < 0 or ir > 1 then return nil, "incr_ratio must be between 0 and 1" end
  if wr + ir > 1 + 1e-12 then return nil, "write_ratio + incr_ratio must be at most 1" end
  local w = { keys = opts.keys, timed = false }
  w.key_name = function(_, rank) return lab.key_name(rank) end
  w.describe = fmt("built-in: %d keys, Zipf %g, %g%% writes (then %s), %g%% incr, TTL %d s, "
    .. "%d-byte values%s", opts.keys, opts.zipf, wr * 100, opts.on_write, ir * 100, opts.ttl,
    opts.value_size, opts.burst and ", hot-key burst" or "")
  return generator(w, {
    cdf = lab.zipf_cdf(opts.keys, opts.zipf),
    mix = { { wr, "write", opts.on_write }, { ir, "incr" }, { 1 - wr - ir, "get" } },
    ttl = opts.ttl, size = opts.value_size, hot = burst(opts, opts.keys),
  })
end

-----------------------------------------------------------------------------------------
-- Twitter presets
--
-- Source of every number: github.com/twitter/cache-trace, file stat/2020Mar.md (the
-- statistics of the March 2020 traces published with Yang, Yue, Vinayak, "A large scale
-- analysis of hundreds of in-memory cache clusters at Twitter", OSDI 2020), one row per
-- cluster: the columns "key size" and "value size" (means, bytes), "common TTL" and
-- "operation" (copied verbatim below and parsed), "Zipf alpha", "production miss ratio".
-- What the table does not give, and the defaults used instead:
--   - sizes are means only (no distribution): every value has the mean size, raised to
--     MIN_VALUE (16 bytes) and capped at MAX_VALUE (64 KiB); keys are padded to the mean
--     key size;
--   - the number of distinct keys (only working-set sizes in MB): PRESET_KEYS ranks, or
--     opts.keys when the user gave --keys (opts.keys_given);
--   - "common TTL" lists the most common TTLs only, "operation" the shares rounded to two
--     decimals with the rare operations left out: both are normalised to sum to 1;
--   - TTLs are drawn from the common-TTL shares and capped at opts.ttl_cap (default
--     TTL_CAP, 30 s) so that expiry happens within a lab run;
--   - request rate and arrival pattern: the lab's --rate and clients apply.
M.PRESETS = {
  -- row "cluster4": key 67, value 2439, Zipf 1.1004, miss ratio 0.3941
  cluster4 = { key_size = 67, value_size = 2439, alpha = 1.1004, miss_ratio = 0.3941,
    ttl = "60s:0.39, 300s:0.24, 1h:0.13, 600s:0.12, 4h:0.09, 1d:0.03",
    ops = "get:0.93 set:0.07" },
  -- row "cluster7": key 17, value 1936, Zipf 1.0666, miss ratio 0.2004
  cluster7 = { key_size = 17, value_size = 1936, alpha = 1.0666, miss_ratio = 0.2004,
    ttl = "1.8h:0.28, 1.7h:0.24, 1.9h:0.23, 1.6h:0.13, 2h:0.12",
    ops = "get:0.82 set:0.18" },
  -- row "cluster11": key 24, value 170, Zipf 1.4891, miss ratio 0.0047
  cluster11 = { key_size = 24, value_size = 170, alpha = 1.4891, miss_ratio = 0.0047,
    ttl = "5d:0.97, 20s:0.03",
    ops = "get:0.96 add:0.02 gets:0.01 cas:0.01" },
  -- row "cluster12": key 44, value 1030, Zipf 0.3048, miss ratio 0.0058 (write-heavy)
  cluster12 = { key_size = 44, value_size = 1030, alpha = 0.3048, miss_ratio = 0.0058,
    ttl = "300s:0.98, 299s:0.02",
    ops = "set:0.80 get:0.20" },
  -- row "cluster14": key 96, value 414, Zipf 1.2959, miss ratio 0.1218
  cluster14 = { key_size = 96, value_size = 414, alpha = 1.2959, miss_ratio = 0.1218,
    ttl = "1d:1.00",
    ops = "get:0.65 delete:0.22 set:0.13" },
  -- row "cluster22": key 54, value 4 (raised to 16), Zipf 0.7624, miss ratio 0.875
  cluster22 = { key_size = 54, value_size = 4, alpha = 0.7624, miss_ratio = 0.875,
    ttl = "1d:0.85, 1h:0.11, 1800s:0.03",
    ops = "get:0.72 incr:0.18 set:0.10" },
  -- row "cluster23": key 35, value 224, Zipf 0.274, miss ratio 0.0259
  cluster23 = { key_size = 35, value_size = 224, alpha = 0.274, miss_ratio = 0.0259,
    ttl = "120s:0.93, 2700s:0.05, 5s:0.03",
    ops = "set:0.31 get:0.36 incr:0.30 delete:0.02" },
  -- row "cluster29": key 36, value 799, Zipf 1.2323, miss ratio 0.2242
  cluster29 = { key_size = 36, value_size = 799, alpha = 1.2323, miss_ratio = 0.2242,
    ttl = "1h:0.67, 2h:0.33",
    ops = "get:0.86 set:0.13" },
  -- row "cluster52": key 20, value 273, Zipf 1.2117, miss ratio 0.0189
  cluster52 = { key_size = 20, value_size = 273, alpha = 1.2117, miss_ratio = 0.0189,
    ttl = "1d:0.65, 14d:0.27, 12h:0.07",
    ops = "get:0.91 add:0.04 gets:0.02 cas:0.02" },
}

--- The preset names, sorted by cluster number ("cluster4", "cluster7", ...).
function M.preset_names()
  local names = {}
  for k in pairs(M.PRESETS) do names[#names + 1] = k end
  table.sort(names, function(a, b) return tonumber(a:match("%d+")) < tonumber(b:match("%d+")) end)
  return names
end

local UNIT = { s = 1, m = 60, h = 3600, d = 86400 }

--- Parse a "common TTL" cell of stat/2020Mar.md ("60s:0.39, 1.8h:0.28, 1d:0.03") into
-- { { seconds, share }, ... } in the cell's order; nil and a message when malformed.
function M.parse_ttl_cell(s)
  local out = {}
  for num, unit, share in s:gmatch("([%d%.]+)(%a):([%d%.]+)") do
    if not UNIT[unit] or not tonumber(num) then return nil, "bad TTL " .. num .. unit end
    out[#out + 1] = { floor(tonumber(num) * UNIT[unit] + 0.5), tonumber(share) }
  end
  if #out == 0 then return nil, "no TTL in " .. s end
  return out
end

--- Parse an "operation" cell ("get:0.93 set:0.07") into { op = share }; nil and a
-- message when malformed or naming an unknown operation.
function M.parse_ops_cell(s)
  local out, n = {}, 0
  for op, share in s:gmatch("(%a+):([%d%.]+)") do
    if not GEN_KIND[op] then return nil, "unknown operation " .. op end
    out[op] = (out[op] or 0) + tonumber(share)
    n = n + 1
  end
  if n == 0 then return nil, "no operation in " .. s end
  return out
end

-- A mix list (see generator) from { op = share }, normalised to sum to 1. `write_after`
-- is what a "write" entry does afterwards (only workload files have it).
local function mix_from_shares(shares, write_after)
  local total, mix = 0, {}
  for _, v in pairs(shares) do total = total + v end
  for _, op in ipairs(MIX_ORDER) do
    local share = shares[op]
    if share and share > 0 then
      if op == "write" then
        mix[#mix + 1] = { share / total, "write", write_after }
      else
        local g = GEN_KIND[op]
        mix[#mix + 1] = { share / total, g[1], g[2] }
      end
    end
  end
  return mix
end

-- A draw from { { value, share }, ... } (shares normalised here).
local function weighted(list)
  local total = 0
  for _, e in ipairs(list) do total = total + e[2] end
  if #list == 1 then return function() return list[1][1] end end
  return function(rand)
    local u, acc = rand() * total, 0
    for _, e in ipairs(list) do
      acc = acc + e[2]
      if u < acc then return e[1] end
    end
    return list[#list][1]
  end
end

local function build_preset(opts, name)
  local p = M.PRESETS[name]
  if not p then
    return nil, fmt("unknown workload twitter:%s (presets: twitter:%s)", name,
      table.concat(M.preset_names(), ", twitter:"))
  end
  local ttls = assert(M.parse_ttl_cell(p.ttl))
  local cap = opts.ttl_cap or M.TTL_CAP
  local capped = {}
  for i, e in ipairs(ttls) do capped[i] = { min(e[1], cap), e[2] } end
  local keys = opts.keys_given and opts.keys or M.PRESET_KEYS
  local size = max(M.MIN_VALUE, min(M.MAX_VALUE, p.value_size))
  local shares = assert(M.parse_ops_cell(p.ops))
  local w = { keys = keys, timed = false, preset = p }
  local key_size = p.key_size
  w.key_name = function(_, rank) return padded_name(rank, key_size) end
  w.describe = fmt("twitter:%s (twitter/cache-trace stat/2020Mar.md: Zipf %g, ops %s, "
    .. "TTLs %s, key %d B, value %d B) scaled: %d keys, value %d B, TTL capped at %d s%s",
    name, p.alpha, p.ops, p.ttl, p.key_size, p.value_size, keys, size, cap,
    opts.burst and ", hot-key burst" or "")
  return generator(w, {
    cdf = lab.zipf_cdf(keys, p.alpha), mix = mix_from_shares(shares),
    ttl = weighted(capped), size = size, hot = burst(opts, keys),
  })
end

-----------------------------------------------------------------------------------------
-- Lua workload files
--
-- A file ending in .lua that returns a table. Fields (any other is refused):
--   keys        distinct keys, required
--   zipf        Zipf exponent of key popularity (default: --zipf)
--   ttl         TTL in whole seconds (default: --ttl)
--   value_size  bytes, or { min, max } drawn uniformly (default: --value-size); 16..10^6
--   key_size    key names padded to this many bytes (default: "lab:<rank>" unpadded)
--   describe    the one-line description in the report header
--   mix         { op = share }, shares adding up to 1; op: get gets set add cas replace
--               append prepend delete incr decr, or write (a database write followed by
--               --on-write); set and the other stores are writes followed by a set,
--               delete a write followed by a delete
--   phases      { { from = s, to = s, hot_key = rank, hot_share = p }, ... }: inside
--               [from, to) a share p of all operations (reads and writes) go to hot_key
--   next_op     instead of mix and phases: function(t, rand, ctx) returning an op table
--               ({ kind = "get"|"write"|"incr", key = rank, ttl?, size?, after? }; what is
--               left out comes from the fields above, after from --on-write); ctx.keys,
--               ctx.duration, ctx.zipf(u) (a rank for a uniform u), ctx.state (the
--               file's own table). A bad op raises, naming the field.
-- The file runs with copies of math, string and table and the base functions that touch
-- nothing outside it (no io, os, require, load).

-- The environment a workload file runs in: copies of math, string and table, and the
-- base functions that touch nothing outside the file.
local function sandbox()
  local env = {}
  for _, lib in ipairs { "math", "string", "table" } do
    local copy = {}
    for k, v in pairs(_G[lib]) do copy[k] = v end
    env[lib] = copy
  end
  for _, f in ipairs { "assert", "error", "ipairs", "next", "pairs", "pcall", "select",
                       "tonumber", "tostring", "type", "unpack" } do
    env[f] = _G[f]
  end
  return env
end

local FILE_FIELDS = { keys = true, zipf = true, ttl = true, value_size = true, key_size = true,
                      mix = true, phases = true, next_op = true, describe = true }

-- Validate a workload file's table; returns nil or a message naming the field.
local function check_file_table(t)
  for k in pairs(t) do
    if not FILE_FIELDS[k] then return fmt("unknown field %s", tostring(k)) end
  end
  if t.keys == nil then return "field keys is missing (distinct keys, a whole number >= 1)" end
  if not is_int(t.keys) or t.keys < 1 then return "field keys must be a whole number >= 1" end
  if t.zipf ~= nil and (type(t.zipf) ~= "number" or t.zipf < 0 or t.zipf ~= t.zipf) then
    return "field zipf must be a number >= 0"
  end
  if t.ttl ~= nil and (not is_int(t.ttl) or t.ttl < 0) then
    return "field ttl must be a whole number of seconds >= 0"
  end
  local vs = t.value_size
  if vs ~= nil then
    local lo, hi = vs, vs
    if type(vs) == "table" then lo, hi = vs[1], vs[2] end
    if not is_int(lo) or not is_int(hi) or lo < M.MIN_VALUE or hi < lo or hi > M.MAX_FILE_VALUE then
      return fmt("field value_size must be a whole number or {min, max} within %d..%d",
        M.MIN_VALUE, M.MAX_FILE_VALUE)
    end
  end
  if t.key_size ~= nil and (not is_int(t.key_size) or t.key_size < 1 or t.key_size > M.MAX_KEY) then
    return fmt("field key_size must be a whole number within 1..%d", M.MAX_KEY)
  end
  if t.describe ~= nil and type(t.describe) ~= "string" then return "field describe must be a string" end
  if t.next_op ~= nil then
    if type(t.next_op) ~= "function" then return "field next_op must be a function" end
    if t.mix ~= nil or t.phases ~= nil then return "field next_op excludes mix and phases" end
    return nil
  end
  if type(t.mix) ~= "table" then return "field mix is missing (or give next_op)" end
  local sum = 0
  for op, share in pairs(t.mix) do
    if op ~= "write" and not GEN_KIND[op] then return fmt("field mix.%s: unknown operation", tostring(op)) end
    if type(share) ~= "number" or share < 0 or share > 1 then
      return fmt("field mix.%s must be a share between 0 and 1", op)
    end
    sum = sum + share
  end
  if math.abs(sum - 1) > 1e-3 then return fmt("field mix: shares add up to %g, not 1", sum) end
  if t.phases ~= nil then
    if type(t.phases) ~= "table" then return "field phases must be a list" end
    for i, ph in ipairs(t.phases) do
      local where = fmt("field phases[%d]", i)
      if type(ph) ~= "table" then return where .. " must be a table" end
      if type(ph.from) ~= "number" or type(ph.to) ~= "number" or ph.to <= ph.from then
        return where .. ": from and to must be numbers (seconds) with from < to"
      end
      if not is_int(ph.hot_key) or ph.hot_key < 1 or ph.hot_key > t.keys then
        return where .. ".hot_key must be a rank within 1..keys"
      end
      if type(ph.hot_share) ~= "number" or ph.hot_share < 0 or ph.hot_share > 1 then
        return where .. ".hot_share must be a share between 0 and 1"
      end
    end
  end
  return nil
end

-- The op a file's next_op returned, checked and completed from the defaults; raises with
-- the field at fault (a workload file that misbehaves mid-run is a bug in it).
local VALID_AFTER = { delete = true, set = true, none = true }
local function check_file_op(path, op, keys, defaults, rand)
  local function bad(msg) error(fmt("workload %s: next_op returned %s", path, msg), 0) end
  if type(op) ~= "table" then bad("a " .. type(op) .. ", not an op table") end
  if op.kind ~= "get" and op.kind ~= "write" and op.kind ~= "incr" then
    bad("kind " .. tostring(op.kind) .. " (get, write or incr)")
  end
  if not is_int(op.key) or op.key < 1 or op.key > keys then
    bad("key " .. tostring(op.key) .. " (a rank within 1.." .. keys .. ")")
  end
  local out = { kind = op.kind, key = op.key, ttl = op.ttl, size = op.size }
  if out.ttl == nil then out.ttl = defaults.ttl end
  if out.size == nil then out.size = defaults.size(rand) end
  if not is_int(out.ttl) or out.ttl < 0 then bad("ttl " .. tostring(out.ttl)) end
  if not is_int(out.size) or out.size < M.MIN_VALUE then bad("size " .. tostring(out.size)) end
  if op.kind == "write" then
    out.after = op.after or defaults.after
    if not VALID_AFTER[out.after] then bad("after " .. tostring(out.after)) end
  end
  return out
end

-- Read and run a workload file in the sandbox: its table, or nil and a message.
local function load_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, "workload " .. tostring(err) end
  local src = f:read("*a")
  f:close()
  local chunk, cerr = loadstring(src, "@" .. path)
  if not chunk then return nil, "workload " .. cerr end
  setfenv(chunk, sandbox())
  local ok, t = pcall(chunk)
  if not ok then return nil, "workload " .. path .. ": " .. tostring(t) end
  if type(t) ~= "table" then return nil, "workload " .. path .. ": must return a table" end
  local msg = check_file_table(t)
  if msg then return nil, "workload " .. path .. ": " .. msg end
  return t
end

local function build_file(opts, path)
  local t, err = load_file(path)
  if not t then return nil, err end
  local keys, zipf = t.keys, t.zipf or opts.zipf or 0
  local ttl = t.ttl or opts.ttl
  local size
  local vs = t.value_size or opts.value_size
  if type(vs) == "table" then
    local lo, span = vs[1], vs[2] - vs[1] + 1
    size = function(rand) return lo + floor(rand() * span) end
  else
    size = vs
  end
  local w = { keys = keys, timed = false }
  local key_size = t.key_size
  w.key_name = function(_, rank) return padded_name(rank, key_size) end
  local cdf = lab.zipf_cdf(keys, zipf)
  w.describe = t.describe or fmt("workload %s: %d keys, Zipf %g", path, keys, zipf)
  if t.next_op then
    local user = t.next_op
    local ctx = { keys = keys, duration = opts.duration, state = {},
                  zipf = function(u) return lab.zipf_pick(cdf, u) end }
    local defaults = { ttl = ttl, after = opts.on_write or "delete",
                       size = type(size) == "function" and size or function() return size end }
    function w.next_op(_, now, rand)
      return check_file_op(path, user(now, rand, ctx), keys, defaults, rand)
    end
    return w
  end
  generator(w, { cdf = cdf, mix = mix_from_shares(t.mix, opts.on_write or "delete"),
                 ttl = ttl, size = size })
  if t.phases and #t.phases > 0 then
    -- a phase sends hot_share of all operations inside [from, to) to hot_key
    local gen, phases = w.next_op, t.phases
    function w.next_op(self, now, rand)
      local op = gen(self, now, rand)
      for _, ph in ipairs(phases) do
        if now >= ph.from and now < ph.to then
          if rand() < ph.hot_share then op.key = ph.hot_key end
          break
        end
      end
      return op
    end
  end
  return w
end

-----------------------------------------------------------------------------------------
-- Traces

local MG_OUTCOME = { hit = true, miss = true, stored = true, not_stored = true, exists = true,
                     not_found = true, deleted = true, touched = true, error = true }

local function is_key(s)
  return #s >= 1 and #s <= M.MAX_KEY and not s:find("[%c ]")
end

local function nonneg_int(s)
  local n = tonumber(s)
  if n and n >= 0 and n == floor(n) then return n end
  return nil
end

local function parse_mintgate(line)
  local f = {}
  for w in line:gmatch("%S+") do f[#f + 1] = w end
  if #f ~= 6 then return nil, fmt("%d fields, want 6 (time op key value_size ttl outcome)", #f) end
  local time = tonumber(f[1])
  if not time or time < 0 then return nil, "bad time " .. f[1] end
  local kind = REPLAY_KIND[f[2]]
  if not kind then return nil, "unknown operation " .. f[2] end
  if not is_key(f[3]) then return nil, "bad key" end
  local size = nonneg_int(f[4])
  if not size then return nil, "bad value_size " .. f[4] end
  local ttl = nonneg_int(f[5])
  if not ttl then return nil, "bad ttl " .. f[5] end
  if not MG_OUTCOME[f[6]] then return nil, "unknown outcome " .. f[6] end
  -- a hashed key (#<16 hex>) hides the original's length
  local key_size = f[3]:match("^#%x+$") and #f[3] == 17 and 0 or #f[3]
  return { time = time, op = f[2], kind = kind, key = f[3], key_size = key_size,
           size = size, ttl = ttl, outcome = f[6] }
end

local function parse_twitter(line)
  local f = {}
  for w in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = w end
  if #f < 7 then return nil, fmt("%d fields, want 7 (timestamp,key,key size,value size,"
    .. "client id,operation,TTL)", #f) end
  -- an anonymised key may hold commas: it is everything between the first field and
  -- the last five
  local n = #f
  local key = table.concat(f, ",", 2, n - 5)
  local time = tonumber(f[1])
  if not time or time < 0 then return nil, "bad timestamp " .. f[1] end
  if #key == 0 then return nil, "empty key" end
  local key_size = nonneg_int(f[n - 4])
  if not key_size then return nil, "bad key size " .. f[n - 4] end
  local size = nonneg_int(f[n - 3])
  if not size then return nil, "bad value size " .. f[n - 3] end
  local op = f[n - 1]
  local kind = REPLAY_KIND[op]
  if not kind or op == "touch" or op == "gat" or op == "gats" then
    return nil, "unknown operation " .. op
  end
  local ttl = nonneg_int(f[n])
  if not ttl then return nil, "bad TTL " .. f[n] end
  return { time = time, op = op, kind = kind, key = key, key_size = key_size, size = size,
           ttl = ttl, client = f[n - 2] }
end

--- Parse one trace line. format: "mintgate" or "twitter"; lineno (optional) goes into the
-- message. Returns an op { time (absolute seconds), op (as written), kind ("get", "set",
-- "delete", "incr", "touch"), key (the trace's key), key_size (bytes of the original key;
-- 0 when unknown), size, ttl, outcome (mintgate) or client (twitter) }; nil for a blank
-- or comment line (mintgate "#..."); nil and "line N: why" for a malformed line.
function M.parse_trace_line(line, format, lineno)
  line = line:gsub("\r$", "")
  if line:match("^%s*$") then return nil end
  local op, err
  if format == "mintgate" then
    if line:sub(1, 1) == "#" then return nil end
    op, err = parse_mintgate(line)
  elseif format == "twitter" then
    op, err = parse_twitter(line)
  else
    error("unknown trace format " .. tostring(format) .. " (mintgate or twitter)", 2)
  end
  if not op then return nil, fmt("line %s: %s", lineno or "?", err) end
  return op
end

--- The format of a trace: `format` when given (checked), else "twitter" for *.csv and
-- "mintgate" otherwise. Returns it, or nil and a message.
function M.trace_format(path, format)
  if format == nil then return path:match("%.csv$") and "twitter" or "mintgate" end
  if format ~= "mintgate" and format ~= "twitter" then
    return nil, "trace format must be mintgate or twitter"
  end
  return format
end

-- Call fn(op) for each op of the trace at path, lazily (one line at a time). Returns
-- true, or nil and "PATH:LINE: why" (the first malformed line, or the open failure).
local function each_op(path, format, fn)
  local f, err = io.open(path, "rb")
  if not f then return nil, "trace " .. tostring(err) end
  local n = 0
  for line in f:lines() do
    n = n + 1
    local op, perr = M.parse_trace_line(line, format, n)
    if perr then
      f:close()
      return nil, path .. ": " .. perr
    end
    if op then fn(op) end
  end
  f:close()
  return true
end

--- Count a trace's operations by replay kind: { get, set, delete, incr, touch, total }
-- (every field present); nil and "PATH:LINE: why" on a malformed line.
function M.trace_counts(path, format)
  local fm, ferr = M.trace_format(path, format)
  if not fm then return nil, ferr end
  local c = { get = 0, set = 0, delete = 0, incr = 0, touch = 0, total = 0 }
  local ok, err = each_op(path, fm, function(op)
    c[op.kind] = c[op.kind] + 1
    c.total = c.total + 1
  end)
  if not ok then return nil, err end
  return c
end

-- A replay. One pass at build time checks every line and gives each distinct key its
-- rank (first seen = 1) and key size; next_op then reads the file again a line at a time.
local function build_trace(opts)
  local path, speed = opts.trace, opts.speed or 1
  local format, ferr = M.trace_format(path, opts.trace_format)
  if not format then return nil, ferr end
  if type(speed) ~= "number" or speed ~= speed or speed <= 0 or speed == math.huge then
    return nil, "speed must be a number > 0"
  end
  local rank_of, key_size, keys, t0, t_last, count = {}, {}, 0, nil, 0, 0
  local ok, err = each_op(path, format, function(op)
    local r = rank_of[op.key]
    if not r then
      keys = keys + 1
      r = keys
      rank_of[op.key] = r
      key_size[r] = op.key_size
    end
    t0 = t0 or op.time
    t_last = max(t_last, op.time)
    count = count + 1
  end)
  if not ok then return nil, err end
  if count == 0 then return nil, "trace " .. path .. ": no operations" end

  local w = { keys = keys, timed = true, ops = count, format = format, speed = speed,
              span = (t_last - t0) / speed }
  w.key_name = function(_, rank) return padded_name(rank, key_size[rank]) end
  w.describe = fmt("trace %s (%s format): %d ops, %d keys over %g s, speed %g: %g s",
    path, format, count, keys, t_last - t0, speed, w.span)
  local f, lines, lineno, pending, done
  -- The next op of the file, or nil at its end; raises when the file changed under us.
  local function read_op()
    if not f then
      f = assert(io.open(path, "rb"))
      lines, lineno = f:lines(), 0
    end
    for line in lines do
      lineno = lineno + 1
      local op, perr = M.parse_trace_line(line, format, lineno)
      if perr then error(path .. ": " .. perr, 0) end
      if op then
        local r = rank_of[op.key]
        if not r then error(path .. ": line " .. lineno .. ": a key the first pass did not see", 0) end
        return { kind = op.kind, key = r, ttl = op.ttl, size = op.size,
                 at = (op.time - t0) / speed }
      end
    end
    f:close()
    f = nil
    return nil
  end
  function w.next_op(_, t)
    if done then return false end
    local op = pending or read_op()
    if not op then
      done = true
      return false
    end
    if op.at > t then
      pending = op
      return nil, op.at
    end
    pending = nil
    return op
  end
  --- Close the trace file before its end (a run cut short).
  function w.close()
    if f then f:close() end
    f, done = nil, true
  end
  return w
end

-----------------------------------------------------------------------------------------
-- The constructor

--- A workload from the lab's options (lab.DEFAULTS plus): opts.workload (nil: the built-in
-- model; "twitter:clusterN"; a path ending in ".lua"), opts.trace (a trace file; with
-- opts.trace_format "mintgate"|"twitter", default by extension, and opts.speed, default
-- 1), opts.incr_ratio (built-in model), opts.keys_given and opts.ttl_cap (presets).
-- Returns the workload: w.keys, w.timed, w.describe, w:key_name(rank), w:next_op(t, rand)
-- (see the README's "Policy lab"); or nil and a message.
function M.build(opts)
  if opts.trace then
    if opts.workload then return nil, "give a workload or a trace, not both" end
    return build_trace(opts)
  end
  local wk = opts.workload
  if wk == nil then return build_builtin(opts) end
  if type(wk) ~= "string" then return nil, "workload must be a string" end
  if wk:match("^twitter:") then return build_preset(opts, wk:sub(9)) end
  if wk:match("%.lua$") then return build_file(opts, wk) end
  return nil, "unknown workload " .. wk .. " (twitter:clusterN or a FILE.lua)"
end

return M
