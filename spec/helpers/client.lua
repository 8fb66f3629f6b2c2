--- spec/helpers/client.lua: a raw memcached text-protocol client for specs.
--
-- It sends exactly the bytes it is given and reads replies with a deadline on every
-- read, so a spec never hangs: a read that times out raises an error that says what was
-- last sent and what (if anything) had arrived.
--
--   local client = require "spec.helpers.client"
--   local c = client.connect(port)
--   assert.equal("STORED", c:cmd("set k 0 0 2\r\nhi"))
--   local r = c:get("k")          -- { k = { flags = 0, value = "hi", cas = nil } }
local socket = require "socket"

local M = {}

--- Default timeout for one read, seconds (env MINTGATE_SPEC_TIMEOUT overrides).
M.timeout = tonumber(os.getenv("MINTGATE_SPEC_TIMEOUT") or "") or 2

local C = {}
C.__index = C

local function now() return socket.gettime() end

local function show(s, max)
  max = max or 120
  if s == nil then return "nil" end
  local t = s
  if #t > max then t = t:sub(1, max) end
  t = t:gsub("[^\32-\126]", function(ch)
    if ch == "\r" then return "\\r" elseif ch == "\n" then return "\\n" end
    return string.format("\\x%02x", ch:byte())
  end)
  if #s > max then t = t .. string.format("...(%d bytes)", #s) end
  return '"' .. t .. '"'
end
M.show = show

--- Connect to host:port (host defaults to 127.0.0.1). opts.timeout sets the per-read bound.
function M.connect(port, opts)
  opts = opts or {}
  local host = opts.host or "127.0.0.1"
  local s = socket.tcp()
  s:settimeout(opts.connect_timeout or 2)
  local ok, err = s:connect(host, port)
  if not ok then
    s:close()
    error(string.format("client: cannot connect to %s:%s: %s", host, tostring(port), tostring(err)), 2)
  end
  s:setoption("tcp-nodelay", true)
  return setmetatable({
    sock = s, port = port, buf = "", pos = 1, eof = false,
    timeout = opts.timeout or M.timeout, last_sent = "", name = opts.name or ("client:" .. port),
  }, C)
end

--- Like connect but returns nil, err instead of raising.
function M.try_connect(port, opts)
  local ok, c = pcall(M.connect, port, opts)
  if ok then return c end
  return nil, c
end

function C:fail(msg, level)
  error(string.format("%s: %s (last sent %s; unread %s)", self.name, msg, show(self.last_sent),
    show(self.buf:sub(self.pos))), (level or 1) + 1)
end

-- Bytes buffered and not yet consumed.
function C:buffered() return #self.buf - self.pos + 1 end

-- Read whatever arrives before deadline into the buffer. Returns true when bytes came,
-- nil, "timeout" | "closed" otherwise.
function C:fill(deadline)
  if self.eof then return nil, "closed" end
  local left = deadline - now()
  if left < 0 then left = 0 end
  local r = socket.select({ self.sock }, nil, left)
  if not r or not r[1] then return nil, "timeout" end
  self.sock:settimeout(0)
  local data, err, partial = self.sock:receive(1048576)
  local got = data or partial
  if self.pos > 65536 then
    self.buf = self.buf:sub(self.pos)
    self.pos = 1
  end
  if got and #got > 0 then self.buf = self.buf .. got end
  if err == "closed" then self.eof = true end
  if got and #got > 0 then return true end
  if err == "closed" then return nil, "closed" end
  if err and err ~= "timeout" then
    self.eof = true
    return nil, err
  end
  return true -- readable but nothing yet (spurious): caller loops
end

