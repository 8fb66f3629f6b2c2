--- spec/helpers/env.lua: processes for end-to-end specs (memcached servers, the gateway,
-- fake backends), free ports, and a registry that kills everything a spec file started.
--
-- Usage in a spec file:
--
--   local env = require "spec.helpers.env"
--   local E
--   lazy_setup(function()
--     E = env.new("commands")              -- one registry per spec file
--     local a, b = E:memcached(), E:memcached()
--     local gw = E:gateway { servers = { a.port, b.port } }
--   end)
--   lazy_teardown(function() E:stop_all() end)
--
-- Every process is started as `( cmd & echo $! >pid; wait $!; echo $? >rc ) &`, so its
-- real pid is known (for signals and /proc) and its exit status is recorded when it
-- ends. Every pid is also appended to a run-wide file (MINTGATE_SPEC_PIDS, set by
-- spec/run_busted.sh) so that the runner can kill what a crashed busted left behind.
-- When a test fails, the tail of each running gateway's stderr is printed.
local socket = require "socket"
local ffi = require "ffi"

pcall(ffi.cdef, [[
int kill(int pid, int sig);
int getpid(void);
unsigned int geteuid(void);
]])

local SIGKILL, SIGTERM = 9, 15

local M = {}

--- Path of the gateway binary under test (env MINTGATE_BIN, default ./mintgate).
M.bin = os.getenv("MINTGATE_BIN") or "./mintgate"

--- True when specs that support it should run against one real memcached directly
-- (MINTGATE_REFERENCE=1) to validate their expected answers.
M.reference = os.getenv("MINTGATE_REFERENCE") == "1"

