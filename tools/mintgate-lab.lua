-- tools/mintgate-lab.lua: mintgate-lab's I/O — it starts memcached servers and gateways
-- for each policy, runs the simulated application's clients against them (non-blocking
-- sockets multiplexed with socket.select), stops everything and writes the reports. The
-- workload, the database, reply parsing, statistics and outputs are mintgate.lab
-- (lua/mintgate/lab.lua). Run as `./mintgate-lab` (the launcher at the repository root).
local here = (debug.getinfo(1, "S").source:match("^@(.*)/tools/[^/]*$")) or "."
package.path = here .. "/lua/?.lua;" .. here .. "/lua/?/init.lua;" .. package.path

local socket = require "socket"
local ffi = require "ffi"
local lab = require "mintgate.lab"
local wl = require "mintgate.lab_workload"

pcall(ffi.cdef, [[
int kill(int pid, int sig);
int getpid(void);
unsigned int geteuid(void);
]])

local SIGKILL, SIGTERM = 9, 15
local now = socket.gettime

local function die(code, msg)
  io.stderr:write("mintgate-lab: ", msg, "\n")
  os.exit(code)
end

local verbose = false
local function say(...)
  if verbose then io.stderr:write("mintgate-lab: ", string.format(...), "\n") end
end

local function shquote(s)
  s = tostring(s)
  if s:match("^[%w%._/:,=+-]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end

local function tail(s, n)
  local lines = {}
  for l in (s or ""):gmatch("[^\n]+") do lines[#lines + 1] = l end
  return table.concat(lines, "\n", math.max(1, #lines - n + 1))
end

-----------------------------------------------------------------------------------------
-- Processes: everything the lab starts is in `started` until it is stopped.

local started = {} -- { pid =, name =, log = }

local function alive(pid)
  if ffi.C.kill(pid, 0) ~= 0 then return false end
  local st = read_file("/proc/" .. pid .. "/stat") -- a zombie counts as gone
  return not (st and st:match("^%d+ %b() Z"))
end

-- Start argv in the background (stdout and stderr to log), env a table of NAME=value.
-- Returns the process record; its pid is the program's own (sh execs it).
local function spawn(name, argv, log, env)
  local words = {}
  for k, v in pairs(env or {}) do words[#words + 1] = k .. "=" .. shquote(v) end
  if #words > 0 then table.insert(words, 1, "env") end
  for _, a in ipairs(argv) do words[#words + 1] = shquote(a) end
  local p = io.popen(table.concat(words, " ") .. " >" .. shquote(log) .. " 2>&1 </dev/null & echo $!")
  local pid = p and tonumber(p:read("*l") or "")
  if p then p:close() end
  if not pid then error("could not start " .. name) end
  local proc = { pid = pid, name = name, log = log }
  started[#started + 1] = proc
  say("started %s pid %d", name, pid)
  return proc
end

-- Stop every process started (SIGTERM, then SIGKILL after 3 s), newest first.
local function stop_all()
  for _, p in ipairs(started) do
    if alive(p.pid) then ffi.C.kill(p.pid, SIGTERM) end
  end
  local deadline = now() + 3
  for i = #started, 1, -1 do
    local p = started[i]
    while alive(p.pid) and now() < deadline do socket.sleep(0.02) end
    if alive(p.pid) then
      ffi.C.kill(p.pid, SIGKILL)
      say("killed %s pid %d (no exit 3 s after SIGTERM)", p.name, p.pid)
    end
    say("stopped %s pid %d", p.name, p.pid)
    started[i] = nil
  end
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return assert(tonumber(port))
end

-- Wait until something accepts on port, or fail with the process's log.
local function wait_listening(proc, port)
  local deadline = now() + 10
  while now() < deadline do
    if not alive(proc.pid) then break end
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    if ok == 1 then return end
    socket.sleep(0.02)
  end
  error(string.format("%s %s; its log (%s):\n%s", proc.name,
    alive(proc.pid) and "is not listening after 10 s" or "exited", proc.log,
    tail(read_file(proc.log), 30)), 0)
end

-- A watchdog that stops the lab's processes if the lab itself dies without doing so
-- (SIGTERM, SIGKILL): a shell loop that polls our pid.
local function start_watchdog(dir)
  local pids = {}
  for _, p in ipairs(started) do pids[#pids + 1] = p.pid end
  local script = string.format(
    "while kill -0 %d 2>/dev/null; do sleep 0.5; done; kill -TERM %s 2>/dev/null; sleep 3; " ..
    "kill -KILL %s 2>/dev/null", ffi.C.getpid(), table.concat(pids, " "), table.concat(pids, " "))
  spawn("watchdog", { "sh", "-c", script }, dir .. "/watchdog.log")
end

-----------------------------------------------------------------------------------------
-- The simulated application

-- Client states: idle (its next operation at c.wake), get/set/del (a reply awaited),
-- regen (after its database read, until c.wake).
local function connect(c)
  if c.sock then c.sock:close() end
  local s = socket.tcp()
  s:settimeout(2)
  local ok, err = s:connect("127.0.0.1", c.port)
  if not ok then
    s:close()
    error("cannot connect to the gateway on port " .. c.port .. ": " .. tostring(err), 0)
  end
  s:settimeout(0)
  s:setoption("tcp-nodelay", true)
  c.sock, c.inbuf, c.outbuf = s, "", ""
end

local SET_OK = { STORED = true }
local DEL_OK = { DELETED = true, NOT_FOUND = true }
local TOUCH_OK = { TOUCHED = true, NOT_FOUND = true }
local ADD_OK = { STORED = true, NOT_STORED = true }

-- The counter key of a rank: its name with the first byte changed, so counters never
-- share a key with the values gets decode (same length, so a preset's key size holds).
local function counter_name(name) return "c" .. name:sub(2) end

-- One policy's run: clients over gateway ports, for opts.duration seconds or (a replay
-- without --duration) until the trace ends. Returns the Stats collector and the seconds
-- the run took.
local function simulate(opts, ports, w)
  local st = lab.new_stats()
  local t0 = now()
  local db = lab.new_db(w.keys, 0)
  local rand = math.random
  local interval = (not w.timed and opts.rate > 0) and opts.clients / opts.rate or 0
  local clients = {}
  for i = 1, opts.clients do
    local start_at = interval * (i - 1) / opts.clients
    local c = { port = ports[(i - 1) % #ports + 1], state = "idle", wake = start_at,
                sched = start_at }
    connect(c)
    clients[i] = c
  end
  local by_sock = {}
  for _, c in ipairs(clients) do by_sock[c.sock] = c end

  local function send(c, data, state, t, cmd)
    c.outbuf = c.outbuf .. data
    c.state, c.sent = state, t
    st:sent_cmd(cmd)
  end
  local function set_cmd(name, v, ttl, size)
    local value = lab.encode_value(v, size)
    return string.format("set %s 0 %d %d\r\n%s\r\n", name, ttl, #value, value)
  end
  local function next_op(c, t)
    c.state = "idle"
    if interval > 0 then
      -- paced on its own schedule (a regeneration's wait does not shift it), with at
      -- most 1 s of backlog caught up
      c.sched = math.max(c.sched + interval, t - 1)
      c.wake = c.sched
    else
      c.wake = t
    end
  end
  -- A database write of c.key, then what the application does to the cache.
  local function write(c, t, after)
    local k, op = c.key, c.op
    local v = lab.db_write(db, k, t)
    st:write()
    if after == "delete" then
      send(c, "delete " .. w:key_name(k) .. "\r\n", "del", t, "delete")
    elseif after == "set" then
      send(c, set_cmd(w:key_name(k), v, op.ttl, op.size), "set", t, "set")
    else
      next_op(c, t)
    end
  end
  local function start(c, t, op)
    local k = op.key
    c.key, c.op = k, op
    local kind = op.kind
    if kind == "get" then
      c.sent_version = db.version[k]
      send(c, "get " .. w:key_name(k) .. "\r\n", "get", t, "get")
    elseif kind == "write" then
      write(c, t, op.after)
    elseif kind == "set" or kind == "delete" then -- a replayed write
      write(c, t, kind)
    elseif kind == "incr" then
      send(c, "incr " .. counter_name(w:key_name(k)) .. " 1\r\n", "incr", t, "incr")
    elseif kind == "touch" then
      send(c, string.format("touch %s %d\r\n", w:key_name(k), op.ttl), "touch", t, "touch")
    else
      error("workload: unknown operation kind " .. tostring(kind), 0)
    end
  end
  local function fail(c, what, t)
    st:error(what)
    by_sock[c.sock] = nil
    connect(c)
    by_sock[c.sock] = c
    next_op(c, t)
  end
  local line_ok = { set = SET_OK, del = DEL_OK, touch = TOUCH_OK, add = ADD_OK }
  -- Act on what c's buffer holds; false when the reply is not complete yet.
  local function handle(c, t)
    local k = c.key
    if c.state == "get" then
      local r, rest = lab.parse_get_reply(c.inbuf)
      if not r then return false end
      c.inbuf = rest
      if r.error then return fail(c, r.error, t) end
      if r.hit then
        st:get(t, t - c.sent, "hit")
        local v = lab.decode_version(r.value)
        if not v then return fail(c, "BAD_VALUE", t) end
        local age = lab.stale_age(db, k, v, c.sent_version, t)
        if age then st:stale_read(t, age) end
        next_op(c, t)
      elseif w.timed then -- a replay plays the trace's own sets: no regeneration
        st:get(t, t - c.sent, "miss")
        next_op(c, t)
      else
        st:get(t, t - c.sent, "miss")
        st:db_read(t, k)
        c.regen_version = db.version[k]
        c.state, c.wake = "regen", t + opts.regen_ms / 1000
      end
    elseif c.state == "incr" then
      local line, rest = c.inbuf:match("^(.-)\r\n(.*)$")
      if not line then return false end
      c.inbuf = rest
      if line == "NOT_FOUND" and not w.timed then -- a new counter: the application creates it
        send(c, string.format("add %s 0 %d 1\r\n1\r\n", counter_name(w:key_name(k)), c.op.ttl),
          "add", t, "add")
      elseif line:match("^%d+$") or line == "NOT_FOUND" then -- (a replay plays its own adds)
        next_op(c, t)
      else
        return fail(c, line, t)
      end
    else
      local r, rest = lab.parse_line_reply(c.inbuf, line_ok[c.state])
      if not r then return false end
      c.inbuf = rest
      if r.error then return fail(c, r.error, t) end
      if c.state == "set" then st:filled(k) end
      next_op(c, t)
    end
    return true
  end

  local cap = (not w.timed or opts.duration_given) and opts.duration or math.huge
  local stop_at = t0 + cap
  local pending, done = nil, false -- a replay: the next due op, the trace's end
  while true do
    local t = now()
    if t >= stop_at then break end
    local rel = t - t0
    local recvt, sendt, soonest = {}, {}, math.min(stop_at, t + 0.05)
    local busy = false
    for _, c in ipairs(clients) do
      if c.state == "idle" and w.timed then
        if not pending and not done then
          local op, at = w:next_op(rel, rand)
          if op then
            pending = op
          elseif op == false then
            done = true
          else
            soonest = math.min(soonest, t0 + at)
          end
        end
        if pending then
          if rel - (pending.at or rel) > 0.1 then st.late = st.late + 1 end
          start(c, rel, pending)
          pending = nil
        end
      elseif c.state == "idle" and t0 + c.wake <= t then
        start(c, rel, w:next_op(rel, rand))
      elseif c.state == "regen" and t0 + c.wake <= t then
        send(c, set_cmd(w:key_name(c.key), c.regen_version, c.op.ttl, c.op.size), "set", rel, "set")
      elseif c.state ~= "idle" and c.state ~= "regen" and rel - c.sent > opts.timeout then
        fail(c, "timeout", rel)
      end
      if c.state == "regen" or (c.state == "idle" and not w.timed) then
        soonest = math.min(soonest, t0 + c.wake)
      elseif c.state ~= "idle" then
        busy = true
        recvt[#recvt + 1] = c.sock
        if #c.outbuf > 0 then sendt[#sendt + 1] = c.sock end
      end
      if c.state == "regen" then busy = true end
    end
    if done and not pending and not busy then break end
    local wait = math.max(0, math.min(soonest - now(), 0.05))
    if #recvt == 0 and #sendt == 0 then
      socket.sleep(wait)
    else
      -- try the writes at once: they nearly always fit in the socket buffer
      for _, s in ipairs(sendt) do
        local c = by_sock[s]
        local n, err, partial = s:send(c.outbuf)
        n = n or partial
        if err and err ~= "timeout" then fail(c, "closed", now() - t0)
        else c.outbuf = c.outbuf:sub((n or 0) + 1) end
      end
      local readable = socket.select(recvt, nil, wait)
      local tr = now() - t0
      for _, s in ipairs(readable) do
        local c = by_sock[s]
        if c then
          local data, err, partial = s:receive(65536)
          data = data or partial
          if data and #data > 0 then c.inbuf = c.inbuf .. data end
          if err == "closed" then
            fail(c, "closed", tr)
          else
            while c.state ~= "idle" and c.state ~= "regen" and handle(c, tr) do end
          end
        end
      end
    end
  end
  for _, c in ipairs(clients) do c.sock:close() end
  return st, math.min(now() - t0, cap)
end

-- Set every key (its current database version, version 1) with the same TTL, pipelined
-- on one connection, before the run: --mass-expiry.
local function prefill(opts, port, w)
  local c = { port = port }
  connect(c)
  c.sock:settimeout(10)
  local parts = {}
  for k = 1, w.keys do
    local value = lab.encode_value(1, opts.value_size)
    parts[#parts + 1] = string.format("set %s 0 %d %d noreply\r\n%s\r\n", w:key_name(k), opts.ttl,
      #value, value)
  end
  parts[#parts + 1] = "mn\r\n"
  assert(c.sock:send(table.concat(parts)))
  local line = c.sock:receive("*l")
  c.sock:close()
  if line ~= "MN" then error("prefill: unexpected reply " .. tostring(line), 0) end
end

-----------------------------------------------------------------------------------------
-- One policy

local function gateway_bin(opts)
  return opts.gateway or os.getenv("MINTGATE_BIN") or (here .. "/mintgate")
end

local function run_policy(opts, path, dir, index)
  local name = lab.policy_name(path)
  local real = io.popen("readlink -f " .. shquote(path)):read("*l")
  if not real or real == "" or not read_file(real) then error("cannot read " .. path, 0) end
  local servers = {}
  local root = ffi.C.geteuid() == 0
  for i = 1, opts.servers do
    local port = free_port()
    local argv = { "memcached", "-p", port, "-U", "0", "-l", "127.0.0.1", "-t", "1" }
    if root then argv[#argv + 1] = "-u"; argv[#argv + 1] = "nobody" end
    local p = spawn(string.format("memcached:%d", port), argv,
      string.format("%s/%d-memcached-%d.log", dir, index, i))
    p.port = port
    wait_listening(p, port)
    servers[i] = "127.0.0.1:" .. port
  end
  local wrapper = string.format("%s/%d-wrapper.lua", dir, index)
  write_file(wrapper, lab.wrapper_script(real))
  local ports, traces = {}, {}
  for i = 1, opts.gateways do
    local port = free_port()
    -- the addresses the examples read (MEMCACHED_n, MINTGATE_LISTEN) too, so that an
    -- example config runs unchanged as a policy
    local env = { MINTGATE_LAB_SERVERS = table.concat(servers, ","),
                  MINTGATE_LISTEN = "127.0.0.1:" .. port }
    for j, sv in ipairs(servers) do env["MEMCACHED_" .. j] = sv end
    if opts.record_trace then
      traces[i] = string.format("%s/%d-gateway-%d.trace", dir, index, i)
      env.MINTGATE_LAB_TRACE = traces[i]
    end
    local p = spawn(string.format("mintgate:%d", port),
      { gateway_bin(opts), "-t", "1", "-l", "127.0.0.1:" .. port, wrapper },
      string.format("%s/%d-gateway-%d.log", dir, index, i), env)
    wait_listening(p, port)
    ports[i] = port
  end
  start_watchdog(dir)
  local w, err = wl.build(opts)
  if not w then error(err, 0) end
  if opts.mass_expiry then prefill(opts, ports[1], w) end
  io.stderr:write(string.format("mintgate-lab: %s: %s; %s, %d clients over %d gateways, %d memcached\n",
    name, w.describe, w.timed and "until the trace ends" or (opts.duration .. " s"), opts.clients,
    opts.gateways, opts.servers))
  local st, took = simulate(opts, ports, w)
  if w.close then w:close() end
  stop_all() -- the gateways flush their traces as they stop
  if opts.record_trace then
    local out = #opts.policies > 1 and (opts.record_trace .. "." .. name) or opts.record_trace
    write_file(out, lab.merge_traces(traces, read_file))
  end
  local r = st:summary(name, took)
  r.workload = w.describe
  return r
end

-----------------------------------------------------------------------------------------
-- Main

local function plot(results, png, dir)
  local data = dir .. "/plot.dat"
  write_file(data, lab.plot_data(results))
  local script = dir .. "/plot.gp"
  write_file(script, lab.plot_script(results, data, png))
  local r = os.execute("gnuplot " .. shquote(script) .. " 2>" .. shquote(dir .. "/gnuplot.err"))
  if not (r == 0 or r == true) then
    error("gnuplot failed: " .. tail(read_file(dir .. "/gnuplot.err"), 10), 0)
  end
end

local function main(argv)
  local opts, err = lab.parse_args(argv)
  if opts == "help" then
    io.stdout:write(lab.USAGE)
    return 0
  end
  if opts == "list" then
    for _, n in ipairs(wl.preset_names()) do
      local pr = wl.PRESETS[n]
      io.stdout:write(string.format("twitter:%-10s Zipf %-7g key %3d B  value %5d B  ops %s  TTLs %s\n",
        n, pr.alpha, pr.key_size, pr.value_size, pr.ops, pr.ttl))
    end
    return 0
  end
  if not opts then
    io.stderr:write("mintgate-lab: ", err, "\n", lab.USAGE)
    return 2
  end
  verbose = opts.verbose
  math.randomseed(opts.seed)
  local p = io.popen("mktemp -d /tmp/mintgate-lab.XXXXXX")
  local dir = p:read("*l")
  p:close()
  if not dir or dir == "" then die(1, "mktemp -d failed") end
  local results = {}
  local ok, e = xpcall(function()
    for i, path in ipairs(opts.policies) do
      results[#results + 1] = run_policy(opts, path, dir, i)
    end
    if opts.json then write_file(opts.json, lab.to_json({ options = opts, results = results }) .. "\n") end
    if opts.png then plot(results, opts.png, dir) end
  end, function(m) return m end)
  stop_all()
  if not ok then
    io.stderr:write("mintgate-lab: ", tostring(e), "\n", "mintgate-lab: logs kept in ", dir, "\n")
    return 1
  end
  io.stdout:write(lab.render_table(results))
  os.execute("rm -rf " .. shquote(dir))
  return 0
end

os.exit(main(arg))
