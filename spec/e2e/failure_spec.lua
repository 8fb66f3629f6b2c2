-- Backend failures: one good memcached and one broken backend (a refused port, a backend
-- that hangs, one that answers garbage, one that closes in the middle of a value).
-- A key on the broken backend gets SERVER_ERROR quickly, keys on the good one are served
-- normally meanwhile, the broken backend is ejected, and once a real memcached is back on
-- its port the key works again.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

-- No --failure-limit: the default (2, README and main.c) is what the steps below count on.
-- The retry timeout (2 s) leaves room for the checks made while the backend is ejected.
local FAIL_ARGS = { "--connect-timeout", "0.2", "--timeout", "0.3", "--retry-timeout", "2" }
-- generous bound for a request to a broken backend (timeouts above are 0.2 / 0.3 s)
local ERR_BOUND = 2.0
-- What a key on an ejected backend gets, at once, without the backend being tried.
local DOWN = "SERVER_ERROR backend down"
-- What the request that finds each kind of broken backend gets (core/backend.c).
local MODE_ERROR = {
  refuse = "SERVER_ERROR backend connect failed",
  hang = "SERVER_ERROR backend timeout",
  garbage = "SERVER_ERROR backend protocol error",
  close_mid_value = "SERVER_ERROR backend closed connection",
}

