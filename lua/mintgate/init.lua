--- mintgate: the configuration API of the mintgate gateway.
-- A config script does `local mg = require "mintgate"` and declares listeners, pools and
-- routes. Everything declared here is plain data that the C core compiles after the script
-- has run; nothing in this module runs per request.
local stale = require "mintgate.stale"

local M = {}

local state = {
  listen = {},   -- "host:port" strings
  pools = {},    -- declared pools, in order
  by_name = {},  -- name -> pool
  route = nil,   -- { default = pool name, prefixes = { {prefix, pool name, policy}, ... } }
  stale = nil,   -- the default staleness policy (a table), or nil
}
M._state = state

local Pool = {}
Pool.__index = Pool
Pool.__tostring = function(p) return "mintgate.pool(" .. p.name .. ")" end

local POOL_OPTS = {
  connect_timeout = "number", timeout = "number", failure_limit = "number",
  retry_timeout = "number",
}

local function check_addr(what, s, level)
  if type(s) ~= "string" or not (s:match("^[^:%[%]]+:%d+$") or s:match("^%[[%x:.]+%]:%d+$")) then
    error(what .. ": expected \"host:port\", got " .. tostring(s), level + 1)
  end
  local port = tonumber(s:match(":(%d+)$"))
  if port > 65535 then error(what .. ": port out of range in " .. s, level + 1) end
end

--- Declare the addresses to listen on ("host:port"). `-l` on the command line wins.
-- @tparam {string,...} addrs
function M.listen(addrs)
  if type(addrs) == "string" then addrs = { addrs } end
  if type(addrs) ~= "table" or #addrs == 0 then
    error("mg.listen: expected a list of \"host:port\" strings", 2)
  end
  for _, a in ipairs(addrs) do
    check_addr("mg.listen", a, 2)
    state.listen[#state.listen + 1] = a
  end
end

--- Declare a pool of memcached servers.
-- @tparam table t `name` (string), `servers` (list of "host:port"), and optionally
-- `connect_timeout`, `timeout`, `retry_timeout` (seconds) and `failure_limit`.
-- @return a pool object to use in routes
function M.pool(t)
  if type(t) ~= "table" then error("mg.pool: expected a table", 2) end
  if type(t.name) ~= "string" or t.name == "" or t.name:find("[%s%c]") then
    error("mg.pool: 'name' must be a non-empty string without spaces", 2)
  end
  if state.by_name[t.name] then error("mg.pool: pool '" .. t.name .. "' declared twice", 2) end
  if type(t.servers) ~= "table" or #t.servers == 0 then
    error("mg.pool '" .. t.name .. "': 'servers' must be a non-empty list", 2)
  end
  local p = setmetatable({ name = t.name, servers = {} }, Pool)
  for i, s in ipairs(t.servers) do
    check_addr("mg.pool '" .. t.name .. "' server " .. i, s, 2)
    p.servers[i] = s
  end
  if t.stale ~= nil then p.stale = stale.normalize(t.stale, 2) end
  for k, v in pairs(t) do
    if k ~= "name" and k ~= "servers" and k ~= "stale" then
      local want = POOL_OPTS[k]
      if not want then error("mg.pool '" .. t.name .. "': unknown option '" .. tostring(k) .. "'", 2) end
      if type(v) ~= want or v < 0 then
        error("mg.pool '" .. t.name .. "': '" .. k .. "' must be a non-negative " .. want, 2)
      end
      p[k] = v
    end
  end
  state.pools[#state.pools + 1] = p
  state.by_name[p.name] = p
  return p
end

local function pool_name(v, what)
  if getmetatable(v) == Pool then return v.name end
  if type(v) == "string" and state.by_name[v] then return v end
  error("mg.route: " .. what .. " must be a pool (from mg.pool) or a pool's name", 3)
end

--- Set the default staleness policy (herd protection) for every pool without its own.
-- @param spec a policy name ("newcache", "mint", "publish", "none") or a table
-- `{ grace = 60, lock = 5, wait = 50, on_delete = "mark_stale", coalesce = true }`
-- (a table may name a base policy with `policy = "newcache"` and override parts of it)
function M.stale(spec)
  state.stale = stale.normalize(spec, 2)
end

--- Route keys to pools. A table maps key prefixes to pools (the longest prefix wins) and
-- `default` to the pool for every other key. A prefix may map to `{ pool = p, stale = s }`
-- to give its keys their own staleness policy.
-- @tparam table t e.g. `{ ["session:"] = sessions, default = main }`
function M.route(t)
  if type(t) ~= "table" then error("mg.route: expected a table", 2) end
  local r = { prefixes = {} }
  for k, v in pairs(t) do
    if k == "default" then
      r.default = pool_name(v, "default")
    elseif type(k) == "string" and k ~= "" then
      local what = "prefix '" .. k .. "'"
      if type(v) == "table" and getmetatable(v) ~= Pool then
        local policy -- nil: the pool's policy; false: none
        if v.stale ~= nil then policy = stale.normalize(v.stale, 2) end
        r.prefixes[#r.prefixes + 1] = { k, pool_name(v.pool, what), policy }
      else
        r.prefixes[#r.prefixes + 1] = { k, pool_name(v, what) }
      end
    else
      error("mg.route: keys must be prefixes (non-empty strings) or 'default'", 2)
    end
  end
  table.sort(r.prefixes, function(a, b) return a[1] < b[1] end)
  state.route = r
end

return M
