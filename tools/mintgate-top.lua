-- tools/mintgate-top.lua: mintgate-top's I/O — sockets, the terminal, the redraw loop.
-- The parsing, rates and the frame are mintgate.top (lua/mintgate/top.lua); this file
-- fetches samples, keeps the terminal and draws. Run as `./mintgate-top` (the launcher at
-- the repository root) or `luajit tools/mintgate-top.lua`.
local here = (debug.getinfo(1, "S").source:match("^@(.*)/tools/[^/]*$")) or "."
package.path = here .. "/lua/?.lua;" .. here .. "/lua/?/init.lua;" .. package.path

local socket = require "socket"
local ffi = require "ffi"
local top = require "mintgate.top"

local USAGE = [[
usage: mintgate-top [options] HOST:PORT
  A live view of a mintgate gateway, redrawn every second: ops/s, hit ratio, p99,
  connections, backends, hot keys, switches, routes. q or Ctrl-C quits.

  HOST:PORT          the gateway's admin (or data) port, spoken to in the memcached
                     text protocol (stats, stats backends, stats pools, ...); also
                     unix:/path; http://HOST:PORT[/path] means --metrics
  --metrics          HOST:PORT is the metrics endpoint: GET /metrics (Prometheus text)
  --stats            HOST:PORT speaks memcached (no probing)
                     (default: probe with `version`; anything but VERSION -> metrics)
  --once             print one frame (two samples one interval apart) and exit
  -n, --interval S   seconds between samples (default 1; at least 0.1)
  --timeout S        bound on one sample's network round trip (default 2)
  -h, --help         this text
exit status: 0, 1 (the endpoint could not be read, with --once), 2 (bad usage)
]]

local function die(code, msg)
  io.stderr:write("mintgate-top: ", msg, "\n")
  os.exit(code)
end

local function parse_args(argv)
  local o = { interval = 1, timeout = 2 }
  local i = 1
  local function value(flag)
    i = i + 1
    local v = tonumber(argv[i])
    if not v or v ~= v then die(2, flag .. " needs a number of seconds") end
    return v
  end
  while i <= #argv do
    local a = argv[i]
    if a == "-h" or a == "--help" then
      io.stdout:write(USAGE)
      os.exit(0)
    elseif a == "--once" then
      o.once = true
    elseif a == "--metrics" then
      o.mode = "metrics"
    elseif a == "--stats" then
      o.mode = "stats"
    elseif a == "-n" or a == "--interval" then
      o.interval = value(a)
      if o.interval < 0.1 then die(2, "--interval must be at least 0.1") end
    elseif a:match("^%-%-interval=") then
      o.interval = tonumber(a:match("=(.*)$"))
      if not o.interval or o.interval < 0.1 then die(2, "--interval must be at least 0.1") end
    elseif a == "--timeout" then
      o.timeout = value(a)
      if o.timeout <= 0 then die(2, "--timeout must be positive") end
    elseif a:sub(1, 1) == "-" then
      die(2, "unknown option " .. a .. " (try --help)")
    elseif o.endpoint then
      die(2, "one endpoint only (try --help)")
    else
      o.endpoint = a
    end
    i = i + 1
  end
  if not o.endpoint then
    io.stderr:write(USAGE)
    os.exit(2)
  end
  local ep, err = top.parse_endpoint(o.endpoint)
  if not ep then die(2, err) end
  o.ep = ep
  if ep.http then
    if o.mode == "stats" then die(2, "an http:// endpoint speaks metrics, not stats") end
    o.mode = "metrics"
  end
  if ep.unix and o.mode == "metrics" then die(2, "--metrics needs HOST:PORT") end
  return o
end

-----------------------------------------------------------------------------------------
-- Network

-- A connected TCP (or unix) socket to ep, or nil, err.
local function connect(ep, timeout)
  local s, err
  if ep.unix then
    local ok, unix = pcall(require, "socket.unix")
    if not ok then return nil, "this lua-socket has no unix sockets" end
    s = unix()
    s:settimeout(timeout)
    local r
    r, err = s:connect(ep.unix)
    if not r then
      s:close()
      return nil, err
    end
    return s
  end
  s, err = socket.tcp()
  if not s then return nil, err end
  s:settimeout(timeout)
  local r
  r, err = s:connect(ep.host, ep.port)
  if not r then
    s:close()
    return nil, err
  end
  s:setoption("tcp-nodelay", true)
  return s
