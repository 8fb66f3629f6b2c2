-- bench/mgload's open loop (--rate): the offered rate is what reaches the target, however
-- fast it answers; arrivals that find every connection busy wait and are counted late,
-- timed from their arrival (a slow target is charged for the wait); and the closed loop is
-- as it was. bench/hot.sh's latency-at-a-fixed-load table rests on this.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"

local function kv(out, k)
  return tonumber(out:match("[ ^]" .. k .. "=([%d.]+)") or out:match("^" .. k .. "=([%d.]+)"))
end

describe("mgload --rate", function()
  local E, mc

  lazy_setup(function()
    env.require_binary()
    assert(io.open("bench/mgload", "rb"), "bench/mgload is not built (make bench/mgload)")
    E = env.new("mgload_rate")
    mc = E:memcached()
  end)
  lazy_teardown(function() if E then E:teardown() end end)

  local function run(name, args)
    local argv = { "bench/mgload", "--port", tostring(mc.port), "--keys", "100", "--seed", "3" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local p = E:spawn(argv, { name = name, kind = "load" })
    assert.truthy(env.wait_until(30, function() return p:exit_code() ~= nil end, 0.05),
      name .. " hung")
    assert.equal(0, p:exit_code(), name .. " failed:\n" .. p:stderr())
    return p:stdout()
  end

  it("offers the rate it is given, Poisson, over the connections", function()
    local out = run("rate", { "--prefill", "--conns", "8", "--rate", "2000", "--duration", "2",
      "--hot-share", "0.5" })
    assert.equal(2000, kv(out, "offered_rate"), out)
    assert.equal(0, kv(out, "errors"), out)
    assert.equal(0, kv(out, "dropped"), out)
    -- 4000 arrivals expected; a Poisson count's spread is ~63, the rest is start and stop
    local ops = kv(out, "ops")
    assert.is_true(ops > 3400 and ops < 4600, "ops " .. ops .. ":\n" .. out)
    assert.is_true(kv(out, "hot_ops") > 1400, out)
    -- memcached answers a get in well under the 500 µs between arrivals per connection:
    -- almost no arrival found all 8 connections busy
    assert.is_true(kv(out, "late") < ops / 20, out)
  end)

  it("charges a target that falls behind for the wait, from the arrival", function()
    -- one connection, one request at a time, 200,000 arrivals a second: no loopback
    -- round trip takes 5 µs, so arrivals queue (and, past the waiting ring, are dropped)
    local out = run("behind", { "--conns", "1", "--rate", "200000", "--duration", "1" })
    local ops, late = kv(out, "ops"), kv(out, "late")
    assert.equal(0, kv(out, "errors"), out)
    assert.is_true(late > ops / 2, "most arrivals waited:\n" .. out)
    -- timed from the arrival: the wait shows in the latency (a closed loop would report
    -- one round trip, tens of microseconds)
    assert.is_true(kv(out, "p50_us") > 1000, out)
  end)

  it("without --rate stays a closed loop and prints no open-loop fields", function()
    local out = run("closed", { "--conns", "2", "--duration", "0.5" })
    assert.is_nil(out:match("offered_rate="), out)
    assert.is_nil(out:match("late="), out)
    assert.is_true(kv(out, "ops") > 100, out)
  end)

  it("rejects a rate it cannot pace", function()
    local p = E:spawn({ "bench/mgload", "--port", tostring(mc.port), "--rate", "0" },
      { name = "bad", kind = "load" })
    assert.truthy(env.wait_until(10, function() return p:exit_code() ~= nil end, 0.05))
    assert.are_not.equal(0, p:exit_code())
    assert.matches("rate", p:stderr())
  end)
end)
