--- spec/helpers/fake_backend.lua: a broken memcached backend, run as its own process:
--
--   luajit spec/helpers/fake_backend.lua PORT MODE [LIFETIME_SECONDS]
--
-- Modes:
--   hang             accept, read everything, never answer
--   garbage          answer every request line with junk bytes
--   close_mid_value  answer `mn` and `version` normally; answer any other request
--                    (mg, ms, ...) with "VA 10 f0\r\nabc" and close the connection
-- (A refused backend needs no process: it is a port nobody listens on.)
-- It exits by itself after LIFETIME_SECONDS (default 60) so it can never linger.
assert(jit, "run me with luajit")
local socket = require "socket"

local port, mode, lifetime = tonumber(arg[1]), arg[2], tonumber(arg[3] or "60")
local modes = { hang = true, garbage = true, close_mid_value = true }
if not port or not modes[mode] then
  io.stderr:write("usage: luajit spec/helpers/fake_backend.lua PORT hang|garbage|close_mid_value [LIFETIME]\n")
  os.exit(2)
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