--- Path of the libmemcached fill tool (another engineer's core/test/lmc_fill.c).
M.lmc_fill = os.getenv("MINTGATE_LMC_FILL") or "build/lmc_fill"

M.memcached_bin = os.getenv("MEMCACHED_BIN") or "memcached"

local function now() return socket.gettime() end
M.now = now

--- Quote s for /bin/sh.
function M.shquote(s)
  s = tostring(s)
  if s:match("^[%w%._/:,=+-]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
local shquote = M.shquote

local function argv_string(argv)
  local t = {}
  for i, a in ipairs(argv) do t[i] = shquote(a) end
  return table.concat(t, " ")
end

local function exec_ok(cmd)
  local r = os.execute(cmd)
  return r == 0 or r == true
end

--- Contents of a file, or nil.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
local read_file = M.read_file

function M.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end
local write_file = M.write_file

--- True when path exists, whatever it is (io.open fails on a unix socket that is there).
function M.file_exists(path)
  local r = os.execute("test -e " .. M.shquote(path))
  return r == 0 or r == true
end

--- Replace path's contents atomically (write beside it, then rename), as deploy tools do,
-- so that a reload never reads a half-written script.
function M.replace_file(path, text)
  M.write_file(path .. ".tmp", text)
  assert(os.rename(path .. ".tmp", path))
end

--- Send one command on a fresh connection to port (an admin listener) and return its
-- first reply line; reloads may take a few seconds to confirm.
function M.admin_cmd(port, cmd)
  local c = require("spec.helpers.client").connect(port)
  local l = c:cmd(cmd, 10)
  c:close()
  return l
end

--- The last n lines of s.
function M.tail(s, n)
  if not s or s == "" then return "" end
  local lines = {}
  for l in (s .. (s:sub(-1) == "\n" and "" or "\n")):gmatch("(.-)\n") do lines[#lines + 1] = l end
  local from = math.max(1, #lines - n + 1)
  return table.concat(lines, "\n", from)
end

--- Sleep for sec seconds.
function M.sleep(sec) socket.sleep(sec) end

--- Poll fn() every `interval` seconds until it returns a truthy value or `bound` seconds
-- pass. Returns fn's values, or nil plus the last values seen on timeout.
function M.wait_until(bound, fn, interval)
  local deadline = now() + bound
  local last
  repeat
    local r = { fn() }
    if r[1] then return unpack(r) end
    last = r
    socket.sleep(interval or 0.02)
  until now() > deadline
  return nil, unpack(last or {})
end

--- A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close).
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return assert(tonumber(port))
end

--- True when something accepts TCP connections on 127.0.0.1:port.
function M.port_open(port)
  local s = socket.tcp()
  s:settimeout(0.2)
  local ok = s:connect("127.0.0.1", port)
  s:close()
  return ok == 1
end

--- Resident set size of pid in KiB (from /proc/PID/status), or nil.
function M.rss_kb(pid)
  local s = read_file("/proc/" .. pid .. "/status")
  return s and tonumber(s:match("VmRSS:%s*(%d+)"))
end

--- Run argv synchronously with a time bound. opts: timeout (s, default 20), stdin (string),
-- env (table of NAME=value). Returns exit code (124 on timeout), stdout, stderr.
function M.run(argv, opts)
  opts = opts or {}
  local dir = M.mktemp_dir()
  local inpath = dir .. "/stdin"
  write_file(inpath, opts.stdin or "")
  local envs = ""
  for k, v in pairs(opts.env or {}) do envs = envs .. k .. "=" .. shquote(v) .. " " end
  local cmd = string.format("%stimeout -k 2 %s %s <%s >%s/out 2>%s/err; echo $? >%s/rc",
    envs ~= "" and ("env " .. envs) or "", tostring(opts.timeout or 20), argv_string(argv),
    inpath, dir, dir, dir)
  os.execute(cmd)
  local rc = tonumber(read_file(dir .. "/rc") or "")
  local out, err = read_file(dir .. "/out") or "", read_file(dir .. "/err") or ""
  os.execute("rm -rf " .. shquote(dir))
  return rc, out, err
end

--- A fresh temporary directory.
function M.mktemp_dir()
  local p = io.popen("mktemp -d /tmp/mintgate-spec.XXXXXX")
  local d = p:read("*l")
  p:close()
  assert(d and d ~= "", "mktemp -d failed")
  return d
end

local function pid_alive(pid)
  if ffi.C.kill(pid, 0) ~= 0 then return false end
  -- a zombie (not reaped yet) counts as dead
  local st = read_file("/proc/" .. pid .. "/stat")
  if st and st:match("^%d+ %b() Z") then return false end
  return true
end
M.pid_alive = pid_alive

-----------------------------------------------------------------------------------------
-- Processes

local Proc = {}
Proc.__index = Proc

--- True while the process runs.
function Proc:alive()
  if self.rc ~= nil then return false end
  local rc = read_file(self.rcfile)
  if rc and rc:match("%d") then
    self.rc = tonumber(rc:match("%d+"))
    return false
  end
  return pid_alive(self.pid)
end

--- Exit status once the process has ended (128+signal when killed), else nil.
function Proc:exit_code()
  self:alive()
  return self.rc
end

--- Send a signal (number) to the process.
function Proc:signal(sig)
  if self:alive() then ffi.C.kill(self.pid, sig) end
end

--- Its stderr so far.
function Proc:stderr() return read_file(self.errfile) or "" end
--- Its stdout so far.
function Proc:stdout() return read_file(self.outfile) or "" end

--- Stop it: SIGTERM, wait up to `bound` seconds (default 5), then SIGKILL.
-- Returns the exit status and whether SIGKILL was needed.
function Proc:stop(bound)
  if self.stopped then return self.rc, self.killed end
  self.stopped = true
  if self:alive() then
    ffi.C.kill(self.pid, SIGTERM) -- again is harmless when stop_all signalled already
    if not M.wait_until(bound or 5, function() return not self:alive() end, 0.01) then
      self.killed = true
      ffi.C.kill(self.pid, SIGKILL)
      M.wait_until(3, function() return not self:alive() end, 0.01)
    end
  end
  -- the waiting subshell writes rc right after the process is reaped
  M.wait_until(2, function() return self:exit_code() ~= nil end, 0.01)
  return self.rc, self.killed
end

--- A one-line description.
function Proc:describe()
  return string.format("%s (pid %s, port %s)", self.name, tostring(self.pid), tostring(self.port))
end

-----------------------------------------------------------------------------------------
-- Registry

local Env = {}
Env.__index = Env

--- A new registry of processes for one spec file. name labels its temp files.
function M.new(name)
  local self = setmetatable({ name = name or "spec", procs = {}, failed = false, n = 0 }, Env)
  self.dir = M.mktemp_dir()
  self.pidfile = os.getenv("MINTGATE_SPEC_PIDS") or (self.dir .. "/pids")
  self:watch_failures()
  return self
end

-- Print the logs of the running gateways (and the other processes' if they died) when a
-- test or a setup fails: that is where an assertion's real cause usually is.
function Env:watch_failures()
  local ok, busted = pcall(require, "busted")
  if not ok or type(busted) ~= "table" or not busted.subscribe then return end
  local function on_fail(element)
    self.failed = true
    self:dump_logs(element and element.name)
    return nil, true
  end
  self.busted = busted
  self.subs = {
    { busted.subscribe({ "failure" }, on_fail), { "failure" } },
    { busted.subscribe({ "error" }, on_fail), { "error" } },
  }
end

--- Print the tail of every gateway's stderr (and of any process that died) to stdout.
function Env:dump_logs(what)
  local out = {}
  for _, p in ipairs(self.procs) do
    local dead = not p.stopped and not p:alive()
    if (p.kind == "gateway" and not p.stopped) or dead then
      local log = p:stderr()
      out[#out + 1] = string.format("---- %s%s, stderr %s%s ----", p:describe(),
        dead and (" EXITED rc=" .. tostring(p.rc)) or "", p.errfile,
        log == "" and " (empty)" or " (last 60 lines)")
      if log ~= "" then out[#out + 1] = M.tail(log, 60) end
    end
  end
  if #out > 0 then
    io.stdout:write("\n==== [" .. self.name .. "] logs after failure of: " .. tostring(what) .. "\n",
      table.concat(out, "\n"), "\n==== end of logs\n")
    io.stdout:flush()
  end
end

--- Start argv in the background. opts: name, kind, port, env (table), stdin (path).
-- Returns a Proc (pid known, not necessarily listening yet).
function Env:spawn(argv, opts)
  opts = opts or {}
  self.n = self.n + 1
  local base = string.format("%s/%02d-%s", self.dir, self.n, (opts.name or "proc"):gsub("[^%w]", "_"))
  local p = setmetatable({
    name = opts.name or argv[1], kind = opts.kind or "proc", port = opts.port, argv = argv,
    pidpath = base .. ".pid", rcfile = base .. ".rc", outfile = base .. ".out",
    errfile = base .. ".err",
  }, Proc)
  local envs = ""
  for k, v in pairs(opts.env or {}) do envs = envs .. k .. "=" .. shquote(v) .. " " end
  local cmd = string.format(
    "( %s%s >%s 2>%s </dev/null & echo $! >%s; wait $!; echo $? >%s.tmp; mv %s.tmp %s ) " ..
    "</dev/null >/dev/null 2>&1 &",
    envs ~= "" and ("env " .. envs) or "", argv_string(argv),
    shquote(p.outfile), shquote(p.errfile), shquote(p.pidpath), shquote(p.rcfile),
    shquote(p.rcfile), shquote(p.rcfile))
  assert(exec_ok(cmd), "could not spawn: " .. cmd)
  local pid = M.wait_until(5, function()
    local s = read_file(p.pidpath)
    return s and tonumber(s:match("%d+"))
  end, 0.005)
  assert(pid, "no pid recorded for " .. argv_string(argv))
  p.pid = pid
  self.procs[#self.procs + 1] = p
  local f = io.open(self.pidfile, "a")
  if f then
    f:write(pid, " ", p.name, "\n")
    f:close()
  end
  return p
end

--- Wait until p accepts connections on p.port (bounded), or fail with its log.
function Env:wait_listening(p, bound) -- luacheck: ignore self
  local ok = M.wait_until(bound or 10, function()
    if not p:alive() then return "exited" end
    return M.port_open(p.port)
  end, 0.02)
  if ok ~= true then
    local why = p:alive() and "is not listening after " .. (bound or 10) .. " s"
      or ("exited with status " .. tostring(p:exit_code()))
    local log = M.tail(p:stderr(), 40)
    p:stop(1)
    error(string.format("%s %s\ncommand: %s\nstderr:\n%s", p:describe(), why,
      argv_string(p.argv), log), 2)
  end
  return p
end

-- True when p exited because its port was taken meanwhile (worth another port).
function M.port_taken(p)
  if p:alive() then return false end
  local log = p:stderr():lower()
  return log:find("in use", 1, true) ~= nil or log:find("eaddrinuse", 1, true) ~= nil
end

local function is_root()
  local ok, uid = pcall(function() return ffi.C.geteuid() end)
  return ok and uid == 0
end

--- Start a real memcached on a free port (or opts.port). opts.args: extra arguments.
-- Retries on another port if the chosen one was taken meanwhile (unless opts.port).
function Env:memcached(opts)
  opts = opts or {}
  local last_err
  for _ = 1, opts.port and 1 or 3 do
    local port = opts.port or M.free_port()
    local argv = { M.memcached_bin, "-p", tostring(port), "-U", "0", "-l", "127.0.0.1", "-t", "1" }
    if is_root() then argv[#argv + 1] = "-u"; argv[#argv + 1] = "root" end
    for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
    local p = self:spawn(argv, { name = "memcached:" .. port, kind = "memcached", port = port })
    local ok, err = pcall(self.wait_listening, self, p, 10)
    if ok then return p end
    last_err = err
    if not M.port_taken(p) then break end
  end
  error(last_err, 2)
end

--- Start a real memcached listening on the unix socket path only (memcached -s); waits
-- until the socket exists.
function Env:memcached_unix(path)
  local argv = { M.memcached_bin, "-s", path, "-t", "1" }
  if is_root() then argv[#argv + 1] = "-u"; argv[#argv + 1] = "root" end
  local p = self:spawn(argv, { name = "memcached:unix", kind = "memcached" })
  assert(M.wait_until(10, function() return M.file_exists(path) end, 0.02),
    "memcached did not create " .. path .. ": " .. p:stderr())
  return p
end

--- Start a fake broken backend (spec/helpers/fake_backend.lua) on port in mode
-- hang | garbage | close_mid_value. It exits by itself after `lifetime` s (default 60).
function Env:fake_backend(port, mode, lifetime)
  local argv = { "luajit", "spec/helpers/fake_backend.lua", tostring(port), mode,
    tostring(lifetime or 60) }
  local p = self:spawn(argv, { name = "fake:" .. mode .. ":" .. port, kind = "fake", port = port })
  return self:wait_listening(p, 5)
end

--- Fail clearly when the gateway binary is missing.
function M.require_binary()
  if not M.file_exists(M.bin) then
    error("gateway binary " .. M.bin .. " not found (build it with `make mintgate`)", 2)
  end
end

--- Start the gateway. opts:
--   servers   list of ports or "host:port" strings for -s (omitted when nil)
--   args      extra arguments (e.g. {"-I", "1024"})
--   threads   -t value (default 2)
--   config    Lua config text: written to a file passed as the last argument
--   listen    false: do not pass -l (the config listens); then opts.port must be given
--   port      the port to listen on (default: a free one)
--   env       extra environment variables
--   fd_limit  start it under `ulimit -n fd_limit` (through sh, which execs the gateway,
--             so the pid is still the gateway's)
--   wait      false: do not wait for the port to accept
-- Returns a Proc with .port. Retries on another port if the chosen one got taken.
function Env:gateway(opts)
  opts = opts or {}
  M.require_binary()
  local last_err
  for _ = 1, opts.port and 1 or 3 do
    local port = opts.port or M.free_port()
    local argv = { M.bin }
    if opts.listen ~= false then
      argv[#argv + 1] = "-l"; argv[#argv + 1] = "127.0.0.1:" .. port
    end
    if opts.servers then
      local s = {}
      for i, v in ipairs(opts.servers) do
        s[i] = type(v) == "number" and ("127.0.0.1:" .. v) or tostring(v)
      end
      argv[#argv + 1] = "-s"; argv[#argv + 1] = table.concat(s, ",")
    end
    argv[#argv + 1] = "-t"; argv[#argv + 1] = tostring(opts.threads or 2)
    if os.getenv("MINTGATE_SPEC_VERBOSE") == "1" then argv[#argv + 1] = "-v" end
    for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
    if opts.config then
      self.n = self.n + 1
      local path = string.format("%s/%02d-config.lua", self.dir, self.n)
      write_file(path, opts.config)
      argv[#argv + 1] = path
    end
    if opts.fd_limit then
      table.insert(argv, 1, "sh")
      table.insert(argv, 2, "-c")
      table.insert(argv, 3, "ulimit -n " .. tonumber(opts.fd_limit) .. ' && exec "$@"')
      table.insert(argv, 4, "sh")
    end
    local p = self:spawn(argv, { name = "mintgate:" .. port, kind = "gateway", port = port,
      env = opts.env })
    if opts.wait == false then return p end
    local ok, err = pcall(self.wait_listening, self, p, 10)
    if ok then return p end
    last_err = err
    if not M.port_taken(p) then break end
  end
  error(last_err, 2)
end

--- Stop one process (see Proc:stop). Returns its exit status.
function Env:stop(p, bound) -- luacheck: ignore self
  return p:stop(bound)
end

--- Stop every process this registry started, newest first. Returns a list of problems
-- (gateways that did not exit cleanly on SIGTERM), empty when all is well. Removes the
-- temp directory unless a failure was seen (then its path is printed).
function Env:stop_all()
  local problems = {}
  -- signal everything first so that the slow exits (memcached takes ~1 s) overlap
  for _, p in ipairs(self.procs) do
    if not p.stopped then p:signal(SIGTERM) end
  end
  for i = #self.procs, 1, -1 do
    local p = self.procs[i]
    local was_stopped = p.stopped
    local rc, killed = p:stop(p.kind == "gateway" and 10 or 3)
    if p.kind == "gateway" and not was_stopped then
      if killed then
        problems[#problems + 1] = p:describe() .. " did not exit within 10 s of SIGTERM"
      elseif rc ~= 0 then
        problems[#problems + 1] = string.format("%s exited with status %s on SIGTERM; stderr:\n%s",
          p:describe(), tostring(rc), M.tail(p:stderr(), 40))
      end
    end
  end
  if self.subs and self.busted then
    for _, s in ipairs(self.subs) do pcall(self.busted.unsubscribe, s[1].id, s[2]) end
    self.subs = nil
  end
  if #problems > 0 then self.failed = true end
  if self.failed then
    io.stdout:write("[" .. self.name .. "] process logs kept in " .. self.dir .. "\n")
  else
    os.execute("rm -rf " .. shquote(self.dir))
  end
  return problems
end

--- A client connection to port (spec.helpers.client), closed by close_clients or teardown.
function Env:client(port, opts)
  local c = require("spec.helpers.client").connect(port, opts)
  self.clients = self.clients or {}
  self.clients[#self.clients + 1] = c
  return c
end

--- Close every connection opened with Env:client (use in after_each).
function Env:close_clients()
  for _, c in ipairs(self.clients or {}) do c:close() end
  self.clients = {}
end

--- stop_all(), then fail if a gateway did not stop cleanly (use in lazy_teardown). Closes
-- the connections opened with Env:client first.
function Env:teardown()
  self:close_clients()
  local problems = self:stop_all()
  assert(#problems == 0, table.concat(problems, "\n"))
end

-- Start nmc memcached servers and `mintgate -t 2 examples/<name>.lua` with their addresses
-- in MEMCACHED_1.., MINTGATE_LISTEN and MINTGATE_ADMIN, as a user would. Returns the
-- gateway (with .admin_port) and the list of memcached servers.
function M.start_example(E, name, nmc, extra)
  local envs, mcs = {}, {}
  for i = 1, nmc do
    mcs[i] = E:memcached()
    envs["MEMCACHED_" .. i] = "127.0.0.1:" .. mcs[i].port
  end
  local port, admin = M.free_port(), M.free_port()
  while admin == port do admin = M.free_port() end
  envs.MINTGATE_LISTEN = "127.0.0.1:" .. port
  envs.MINTGATE_ADMIN = "127.0.0.1:" .. admin
  for k, v in pairs(extra or {}) do envs[k] = v end
  local gw = E:gateway { listen = false, port = port, threads = 2, env = envs,
                         args = { "examples/" .. name .. ".lua" } }
  gw.admin_port = admin
  return gw, mcs
end

return M