--- Send bytes; raise on error. Returns self.
function C:send(bytes)
  self.last_sent = bytes
  self.sock:settimeout(self.timeout)
  local ok, err, sent = self.sock:send(bytes)
  if not ok then
    self:fail(string.format("send failed after %d of %d bytes: %s", sent or 0, #bytes, tostring(err)), 2)
  end
  return self
end

--- Send bytes without raising; gives up after `bound` seconds (default: timeout).
-- Returns the number of bytes sent and an error ("timeout", "closed", ...) or nil.
function C:try_send(bytes, bound)
  self.last_sent = bytes
  self.sock:settimeout(bound or self.timeout, "t")
  local ok, err, sent = self.sock:send(bytes)
  self.sock:settimeout(self.timeout)
  if ok then return #bytes end
  return sent or 0, err
end

--- Read one line (without its \r\n), or nil, err ("timeout" | "closed" | "bad line end").
function C:try_line(timeout)
  local deadline = now() + (timeout or self.timeout)
  while true do
    local nl = self.buf:find("\n", self.pos, true)
    if nl then
      local line = self.buf:sub(self.pos, nl - 1)
      self.pos = nl + 1
      if line:sub(-1) ~= "\r" then return nil, "line not terminated by \\r\\n: " .. show(line) end
      return line:sub(1, -2)
    end
    local ok, err = self:fill(deadline)
    if not ok and err then return nil, err end
    if not ok and now() >= deadline then return nil, "timeout" end
  end
end

--- Read one line (without its \r\n). Raises a clear error on timeout or close.
function C:line(timeout)
  local l, err = self:try_line(timeout)
  if not l then
    self:fail(string.format("no reply line (%s after %.1f s)", err, timeout or self.timeout), 2)
  end
  return l
end

--- Read exactly n bytes, raising on timeout or close.
function C:read(n, timeout)
  local deadline = now() + (timeout or self.timeout)
  while self:buffered() < n do
    local ok, err = self:fill(deadline)
    if not ok and err then
      self:fail(string.format("wanted %d bytes, have %d (%s)", n, self:buffered(), err), 2)
    end
  end
  local s = self.buf:sub(self.pos, self.pos + n - 1)
  self.pos = self.pos + n
  return s
end

--- Send str (with \r\n appended unless it already ends in \n) and return the first reply line.
function C:cmd(str, timeout)
  if str:sub(-1) ~= "\n" then str = str .. "\r\n" end
  self:send(str)
  return self:line(timeout)
end

--- Read the rest of a retrieval reply whose first line is `first` (default: read it).
-- Returns items (key -> {flags=, value=, cas=}), order (keys in reply order) and the
-- terminating line ("END" normally; an error line if the reply was an error).
function C:retrieval(first, timeout)
  local items, order = {}, {}
  local l = first or self:line(timeout)
  while true do
    local key, flags, len, cas = l:match("^VALUE (%S+) (%d+) (%d+) ?(%d*)$")
    if not key then
      if l:match("^VALUE") then self:fail("malformed VALUE line " .. show(l), 2) end
      return items, order, l
    end
    local data = self:read(tonumber(len) + 2, timeout)
    if data:sub(-2) ~= "\r\n" then
      self:fail("value of " .. key .. " not followed by \\r\\n: " .. show(data), 2)
    end
    items[key] = { flags = tonumber(flags), value = data:sub(1, -3), cas = cas ~= "" and cas or nil }
    order[#order + 1] = key
    l = self:line(timeout)
  end
end

--- Read one full get/gets/gat/gats reply and require it to end with END.
-- Returns items, order.
function C:get_reply(timeout)
  local items, order, last = self:retrieval(nil, timeout)
  if last ~= "END" then self:fail("retrieval reply ended with " .. show(last) .. " not END", 2) end
  return items, order
end

--- `get k1 k2 ...` (or verb given as opts: c:get_cmd("gets", ...)); returns items, order.
function C:get(...)
  self:send("get " .. table.concat({ ... }, " ") .. "\r\n")
  return self:get_reply()
end

function C:gets(...)
  self:send("gets " .. table.concat({ ... }, " ") .. "\r\n")
  return self:get_reply()
end

--- The value of key (or nil on a miss).
function C:value(key)
  local items = self:get(key)
  return items[key] and items[key].value
end

--- set key to value (flags, exptime default 0). Returns the reply line.
function C:set(key, value, flags, exptime)
  return self:cmd(string.format("set %s %d %d %d\r\n%s\r\n", key, flags or 0, exptime or 0, #value, value))
end

--- Read one meta reply: the line, plus the value for VA. Returns line, value|nil.
function C:meta_reply(timeout)
  local l = self:line(timeout)
  local n = l:match("^VA (%d+)")
  if n then
    local data = self:read(tonumber(n) + 2, timeout)
    if data:sub(-2) ~= "\r\n" then self:fail("VA value not followed by \\r\\n: " .. show(data), 2) end
    return l, data:sub(1, -3)
  end
  return l
end

--- True when the peer closes the connection within timeout (bytes that arrive
-- meanwhile stay buffered). False when it is still open after timeout.
function C:closed(timeout)
  local deadline = now() + (timeout or self.timeout)
  while true do
    if self.eof then return true end
    local ok, err = self:fill(deadline)
    if err == "closed" or self.eof then return true end
    if not ok and now() >= deadline then return false end
  end
end

--- True when any byte arrives (or the peer closes) within timeout; for "nothing
-- comes back" checks. Bytes stay buffered.
function C:has_data(timeout)
  if self:buffered() > 0 then return true end
  local deadline = now() + (timeout or 0.2)
  while self:buffered() == 0 do
    local ok, err = self:fill(deadline)
    if err == "closed" then return true end
    if not ok and now() >= deadline then return false end
  end
  return true
end

--- Drop everything buffered; return it.
function C:drain()
  local s = self.buf:sub(self.pos)
  self.buf, self.pos = "", 1
  return s
end

function C:close()
  if self.sock then self.sock:close() end
  self.sock = nil
  self.eof = true
end

--- Parse `stats` style replies: send cmd, read STAT lines until END.
-- Returns a table name -> value (strings) and the ordered list of names.
function C:stats(cmd)
  self:send((cmd or "stats") .. "\r\n")
  local t, order = {}, {}
  while true do
    local l = self:line()
    if l == "END" then return t, order end
    local k, v = l:match("^STAT (%S+) ?(.*)$")
    if not k then self:fail("unexpected line in stats reply: " .. show(l), 2) end
    t[k] = v
    order[#order + 1] = k
  end
end

-- One-shot looks at a memcached server itself (what really landed there), each on a
-- connection of its own.

--- The value of key on the server at port, or nil.
function M.value_on(port, key)
  local d = M.connect(port)
  local v = d:value(key)
  d:close()
  return v
end

--- Set key on the server at port; returns its reply line.
function M.set_on(port, key, value, flags, exptime)
  local d = M.connect(port)
  local l = d:set(key, value, flags, exptime)
  d:close()
  return l
end

--- The TTL the server at port reports for key (mg <key> t): seconds, -1 for none, nil
-- on a miss.
function M.ttl_on(port, key)
  local d = M.connect(port)
  local l = d:cmd("mg " .. key .. " t")
  d:close()
  return tonumber(l:match("^HD t(%-?%d+)"))
end

return M
