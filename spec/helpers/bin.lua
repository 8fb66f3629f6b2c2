--- spec/helpers/bin.lua: memcached binary protocol packets for specs: a request packet
-- built from its fields, a response packet read back into a table, SASL PLAIN.
local M = {}

--- n as a big-endian string of `bytes` bytes.
function M.be(n, bytes)
  local t = {}
  for i = bytes, 1, -1 do
    t[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(t)
end
local be = M.be

--- One request packet: opcode op; o.ext, o.key, o.val, o.opaque, o.cas, and, to build
-- bad ones, o.magic, o.klen, o.body (the lengths in the header).
function M.packet(op, o)
  o = o or {}
  local ext, key, val = o.ext or "", o.key or "", o.val or ""
  local body = o.body or (#ext + #key + #val)
  return string.char(o.magic or 0x80, op) .. be(o.klen or #key, 2) .. string.char(#ext, 0) ..
    "\0\0" .. be(body, 4) .. be(o.opaque or 0, 4) .. be(o.cas or 0, 8) .. ext .. key .. val
end

--- Read one response packet from client c (spec/helpers/client.lua): a table of its fields.
function M.response(c, timeout)
  local h = c:read(24, timeout)
  local r = {
    magic = h:byte(1), op = h:byte(2), klen = h:byte(3) * 256 + h:byte(4), elen = h:byte(5),
    status = h:byte(7) * 256 + h:byte(8),
    body = ((h:byte(9) * 256 + h:byte(10)) * 256 + h:byte(11)) * 256 + h:byte(12),
    opaque = h:sub(13, 16), cas = h:sub(17, 24),
  }
  local b = r.body > 0 and c:read(r.body, timeout) or ""
  r.extras = b:sub(1, r.elen)
  r.key = b:sub(r.elen + 1, r.elen + r.klen)
  r.value = b:sub(r.elen + r.klen + 1)
  return r
end

--- set's extras: flags, then no expiry.
M.SET_EXT = "\0\0\0\5\0\0\0\0"

--- SASL PLAIN authentication on c: returns the response's status and value.
function M.sasl_plain(c, user, password)
  c:send(M.packet(0x21, { key = "PLAIN", val = "\0" .. user .. "\0" .. password }))
  local r = M.response(c)
  return r.status, r.value
end

--- A binary set of key to val on c: the response's status.
function M.set(c, key, val)
  c:send(M.packet(0x01, { ext = M.SET_EXT, key = key, val = val }))
  return M.response(c).status
end

--- A binary get of key on c: the value, or nil and the status.
function M.get(c, key)
  c:send(M.packet(0x00, { key = key }))
  local r = M.response(c)
  if r.status == 0 then return r.value end
  return nil, r.status
end

return M