end

-- One line from s before deadline (without its \r\n), or nil, err.
local function line_before(s, deadline)
  local left = deadline - socket.gettime()
  if left <= 0 then return nil, "timeout" end
  s:settimeout(left)
  local l, err = s:receive("*l")
  if not l then return nil, err end
  return (l:gsub("\r$", ""))
end

-- The stats commands one sample sends, pipelined on one connection, and the field of
-- mintgate.top.from_stats's argument each answers.
local STATS = {
  { "stats", "stats" }, { "stats backends", "backends" }, { "stats switches", "switches" },
  { "stats pools", "pools" }, { "stats hotkeys", "hotkeys" }, { "stats routes", "routes" },
}
local STATS_REQUEST = {}
for i, c in ipairs(STATS) do STATS_REQUEST[i] = c[1] .. "\r\n" end
STATS_REQUEST = table.concat(STATS_REQUEST)

-- The memcached source: one connection kept across samples (a gateway counts each new
-- one in total_connections), reopened after an error.
local function stats_source(o)
  local src = { conn = nil }
  function src.fetch()
    local deadline = socket.gettime() + o.timeout
    if not src.conn then
      local s, err = connect(o.ep, o.timeout)
      if not s then return nil, err end
      src.conn = s
    end
    local s = src.conn
    local function fail(err)
      s:close()
      src.conn = nil
      return nil, err
    end
    s:settimeout(o.timeout)
    local ok, err = s:send(STATS_REQUEST)
    if not ok then return fail("send: " .. tostring(err)) end
    local replies = {}
    for _, c in ipairs(STATS) do
      local lines = {}
      while true do
        local l
        l, err = line_before(s, deadline)
        if not l then return fail(c[1] .. ": " .. tostring(err)) end
        lines[#lines + 1] = l
        if top.reply_end(l) then break end
        if #lines > 100000 then return fail(c[1] .. ": reply too long") end
      end
      replies[c[2]] = top.parse_stats(table.concat(lines, "\n"))
    end
    if not replies.stats or not replies.stats.uptime then
      return fail("the endpoint does not answer `stats` as mintgate does")
    end
    return top.from_stats(replies)
  end
  function src.close()
    if src.conn then src.conn:close() end
    src.conn = nil
  end
  return src
end

-- The metrics source: GET path, Connection: close, one connection per scrape.
local function metrics_source(o)
  local src = {}
  local host = o.ep.host:find(":", 1, true) and ("[" .. o.ep.host .. "]") or o.ep.host
  local request = string.format("GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/plain;" ..
    "version=0.0.4\r\nUser-Agent: mintgate-top\r\nConnection: close\r\n\r\n",
    o.ep.path, host, o.ep.port)
  function src.fetch()
    local deadline = socket.gettime() + o.timeout
    local s, err = connect(o.ep, o.timeout)
    if not s then return nil, err end
    local ok
    ok, err = s:send(request)
    if not ok then
      s:close()
      return nil, "send: " .. tostring(err)
    end
    local parts, size = {}, 0
    while true do
      local left = deadline - socket.gettime()
      if left <= 0 then
        s:close()
        return nil, "timeout reading /metrics"
      end
      s:settimeout(left)
      local data, e, partial = s:receive(65536)
      local got = data or partial
      if got and #got > 0 then
        parts[#parts + 1] = got
        size = size + #got
        if size > 64 * 1024 * 1024 then
          s:close()
          return nil, "/metrics larger than 64 MiB"
        end
      end
      if e == "closed" then break end
      if e and e ~= "timeout" then
        s:close()
        return nil, e
      end
    end
    s:close()
    local status, headers, body = top.parse_http(table.concat(parts))
    if not status then return nil, headers end
    if status ~= 200 then return nil, "HTTP " .. status .. " from " .. o.ep.path end
    local samples = top.parse_prometheus(body)
    return top.from_metrics(samples, os.time())
  end
  function src.close() end
  return src
end

-- Which protocol the endpoint speaks: memcached answers `version` with VERSION; anything
-- else (an HTTP server's 400, a close, silence) is taken for the metrics endpoint.
local function probe(o)
  local s, err = connect(o.ep, o.timeout)
  if not s then return nil, err end
  local mode = "metrics"
  if s:send("version\r\n") then
    local l = line_before(s, socket.gettime() + math.min(o.timeout, 1))
    if l and l:match("^VERSION ") then mode = "stats" end
  end
  s:close()
  return mode
end

-- The source for an endpoint whose protocol is not known yet: probe before the first
-- sample (again before each, while the endpoint cannot be reached), then keep to it.
local function probing_source(o)
  local src, inner = {}, nil
  function src.fetch()
    if not inner then
      local mode, err = probe(o)
      if not mode then return nil, err end
      o.mode = mode
      inner = mode == "metrics" and metrics_source(o) or stats_source(o)
    end
    return inner.fetch()
  end
  function src.close()
    if inner then inner.close() end
  end
  return src
end

-----------------------------------------------------------------------------------------
-- The terminal: raw keys, signals through a signalfd, window size

pcall(ffi.cdef, [[
typedef struct { unsigned long val[16]; } mgtop_sigset_t;
int sigemptyset(mgtop_sigset_t *set);
int sigaddset(mgtop_sigset_t *set, int signo);
int sigprocmask(int how, const mgtop_sigset_t *set, mgtop_sigset_t *old);
int signalfd(int fd, const mgtop_sigset_t *mask, int flags);
struct mgtop_pollfd { int fd; short events; short revents; };
int poll(struct mgtop_pollfd *fds, unsigned long nfds, int timeout);
long read(int fd, void *buf, unsigned long n);
int close(int fd);
int isatty(int fd);
struct mgtop_winsize { unsigned short row, col, xpixel, ypixel; };
int ioctl(int fd, unsigned long req, ...);
]])
local C = ffi.C
local SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGWINCH = 1, 2, 3, 15, 28
local SIG_BLOCK, SIG_SETMASK = 0, 2
local SFD_NONBLOCK, SFD_CLOEXEC = 0x800, 0x80000
local POLLIN = 1
local TIOCGWINSZ = 0x5413

local term = { raw = false, screen = false }

-- Block the signals that end or resize us and read them from a signalfd instead, so
-- that a Ctrl-C, kill or window change arrives as an event and the terminal is always
-- restored. Returns the fd, or nil where signalfd is missing (then signals act as usual).
local function signals_to_fd()
  local set = ffi.new("mgtop_sigset_t")
  C.sigemptyset(set)
  for _, s in ipairs { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGWINCH } do C.sigaddset(set, s) end
  local old = ffi.new("mgtop_sigset_t")
  if C.sigprocmask(SIG_BLOCK, set, old) ~= 0 then return nil end
  local ok, fd = pcall(C.signalfd, -1, set, bit.bor(SFD_NONBLOCK, SFD_CLOEXEC))
  if not ok or fd < 0 then
    C.sigprocmask(SIG_SETMASK, old, nil)
    return nil
  end
  term.sigold = old
  return fd
end

local function shell_ok(cmd)
  local r = os.execute(cmd)
  return r == 0 or r == true
end

-- Keys without Enter, no echo, Ctrl-C as a key (byte 3): the mode `stty -g` restores.
local function term_raw()
  if C.isatty(0) ~= 1 then return end
  local p = io.popen("stty -g 2>/dev/null")
  local saved = p and p:read("*l")
  if p then p:close() end
  if not saved or saved == "" then return end
  if shell_ok("stty -icanon -echo -isig min 1 time 0 2>/dev/null") then
    term.saved, term.raw = saved, true
  end
end

local function term_size()
  local ws = ffi.new("struct mgtop_winsize")
  if C.ioctl(1, TIOCGWINSZ, ws) == 0 and ws.col > 0 and ws.row > 0 then
    return ws.col, ws.row
  end
  return 80, nil
end

local function term_restore()
  if term.screen then
    io.stdout:write("\27[?25h\27[?1049l") -- cursor back, leave the alternate screen
    io.stdout:flush()
    term.screen = false
  end
  if term.raw then
    shell_ok("stty " .. term.saved .. " 2>/dev/null")
    term.raw = false
  end
  if term.sigold then
    C.sigprocmask(SIG_SETMASK, term.sigold, nil)
    term.sigold = nil
  end
end

-- Wait up to `seconds` for a key or a signal. Returns "quit", "redraw", or nil (time up).
local function wait_event(fds, seconds)
  local deadline = socket.gettime() + seconds
  while true do
    local left = deadline - socket.gettime()
    if left <= 0 then return nil end
    local n = 0
    local pfd = ffi.new("struct mgtop_pollfd[2]")
    if fds.keys then
      pfd[n].fd, pfd[n].events = 0, POLLIN
      n = n + 1
    end
    if fds.sig then
      pfd[n].fd, pfd[n].events = fds.sig, POLLIN
      n = n + 1
    end
    if n == 0 then
      socket.sleep(left)
      return nil
    end
    local r = C.poll(pfd, n, math.max(1, math.floor(left * 1000)))
    if r > 0 then
      for i = 0, n - 1 do
        if pfd[i].revents ~= 0 then
          if pfd[i].fd == 0 then
            local buf = ffi.new("unsigned char[64]")
            local got = tonumber(C.read(0, buf, 64))
            if got <= 0 then
              fds.keys = nil -- stdin closed: go on without keys
            else
              for j = 0, got - 1 do
                local c = buf[j]
                if c == 113 or c == 81 or c == 3 or c == 4 then return "quit" end -- q Q ^C ^D
                if c == 32 or c == 12 then return "redraw" end -- space, ^L
              end
            end
          else
            local info = ffi.new("unsigned char[128]") -- struct signalfd_siginfo
            if tonumber(C.read(fds.sig, info, 128)) == 128 then
              local signo = ffi.cast("uint32_t *", info)[0]
              if signo == SIGWINCH then return "redraw" end
              return "quit"
            end
          end
        end
      end
    end
  end
end

-----------------------------------------------------------------------------------------
-- Main

local function frame(o, prev, cur, err, opts)
  local v = top.view(prev, cur)
  v.endpoint, v.source, v.error = o.endpoint, o.mode, err
  v.clock = os.date("%H:%M:%S")
  return top.render(v, opts)
end

local function sample(src)
  local s, err = src.fetch()
  if s then s.time = socket.gettime() end
  return s, err
end

local function run_once(o, src)
  local a, err = sample(src)
  if not a then die(1, o.endpoint .. ": " .. tostring(err)) end
  socket.sleep(o.interval)
  local b
  b, err = sample(src)
  if not b then die(1, o.endpoint .. ": " .. tostring(err)) end
  src.close()
  io.stdout:write(frame(o, a, b, nil, { width = 80 }), "\n")
  return 0
end

local function run_live(o, src)
  local tty = C.isatty(1) == 1
  local fds = { sig = signals_to_fd() }
  if tty then
    term_raw()
    if term.raw then fds.keys = true end
    io.stdout:write("\27[?1049h\27[?25l") -- alternate screen, cursor hidden
    term.screen = true
  elseif C.isatty(0) == 1 then
    fds.keys = true -- keys still work (line-buffered) when stdout is a pipe
  end
  local prev, last_err, last
  local next_sample = socket.gettime()
  while true do
    local now = socket.gettime()
    if now >= next_sample then
      local cur, err = sample(src)
      last_err = err
      if cur then
        if prev and prev.source ~= cur.source then prev = nil end
        last = { prev, cur }
        prev = cur
      end
      next_sample = math.max(next_sample + o.interval, socket.gettime())
    end
    local view_prev, view_cur = unpack(last or {})
    if tty then
      local w, h = term_size()
      local text = frame(o, view_prev, view_cur, last_err, { width = math.min(w, 80), height = h })
      io.stdout:write("\27[H", (text:gsub("\n", "\27[K\n")), "\27[K\27[J")
    else
      io.stdout:write(frame(o, view_prev, view_cur, last_err, { width = 80 }), "\n\n")
    end
    io.stdout:flush()
    local ev = wait_event(fds, next_sample - socket.gettime())
    if ev == "quit" then break end
  end
  src.close()
  term_restore()
  if fds.sig then C.close(fds.sig) end
  return 0
end

local function main(argv)
  local o = parse_args(argv)
  local src
  if o.mode == "metrics" then
    src = metrics_source(o)
  elseif o.mode == "stats" then
    src = stats_source(o)
  else
    src = probing_source(o)
  end
  if o.once then return run_once(o, src) end
  local ok, rc = xpcall(run_live, debug.traceback, o, src)
  if not ok then
    term_restore()
    io.stderr:write("mintgate-top: ", tostring(rc), "\n")
    return 1
  end
  return rc
end

os.exit(main(arg or {}))
