-- mintgate.lab_workload alone: the built-in model (the same draws as lab.new_workload,
-- the write/incr/get shares), the Twitter presets against their table rows, workload
-- files (good, bad, sandboxed), both trace formats line by line, replay times and speed,
-- and the sample traces' counts.
assert(jit ~= nil, "specs must run under LuaJIT")

local lab = require "mintgate.lab"
local wl = require "mintgate.lab_workload"

-- A deterministic uniform generator (an LCG, MINSTD: Park and Miller's multiplier 48271
-- modulo 2^31 - 1), so that shares are checked without flakes. Not lab_spec's
-- power-of-two LCG: the presets draw three numbers per op, and that generator's draws two
-- apart are correlated enough to skew a TTL share by 3 %.
local function lcg(seed)
  local x = seed % 2147483646 + 1
  return function()
    x = x * 48271 % 2147483647
    return (x - 1) / 2147483646
  end
end

local function options(over)
  local o = {}
  for k, v in pairs(lab.DEFAULTS) do o[k] = v end
  for k, v in pairs(over or {}) do o[k] = v end
  return o
end

-- kind (with after for writes) -> share of n ops drawn at time t
local function shares(w, n, t, seed)
  local rand, c = lcg(seed or 11), {}
  for _ = 1, n do
    local op = w:next_op(t or 0, rand)
    local k = op.kind == "write" and "write_" .. op.after or op.kind
    c[k] = (c[k] or 0) + 1 / n
  end
  return c
end

local function near(want, got, tol, what)
  assert(math.abs((got or 0) - want) <= tol,
    string.format("%s: want %g +- %g, got %s", what, want, tol, tostring(got)))
end

local MG = "examples/lab/traces/sample.mgtrace"
local TW = "examples/lab/traces/sample_twitter.csv"

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
  return path
end

describe("mintgate.lab_workload built-in model", function()
  it("draws exactly what lab.new_workload draws, burst included", function()
    local opts = options { keys = 100, write_ratio = 0.2, duration = 9, burst = true }
    local w = assert(wl.build(opts))
    local old = lab.new_workload(opts)
    assert.equal(100, w.keys)
    assert.is_false(w.timed)
    assert.equal("lab:42", w:key_name(42))
    assert.truthy(w.describe:find("built-in", 1, true))
    local r1, r2 = lcg(5), lcg(5)
    for i = 1, 20000 do
      local t = (i % 3) * 3 + 0.5 -- before, inside and after the burst
      local op = w:next_op(t, r1)
      local kind, k = old:next_op(t, r2)
      assert.equal(kind == "read" and "get" or "write", op.kind)
      assert.equal(k, op.key)
      assert.equal(5, op.ttl)
      assert.equal(100, op.size)
      assert.equal(op.kind == "write" and "delete" or nil, op.after)
    end
  end)

  it("keeps its write, incr and get shares", function()
    local w = assert(wl.build(options { write_ratio = 0.1, incr_ratio = 0.25, on_write = "set" }))
    local c = shares(w, 50000)
    near(0.1, c.write_set, 0.01, "writes")
    near(0.25, c.incr, 0.01, "incr")
    near(0.65, c.get, 0.01, "get")
    assert.is_nil(c.write_delete)
    local bad, err = wl.build(options { write_ratio = 0.6, incr_ratio = 0.5 })
    assert.is_nil(bad)
    assert.truthy(err:find("at most 1", 1, true))
  end)
end)

