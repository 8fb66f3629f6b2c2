-- mintgate.lab alone (mintgate-lab's pure part): the command line, Zipf sampling's shape,
-- the workload's write share and hot-key burst, the database's stale-age accounting, reply
-- parsing, fill episodes and percentiles in the summary, the markdown table, JSON and the
-- gnuplot input.
assert(jit ~= nil, "specs must run under LuaJIT")

local lab = require "mintgate.lab"

-- A deterministic uniform generator (an LCG), so that shapes are checked without flakes.
local function lcg(seed)
  local x = seed
  return function()
    x = (x * 1103515245 + 12345) % 2147483648
    return x / 2147483648
  end
end

describe("mintgate.lab command line", function()
  it("fills in the defaults and takes the policies in order", function()
    local o = assert(lab.parse_args { "a.lua", "--clients", "8", "b.lua", "--json=out.json" })
    assert.same({ "a.lua", "b.lua" }, o.policies)
    assert.equal(8, o.clients)
    assert.equal("out.json", o.json)
    assert.equal(2, o.servers)
    assert.equal(2, o.gateways)
    assert.equal(10, o.duration)
    assert.equal("delete", o.on_write)
    assert.equal(0.05, o.write_ratio)
    assert.is_true(math.abs(o.read_ratio - 0.95) < 1e-12)
  end)

  it("refuses bad usage with a message", function()
    local cases = {
      { {}, "no POLICY" },
      { { "--clients", "x", "a.lua" }, "--clients needs a number" },
      { { "--clients", "1.5", "a.lua" }, "whole number" },
      { { "--servers", "0", "a.lua" }, "at least 1" },
      { { "--on-write", "purge", "a.lua" }, "delete, set or none" },
      { { "--write-ratio", "0.7", "--incr-ratio", "0.5", "a.lua" }, "add up to over 1" },
      { { "--read-ratio", "0.9", "--write-ratio", "0.1", "a.lua" }, "give one" },
      { { "--read-ratio", "0.9", "--incr-ratio", "0.2", "a.lua" }, "add up to over 1" },
      { { "--trace", "t", "--workload", "twitter:cluster4", "a.lua" }, "give one" },
      { { "--trace-format", "csv", "a.lua" }, "mintgate or twitter" },
      { { "--speed", "0", "a.lua" }, "at least" },
      { { "--nope", "a.lua" }, "unknown option --nope" },
      { { "a.lua", "--json" }, "--json needs a value" },
    }
    for _, c in ipairs(cases) do
      local o, err = lab.parse_args(c[1])
      assert.is_nil(o, table.concat(c[1], " "))
      assert.truthy(err:find(c[2], 1, true), err)
    end
    assert.equal("help", lab.parse_args { "a.lua", "-h" })
    assert.equal("list", lab.parse_args { "--workload", "list" })
  end)

  it("takes the read ratio as the complement of writes and increments", function()
    local o = assert(lab.parse_args { "--read-ratio", "0.7", "--incr-ratio", "0.1", "a.lua" })
    assert.is_true(math.abs(o.write_ratio - 0.2) < 1e-12, o.write_ratio)
    assert.is_true(math.abs(o.read_ratio - 0.7) < 1e-12)
    assert.equal(0.1, o.incr_ratio)
    o = assert(lab.parse_args { "--keys", "50", "--trace", "x.csv", "--speed", "4", "a.lua" })
    assert.is_true(o.keys_given)
    assert.is_nil(o.zipf_given)
    assert.equal("x.csv", o.trace)
    assert.equal(4, o.speed)
  end)

  it("merges gateway traces by time under one header", function()
    local files = {
      a = "# mintgate-trace v1 sample=1\n2.500000 get k1 3 0 hit\n4.000000 set k2 3 5 stored\n",
      b = "# mintgate-trace v1 sample=1\n1.000000 delete k1 0 0 deleted\n2.500000 get k9 0 0 miss\n",
    }
    local merged = lab.merge_traces({ "a", "missing", "b" }, function(p) return files[p] end)
    assert.equal(table.concat({
      "# mintgate-trace v1 sample=1",
      "1.000000 delete k1 0 0 deleted",
      "2.500000 get k1 3 0 hit", -- same time: the order the files were read in
      "2.500000 get k9 0 0 miss",
      "4.000000 set k2 3 5 stored",
    }, "\n") .. "\n", merged)
  end)

  it("names a policy by its file", function()
    assert.equal("newcache", lab.policy_name("examples/lab/newcache.lua"))
    assert.equal("x", lab.policy_name("x.lua"))
  end)

  it("writes a wrapper that runs the policy and fills in pool and route", function()
    local s = lab.wrapper_script("/tmp/it's.lua")
    assert.truthy(s:find('dofile("/tmp/it\'s.lua")', 1, true))
    assert.truthy(s:find("MINTGATE_LAB_SERVERS", 1, true))
    assert.truthy(s:find("#mg._state.pools == 0", 1, true))
    assert.truthy(s:find("MINTGATE_LAB_TRACE", 1, true)) -- --record-trace
    assert(loadstring(s)) -- valid Lua
  end)
end)

describe("mintgate.lab workload", function()
  it("samples Zipf ranks with the right shape", function()
    local n, s = 1000, 0.9
    local cdf = lab.zipf_cdf(n, s)
    assert.equal(1, cdf[n])
    for i = 2, n do assert.is_true(cdf[i] >= cdf[i - 1]) end
    assert.equal(1, lab.zipf_pick(cdf, 0))
    assert.equal(n, lab.zipf_pick(cdf, 0.9999999999))
    local rand, counts, draws = lcg(7), {}, 200000
    for _ = 1, draws do
      local r = lab.zipf_pick(cdf, rand())
      counts[r] = (counts[r] or 0) + 1
    end
    -- the weight of rank 1 against rank 10 is 10^0.9 ~ 7.9
    local ratio = counts[1] / counts[10]
    assert.is_true(ratio > 6.5 and ratio < 9.5, "rank1/rank10 = " .. ratio)
    -- rank 1's share is 1 / H(n, s)
    local h = 0
    for i = 1, n do h = h + 1 / i ^ s end
    local share = counts[1] / draws
    assert.is_true(math.abs(share - 1 / h) < 0.1 / h, "rank 1 share " .. share)
    -- s = 0 is uniform
    local u = lab.zipf_cdf(4, 0)
    assert.same({ 0.25, 0.5, 0.75, 1 }, u)
    assert.equal(3, lab.zipf_pick(u, 0.6))
  end)

  it("writes at the write ratio and bursts one key in the middle third", function()
    local w = lab.new_workload { keys = 100, zipf = 0.9, write_ratio = 0.2, duration = 9, burst = true }
    local rand = lcg(3)
    local writes, hot_before, hot_during, reads_before, reads_during = 0, 0, 0, 0, 0
    for i = 1, 30000 do
      local t = (i % 2 == 0) and 1 or 4 -- before the burst, inside it
      local kind, k = w:next_op(t, rand)
      assert.is_true(k >= 1 and k <= 100)
      if kind == "write" then
        writes = writes + 1
      elseif t == 1 then
        reads_before = reads_before + 1
        if k == 10 then hot_before = hot_before + 1 end
      else
        reads_during = reads_during + 1
        if k == 10 then hot_during = hot_during + 1 end
      end
    end
    assert.is_true(math.abs(writes / 30000 - 0.2) < 0.02, "write share " .. writes / 30000)
    assert.is_true(hot_during / reads_during > 0.45, "burst share " .. hot_during / reads_during)
    assert.is_true(hot_before / reads_before < 0.1)
  end)
end)

describe("mintgate.lab database and values", function()
  it("versions values and ages stale reads from the write that replaced them", function()
    local db = lab.new_db(3, 0)
    assert.equal(1, db.version[2])
    assert.equal(2, lab.db_write(db, 2, 10))
    assert.equal(3, lab.db_write(db, 2, 12.5))
    -- version 3 is current: not stale
    assert.is_nil(lab.stale_age(db, 2, 3, 3, 20))
    -- version 1 read at 20 while the database was at 3: behind since version 2 (t = 10)
    assert.equal(10, lab.stale_age(db, 2, 1, 3, 20))
    assert.equal(7.5, lab.stale_age(db, 2, 2, 3, 20))
    -- the read was sent while version 2 was current: version 2 is not stale for it
    assert.is_nil(lab.stale_age(db, 2, 2, 2, 20))
    local v = lab.encode_value(42, 100)
    assert.equal(100, #v)
    assert.equal(42, lab.decode_version(v))
    assert.is_nil(lab.decode_version("hello"))
  end)

  it("parses get, set and delete replies, whole or in pieces", function()
    local reply = "VALUE lab:1 0 5\r\nv3:xx\r\nEND\r\nSTORED\r\n"
    for cut = 0, #reply - #"STORED\r\n" - 1 do
      assert.is_nil(lab.parse_get_reply(reply:sub(1, cut)), "cut at " .. cut)
    end
    local r, rest = lab.parse_get_reply(reply)
    assert.same({ hit = true, value = "v3:xx" }, r)
    assert.equal("STORED\r\n", rest)
    assert.same({ line = "STORED" }, (lab.parse_line_reply(rest, { STORED = true })))
    assert.same({ hit = false }, (lab.parse_get_reply("END\r\n")))
    assert.same({ error = "SERVER_ERROR backend down" },
      (lab.parse_get_reply("SERVER_ERROR backend down\r\n")))
    assert.same({ error = "NOT_STORED" }, (lab.parse_line_reply("NOT_STORED\r\n", { STORED = true })))
    assert.is_nil(lab.parse_line_reply("DELE", { DELETED = true }))
  end)
end)

describe("mintgate.lab statistics", function()
  it("takes nearest-rank percentiles", function()
    local l = {}
    for i = 1000, 1, -1 do l[#l + 1] = i end
    assert.equal(500, lab.percentile(l, 0.5))
    assert.equal(990, lab.percentile(l, 0.99))
    assert.equal(999, lab.percentile(l, 0.999))
    assert.equal(1000, lab.percentile(l, 1))
    assert.is_nil(lab.percentile({}, 0.5))
    assert.equal(7, lab.percentile({ 7 }, 0.99))
  end)

  it("a series adds up to its total even with events just after the run's end", function()
    local st = lab.new_stats()
    st:db_read(0.5, 1)
    st:db_read(2.9, 2)
    st:db_read(3.02, 3) -- a reply read just after a 3 s run ended
    st:get(3.01, 0.001, "hit")
    local r = st:summary("p", 3)
    assert.same({ 1, 0, 2 }, r.series.db_reads)
    assert.equal(3, r.db_reads)
    assert.same({ 0, 0, 1 }, r.series.reads)
  end)

  it("counts fills, regenerations, stale reads and per-second series", function()
    local st = lab.new_stats()
    -- second 0: key 1 missed by three clients before the first set: one fill, three reads
    for i = 1, 3 do
      st:get(0.1 * i, 0.001, "miss")
      st:db_read(0.1 * i, 1)
    end
    st:filled(1)
    st:filled(1) -- the herd's other sets
    -- second 1: hits, two of them stale (ages 0.2 and 1.0)
    for i = 1, 10 do st:get(1 + i / 100, 0.002, "hit") end
    st:stale_read(1.5, 0.2)
    st:stale_read(1.6, 1.0)
    -- second 2: key 1 again (a new fill) and key 2
    st:get(2.1, 0.01, "miss")
    st:db_read(2.1, 1)
    st:get(2.2, 0.01, "miss")
    st:db_read(2.2, 2)
    st:write()
    st:error("SERVER_ERROR backend down")
    st:error("timeout")
    local r = st:summary("p", 3)
    assert.equal(15, r.reads)
    assert.equal(10, r.hits)
    assert.equal(5, r.misses)
    assert.equal(0.6667, r.hit_ratio)
    assert.equal(5, r.db_reads)
    assert.equal(3, r.fills)
    assert.equal(1.667, r.regens_per_fill)
    assert.equal(1.67, r.db_reads_per_s)
    assert.equal(3, r.db_reads_worst_s)
    assert.same({ 3, 0, 2 }, r.series.db_reads)
    assert.same({ 0, 2, 0 }, r.series.stale)
    assert.same({ 3, 10, 2 }, r.series.reads)
    assert.equal(2, r.stale_reads)
    assert.equal(0.2, r.stale_age_p50)
    assert.equal(1, r.stale_age_p99)
    assert.equal(1, r.stale_age_max)
    assert.equal(2, r.latency_p50_ms)
    assert.equal(10, r.latency_p99_ms)
    assert.equal(2, r.errors)
    assert.same({ SERVER_ERROR = 1, timeout = 1 }, r.error_kinds)
    assert.equal(1, r.writes)
  end)
end)

describe("mintgate.lab outputs", function()
  local function result(name, stale)
    local st = lab.new_stats()
    st:get(0.5, 0.001, "miss")
    st:db_read(0.5, 1)
    st:get(1.5, 0.001, "hit")
    if stale then st:stale_read(1.5, 0.25) end
    return st:summary(name, 2)
  end

  it("renders one markdown row per policy", function()
    local t = lab.render_table { result("none", false), result("newcache", true) }
    local lines = {}
    for l in t:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(4, #lines)
    assert.truthy(lines[1]:find("| policy | hit ratio |", 1, true))
    assert.truthy(lines[3]:find("^| none | 0.500 | 0.5 / 1 | 1.00 | 1 | 0 %(0.00 %%%) | %- / %- / %- |"))
    assert.truthy(lines[4]:find("| newcache | 0.500 |", 1, true))
    assert.truthy(lines[4]:find("| 1 (50.00 %) | 0.250 / 0.250 / 0.250 |", 1, true))
    for _, l in ipairs(lines) do
      local _, bars = l:gsub("|", "")
      assert.equal(10, bars, l)
    end
  end)

  it("encodes JSON", function()
    assert.equal('{"a":[1,2.5,"x\\"y\\n"],"b":null,"c":true,"d":{},"e":[]}',
      lab.to_json { a = { 1, 2.5, 'x"y\n' }, b = 0 / 0, c = true, d = setmetatable({}, lab.OBJECT),
                    e = {} })
    assert.equal("0.1", lab.to_json(0.1))
    assert.equal('"\\u0001"', lab.to_json("\1"))
    assert.has_error(function() lab.to_json { f = print } end)
    local j = lab.to_json { results = { result("none", false) } }
    assert.truthy(j:find('"policy":"none"', 1, true))
    assert.truthy(j:find('"series":{"db_reads":[1,0],"reads":[1,1],"stale":[0,0]}', 1, true))
    assert.truthy(j:find('"error_kinds":{}', 1, true))
  end)

  it("writes gnuplot input with one block per policy", function()
    local rs = { result("none", false), result("new\"cache", true) }
    assert.equal("# none\n0 1 0\n1 0 0\n\n\n# new\"cache\n0 1 0\n1 0 1\n", lab.plot_data(rs))
    local gp = lab.plot_script(rs, "/tmp/d.dat", "/tmp/o.png")
    assert.truthy(gp:find('set output "/tmp/o.png"', 1, true))
    assert.truthy(gp:find('"/tmp/d.dat" index 1 using 1:3 with linespoints title "new\\"cache"', 1, true))
    assert.truthy(gp:find('index 0 using 1:2', 1, true))
    -- titles as they are: gnuplot's enhanced text would print invalidation_hooks with a
    -- subscript h
    assert.truthy(gp:find("set terminal pngcairo size 900,700 noenhanced", 1, true))
  end)
end)