local function backend_stats(c, port)
  local s = c:stats("stats backends")
  local p = "backend:127.0.0.1:" .. port .. ":"
  local t = {}
  for k, v in pairs(s) do
    if k:sub(1, #p) == p then t[k:sub(#p + 1)] = v end
  end
  return t, s
end

local function show_stats(t)
  local names = {}
  for k, v in pairs(t) do names[#names + 1] = k .. "=" .. v end
  table.sort(names)
  return table.concat(names, " ")
end

describe("backend failures", function()
  local E, G, DPORT, good, dead

  lazy_setup(function()
    E = env.new("failure")
    G = E:memcached()
    -- Learn which keys land on which backend: a gateway over the good memcached and a real
    -- memcached on the port that will host the broken backends.
    DPORT = env.free_port()
    local D = E:memcached { port = DPORT }
    local gw = E:gateway { servers = { G.port, DPORT }, threads = 1 }
    local c = client.connect(gw.port)
    local g, d = client.connect(G.port), client.connect(DPORT)
    good, dead = {}, {}
    for i = 1, 100 do
      local k = "fk:" .. i
      assert.equal("STORED", c:set(k, "x"))
      if g:value(k) then good[#good + 1] = k elseif d:value(k) then dead[#dead + 1] = k end
    end
    c:close(); g:close(); d:close()
    assert(#good >= 5 and #dead >= 5, string.format("keys not spread: %d good, %d dead", #good, #dead))
    assert.equal(0, (E:stop(gw)))
    E:stop(D)
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  for _, mode in ipairs { "refuse", "hang", "garbage", "close_mid_value" } do
    it("a backend that is " .. mode .. ": SERVER_ERROR for its keys, the others served, ejection, recovery", function()
      local fake, gw, real
      finally(function()
        -- free the port for the next mode whatever happened
        if gw then E:stop(gw) end
        if fake then E:stop(fake) end
        if real then E:stop(real) end
      end)
      if mode ~= "refuse" then fake = E:fake_backend(DPORT, mode) end
      gw = E:gateway { servers = { G.port, DPORT }, threads = 1, args = FAIL_ARGS }

      local a, b = client.connect(gw.port, { timeout = 3 }), client.connect(gw.port, { timeout = 3 })
      local direct = client.connect(G.port)
      for i = 1, 3 do assert.equal("STORED", direct:set(good[i], "good" .. i)) end

      -- 1. the first request to the broken backend fails within the bound, and a request
      --    for the good backend on another connection is not held up by it
      local t0 = env.now()
      a:send("get " .. dead[1] .. "\r\n")
      assert.equal("good1", b:value(good[1]))
      local t_good = env.now() - t0
      local pending_when_good_answered = not a:has_data(0)
      local line = a:line(ERR_BOUND + 1)
      local t_dead = env.now() - t0
      assert.equal(MODE_ERROR[mode], line)
      assert(t_dead < ERR_BOUND, string.format("SERVER_ERROR took %.2f s", t_dead))
      assert.equal("", a:drain(), "nothing else after the SERVER_ERROR")
      assert(t_good < 1, string.format("a good key took %.2f s while the broken backend was tried", t_good))
      if mode == "hang" then
        assert(pending_when_good_answered, string.format(
          "the good key (%.3f s) was answered only after the hung one failed (%.3f s)", t_good, t_dead))
      end

      -- one failure in a row: not ejected yet (the default failure_limit is 2)
      local st = backend_stats(b, DPORT)
      assert.equal("0", st.ejections, "ejected after one failure: " .. show_stats(st))
      assert.equal("retrying", st.state, "after one failure: " .. show_stats(st))

      -- 2. a pipelined mix: good ones answered, broken ones SERVER_ERROR, order kept
      t0 = env.now()
      a:send(table.concat {
        "get ", good[1], "\r\n",
        "get ", dead[2], "\r\n",
        "get ", good[2], "\r\n",
        "set ", dead[3], " 0 0 1\r\nx\r\n",
        "get ", good[3], "\r\n",
        "set ", good[4], " 0 0 2\r\nok\r\n",
      })
      assert.equal("good1", a:get_reply()[good[1]].value)
      assert.equal(MODE_ERROR[mode], a:line())
      assert.equal("good2", a:get_reply()[good[2]].value)
      -- the set shares the get's connection attempt, or (a refused connect fails at once)
      -- comes after the ejection
      local set_reply = a:line()
      assert(set_reply == MODE_ERROR[mode] or set_reply == DOWN,
        "the set on the broken backend got " .. client.show(set_reply))
      assert.equal("good3", a:get_reply()[good[3]].value)
      assert.equal("STORED", a:line())
      local t_mix = env.now() - t0
      assert(t_mix < 2 * ERR_BOUND, string.format("the pipelined mix took %.2f s", t_mix))
      assert.equal("ok", direct:value(good[4]))

      -- 3. the second failure in a row ejected the broken backend: exactly once, now
      st = backend_stats(b, DPORT)
      assert.equal("1", st.ejections, "after the second failure: " .. show_stats(st))
      assert.equal("down", st.state, "after the second failure: " .. show_stats(st))
      t0 = env.now()
      assert.equal(DOWN, a:cmd("get " .. dead[4], ERR_BOUND + 1))
      assert(env.now() - t0 < ERR_BOUND, "SERVER_ERROR backend down took too long")
      st = backend_stats(b, DPORT)
      assert.equal("1", st.ejections, "a request while ejected counted another ejection: " .. show_stats(st))
      assert.equal("down", st.state, "while ejected: " .. show_stats(st))
      assert.matches("^%d+$", st.requests or "", "requests counter")
      assert.matches("^%d+$", st.inflight or "", "inflight counter")
      assert(tonumber(st.errors or "0") + tonumber(st.timeouts or "0") >= 1,
        "no errors or timeouts counted: " .. show_stats(st))
      if mode == "hang" then
        assert(tonumber(st.timeouts or "0") >= 1, "no timeouts counted: " .. show_stats(st))
      end
      local gst = backend_stats(b, G.port)
      assert.equal("up", gst.state, "good backend: " .. show_stats(gst))
      assert.equal("0", gst.ejections, "good backend: " .. show_stats(gst))
      -- while ejected, a broken key still fails within the bound and good keys work
      t0 = env.now()
      assert.equal(DOWN, a:cmd("get " .. dead[5], ERR_BOUND + 1))
      assert(env.now() - t0 < ERR_BOUND, "SERVER_ERROR took too long while ejected")
      assert.equal("good1", b:value(good[1]))

      -- 4. a real memcached comes back on the port: after retry_timeout the key works again
      if fake then E:stop(fake); fake = nil end
      real = E:memcached { port = DPORT }
      local back = env.wait_until(10, function()
        local l = a:cmd(string.format("set %s 0 0 4\r\nback", dead[1]), ERR_BOUND + 1)
        if l == "STORED" then return true end
        assert.matches("^SERVER_ERROR", l)
        return false
      end, 0.1)
      assert(back, "the key on the restored backend still fails after 10 s")
      assert.equal("back", a:value(dead[1]))
      local d = client.connect(DPORT)
      assert.equal("back", d:value(dead[1]), "the key was not stored on its own backend")
      d:close()
      local up = env.wait_until(5, function()
        st = backend_stats(b, DPORT)
        return st.state == "up"
      end, 0.1)
      assert(up, "stats backends does not show the restored backend up: " .. show_stats(st))
      assert.equal("good2", b:value(good[2]))
      a:close(); b:close(); direct:close()
      assert.is_true(gw:alive(), "the gateway died")
      local rc = E:stop(gw)
      gw = nil
      assert.equal(0, rc, "gateway exit status on SIGTERM")
    end)
  end

  it("--failure-limit 3: a hung backend is ejected on the third timeout in a row, then " ..
     "its keys are answered at once", function()
    local fake, gw
    finally(function()
      if gw then E:stop(gw) end
      if fake then E:stop(fake) end
    end)
    fake = E:fake_backend(DPORT, "hang")
    -- a 1 s reply timeout, so that "at once" (under 0.5 s) is far from "after trying"
    gw = E:gateway { servers = { G.port, DPORT }, threads = 1, args = { "--connect-timeout", "1",
      "--timeout", "1", "--failure-limit", "3", "--retry-timeout", "30" } }
    local a, b = client.connect(gw.port, { timeout = 3 }), client.connect(gw.port, { timeout = 3 })
    local st = backend_stats(b, DPORT)
    assert.equal("idle", st.state, "before any request: " .. show_stats(st))
    for n = 1, 3 do
      local t0 = env.now()
      a:send("get " .. dead[n] .. "\r\n")
      -- connected to the hung backend, waiting for its reply
      local up = env.wait_until(0.8, function()
        st = backend_stats(b, DPORT)
        return st.state == "up"
      end, 0.02)
      assert(up, "request " .. n .. ": the backend is not shown up while it is tried: " .. show_stats(st))
      assert.equal("SERVER_ERROR backend timeout", a:line(3))
      local took = env.now() - t0
      assert(took >= 0.9 and took < 2.5, string.format("request %d: the timeout took %.2f s, want ~1 s", n, took))
      st = backend_stats(b, DPORT)
      assert.equal(tostring(n), st.timeouts, "after timeout " .. n .. ": " .. show_stats(st))
      if n < 3 then
        assert.equal("0", st.ejections, "ejected after " .. n .. " of 3 failures: " .. show_stats(st))
        assert.equal("retrying", st.state, "after " .. n .. " of 3 failures: " .. show_stats(st))
      else
        assert.equal("1", st.ejections, "not ejected after 3 failures: " .. show_stats(st))
        assert.equal("down", st.state, "after 3 failures: " .. show_stats(st))
      end
    end
    -- ejected: one key, then a pipelined batch of them, each answered without waiting
    -- for the 1 s timeout
    local t0 = env.now()
    assert.equal(DOWN, a:cmd("get " .. dead[4], 3))
    local took = env.now() - t0
    assert(took < 0.5, string.format("a key on the ejected backend took %.2f s (timeout 1 s)", took))
    t0 = env.now()
    a:send(table.concat { "get ", dead[5], "\r\n", "set ", dead[5], " 0 0 1\r\nx\r\n",
      "delete ", dead[5], "\r\n", "get ", good[1], "\r\n" })
    for i = 1, 3 do assert.equal(DOWN, a:line(3), "reply " .. i .. " of the pipelined batch") end
    a:get_reply(3) -- the good key after the ejected ones: a normal reply (hit or miss)
    took = env.now() - t0
    assert(took < 0.5, string.format("the pipelined batch took %.2f s (timeout 1 s)", took))
    st = backend_stats(b, DPORT)
    assert.equal("3", st.timeouts, "the ejected backend was tried again: " .. show_stats(st))
    assert.equal("1", st.ejections, show_stats(st))
    assert.equal("down", st.state, show_stats(st))
    a:close(); b:close()
    local rc = E:stop(gw)
    gw = nil
    assert.equal(0, rc, "gateway exit status on SIGTERM")
  end)
end)