describe("mintgate.lab_workload Twitter presets", function()
  it("parses the table's TTL and operation cells", function()
    assert.same({ { 6480, 0.28 }, { 3600, 0.12 } }, wl.parse_ttl_cell("1.8h:0.28, 1h:0.12"))
    assert.same({ { 60, 0.39 }, { 86400, 0.03 }, { 1800, 0.03 } },
      wl.parse_ttl_cell("60s:0.39, 1d:0.03, 1800s:0.03,"))
    assert.same({ get = 0.96, add = 0.02, gets = 0.01, cas = 0.01 },
      wl.parse_ops_cell("get:0.96 add:0.02 gets:0.01 cas:0.01"))
    assert.is_nil(wl.parse_ops_cell("get:0.5 frob:0.5"))
    assert.is_nil(wl.parse_ttl_cell("N/A"))
  end)

  it("has clusters 4, 7, 14, 22 and 29 with their rows' numbers", function()
    local rows = {
      cluster4 = { 1.1004, 67, 2439, { get = 0.93, write_set = 0.07 } },
      cluster7 = { 1.0666, 17, 1936, { get = 0.82, write_set = 0.18 } },
      cluster14 = { 1.2959, 96, 414, { get = 0.65, write_delete = 0.22, write_set = 0.13 } },
      cluster22 = { 0.7624, 54, 4, { get = 0.72, incr = 0.18, write_set = 0.10 } },
      cluster29 = { 1.2323, 36, 799, { get = 0.86 / 0.99, write_set = 0.13 / 0.99 } },
    }
    for name, row in pairs(rows) do
      local p = assert(wl.PRESETS[name], name)
      assert.equal(row[1], p.alpha)
      assert.equal(row[2], p.key_size)
      assert.equal(row[3], p.value_size)
      local w = assert(wl.build(options { workload = "twitter:" .. name }))
      assert.equal(10000, w.keys)
      assert.truthy(w.describe:find("twitter:" .. name .. " ", 1, true), w.describe)
      assert.truthy(w.describe:find("TTL capped at 30 s", 1, true))
      assert.equal(p.key_size, #w:key_name(1))
      assert.equal(p.key_size, #w:key_name(9999))
      local c = shares(w, 40000)
      for kind, share in pairs(row[4]) do near(share, c[kind], 0.012, name .. " " .. kind) end
      local rand = lcg(2)
      for _ = 1, 200 do
        local op = w:next_op(0, rand)
        assert.is_true(op.key >= 1 and op.key <= 10000)
        assert.is_true(op.ttl >= 0 and op.ttl <= 30)
        assert.equal(math.max(16, p.value_size), op.size)
      end
    end
    assert.is_true(#wl.preset_names() >= 5)
    assert.equal("cluster4", wl.preset_names()[1])
  end)

  it("samples the common TTLs under the cap, takes --keys when given, refuses unknown clusters", function()
    -- cluster23: 120s:0.93, 2700s:0.05, 5s:0.03 -> with a cap of 200 s: 120 or 200 or 5
    local w = assert(wl.build(options { workload = "twitter:cluster23", ttl_cap = 200,
                                        keys = 500, keys_given = true }))
    assert.equal(500, w.keys)
    local rand, seen = lcg(9), {}
    for _ = 1, 20000 do
      local op = w:next_op(0, rand)
      seen[op.ttl] = (seen[op.ttl] or 0) + 1 / 20000
    end
    near(0.93 / 1.01, seen[120], 0.015, "120 s")
    near(0.05 / 1.01, seen[200], 0.01, "capped 2700 s")
    near(0.03 / 1.01, seen[5], 0.01, "5 s")
    -- without keys_given the preset's own count wins over the default --keys
    assert.equal(10000, assert(wl.build(options { workload = "twitter:cluster4", keys = 500 })).keys)
    local none, err = wl.build(options { workload = "twitter:cluster99" })
    assert.is_nil(none)
    assert.truthy(err:find("twitter:cluster99", 1, true))
    assert.truthy(err:find("twitter:cluster4", 1, true))
  end)
end)

describe("mintgate.lab_workload workload files", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir) == 0)
  end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("runs a table of shares with value sizes and a hot phase", function()
    local path = write_file(dir .. "/mix.lua", [[
      return { keys = 5000, zipf = 1.1, ttl = 60, value_size = { 100, 2000 }, key_size = 30,
               mix = { get = 0.8, set = 0.1, delete = 0.05, incr = 0.05 },
               phases = { { from = 0, to = 5, hot_key = 3, hot_share = 0.3 } } }]])
    local w = assert(wl.build(options { workload = path }))
    assert.equal(5000, w.keys)
    assert.equal(30, #w:key_name(77))
    local c = shares(w, 40000, 10)
    near(0.8, c.get, 0.01, "get")
    near(0.1, c.write_set, 0.01, "set")
    near(0.05, c.write_delete, 0.006, "delete")
    near(0.05, c.incr, 0.006, "incr")
    local rand, hot_in, hot_out, lo, hi = lcg(4), 0, 0, math.huge, 0
    for _ = 1, 10000 do
      local a, b = w:next_op(2, rand), w:next_op(7, rand)
      if a.key == 3 then hot_in = hot_in + 1 end
      if b.key == 3 then hot_out = hot_out + 1 end
      assert.equal(60, a.ttl)
      lo, hi = math.min(lo, a.size), math.max(hi, a.size)
    end
    -- rank 3's own Zipf share is 3^-1.1 / H(5000, 1.1)
    local h = 0
    for i = 1, 5000 do h = h + i ^ -1.1 end
    local own = 3 ^ -1.1 / h
    near(0.3 + 0.7 * own, hot_in / 10000, 0.015, "hot share in the phase")
    near(own, hot_out / 10000, 0.01, "hot share after it")
    assert.is_true(lo >= 100 and lo < 150 and hi <= 2000 and hi > 1950, lo .. ".." .. hi)
  end)

  it("runs a next_op function with its context, checking what it returns", function()
    local path = write_file(dir .. "/fn.lua", [[
      return { keys = 10, next_op = function(t, rand, ctx)
        ctx.state.n = (ctx.state.n or 0) + 1
        if t > 100 then return { kind = "get", key = 11 } end
        if ctx.state.n % 2 == 0 then return { kind = "write", key = ctx.zipf(rand()) } end
        return { kind = "incr", key = 1 + ctx.state.n % ctx.keys, ttl = 7, size = 64 }
      end }]])
    local w = assert(wl.build(options { workload = path, on_write = "set" }))
    local rand = lcg(1)
    assert.same({ kind = "incr", key = 2, ttl = 7, size = 64 }, w:next_op(0, rand))
    local op = w:next_op(0, rand)
    assert.equal("write", op.kind)
    assert.equal("set", op.after)
    assert.equal(5, op.ttl)
    assert.equal(100, op.size)
    local ok, err = pcall(w.next_op, w, 101, rand)
    assert.is_false(ok)
    assert.truthy(err:find("next_op returned key 11", 1, true), err)
  end)

  it("refuses bad files with the field at fault", function()
    local cases = {
      { "return { keys = 10, mix = { get = 1 }, colour = 1 }", "unknown field colour" },
      { "return { mix = { get = 1 } }", "field keys is missing" },
      { "return { keys = 1.5, mix = { get = 1 } }", "field keys must be" },
      { "return { keys = 10 }", "field mix is missing" },
      { "return { keys = 10, mix = { get = 0.5, set = 0.2 } }", "add up to 0.7" },
      { "return { keys = 10, mix = { get = 0.9, frob = 0.1 } }", "mix.frob: unknown operation" },
      { "return { keys = 10, mix = { get = 1 }, value_size = 8 }", "field value_size" },
      { "return { keys = 10, mix = { get = 1 }, ttl = -1 }", "field ttl" },
      { "return { keys = 10, mix = { get = 1 }, phases = { { from = 0, to = 1, hot_key = 11, hot_share = 0.5 } } }",
        "phases[1].hot_key" },
      { "return { keys = 10, mix = { get = 1 }, phases = { { from = 3, to = 1, hot_key = 1, hot_share = 0.5 } } }",
        "phases[1]: from and to" },
      { "return { keys = 10, next_op = 3 }", "field next_op must be a function" },
      { "return 42", "must return a table" },
      { "return {", "unexpected" },
      { "os.execute('true') return { keys = 1, mix = { get = 1 } }", "os" }, -- no os in there
      { "io.open('/etc/passwd') return { keys = 1, mix = { get = 1 } }", "io" },
    }
    for i, c in ipairs(cases) do
      local path = write_file(dir .. "/bad" .. i .. ".lua", c[1])
      local w, err = wl.build(options { workload = path })
      assert.is_nil(w, c[1])
      assert.truthy(err:find(c[2], 1, true), c[1] .. " -> " .. tostring(err))
      assert.truthy(err:find(path, 1, true), err)
    end
    local w, err = wl.build(options { workload = dir .. "/missing.lua" })
    assert.is_nil(w)
    assert.truthy(err:find("missing.lua", 1, true))
    assert.is_nil((wl.build(options { workload = "nonsense" })))
  end)
end)

describe("mintgate.lab_workload traces", function()
  it("parses mintgate trace lines", function()
    assert.is_nil(wl.parse_trace_line("# mintgate trace v1", "mintgate", 1))
    assert.is_nil(wl.parse_trace_line("   ", "mintgate", 2))
    assert.same({ time = 1700000000.5, op = "gat", kind = "get", key = "user:1", key_size = 6,
                  size = 120, ttl = 30, outcome = "hit" },
      wl.parse_trace_line("1700000000.500000 gat user:1 120 30 hit", "mintgate", 3))
    local op = wl.parse_trace_line("1.000001 append #0123456789abcdef 10 0 stored\r", "mintgate")
    assert.equal("set", op.kind)
    assert.equal("#0123456789abcdef", op.key)
    assert.equal(0, op.key_size) -- hashed: the original length is unknown
    assert.equal("touch", wl.parse_trace_line("2 touch k 0 60 touched", "mintgate").kind)
    assert.equal("incr", wl.parse_trace_line("2 decr k 0 0 not_found", "mintgate").kind)
    local bad = {
      { "1.0 get k 10 0", "line 7: 5 fields" },
      { "x get k 10 0 hit", "line 7: bad time x" },
      { "1.0 frob k 10 0 hit", "line 7: unknown operation frob" },
      { "1.0 get k -1 0 hit", "line 7: bad value_size -1" },
      { "1.0 get k 10 1.5 hit", "line 7: bad ttl 1.5" },
      { "1.0 get k 10 0 great", "line 7: unknown outcome great" },
    }
    for _, c in ipairs(bad) do
      local r, err = wl.parse_trace_line(c[1], "mintgate", 7)
      assert.is_nil(r)
      assert.truthy(err and err:find(c[2], 1, true), c[1] .. " -> " .. tostring(err))
    end
  end)

  it("parses Twitter trace lines, keys with commas included", function()
    assert.same({ time = 12, op = "gets", kind = "get", key = "nz:u:eeW511W3", key_size = 42,
                  size = 300, ttl = 0, client = "7" },
      wl.parse_trace_line("12,nz:u:eeW511W3,42,300,7,gets,0", "twitter", 1))
    local op = wl.parse_trace_line("3,a,b,c,20,10,1,add,3600", "twitter", 2)
    assert.equal("a,b,c", op.key)
    assert.equal("set", op.kind)
    assert.equal(3600, op.ttl)
    assert.equal("delete", wl.parse_trace_line("3,k,5,0,1,delete,0", "twitter").kind)
    local bad = {
      { "3,k,5,0,1,get", "line 9: 6 fields" },
      { "t,k,5,0,1,get,0", "line 9: bad timestamp t" },
      { "3,k,x,0,1,get,0", "line 9: bad key size x" },
      { "3,k,5,0,1,touch,0", "line 9: unknown operation touch" },
      { "3,k,5,0,1,get,-2", "line 9: bad TTL -2" },
      { "3,,5,0,1,get,0", "line 9: empty key" },
    }
    for _, c in ipairs(bad) do
      local r, err = wl.parse_trace_line(c[1], "twitter", 9)
      assert.is_nil(r)
      assert.truthy(err and err:find(c[2], 1, true), c[1] .. " -> " .. tostring(err))
    end
    assert.has_error(function() wl.parse_trace_line("x", "csv") end)
  end)

  it("counts the sample traces", function()
    assert.same({ get = 129, set = 28, delete = 13, incr = 18, touch = 11, total = 199 },
      wl.trace_counts(MG))
    assert.same({ get = 152, set = 31, delete = 10, incr = 7, touch = 0, total = 200 },
      wl.trace_counts(TW))
    assert.same(wl.trace_counts(TW), wl.trace_counts(TW, "twitter"))
    assert.is_nil(wl.trace_counts(TW, "mintgate")) -- a CSV line is not a mintgate line
  end)

  -- Play w to its end on a clock that jumps to each due time; returns the ops.
  local function replay(w)
    local t, ops = 0, {}
    while true do
      local op, due = w:next_op(t, nil)
      if op == false then break end
      if op == nil then
        assert.is_true(due > t)
        t = due
      else
        assert.is_true(op.at <= t)
        ops[#ops + 1] = op
      end
    end
    return ops
  end

  it("replays a trace with the same counts, keys ranked by first sight", function()
    for _, path in ipairs { MG, TW } do
      local w = assert(wl.build(options { trace = path }))
      assert.is_true(w.timed)
      assert.truthy(w.describe:find(path, 1, true))
      local ops, counts = replay(w), { get = 0, set = 0, delete = 0, incr = 0, touch = 0 }
      for _, op in ipairs(ops) do counts[op.kind] = counts[op.kind] + 1 end
      counts.total = #ops
      assert.same(wl.trace_counts(path), counts)
      assert.equal(1, ops[1].key)
      assert.equal(0, ops[1].at)
      local maxkey = 0
      for _, op in ipairs(ops) do
        assert.is_true(op.key <= maxkey + 1, "ranks in order of first sight")
        maxkey = math.max(maxkey, op.key)
      end
      assert.equal(w.keys, maxkey)
      assert.is_false(w:next_op(1e9)) -- stays done
    end
    -- Twitter keys take the recorded key size; mintgate keys their own length
    local w = assert(wl.build(options { trace = TW }))
    assert.equal(40, #w:key_name(1)) -- first line: key size 40
    assert.equal("lab:1", wl.padded_name(1, 3))
    assert.equal(250, #wl.padded_name(1, 400))
    local m = assert(wl.build(options { trace = MG }))
    assert.equal(#"counter:27", #m:key_name(1))
  end)

  it("spaces ops by their recorded gaps divided by speed", function()
    local path = os.tmpname()
    write_file(path, "# t\n100.000000 get a 10 0 miss\n100.500000 set a 10 60 stored\n"
      .. "102.000000 get b 10 0 miss\n102.000000 touch a 0 5 touched\n")
    for _, speed in ipairs { 1, 2, 0.5 } do
      local w = assert(wl.build(options { trace = path, trace_format = "mintgate", speed = speed }))
      assert.equal(2, w.keys)
      local first = w:next_op(0)
      assert.same({ kind = "get", key = 1, ttl = 0, size = 10, at = 0 }, first)
      local none, due = w:next_op(0.1 / speed)
      assert.is_nil(none)
      assert.equal(0.5 / speed, due)
      local op = w:next_op(due)
      assert.same({ kind = "set", key = 1, ttl = 60, size = 10, at = 0.5 / speed }, op)
      local ats = {}
      for _, o in ipairs(replay(w)) do ats[#ats + 1] = o.at end
      assert.same({ 2 / speed, 2 / speed }, ats)
    end
    local w, err = wl.build(options { trace = path, speed = 0 })
    assert.is_nil(w)
    assert.truthy(err:find("speed", 1, true))
    write_file(path, "1.0 get a 1 0 hit\n1.5 get a 1 0 hit\nbroken line\n")
    w, err = wl.build(options { trace = path })
    assert.is_nil(w)
    assert.truthy(err:find(path .. ": line 3:", 1, true), err)
    os.remove(path)
  end)
end)
