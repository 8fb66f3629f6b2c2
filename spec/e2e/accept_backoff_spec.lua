-- Out of file descriptors (EMFILE): the gateway must stop its accept watchers for a
-- moment instead of spinning on a listening socket that stays readable, log the
-- condition once per episode rather than once per failed accept, count it in `stats`
-- (listen_disabled_num, as memcached names it), and serve new clients once descriptors
-- are free again.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"
local socket = require "socket"

local FD_LIMIT = 64
local NCONNS = 200
local HOLD = 2.0

local function clock_ticks()
  local p = io.popen("getconf CLK_TCK")
  local n = tonumber(p:read("*l") or "")
  p:close()
  return n or 100
end

-- CPU seconds (user + system, all threads) the process has used so far.
local function cpu_seconds(pid, tck)
  local st = assert(env.read_file("/proc/" .. pid .. "/stat"), "no /proc entry for " .. pid)
  local f = {}
  for x in st:match("^%d+ %b() (.*)$"):gmatch("%S+") do f[#f + 1] = x end
  -- after the command name: state is field 3 of stat(5), utime 14, stime 15
  return (tonumber(f[12]) + tonumber(f[13])) / tck
end

local function count_accept_lines(log)
  local n = 0
  for l in log:gmatch("[^\n]*accept[^\n]*") do
    if l ~= "" then n = n + 1 end
  end
  return n
end

describe("accepting with no file descriptors left", function()
  local E, gw, socks

  lazy_setup(function()
    env.require_binary()
    E = env.new("accept_backoff")
    local mc = E:memcached()
    gw = E:gateway { servers = { mc.port }, threads = 2, fd_limit = FD_LIMIT }
  end)

  lazy_teardown(function()
    for _, s in ipairs(socks or {}) do s:close() end
    if E then E:teardown() end
  end)

  it("backs off instead of spinning, logs a few lines, counts it and recovers", function()
    -- the kernel completes the handshakes into the listen backlog whether or not the
    -- gateway can accept them, so every connect succeeds
    socks = {}
    for i = 1, NCONNS do
      local s = socket.tcp()
      s:settimeout(2)
      assert(s:connect("127.0.0.1", gw.port), "connect " .. i)
      socks[i] = s
    end
    env.sleep(0.3) -- let the gateway run into its descriptor limit
    assert.is_true(gw:alive(), "the gateway died")
    local tck = clock_ticks()
    local cpu0 = cpu_seconds(gw.pid, tck)
    env.sleep(HOLD)
    local cpu = cpu_seconds(gw.pid, tck) - cpu0
    local log = gw:stderr()
    assert(cpu < 0.5, string.format("the gateway used %.2f s of CPU in %.1f s while out of " ..
      "descriptors (it should be idle, waiting)", cpu, HOLD))
    local lines = count_accept_lines(log)
    assert(lines >= 1, "running out of descriptors was not logged:\n" .. env.tail(log, 20))
    assert(lines <= 10, string.format("%d accept lines logged (%d bytes of log); want a few",
      lines, #log))

    for _, s in ipairs(socks) do s:close() end
    socks = nil
    -- a new client is served once the held connections are gone
    local c = env.wait_until(10, function()
      local cl = client.try_connect(gw.port)
      if not cl then return nil end
      local ok, reply = pcall(cl.cmd, cl, "version", 1)
      if ok and reply:match("^VERSION ") then return cl end
      cl:close()
    end, 0.1)
    assert(c, "no client served after the connections were closed")
    local st = c:stats()
    c:close()
    assert(tonumber(st.listen_disabled_num or "") and tonumber(st.listen_disabled_num) >= 1,
      "stats listen_disabled_num: " .. tostring(st.listen_disabled_num))
  end)
end)
