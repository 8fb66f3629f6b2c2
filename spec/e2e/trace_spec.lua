-- The request trace (issue 14): mg.trace, admin `trace start|stop`, `stats trace`. Real
-- memcached; a gateway whose script each test rewrites and reloads.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

-- The trace file at path: its header line and its records as tables.
local function read_trace(path)
  local text = env.read_file(path) or ""
  local header, recs = nil, {}
  for l in text:gmatch("([^\n]*)\n") do
    if not header then
      header = l
    else
      local t, op, key, vsize, ttl, outcome =
        l:match("^(%d+%.%d%d%d%d%d%d) (%l+) (%S+) (%d+) (%-?%d+) ([%l_]+)$")
      assert(t, "malformed trace line: " .. l)
      recs[#recs + 1] = { t = tonumber(t), op = op, key = key, vsize = tonumber(vsize),
        ttl = tonumber(ttl), outcome = outcome, line = l }
    end
  end
  return header, recs, text
end

-- The records of key, as "op vsize ttl outcome" strings in file order.
local function of_key(recs, key)
  local out = {}
  for _, r in ipairs(recs) do
    if r.key == key then
      out[#out + 1] = string.format("%s %d %d %s", r.op, r.vsize, r.ttl, r.outcome)
    end
  end
  return out
end

describe("request trace", function()
  local E, mc, gw, aport, dir, script

  local function config(trace)
    return string.format([[
      local mg = require "mintgate"
      %s
      mg.route { default = mg.pool { name = "main", servers = { "127.0.0.1:%d" } } }
    ]], trace and ("mg.trace " .. trace) or "", mc.port)
  end

  local function admin(cmd) return env.admin_cmd(aport, cmd) end

  local function stats()
    local c = client.connect(aport)
    local t = c:stats("stats trace")
    c:close()
    return t
  end

  local function reload(trace)
    env.replace_file(script, config(trace))
    assert.equal("OK", admin("reload"))
  end

  lazy_setup(function()
    env.require_binary()
    E = env.new("trace")
    mc = E:memcached()
    dir = env.mktemp_dir()
    script = dir .. "/gw.lua"
    aport = env.free_port()
    env.write_file(script, config(string.format("{ path = %q }", dir .. "/a.trace")))
    gw = E:gateway { threads = 2, args = { "-A", "127.0.0.1:" .. aport, script } }
    assert(env.wait_until(5, function() return env.port_open(aport) end), "no admin listener")
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. env.shquote(dir)) end
    if E then E:teardown() end
  end)
  after_each(function() if E then E:close_clients() end end)

  it("records each key operation with its fields, readable while it is written", function()
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("t:a", "hello", 0, 30))
    local items = c:get("t:a", "t:miss")
    assert.equal("hello", items["t:a"].value)
    assert.equal("DELETED", c:cmd("delete t:a"))
    assert.equal("NOT_FOUND", c:cmd("delete t:a"))
    assert.equal("NOT_FOUND", c:cmd("incr t:n 1"))
    assert.equal("STORED", c:set("t:n", "5"))
    assert.equal("7", c:cmd("incr t:n 2"))
    assert.equal("6", c:cmd("decr t:n 1"))
    assert.equal("TOUCHED", c:cmd("touch t:n 100"))
    assert.equal("NOT_STORED", c:cmd("add t:n 0 0 1\r\nx"))
    assert.equal("STORED", c:cmd("append t:n 0 0 2\r\n00"))
    -- meta: mg get, ms set/add by its mode, md delete, ma incr/decr
    assert.equal("HD", c:cmd("ms t:m 3 T60\r\nabc"))
    c:send("mg t:m v\r\n")
    local l, v = c:meta_reply()
    assert.equal("VA 3", l)
    assert.equal("abc", v)
    assert.equal("EN", c:cmd("mg t:none v"))
    assert.equal("NS", c:cmd("ms t:m 1 ME\r\nz"))
    assert.equal("HD", c:cmd("md t:m"))
    assert.equal("NF", c:cmd("ma t:m"))
    -- the writer drains every 100 ms: the lines appear while the trace runs
    local path = dir .. "/a.trace"
    assert(env.wait_until(3, function()
      local _, recs = read_trace(path)
      return #recs >= 18
    end, 0.05), "the trace file did not fill: " .. tostring(env.read_file(path)))
    local header, recs = read_trace(path)
    assert.matches("^# mintgate%-trace v1 sample=1 hash_keys=0 start=%d+$", header)
    assert.equal(18, #recs)
    assert.same({ "set 5 30 stored", "get 5 0 hit", "delete 0 0 deleted",
      "delete 0 0 not_found" }, of_key(recs, "t:a"))
    assert.same({ "get 0 0 miss" }, of_key(recs, "t:miss"))
    assert.same({ "incr 0 0 not_found", "set 1 0 stored", "incr 1 0 hit", "decr 1 0 hit",
      "touch 0 100 touched", "add 1 0 not_stored", "append 2 0 stored" }, of_key(recs, "t:n"))
    assert.same({ "set 3 60 stored", "get 3 0 hit", "add 1 0 not_stored", "delete 0 0 deleted",
      "incr 0 0 not_found" }, of_key(recs, "t:m"))
    assert.same({ "get 0 0 miss" }, of_key(recs, "t:none"))
    local now = os.time()
    for _, r in ipairs(recs) do assert(math.abs(r.t - now) < 30, "time " .. r.line) end
    assert(env.wait_until(3, function() return stats().trace_records == "18" end, 0.05))
    local s = stats()
    assert.equal("1", s.trace_active)
    assert.equal("running", s.trace_state)
    assert.equal(path, s.trace_path)
    assert.equal("18", s.trace_records)
    assert.equal("0", s.trace_dropped)
    assert.equal(tostring(#env.read_file(path)), s.trace_bytes)
    -- the trace's path is for the admin port only
    assert.matches("^CLIENT_ERROR", c:cmd("stats trace"))
  end)

  it("admin trace start/stop: a stopped trace is complete, with every line in", function()
    local path = dir .. "/b.trace"
    assert.equal("OK", admin("trace start " .. path))
    local c = E:client(gw.port)
    local n = 300
    local batch = {}
    for i = 1, n do batch[#batch + 1] = string.format("set s:%d 0 0 1\r\nx\r\n", i) end
    c:send(table.concat(batch))
    for _ = 1, n do assert.equal("STORED", c:line()) end
    assert.equal("OK", admin("trace stop")) -- right away: the stop writes what is left
    local _, recs = read_trace(path)
    assert.equal(n, #recs)
    local s = stats()
    assert.equal("0", s.trace_active)
    assert.equal("stopped", s.trace_state)
    assert.equal(tostring(n), s.trace_records)
    -- nothing is written after the stop
    assert.equal("STORED", c:set("s:after", "y"))
    env.sleep(0.3)
    local _, again = read_trace(path)
    assert.equal(n, #again)
    assert.equal("OK", admin("trace stop")) -- stopping a stopped trace is fine
  end)

  it("admin trace start refuses a bad path or sample and keeps the running trace", function()
    local path = dir .. "/c.trace"
    assert.equal("OK", admin("trace start " .. path .. " 1"))
    local bad = admin("trace start " .. dir .. "/no/such/x")
    assert.equal(1, (bad:find("SERVER_ERROR trace: cannot open " .. dir .. "/no/such/x", 1, true)))
    assert.matches("^CLIENT_ERROR", admin("trace start " .. path .. " 1.5"))
    assert.matches("^CLIENT_ERROR", admin("trace start " .. path .. " half"))
    assert.matches("^CLIENT_ERROR usage", admin("trace"))
    assert.matches("^CLIENT_ERROR usage", admin("trace begin " .. path))
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("c:1", "v"))
    assert.equal("OK", admin("trace stop"))
    local _, recs = read_trace(path)
    assert.same({ "set 1 0 stored" }, of_key(recs, "c:1"))
  end)

  it("sample 0 records nothing; sampling is by key: a key has all its lines or none", function()
    local zero = dir .. "/zero.trace"
    assert.equal("OK", admin("trace start " .. zero .. " 0"))
    local c = E:client(gw.port)
    for i = 1, 50 do assert.equal("STORED", c:set("z:" .. i, "v")) end
    assert.equal("OK", admin("trace stop"))
    local header, recs = read_trace(zero)
    assert.matches("sample=0 ", header)
    assert.equal(0, #recs)

    local half = dir .. "/half.trace"
    assert.equal("OK", admin("trace start " .. half .. " 0.5"))
    local n, keys = 400, {}
    for i = 1, n do keys[i] = "h:" .. i end
    for _, k in ipairs(keys) do
      assert.equal("STORED", c:set(k, "vv"))
      c:get(k)
      assert.equal("DELETED", c:cmd("delete " .. k))
    end
    c:get(unpack(keys, 1, 50)) -- a multi-key get: one line per key (all misses now)
    assert.equal("OK", admin("trace stop"))
    local _, hrecs = read_trace(half)
    local traced = 0
    for i, k in ipairs(keys) do
      local lines = of_key(hrecs, k)
      if #lines > 0 then
        traced = traced + 1
        local want = { "set 2 0 stored", "get 2 0 hit", "delete 0 0 deleted" }
        if i <= 50 then want[4] = "get 0 0 miss" end
        assert.same(want, lines)
      end
    end
    assert(traced > n * 0.35 and traced < n * 0.65, traced .. " of " .. n .. " keys traced")
  end)

  it("hash_keys (from a reloaded mg.trace) hides keys, the same key the same way", function()
    local path = dir .. "/hashed.trace"
    reload(string.format("{ path = %q, hash_keys = true }", path))
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("secret:1", "abc"))
    assert.equal("abc", c:value("secret:1"))
    assert.equal("STORED", c:set("secret:2", "de"))
    assert.equal("OK", admin("trace stop"))
    local header, recs, text = read_trace(path)
    assert.matches("hash_keys=1", header)
    assert.equal(3, #recs)
    assert.is_nil(text:find("secret", 1, true))
    for _, r in ipairs(recs) do
      assert.matches("^#%x+$", r.key)
      assert.equal(17, #r.key)
    end
    assert.equal(recs[1].key, recs[2].key)
    assert.not_equal(recs[1].key, recs[3].key)
    assert.equal("set", recs[1].op)
    assert.equal("get", recs[2].op)
    assert.equal("hit", recs[2].outcome)
    assert.equal(3, recs[2].vsize)
    assert.equal("1", stats().trace_hash_keys)
  end)

  it("a reload that changes mg.trace restarts it; one that drops it stops it", function()
    local p1, p2 = dir .. "/r1.trace", dir .. "/r2.trace"
    reload(string.format("{ path = %q }", p1))
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("r:1", "a"))
    reload(string.format("{ path = %q, sample = 1 }", p1)) -- the same settings: it runs on
    assert.equal("STORED", c:set("r:2", "a"))
    reload(string.format("{ path = %q }", p2))
    assert.equal("STORED", c:set("r:3", "a"))
    assert(env.wait_until(3, function()
      local _, recs = read_trace(p2)
      return #recs == 1
    end, 0.05))
    local _, recs1 = read_trace(p1)
    assert.equal(2, #recs1)
    assert.equal("r:3", select(2, read_trace(p2))[1].key)
    reload(nil)
    assert.equal("0", stats().trace_active)
    assert.equal("STORED", c:set("r:4", "a"))
    env.sleep(0.3)
    assert.equal(1, #select(2, read_trace(p2)))
  end)

  it("stops by itself at max_size, the file ending with a whole line", function()
    local path = dir .. "/small.trace"
    reload(string.format("{ path = %q, max_size = 2000 }", path))
    local c = E:client(gw.port)
    for i = 1, 200 do assert.equal("STORED", c:set("m:" .. i, "v")) end
    assert(env.wait_until(3, function() return stats().trace_state == "max_size" end, 0.05),
      "the trace did not stop at max_size")
    local s = stats()
    assert.equal("0", s.trace_active)
    local text = env.read_file(path)
    assert(#text <= 2000, #text .. " bytes")
    assert(#text > 1800, "only " .. #text .. " bytes")
    assert.equal("\n", text:sub(-1))
    local _, recs = read_trace(path)
    assert.equal(tostring(#recs), s.trace_records)
    -- the lines of requests after the stop are not traced at all, not dropped
    local dropped = tonumber(s.trace_dropped)
    assert(dropped > 0 and #recs + dropped <= 200, "dropped " .. dropped)
    assert.equal(tostring(#text), s.trace_bytes)
    reload(nil)
  end)

  it("a base64 meta key is traced as given; noreply writes are traced too", function()
    local path = dir .. "/b64.trace"
    assert.equal("OK", admin("trace start " .. path))
    local c = E:client(gw.port)
    assert.equal("HD", c:cmd("ms dHJhY2U= 2 b T9\r\nhi")) -- "trace"
    c:send("set nr:1 0 7 3 noreply\r\nabc\r\n")
    assert.equal("hi", c:value("trace")) -- the same item under its plain key
    assert.equal("OK", admin("trace stop"))
    local _, recs = read_trace(path)
    assert.same({ "set 2 9 stored" }, of_key(recs, "dHJhY2U="))
    assert.same({ "set 3 7 stored" }, of_key(recs, "nr:1"))
    assert.same({ "get 2 0 hit" }, of_key(recs, "trace"))
  end)

  -- last: it stops the gateway
  it("a gateway stopping (SIGTERM) writes every line taken before it exits", function()
    local path = dir .. "/exit.trace"
    assert.equal("OK", admin("trace start " .. path))
    local c = E:client(gw.port)
    for i = 1, 100 do assert.equal("STORED", c:set("x:" .. i, "v")) end
    c:close()
    assert.equal(0, E:stop(gw))
    local _, recs = read_trace(path)
    assert.equal(100, #recs)
  end)
end)
