--- spec/helpers/fake_backend.lua: a broken memcached backend, run as its own process:
--
--   luajit spec/helpers/fake_backend.lua PORT MODE [LIFETIME_SECONDS]
--
-- Modes:
--   hang             accept, read everything, never answer
--   garbage          answer every request line with junk bytes
--   close_mid_value  answer `mn` and `version` normally; answer any other request
--                    (mg, ms, ...) with "VA 10 f0\r\nabc" and close the connection
--   never_accept     listen with a backlog of 0 and fill it with connections of its own,
--                    then never accept: on Linux a full accept queue makes the kernel drop
--                    new SYNs, so a connect to it hangs until the caller's connect timeout
--                    (a refused port fails at once instead). Prints "ready" on stdout once
--                    the queue is full (Env:wait_listening cannot tell, connects hang).
--   slow             a proxy to a real memcached that holds every reply for a while:
--                    `... PORT slow LIFETIME UPSTREAM_PORT DELAY_SECONDS`; requests go
--                    upstream at once, each chunk of reply bytes reaches the gateway
--                    DELAY_SECONDS after it came from memcached
-- (A refused backend needs no process: it is a port nobody listens on.)
-- It exits by itself after LIFETIME_SECONDS (default 60) so it can never linger.
assert(jit, "run me with luajit")
local socket = require "socket"

local port, mode, lifetime = tonumber(arg[1]), arg[2], tonumber(arg[3] or "60")
local modes = { hang = true, garbage = true, close_mid_value = true, never_accept = true,
                slow = true }
if not port or not modes[mode] then
  io.stderr:write("usage: luajit spec/helpers/fake_backend.lua PORT " ..
    "hang|garbage|close_mid_value|never_accept|slow [LIFETIME [UPSTREAM_PORT DELAY]]\n")
  os.exit(2)
end

-- never_accept: a listening socket whose accept queue is full, so SYNs are dropped.
if mode == "never_accept" then
  local srv = socket.tcp()
  srv:setoption("reuseaddr", true)
  local ok, err = srv:bind("127.0.0.1", port)
  if ok then ok, err = srv:listen(0) end
  if not ok then
    io.stderr:write("fake_backend: cannot listen on 127.0.0.1:", port, ": ", tostring(err), "\n")
    os.exit(1)
  end
  -- connect to ourselves until a connect hangs: the queue is then full
  local fillers, full = {}, false
  for _ = 1, 8 do
    local c = socket.tcp()
    c:settimeout(0.3)
    local cok = c:connect("127.0.0.1", port)
    if cok then
      fillers[#fillers + 1] = c
    else
      c:close()
      full = true
      break
    end
  end
  if not full then
    io.stderr:write("fake_backend: the accept queue never filled up\n")
    os.exit(1)
  end
  io.stdout:write("ready\n")
  io.stdout:flush()
  socket.sleep(lifetime)
  for _, c in ipairs(fillers) do c:close() end
  srv:close()
  os.exit(0)
end

-- slow: a delaying proxy in front of memcached on UPSTREAM_PORT.
if mode == "slow" then
  local up_port, delay = tonumber(arg[4]), tonumber(arg[5])
  if not up_port or not delay then
    io.stderr:write("fake_backend: slow needs UPSTREAM_PORT DELAY_SECONDS\n")
    os.exit(2)
  end
  local srv, err = socket.bind("127.0.0.1", port)
  if not srv then
    io.stderr:write("fake_backend: cannot listen on 127.0.0.1:", port, ": ", tostring(err), "\n")
    os.exit(1)
  end
  srv:settimeout(0)
  local peer = {}   -- socket -> the other end
  local held = {}   -- upstream socket -> list of { due =, data = } for its client
  local deadline = socket.gettime() + lifetime
  local function close_pair(s)
    local o = peer[s]
    peer[s] = nil
    s:close()
    if o then peer[o] = nil; held[o] = nil; o:close() end
    held[s] = nil
  end
  while socket.gettime() < deadline do
    local watch, wait = { srv }, 0.05
    for s in pairs(peer) do watch[#watch + 1] = s end
    local readable = socket.select(watch, nil, wait)
    local now = socket.gettime()
    for _, s in ipairs(readable or {}) do
      if s == srv then
        local c = srv:accept()
        if c then
          local u = socket.tcp()
          u:settimeout(2)
          if u:connect("127.0.0.1", up_port) then
            c:settimeout(0); u:settimeout(0)
            peer[c], peer[u] = u, c
            held[u] = {}
          else
            c:close(); u:close()
          end
        end
      elseif peer[s] then
        local data, rerr, partial = s:receive(65536)
        local got = data or partial
        if got and #got > 0 then
          if held[s] then -- from memcached: hold it
            table.insert(held[s], { due = now + delay, data = got })
          else            -- from the gateway: straight on
            peer[s]:settimeout(2)
            peer[s]:send(got)
            peer[s]:settimeout(0)
          end
        end
        if rerr == "closed" then close_pair(s) end
      end
    end
    now = socket.gettime()
    for u, q in pairs(held) do
      while q[1] and q[1].due <= now do
        local c = peer[u]
        local item = table.remove(q, 1)
        if c then
          c:settimeout(2)
          c:send(item.data)
          c:settimeout(0)
        end
      end
    end
  end
  for s in pairs(peer) do s:close() end
  srv:close()
  os.exit(0)
end

local srv, err = socket.bind("127.0.0.1", port)
if not srv then
  io.stderr:write("fake_backend: cannot listen on 127.0.0.1:", port, ": ", tostring(err), "\n")
  os.exit(1)
end
srv:settimeout(0)

local JUNK = "\222\173\190\239 %%garbage%% \0\1\2\255\r\nNOT_A_REPLY 12 ???\r\n"

local conns = {} -- socket -> { buf = "" }
local deadline = socket.gettime() + lifetime

local function drop(s)
  conns[s] = nil
  s:close()
end

-- Act on the complete lines in st.buf. Returns false when the connection was closed.
local function serve_lines(s, st)
  while true do
    local nl = st.buf:find("\n", 1, true)
    if not nl then return true end
    local line = st.buf:sub(1, nl - 1):gsub("\r$", "")
    st.buf = st.buf:sub(nl + 1)
    if mode == "garbage" then
      s:send(JUNK)
    elseif mode == "close_mid_value" then
      if line == "mn" then
        s:send("MN\r\n")
      elseif line:match("^version") then
        s:send("VERSION 1.6.18\r\n")
      elseif line ~= "" then
        s:send("VA 10 f0\r\nabc")
        drop(s)
        return false
      end
    end
  end
end

while socket.gettime() < deadline do
  local watch = { srv }
  for s in pairs(conns) do watch[#watch + 1] = s end
  local readable = socket.select(watch, nil, 0.5)
  for _, s in ipairs(readable or {}) do
    if s == srv then
      local c = srv:accept()
      if c then
        c:settimeout(0)
        conns[c] = { buf = "" }
      end
    elseif conns[s] then
      local data, rerr, partial = s:receive(65536)
      local got = data or partial
      local st = conns[s]
      if got and #got > 0 and mode ~= "hang" then
        st.buf = st.buf .. got
        serve_lines(s, st)
      end
      if rerr == "closed" and conns[s] then drop(s) end
    end
  end
end
for s in pairs(conns) do s:close() end
srv:close()
os.exit(0)
