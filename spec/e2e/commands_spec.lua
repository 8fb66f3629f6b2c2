-- Every classic text command through the gateway, with two real memcached behind it.
--
-- MINTGATE_REFERENCE=1 runs the same expectations against one real memcached directly
-- (the tests that need two backends are skipped then), to check that what the gateway
-- is held to is what memcached really answers.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local REF = env.reference
-- tests that only make sense with two backends behind a gateway
local gw_it = REF and pending or it

describe("classic commands" .. (REF and " [reference: memcached directly]" or " through the gateway"), function()
  local E, A, B, target

  local function connect(port) return E:client(port or target.port) end

  -- key -> "A" | "B": where a key really is (direct connections to both backends)
  local function locate(keys)
    local a, b = connect(A.port), connect(B.port)
    local where = {}
    for _, k in ipairs(keys) do
      local ia, ib = a:get(k), b:get(k)
      assert(not (ia[k] and ib[k]), "key " .. k .. " is on both backends")
      where[k] = ia[k] and "A" or ib[k] and "B" or nil
    end
    return where
  end

  lazy_setup(function()
    E = env.new("commands")
    A = E:memcached()
    if REF then
      target = A
    else
      B = E:memcached()
      target = E:gateway { servers = { A.port, B.port } }
    end
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  after_each(function() E:close_clients() end)

  describe("get / gets", function()
    it("a hit returns flags and value; a miss returns just END", function()
      local c = connect()
      assert.equal("STORED", c:cmd("set g:1 42 0 5\r\nhello"))
      c:send("get g:1\r\n")
      assert.equal("VALUE g:1 42 5", c:line())
      assert.equal("hello", c:line())
      assert.equal("END", c:line())
      assert.equal("END", c:cmd("get g:nosuch"))
    end)

    it("many keys in one get are answered in request order, misses left out", function()
      local c = connect()
      local keys = {}
      for i = 1, 60 do
        keys[i] = "mk:" .. i
        assert.equal("STORED", c:set(keys[i], "v" .. i, i))
      end
      -- a scrambled order with misses and a repeated key
      local ask, want = {}, {}
      for i = 60, 1, -7 do
        ask[#ask + 1] = keys[i]; want[#want + 1] = keys[i]
        ask[#ask + 1] = "mk:miss" .. i
      end
      for i = 1, 60, 3 do ask[#ask + 1] = keys[i]; want[#want + 1] = keys[i] end
      ask[#ask + 1] = keys[2]; want[#want + 1] = keys[2]
      ask[#ask + 1] = keys[2]; want[#want + 1] = keys[2]
      local items, order = c:get(unpack(ask))
      assert.same(want, order)
      for _, k in ipairs(want) do
        local i = tonumber(k:match("%d+"))
        assert.same({ flags = i, value = "v" .. i }, items[k])
      end
    end)

    gw_it("keys are spread over both backends (each key on exactly one)", function()
      local keys = {}
      for i = 1, 60 do keys[i] = "mk:" .. i end
      local c = connect()
      for i = 1, 60 do assert.equal("STORED", c:set(keys[i], "v" .. i, i)) end
      local where = locate(keys)
      local n = { A = 0, B = 0 }
      for _, k in ipairs(keys) do
        assert(where[k], "key " .. k .. " is on no backend")
        n[where[k]] = n[where[k]] + 1
      end
      assert(n.A > 5 and n.B > 5, string.format("keys are not spread: %d on A, %d on B", n.A, n.B))
    end)

    it("gets returns a cas unique per key", function()
      local c = connect()
      assert.equal("STORED", c:set("gs:1", "a"))
      assert.equal("STORED", c:set("gs:2", "b"))
      local items, order = c:gets("gs:1", "gs:nosuch", "gs:2")
      assert.same({ "gs:1", "gs:2" }, order)
      assert.matches("^%d+$", items["gs:1"].cas)
      assert.matches("^%d+$", items["gs:2"].cas)
      assert.equal("a", items["gs:1"].value)
      -- a new set changes the cas
      assert.equal("STORED", c:set("gs:1", "c"))
      local again = c:gets("gs:1")
      assert.are_not.equal(items["gs:1"].cas, again["gs:1"].cas)
    end)

    it("values keep their bytes: empty, binary, with \\r\\n inside, 32-bit flags", function()
      local c = connect()
      local bin = {}
      for i = 0, 255 do bin[#bin + 1] = string.char(i) end
      bin = table.concat(bin) .. "\r\nEND\r\nVALUE x 0 1\r\n"
      assert.equal("STORED", c:set("val:empty", ""))
      assert.equal("STORED", c:set("val:bin", bin, 4294967295))
      local items = c:get("val:empty", "val:bin")
      assert.same({ flags = 0, value = "" }, items["val:empty"])
      assert.same({ flags = 4294967295, value = bin }, items["val:bin"])
    end)

    it("a large value (512 KB) round-trips", function()
      local c = connect()
      local v = ("0123456789abcdef"):rep(32768)
      assert.equal("STORED", c:set("val:large", v))
      assert.equal(v, c:value("val:large"))
    end)
  end)

  describe("storage commands", function()
    it("set / add / replace", function()
      local c = connect()
      assert.equal("STORED", c:cmd("add st:a 1 0 1\r\nx"))
      assert.equal("NOT_STORED", c:cmd("add st:a 2 0 1\r\ny"))
      assert.equal("NOT_STORED", c:cmd("replace st:nosuch 0 0 1\r\nz"))
      assert.equal("STORED", c:cmd("replace st:a 3 0 1\r\nw"))
      assert.same({ flags = 3, value = "w" }, c:get("st:a")["st:a"])
      assert.equal("STORED", c:cmd("set st:a 4 0 2\r\nxy"))
      assert.same({ flags = 4, value = "xy" }, c:get("st:a")["st:a"])
      assert.is_nil(c:get("st:nosuch")["st:nosuch"])
    end)

    it("append / prepend (flags of the original kept)", function()
      local c = connect()
      assert.equal("NOT_STORED", c:cmd("append st:nosuch 0 0 1\r\nx"))
      assert.equal("NOT_STORED", c:cmd("prepend st:nosuch 0 0 1\r\nx"))
      assert.equal("STORED", c:cmd("set st:ap 7 0 1\r\nb"))
      assert.equal("STORED", c:cmd("append st:ap 9 0 2\r\ncd"))
      assert.equal("STORED", c:cmd("prepend st:ap 9 0 1\r\na"))
      assert.same({ flags = 7, value = "abcd" }, c:get("st:ap")["st:ap"])
    end)

    it("cas: STORED with the current cas, EXISTS with a stale one, NOT_FOUND when missing", function()
      local c = connect()
      assert.equal("STORED", c:set("cas:k", "one"))
      local cas = c:gets("cas:k")["cas:k"].cas
      assert.equal("STORED", c:cmd(string.format("cas cas:k 5 0 3 %s\r\ntwo", cas)))
      assert.equal("EXISTS", c:cmd(string.format("cas cas:k 0 0 5 %s\r\nthree", cas)))
      assert.same({ flags = 5, value = "two" }, c:get("cas:k")["cas:k"])
      assert.equal("NOT_FOUND", c:cmd("cas cas:nosuch 0 0 1 12345\r\nx"))
      local cas2 = c:gets("cas:k")["cas:k"].cas
      assert.are_not.equal(cas, cas2)
      assert.equal("STORED", c:cmd(string.format("cas cas:k 0 0 5 %s\r\nthree", cas2)))
      assert.equal("three", c:value("cas:k"))
    end)

    it("delete", function()
      local c = connect()
      assert.equal("STORED", c:set("del:k", "x"))
      assert.equal("DELETED", c:cmd("delete del:k"))
      assert.equal("NOT_FOUND", c:cmd("delete del:k"))
      assert.is_nil(c:value("del:k"))
      assert.equal("STORED", c:set("del:k", "x"))
      assert.equal("DELETED", c:cmd("delete del:k 0"))
    end)
  end)

  describe("incr / decr", function()
    it("count up and down, floor at 0, NOT_FOUND when missing", function()
      local c = connect()
      assert.equal("STORED", c:set("n:a", "10"))
      assert.equal("15", c:cmd("incr n:a 5"))
      assert.equal("12", c:cmd("decr n:a 3"))
      assert.equal("0", c:cmd("decr n:a 100"))
      assert.equal("NOT_FOUND", c:cmd("incr n:nosuch 1"))
      assert.equal("NOT_FOUND", c:cmd("decr n:nosuch 1"))
    end)

    it("the stored value follows (a shorter number is space padded, as memcached does)", function()
      local c = connect()
      assert.equal("STORED", c:set("n:b", "99"))
      assert.equal("100", c:cmd("incr n:b 1"))
      assert.equal("100", c:value("n:b"))
      assert.equal("99", c:cmd("decr n:b 1"))
      assert.equal("99 ", c:value("n:b"))
    end)

    it("wraps at 2^64 on incr", function()
      local c = connect()
      assert.equal("STORED", c:set("n:w", "18446744073709551615"))
      assert.equal("0", c:cmd("incr n:w 1"))
      assert.equal("18446744073709551615", c:cmd("incr n:w 18446744073709551615"))
      assert.equal("18446744073709551614", c:cmd("incr n:w 18446744073709551615"))
    end)

    it("a non-numeric value is a CLIENT_ERROR", function()
      local c = connect()
      assert.equal("STORED", c:set("n:s", "abc"))
      assert.equal("CLIENT_ERROR cannot increment or decrement non-numeric value", c:cmd("incr n:s 1"))
      assert.equal("CLIENT_ERROR cannot increment or decrement non-numeric value", c:cmd("decr n:s 1"))
      assert.equal("abc", c:value("n:s"))
    end)
  end)

  describe("touch / gat / gats", function()
    it("touch: TOUCHED or NOT_FOUND; a negative exptime expires the key now", function()
      local c = connect()
      assert.equal("STORED", c:set("t:a", "x"))
      assert.equal("TOUCHED", c:cmd("touch t:a 100"))
      assert.equal("x", c:value("t:a"))
      assert.equal("NOT_FOUND", c:cmd("touch t:nosuch 100"))
      assert.equal("TOUCHED", c:cmd("touch t:a -1"))
      assert.is_nil(c:value("t:a"))
    end)

    it("gat and gats return the value (gats with cas) and set the exptime", function()
      local c = connect()
      assert.equal("STORED", c:set("t:g1", "one", 3))
      assert.equal("STORED", c:set("t:g2", "two", 4))
      c:send("gat 100 t:g1 t:nosuch t:g2\r\n")
      local items, order = c:get_reply()
      assert.same({ "t:g1", "t:g2" }, order)
      assert.same({ flags = 3, value = "one" }, items["t:g1"])
      c:send("gats 100 t:g2\r\n")
      items = c:get_reply()
      assert.equal("two", items["t:g2"].value)
      assert.matches("^%d+$", items["t:g2"].cas)
      assert.equal(items["t:g2"].cas, c:gets("t:g2")["t:g2"].cas)
      -- gat with a negative exptime returns the value once and expires it
      c:send("gat -1 t:g1\r\n")
      assert.equal("one", c:get_reply()["t:g1"].value)
      assert.is_nil(c:value("t:g1"))
      assert.equal("END", c:cmd("gat 100 t:nosuch"))
    end)
  end)

  describe("noreply", function()
    -- Each command with noreply, then a get in the same send: the first line back must be
    -- the get's, and it shows the command's effect.
    local cases = {
      { "set", "set nr:set 0 0 1 noreply\r\nx\r\n", "nr:set", "x" },
      { "add", "add nr:add 0 0 1 noreply\r\nx\r\n", "nr:add", "x" },
      { "replace", "replace nr:rep 0 0 1 noreply\r\ny\r\n", "nr:rep", "y", before = "x" },
      { "append", "append nr:app 0 0 1 noreply\r\ny\r\n", "nr:app", "xy", before = "x" },
      { "prepend", "prepend nr:pre 0 0 1 noreply\r\ny\r\n", "nr:pre", "yx", before = "x" },
      { "cas", "cas nr:cas 0 0 1 CAS noreply\r\ny\r\n", "nr:cas", "y", before = "x" },
      { "cas (stale: no EXISTS either)", "cas nr:cas2 0 0 1 1 noreply\r\ny\r\n", "nr:cas2", "x",
        before = "x" },
      { "delete", "delete nr:del noreply\r\n", "nr:del", nil, before = "x" },
      { "delete (missing: no NOT_FOUND)", "delete nr:nosuch noreply\r\n", "nr:nosuch", nil },
      { "incr", "incr nr:inc 5 noreply\r\n", "nr:inc", "15", before = "10" },
      { "decr", "decr nr:dec 5 noreply\r\n", "nr:dec", "5 ", before = "10" },
      { "incr (missing: no NOT_FOUND)", "incr nr:nosuch 5 noreply\r\n", "nr:nosuch", nil },
      { "touch", "touch nr:touch -1 noreply\r\n", "nr:touch", nil, before = "x" },
      { "add (exists: no NOT_STORED)", "add nr:add2 0 0 1 noreply\r\ny\r\n", "nr:add2", "x",
        before = "x" },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local c = connect()
        local bytes, key, want = case[2], case[3], case[4]
        if case.before then
          assert.equal("STORED", c:set(key, case.before))
          bytes = bytes:gsub("CAS", c:gets(key)[key].cas)
        end
        c:send(bytes .. "get " .. key .. "\r\n")
        local items, order = c:get_reply()
        if want then
          assert.same({ key }, order)
          assert.equal(want, items[key].value)
        else
          assert.same({}, order)
        end
        assert.is_false(c:has_data(0.1), "unexpected bytes after the reply: " .. client.show(c:drain()))
      end)
    end

    it("verbosity noreply", function()
      local c = connect()
      c:send("verbosity 1 noreply\r\nversion\r\n")
      assert.matches("^VERSION ", c:line())
      c:send("verbosity 0 noreply\r\nversion\r\n")
      assert.matches("^VERSION ", c:line())
    end)
  end)

  describe("other commands", function()
    it("version", function()
      assert.matches("^VERSION %S+$", connect():cmd("version"))
    end)

    it("verbosity answers OK", function()
      local c = connect()
      assert.equal("OK", c:cmd("verbosity 1"))
      assert.equal("OK", c:cmd("verbosity 0"))
    end)

    it("stats: memcached's fields are present and the counters move", function()
      local c = connect()
      local s0 = c:stats()
      for _, f in ipairs { "pid", "uptime", "time", "version", "curr_connections", "total_connections",
        "cmd_get", "cmd_set", "get_hits", "get_misses" } do
        assert(s0[f], "stats has no " .. f)
      end
      assert.equal(tostring(target.pid), s0.pid)
      assert.matches("^%d+$", s0.uptime)
      assert(tonumber(s0.curr_connections) >= 1, "curr_connections " .. s0.curr_connections)
      local d = connect()
      assert.matches("^VERSION", d:cmd("version"))
      assert.equal("STORED", c:set("stats:k", "x"))
      assert.equal("x", c:value("stats:k"))
      assert.is_nil(c:value("stats:nosuch"))
      local s1 = c:stats()
      local function grew(f, by)
        local a, b = tonumber(s0[f]), tonumber(s1[f])
        assert(b - a >= by, string.format("stats %s went from %s to %s, expected +%d", f, s0[f], s1[f], by))
      end
      grew("cmd_get", 2)
      grew("get_hits", 1)
      grew("get_misses", 1)
      grew("cmd_set", 1)
      grew("total_connections", 1)
      assert(tonumber(s1.curr_connections) >= 2, "curr_connections " .. s1.curr_connections)
    end)

    it("quit closes the connection without a reply", function()
      local c = connect()
      c:send("quit\r\n")
      assert.is_true(c:closed(2), "quit did not close the connection")
      assert.equal("", c:drain())
    end)

    it("quit after pipelined requests: they are answered first", function()
      local c = connect()
      c:send("set q:k 0 0 1\r\nx\r\nget q:k\r\nquit\r\nget q:k\r\n")
      assert.equal("STORED", c:line())
      assert.equal("x", c:get_reply()["q:k"].value)
      assert.is_true(c:closed(2), "quit did not close the connection")
      assert.equal("", c:drain())
    end)
  end)

  describe("pipelining", function()
    it("a mix of commands in one send is answered in order", function()
      local c = connect()
      c:send(table.concat {
        "set p:a 0 0 1\r\n1\r\n",
        "get p:a\r\n",
        "incr p:a 41\r\n",
        "add p:a 0 0 1\r\nz\r\n",
        "gets p:a p:nosuch\r\n",
        "delete p:a\r\n",
        "get p:a\r\n",
        "version\r\n",
        "delete p:a\r\n",
      })
      assert.equal("STORED", c:line())
      assert.equal("1", c:get_reply()["p:a"].value)
      assert.equal("42", c:line())
      assert.equal("NOT_STORED", c:line())
      local items, order = c:get_reply()
      assert.same({ "p:a" }, order)
      assert.equal("42", items["p:a"].value)
      assert.equal("DELETED", c:line())
      assert.equal("END", c:line())
      assert.matches("^VERSION ", c:line())
      assert.equal("NOT_FOUND", c:line())
    end)

    it("400 sets and gets over many keys in one send come back in order", function()
      local c = connect()
      local req = {}
      for i = 1, 200 do
        req[#req + 1] = string.format("set pp:%d %d 0 %d\r\n%s\r\n", i, i, #tostring(i * 7), i * 7)
        req[#req + 1] = string.format("get pp:%d pp:%d\r\n", i, 201 - i)
      end
      c:send(table.concat(req))
      for i = 1, 200 do
        assert.equal("STORED", c:line())
        local items, order = c:get_reply()
        assert.equal(tostring(i * 7), items["pp:" .. i].value)
        assert.equal("pp:" .. i, order[1])
        if 201 - i < i then assert.equal(tostring((201 - i) * 7), items["pp:" .. (201 - i)].value) end
      end
    end)
  end)

  -- Last: these empty the backends.
  describe("flush_all", function()
    local function fill(c, prefix, n)
      local keys = {}
      for i = 1, n do
        keys[i] = prefix .. i
        assert.equal("STORED", c:set(keys[i], "x"))
      end
      return keys
    end

    local function count_on_backends(keys)
      local where = locate(keys)
      local n = 0
      for _ in pairs(where) do n = n + 1 end
      return n
    end

    it("flush_all empties every backend", function()
      local c = connect()
      local keys = fill(c, "fl:", 40)
      if not REF then assert.equal(40, count_on_backends(keys)) end
      assert.equal("OK", c:cmd("flush_all"))
      local items = c:get(unpack(keys))
      assert.same({}, items)
      if not REF then assert.equal(0, count_on_backends(keys)) end
      -- and what is set afterwards stays
      assert.equal("STORED", c:set("fl:after", "y"))
      assert.equal("y", c:value("fl:after"))
    end)

    it("flush_all noreply", function()
      local c = connect()
      local keys = fill(c, "fln:", 20)
      c:send("flush_all noreply\r\nget " .. table.concat(keys, " ") .. "\r\n")
      assert.same({}, c:get_reply())
      if not REF then assert.equal(0, count_on_backends(keys)) end
    end)

    it("flush_all with a delay empties every backend after the delay", function()
      local c = connect()
      local keys = fill(c, "fld:", 40)
      -- memcached's clock ticks once a second, its timer may run up to a second behind,
      -- and `flush_all N` takes effect when that clock reaches (its now + N - 1): with
      -- N = 4 that is 1 to 3 s from now, never sooner (N = 3 was seen at 0.7 s), so the
      -- keys must all still be there right after the OK and 0.7 s later
      local t0 = env.now()
      assert.equal("OK", c:cmd("flush_all 4"))
      local n = 0
      for _ in pairs((c:get(unpack(keys)))) do n = n + 1 end
      assert.equal(40, n, "keys gone right after flush_all 4: the delay was not kept")
      env.sleep(0.7 - (env.now() - t0))
      n = 0
      for _ in pairs((c:get(unpack(keys)))) do n = n + 1 end
      if env.now() - t0 < 1 then -- (on a machine too slow to ask in time, only the first check)
        assert.equal(40, n, "keys gone 0.7 s after flush_all 4: the delay was not kept")
      end
      if not REF then assert.equal(40, count_on_backends(keys)) end
      local gone = env.wait_until(6, function()
        return next((c:get(unpack(keys)))) == nil
      end, 0.1)
      assert(gone, "keys still readable 6 s after flush_all 4")
      local took = env.now() - t0
      assert(took > 0.9 and took < 4.5, string.format("the delayed flush took effect after %.1f s", took))
      if not REF then assert.equal(0, count_on_backends(keys)) end
      -- memcached drops items set in the second the delayed flush takes effect: wait until
      -- a set sticks so that nothing after this test is affected
      assert(env.wait_until(4, function()
        c:set("fld:probe", "p")
        return c:value("fld:probe") == "p"
      end, 0.2), "sets do not stick after the delayed flush")
    end)
  end)
end)
