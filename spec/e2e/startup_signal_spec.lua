-- A signal sent while the gateway starts: its workers already serve clients before the main
-- thread's loop has its SIGHUP/SIGTERM handlers, and a SIGHUP in that window (a test, or a
-- process manager reloading a gateway as soon as its port answers) took its default action
-- and killed the gateway (exit 129; seen in CI under the ThreadSanitizer build, whose
-- start-up is slow). gdb stops the gateway at its first ev_signal_start — the workers
-- running, the handlers not yet in place — and sends the signal there, every time.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"

local SIGHUP, SIGTERM = 1, 15
-- LeakSanitizer cannot run under ptrace: the ASan build leaves leaks to the other specs here
local asan_options = (os.getenv("ASAN_OPTIONS") and os.getenv("ASAN_OPTIONS") .. ":" or "") ..
  "detect_leaks=0"

-- gdb needs ptrace: a sandbox that refuses it (a container without CAP_SYS_PTRACE, or a
-- seccomp filter) leaves these cases pending, saying so; a missing gdb fails them
local function ptrace_refused()
  local rc, out, err = env.run({ "gdb", "-q", "-nx", "-batch", "-ex", "run", "--args", "/bin/true" })
  local all = out .. err
  if rc ~= 127 and not all:find("exited normally", 1, true) and
    all:find("not permitted", 1, true) then
    return all
  end
end
local refused = ptrace_refused()
local run = refused and function(name) pending(name .. " (gdb cannot trace here: " .. refused .. ")") end
  or it

describe("a signal in the gateway's start-up", function()
  local E, mc, config
  local gateways = {} -- pids of the gateways gdb started: a gdb that dies may leave one

  lazy_setup(function()
    env.require_binary()
    E = env.new("startup_signal")
    mc = E:memcached()
    config = E.dir .. "/startup.lua"
    env.write_file(config, string.format([[
      local mg = require "mintgate"
      mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
    ]], mc.port))
  end)
  lazy_teardown(function()
    for _, pid in ipairs(gateways) do -- still that gateway, not a recycled pid
      os.execute(string.format("grep -q mintgate /proc/%d/cmdline 2>/dev/null && kill %d", pid, pid))
    end
    if E then E:teardown() end
  end)

  -- Run the gateway under gdb, stopped where its workers serve and its handlers are not
  -- yet installed, send it `signo` there and let it go on. Returns gdb's proc, the
  -- gateway's pid and its port.
  local function start_signalled(signo)
    assert(os.execute("command -v gdb >/dev/null 2>&1") == 0, "gdb not installed (make deps)")
    local port = env.free_port()
    local pidfile = E.dir .. "/gw-" .. signo .. ".pid"
    local py = string.format("python import os; p = gdb.selected_inferior().pid; " ..
      "open(%q, 'w').write(str(p)); os.kill(p, %d)", pidfile, signo)
    local gdb = E:spawn({ "gdb", "-q", "-nx", "-batch",
      "-ex", "set pagination off", "-ex", "set debuginfod enabled off",
      "-ex", "set breakpoint pending on",
      "-ex", "handle SIGHUP SIGTERM SIGINT SIGPIPE nostop noprint pass",
      "-ex", "break ev_signal_start", "-ex", "run", "-ex", py, "-ex", "delete",
      "-ex", "continue",
      "--args", env.bin, "-l", "127.0.0.1:" .. port, "-t", "2", config },
      { name = "gdb-mintgate", kind = "gdb", env = { ASAN_OPTIONS = asan_options } })
    local pid = env.wait_until(60, function()
      local s = env.read_file(pidfile)
      return s and tonumber(s:match("%d+"))
    end, 0.05)
    assert(pid, "gdb never stopped the gateway at ev_signal_start:\n" .. gdb:stdout() ..
      gdb:stderr())
    gateways[#gateways + 1] = pid
    local f = io.open(E.pidfile, "a") -- the runner's clean-up stops it if all else fails
    if f then
      f:write(pid, " mintgate-under-gdb\n")
      f:close()
    end
    return gdb, pid, port
  end

  local function gdb_done(gdb)
    assert.truthy(env.wait_until(30, function() return gdb:exit_code() ~= nil end, 0.05),
      "gdb did not end")
    return gdb:stdout() .. gdb:stderr()
  end

  run("a SIGHUP reloads the gateway, which serves on", function()
    local gdb, pid, port = start_signalled(SIGHUP)
    local generation = env.wait_until(30, function()
      if not env.port_open(port) then return nil end
      local g = tonumber(E:client(port):stats()["config_generation"])
      return g and g >= 2 and g
    end, 0.05)
    if generation ~= 2 then
      error("the SIGHUP was not taken as one reload (generation " .. tostring(generation) ..
        "):\n" .. gdb:stdout() .. gdb:stderr())
    end
    local c = E:client(port)
    assert.equal("STORED", c:set("after-hup", "v"))
    assert.equal("v", c:get("after-hup")["after-hup"].value)
    os.execute("kill -" .. SIGTERM .. " " .. pid)
    local out = gdb_done(gdb)
    assert.matches("exited normally", out, 1, true)
  end)

  run("a SIGTERM stops it cleanly (exit 0)", function()
    local gdb = start_signalled(SIGTERM)
    local out = gdb_done(gdb)
    assert.matches("exited normally", out, 1, true)
  end)

  it("a SIGHUP sent the moment the port answers reloads it (five starts; no gdb)", function()
    for _ = 1, 5 do
      local gw = E:gateway { threads = 2, args = { config } }
      gw:signal(SIGHUP)
      assert.truthy(env.wait_until(10, function()
        return tonumber(E:client(gw.port):stats()["config_generation"]) == 2
      end, 0.02), "the SIGHUP was not taken as a reload")
      assert.is_true(gw:alive())
      assert.equal(0, (gw:stop(10)))
    end
  end)
end)
