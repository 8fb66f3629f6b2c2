-- Limits as they really are (issue 9): get lines of any length stream in pieces of 64
-- keys; replies a client has not read, including those still on their way from the
-- backends, are bounded per connection; memory comes back when connections go.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"

local asan = env.bin:match("asan") ~= nil

describe("long get lines", function()
  local E, gw

  local function connect() return E:client(gw.port, { timeout = 10 }) end

  lazy_setup(function()
    env.require_binary()
    E = env.new("limits_lines")
    local a, b = E:memcached(), E:memcached()
    gw = E:gateway { servers = { a.port, b.port }, threads = 1 }
  end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() E:close_clients() end)

  local function long_get(verb, n, every)
    local keys = {}
    local prefix = verb:sub(1, 3) .. tostring(n) .. ":"
    for i = 1, n do keys[i] = string.format("%s%06d", prefix, i) end
    local c = connect()
    local want = {}
    for i = every, n, every do
      assert.equal("STORED", c:set(keys[i], "v" .. i))
      want[#want + 1] = keys[i]
    end
    c:send(verb .. " " .. table.concat(keys, " ") .. "\r\n")
    local items, order = c:get_reply()
    assert.same(want, order, "every stored key once, in request order, and one END")
    for _, k in ipairs(want) do assert.equal("v" .. tonumber(k:sub(-6)), items[k].value) end
    assert.matches("^VERSION ", c:cmd("version"), "the connection is still in step")
  end

  it("answers a 50,000-key get (550 KB line) like memcached", function()
    long_get("get", 50000, 997)
  end)

  it("streams gets and gat with their exptime in every piece", function()
    long_get("gets", 3000, 7)
    long_get("gat 100", 3000, 11)
  end)

  it("answers a bad key deep in a long line once and drops the rest of the line", function()
    local c = connect()
    assert.equal("STORED", c:set("lk:first", "1"))
    local keys = { "lk:first" }
    for i = 2, 5000 do keys[i] = "lk:x" .. i end
    keys[3000] = "bad\1key"
    c:send("get " .. table.concat(keys, " ") .. "\r\n")
    local items, _, last = c:retrieval()
    assert.equal("1", items["lk:first"].value)
    assert.equal("CLIENT_ERROR bad command line format", last)
    assert.is_false(c:has_data(0.3), "nothing more for that line")
    assert.matches("^VERSION ", c:cmd("version"))
  end)

  it("still closes on a single key longer than a line", function()
    local c = connect()
    c:send("get " .. ("k"):rep(5000) .. "\r\n")
    assert.equal("CLIENT_ERROR line too long", c:line())
    assert.is_true(c:closed(2))
  end)
end)

describe("bytes in flight", function()
  local E, gw

  lazy_setup(function()
    env.require_binary()
    E = env.new("limits_inflight")
    local a = E:memcached { args = { "-I", "2m", "-m", "256" } }
    gw = E:gateway { servers = { a.port }, threads = 2 }
  end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() E:close_clients() end)

  it("four clients asking 1024 times for a 1 MB value and never reading stay bounded", function()
    local setup = E:client(gw.port, { timeout = 10 })
    local big = ("b"):rep(1000000)
    assert.equal("STORED", setup:set("big", big))
    local rss0 = assert(env.rss_kb(gw.pid))
    local req = ("get big\r\n"):rep(1024)
    local hogs = {}
    for i = 1, 4 do
      hogs[i] = E:client(gw.port)
      hogs[i]:try_send(req, 1)
    end
    local peak, other = rss0, E:client(gw.port)
    local deadline = env.now() + 3
    while env.now() < deadline do
      peak = math.max(peak, env.rss_kb(gw.pid) or peak)
      assert.equal("x", (other:set("probe", "x") == "STORED") and other:value("probe"),
        "another client is not served")
      env.sleep(0.05)
    end
    local growth = (peak - rss0) / 1024
    print(string.format("\n    RSS %d kB at start, %d kB at the peak (+%.0f MB)", rss0, peak, growth))
    -- per connection: 4 MiB of unread replies plus a window of keys in flight (16 on a
    -- new connection, 4 once its replies are known to be large); it was 440-720 MB
    if not asan then
      assert(growth < 160, string.format("RSS grew by %.0f MB", growth))
    end
    for _, h in ipairs(hogs) do h:close() end
    local after
    assert.truthy(env.wait_until(5, function()
      after = env.rss_kb(gw.pid)
      return asan or (after - rss0) / 1024 < 40
    end, 0.2), string.format("memory did not come back: %d kB at start, %d kB at the peak, %d kB " ..
      "after the clients left", rss0, peak, after or -1))
    assert.equal(big, other:value("big"))
    assert.is_true(gw:alive())
  end)
end)
