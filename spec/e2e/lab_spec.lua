-- mintgate-lab end to end: real memcached servers and gateways started by the lab for
-- each policy, the simulated application's numbers read back from `--json` (decoded by
-- dkjson, busted's own dependency): both rows there and sane, stale reads that follow the
-- writers' cache action (none vs delete), a herd on a mass expiry that newcache removes,
-- the PNG, and every process the lab started (pids from --verbose) gone afterwards, also
-- after Ctrl-C (SIGINT) in the middle of a run.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local json = require "dkjson"
local wl = require "mintgate.lab_workload"

local LAB = "./mintgate-lab"
local POLICIES = { "examples/lab/none.lua", "examples/lab/newcache.lua" }

-- The pids the lab said (under -v) it started, with their names.
local function started_pids(stderr)
  local t = {}
  for name, pid in stderr:gmatch("started (%S+) pid (%d+)") do t[#t + 1] = { name, tonumber(pid) } end
  return t
end

local function assert_all_gone(stderr)
  local pids = started_pids(stderr)
  -- per policy: 2 memcached, 2 gateways, the watchdog
  assert.is_true(#pids >= 5, "the lab reported what it started:\n" .. stderr)
  for _, p in ipairs(pids) do
    assert.is_false(env.pid_alive(p[2]), p[1] .. " (pid " .. p[2] .. ") still runs")
  end
end

-- Run the lab with extra arguments; returns the decoded JSON's results by policy name,
-- the stdout and stderr.
local function run_lab(dir, name, extra, policies)
  local jpath = dir .. "/" .. name .. ".json"
  local argv = { LAB, "-v", "--duration", "3", "--clients", "8", "--keys", "200", "--json", jpath }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  for _, p in ipairs(policies or POLICIES) do argv[#argv + 1] = p end
  local rc, out, err = env.run(argv, { timeout = 90 })
  assert.equal(0, rc, "mintgate-lab failed:\n" .. out .. err)
  local doc = assert(json.decode(assert(env.read_file(jpath))), "JSON did not decode")
  local by = {}
  for _, r in ipairs(doc.results) do by[r.policy] = r end
  return by, out, err, doc
end

describe("mintgate-lab", function()
  local dir
  lazy_setup(function()
    env.require_binary()
    dir = env.mktemp_dir()
  end)
  lazy_teardown(function() os.execute("rm -rf " .. env.shquote(dir)) end)

  it("measures two policies and stops everything it started", function()
    local png = dir .. "/lab.png"
    local by, out, err, doc = run_lab(dir, "delete", { "--png", png })
    assert.equal("delete", doc.options.on_write)
    for _, name in ipairs { "none", "newcache" } do
      local r = by[name]
      assert.is_table(r, name .. " row in the JSON")
      assert.is_true(r.hit_ratio > 0 and r.hit_ratio < 1, name .. " hit ratio " .. r.hit_ratio)
      assert.is_true(r.db_reads > 0)
      assert.equal(r.misses, r.db_reads) -- every miss regenerates once
      assert.is_true(r.fills > 0 and r.regens_per_fill >= 1)
      assert.equal(0, r.errors, name .. " errors")
      assert.is_true(r.reads > 1000, name .. " reads " .. r.reads)
      assert.is_true(r.writes > 0)
      assert.is_true(r.latency_p50_ms > 0 and r.latency_p50_ms <= r.latency_p99_ms
        and r.latency_p99_ms <= r.latency_p999_ms)
      assert.equal(3, #r.series.db_reads)
      local sum = 0
      for _, v in ipairs(r.series.db_reads) do sum = sum + v end
      assert.equal(r.db_reads, sum)
      -- the markdown row
      assert.truthy(out:find("\n| " .. name .. " | " .. string.format("%.3f", r.hit_ratio) .. " |", 1, true),
        out)
    end
    local f = assert(io.open(png, "rb"))
    assert.equal("\137PNG", f:read(4))
    f:close()
    assert_all_gone(err)
  end)

  it("counts stale reads: writers that leave the cache alone make many, deletes few", function()
    local none_w = run_lab(dir, "none", { "--on-write", "none" })
    local del_w = run_lab(dir, "delete2")
    for _, name in ipairs { "none", "newcache" } do
      assert.is_true(none_w[name].stale_share > 0.2,
        name .. " with --on-write none: stale share " .. none_w[name].stale_share)
      assert.is_true(none_w[name].stale_age_max > 0.5)
    end
    -- deleting on write leaves only the race of a regeneration against a write
    assert.is_true(del_w.none.stale_share < none_w.none.stale_share / 4,
      string.format("stale share with delete %.4f vs none %.4f", del_w.none.stale_share,
        none_w.none.stale_share))
  end)

  it("shows the herd of a mass expiry under none and one regeneration under newcache", function()
    local by = run_lab(dir, "herd", { "--keys", "20", "--zipf", "0", "--clients", "32",
      "--regen-ms", "100", "--ttl", "1", "--write-ratio", "0", "--mass-expiry" })
    assert.is_true(by.none.regens_per_fill > 2, "none: " .. by.none.regens_per_fill)
    assert.is_true(by.newcache.regens_per_fill < 1.2, "newcache: " .. by.newcache.regens_per_fill)
    assert.is_true(by.none.db_reads > 2 * by.newcache.db_reads)
    assert.equal(0, by.none.stale_reads) -- no writes: nothing can be stale
    assert.equal(0, by.newcache.stale_reads)
  end)

  it("runs Twitter presets (counter-heavy, delete-heavy) and a Lua workload file", function()
    local by = run_lab(dir, "c22", { "--workload", "twitter:cluster22", "--rate", "1500" })
    for _, name in ipairs { "none", "newcache" } do
      local r = by[name]
      assert.equal(0, r.errors, name .. " errors")
      assert.truthy(r.workload:find("twitter:cluster22", 1, true), r.workload)
      -- the row's mix: get 0.72, incr 0.18, set 0.10 (of ~4500 operations)
      local total = r.reads + r.writes + r.commands.incr
      assert.is_true(math.abs(r.commands.incr / total - 0.18) < 0.05, "incr share " .. r.commands.incr / total)
      assert.is_true(r.commands.add > 0, "new counters are created with add")
      assert.is_nil(r.commands.delete)
    end
    by = run_lab(dir, "c14", { "--workload", "twitter:cluster14", "--rate", "1500" })
    local r = by.none
    assert.equal(0, r.errors)
    local total = r.reads + r.writes
    -- get 0.65, delete 0.22, set 0.13
    assert.is_true(math.abs(r.commands.delete / total - 0.22) < 0.05, "delete share")
    local wf = dir .. "/work.lua"
    env.write_file(wf, [[
      return { keys = 50, zipf = 1.0, ttl = 2, value_size = 64,
               mix = { get = 0.7, set = 0.2, delete = 0.1 } }
    ]])
    by = run_lab(dir, "file", { "--workload", wf })
    r = by.none
    assert.equal(0, r.errors)
    assert.is_true(r.commands.delete > 0 and r.commands.set > 0 and r.reads > 0)
    assert.is_true(math.abs(r.writes / (r.reads + r.writes) - 0.3) < 0.05, "write share")
  end)

  it("delete on write under a guarded policy with leases: no stale read older than the in-flight window", function()
    -- A stale read under the guard raced a write in flight: a value read from the database
    -- just before the write, stored, and retracted a round trip or two later; or a read
    -- sent before the write. So ages stay within the regeneration (20 ms) plus the cold
    -- waiters' 50 ms and scheduling (the lab's own loop may stall on a loaded machine:
    -- 1 s leaves room for that). Unguarded (none), the late set lives until its TTL (5 s),
    -- over a 6 s run: ages of seconds (printed for comparison).
    local by = run_lab(dir, "guard", { "--duration", "6", "--clients", "16", "--rate", "3000" },
      { "examples/lab/none.lua", "examples/lab/xfetch.lua" })
    local x = by.xfetch
    assert.equal(0, x.errors)
    assert.is_true(x.writes > 100, "writes " .. x.writes)
    print(string.format("\n  stale age max: none %s s, xfetch (guarded) %s s", tostring(by.none.stale_age_max),
      tostring(x.stale_age_max)))
    assert.is_true((x.stale_age_max or 0) < 1, "xfetch: stale age max " .. tostring(x.stale_age_max))
  end)

  it("replays a recorded trace to the same operation counts", function()
    local t1, t2 = dir .. "/rec1.trace", dir .. "/rec2.trace"
    local by = run_lab(dir, "rec1", { "--record-trace", t1 }, { "examples/lab/none.lua" })
    local c1 = assert(wl.trace_counts(t1, "mintgate"))
    -- the gateways traced what the clients sent: every get, set and delete
    assert.equal(by.none.commands.get, c1.get)
    assert.equal(by.none.commands.set, c1.set)
    assert.equal(by.none.commands.delete, c1.delete)
    assert.is_true(c1.get > 1000 and c1.set > 100 and c1.delete > 10)
    -- replaying it sends the same operations, and the gateways' trace of the replay says so
    local rep = run_lab(dir, "rec2", { "--trace", t1, "--speed", "2", "--record-trace", t2 },
      { "examples/lab/none.lua" }).none
    local c2 = assert(wl.trace_counts(t2, "mintgate"))
    assert.same(c1, c2)
    assert.equal(c1.get, rep.commands.get)
    assert.equal(c1.set, rep.commands.set)
    assert.equal(c1.delete, rep.commands.delete)
    assert.equal(0, rep.errors)
    -- at twice the speed the replay takes about half the recorded 3 s
    assert.is_true(rep.duration > 0.8 and rep.duration < 2.5, "replay took " .. rep.duration)
  end)

  it("stops its processes on Ctrl-C in the middle of a run", function()
    local E = env.new("lab")
    local p = E:spawn({ LAB, "-v", "--duration", "60", "--clients", "4", POLICIES[1] },
      { name = "mintgate-lab" })
    local ok = env.wait_until(20, function() return p:stderr():find("; 60 s, 4 clients", 1, true) end, 0.1)
    assert.truthy(ok, "the run did not start:\n" .. p:stderr())
    p:signal(2) -- SIGINT
    assert.truthy(env.wait_until(10, function() return not p:alive() end, 0.05), "the lab still runs")
    -- its exit status is written by the shell that started it, a moment after it is gone
    env.wait_until(5, function() return p:exit_code() ~= nil end, 0.02)
    assert.equal(1, p:exit_code())
    local err = p:stderr()
    assert.truthy(err:find("interrupted", 1, true), err)
    assert_all_gone(err)
    E:teardown()
  end)
end)
