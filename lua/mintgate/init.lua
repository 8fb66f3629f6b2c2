--- mintgate: the configuration API of the mintgate gateway.
-- A config script does `local mg = require "mintgate"` and declares listeners, pools and
-- routes. Everything declared here is plain data that the C core compiles after the script
-- has run; nothing in this module runs per request.
local stale = require "mintgate.stale"

local M = {}

-- In a worker, the C core preloads "mintgate.core" with the request-phase functions
-- (pool calls, switch lookups). In `--check` and in plain busted it is absent.
local core_ok, core = pcall(require, "mintgate.core")
if not core_ok then core = nil end

-- Inside the gateway, switch lookups go through LuaJIT's FFI so a JIT-compiled route
-- function does not leave its trace for them (a classic C call would). Elsewhere (busted,
-- --check) the binary's symbol is absent and the classic path or the fallback is used.
local ffi_switch_on
if core then
  local ok, ffi = pcall(require, "ffi")
  if ok then
    pcall(ffi.cdef, "int mg_switch_on(int id, const char *key, size_t len);")
    local found, fn = pcall(function() return ffi.C.mg_switch_on end)
    if found then ffi_switch_on = fn end
  end
end

local state = {
  listen = {},   -- "host:port" strings
  pools = {},    -- declared pools, in order
  by_name = {},  -- name -> pool
  route = nil,   -- { default = pool name, prefixes = { {prefix, pool name, policy}, ... } }
  stale = nil,   -- the default staleness policy (a table), or nil
  keys = nil,    -- the default key style (a table) or a function(key, req)
  route_fn = nil, -- a function(req) returning a pool, when routing is a function
  hooks = {},    -- event name -> function(req, pool)
  switches = {}, -- declared switches, in order
  routes = {},   -- declared routes (failover, warmup), in order (after every pool in C)
  admin = {},    -- admin listener addresses
  metrics = {},  -- Prometheus endpoint addresses (mg.metrics)
  slowlog = nil, -- { threshold_ms = n or false, size = n } (mg.slowlog)
  hotkeys = nil, -- { top, sample, window, expose_keys, enabled } (mg.hotkeys)
  trace = nil,   -- { path, sample, hash_keys, max_size (bytes) } (mg.trace)
  near = nil,    -- { size (bytes), ttl, hot, max_value (bytes), hot_rps, hot_top } (mg.near)
  memo = nil,    -- { size (entries per worker) } (mg.memo)
  admin_on_data_port = false,
  admin_public = false,     -- admin listeners may be on non-loopback addresses
  admin_secret_file = nil,  -- path of the file holding the admin secret
  auth_file = nil, -- the clients' users file (mg.auth)
  policies = {},   -- named staleness policies, in order: { name, policy (table or false) }
  policy_ids = {}, -- name -> 0-based index into policies (what the C core uses)
}

local function add_policy(name, policy)
  state.policies[#state.policies + 1] = { name, policy }
  state.policy_ids[name] = #state.policies - 1
end
for _, name in ipairs { "newcache", "mint", "publish", "none" } do
  add_policy(name, stale.normalize(name))
end
M._state = state

-- With mg.memo, what a key's route and key functions asked besides the key: sw:on notes
-- switches here, the req table's __index (in C) req fields; the resolver loop reads and
-- clears it per key (lua/mintgate/resolver.lua).
local track = { sw = false, cmd = false, other = false }
local memo_on = false -- mg.memo was declared: Switch:on notes that it was asked
M._track = track

local Pool = {}
Pool.__index = Pool
Pool.__tostring = function(p) return "mintgate.pool(" .. p.name .. ")" end

local KEY_OPTS = { style = "string", prefix = "string", version = "any", flavor = "string",
                   hash_long = "boolean" }
local STYLES = { newcache = true, django = true, prefix = true }

-- Normalize a key style declaration: a function, or a table of KEY_OPTS.
local function key_style(t, level)
  level = level + 1
  if type(t) == "function" then return t end
  if type(t) ~= "table" then error("mg.keys: expected a table or a function(key, req)", level) end
  local out = {}
  for k, v in pairs(t) do
    local want = KEY_OPTS[k]
    if not want then error("mg.keys: unknown option '" .. tostring(k) .. "'", level) end
    if k == "version" then
      if type(v) ~= "number" and type(v) ~= "string" then
        error("mg.keys: 'version' must be a number or a string", level)
      end
      -- whole numbers without a decimal point: 2, not 2.0
      v = (type(v) == "number" and v == math.floor(v)) and string.format("%d", v) or tostring(v)
    elseif type(v) ~= want then
      error("mg.keys: '" .. k .. "' must be a " .. want, level)
    end
    out[k] = v
  end
  if out.style == nil then
    -- a flavor without a style means django-newcache's scheme (DESIGN.md's sketch)
    out.style = out.flavor and not out.prefix and "newcache" or "prefix"
  end
  if not STYLES[out.style] then
    error("mg.keys: unknown style '" .. out.style .. "' (newcache, django, prefix)", level)
  end
  return out
end

local POOL_OPTS = {
  connect_timeout = "number", timeout = "number", failure_limit = "number",
  retry_timeout = "number", max_inflight = "number", connections = "number",
}

local function check_addr(what, s, level, unix_ok)
  if unix_ok and type(s) == "string" and s:match("^unix:/[^%c]+$") then return end
  if type(s) ~= "string" or not (s:match("^[^:%[%]%s%c]+:%d+$") or s:match("^%[[%x:.]+%]:%d+$")) then
    error(what .. ": expected \"host:port\", got " .. tostring(s), level + 1)
  end
  local port = tonumber(s:match(":(%d+)$"))
  if port > 65535 then error(what .. ": port out of range in " .. s, level + 1) end
end

-- Addresses (one string or a list; unix:/path too with unix_ok) appended to list; errors
-- name fn at the caller's caller's line.
local function add_addrs(fn, addrs, unix_ok, list)
  if type(addrs) == "string" then addrs = { addrs } end
  if type(addrs) ~= "table" or #addrs == 0 then
    error(fn .. ": expected a list of \"host:port\" strings", 3)
  end
  for k in pairs(addrs) do
    if type(k) ~= "number" then error(fn .. ": unknown option '" .. tostring(k) .. "'", 3) end
  end
  for _, a in ipairs(addrs) do
    check_addr(fn, a, 3, unix_ok)
    list[#list + 1] = a
  end
end

--- Declare the addresses to listen on ("host:port", or "unix:/path"). `-l` on the command
-- line wins.
-- @tparam {string,...} addrs
function M.listen(addrs)
  add_addrs("mg.listen", addrs, true, state.listen)
end

--- Serve metrics in Prometheus' text format (GET /metrics over HTTP/1.1) on these
-- addresses ("host:port"). `--metrics` on the command line wins.
-- @tparam {string,...} addrs
function M.metrics(addrs)
  add_addrs("mg.metrics", addrs, false, state.metrics)
end

--- The slow log: requests whose reply took at least `threshold_ms` milliseconds (default
-- 100; false turns it off) go into a ring of `size` entries (default 128), read with
-- `stats slowlog`. The admin port changes both at run time (`slowlog MS [SIZE]`).
-- @tparam table t `threshold_ms`, `size`
function M.slowlog(t)
  if type(t) ~= "table" then error("mg.slowlog: expected a table", 2) end
  for k, v in pairs(t) do
    if k == "threshold_ms" then
      if v ~= false and (type(v) ~= "number" or v < 0 or v ~= v) then
        error("mg.slowlog: 'threshold_ms' must be a number of milliseconds or false", 2)
      end
    elseif k == "size" then
      if type(v) ~= "number" or v < 1 or v > 100000 or v % 1 ~= 0 then
        error("mg.slowlog: 'size' must be a whole number from 1 to 100000", 2)
      end
    else
      error("mg.slowlog: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  state.slowlog = { threshold_ms = t.threshold_ms, size = t.size }
end

--- The hot-key detector: 1 in `sample` requests (default 64) feeds a top-K per worker over a
-- sliding `window` of seconds (default 10); `stats hotkeys` lists the `top` (default 16)
-- keys; the metrics show them with a key label only with `expose_keys = true` (keys can be
-- sensitive). `enabled = false` turns it off.
-- @tparam table t `top`, `sample`, `window`, `expose_keys`, `enabled`
function M.hotkeys(t)
  if type(t) ~= "table" then error("mg.hotkeys: expected a table", 2) end
  local LIMITS = { top = { 1, 256 }, sample = { 1, 1000000 }, window = { 1, 3600 } }
  for k, v in pairs(t) do
    if LIMITS[k] then
      local lo, hi = LIMITS[k][1], LIMITS[k][2]
      if type(v) ~= "number" or v < lo or v > hi or v % 1 ~= 0 then
        error("mg.hotkeys: '" .. k .. "' must be a whole number from " .. lo .. " to " .. hi, 2)
      end
    elseif k == "expose_keys" or k == "enabled" then
      if type(v) ~= "boolean" then error("mg.hotkeys: '" .. k .. "' must be a boolean", 2) end
    else
      error("mg.hotkeys: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  state.hotkeys = { top = t.top, sample = t.sample, window = t.window,
    expose_keys = t.expose_keys, enabled = t.enabled }
end

-- "64m", "1g", "512k", or a number of bytes: the bytes, or nil when it is none of them.
local function parse_size(v)
  if type(v) == "number" then
    return v >= 1 and v % 1 == 0 and v or nil
  end
  if type(v) ~= "string" then return nil end
  local n, unit = v:lower():match("^(%d+)([kmg]?)b?$")
  if not n then return nil end
  local size = tonumber(n) * ({ [""] = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3 })[unit]
  return size >= 1 and size or nil
end

--- The request trace: one line per key operation of the clients' requests to the file at
-- `path` (written by a thread of its own from bounded per-worker buffers; see README
-- "Traces" for the format). `sample` (0 to 1, default 1) is the share of keys traced,
-- chosen by a hash of the key: every operation on a traced key is in the trace.
-- `hash_keys = true` writes '#' and 16 hex digits of each key's hash instead of the key (the
-- same key, the same hash). At `max_size` bytes ("64m" by default; a number of bytes or
-- "512k", "64m", "1g") the trace stops itself. The admin port starts and stops traces at
-- run time (`trace start PATH [SAMPLE]`, `trace stop`); `stats trace` there shows it. A
-- reload that changes mg.trace starts the trace anew; one that drops it stops it.
-- @tparam table t `path`, `sample`, `hash_keys`, `max_size`
function M.trace(t)
  if type(t) ~= "table" then error("mg.trace: expected a table", 2) end
  local out = { sample = 1, hash_keys = false, max_size = 64 * 1024 * 1024 }
  for k, v in pairs(t) do
    if k == "path" then
      if type(v) ~= "string" or v == "" or #v >= 512 or v:find("%c") then
        error("mg.trace: 'path' must be a file path shorter than 512 bytes", 2)
      end
      out.path = v
    elseif k == "sample" then
      if type(v) ~= "number" or not (v >= 0 and v <= 1) then
        error("mg.trace: 'sample' must be a number from 0 to 1", 2)
      end
      out.sample = v
    elseif k == "hash_keys" then
      if type(v) ~= "boolean" then error("mg.trace: 'hash_keys' must be a boolean", 2) end
      out.hash_keys = v
    elseif k == "max_size" then
      out.max_size = parse_size(v)
      if not out.max_size then
        error("mg.trace: 'max_size' must be a number of bytes or a size like \"64m\"", 2)
      end
    else
      error("mg.trace: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  if not out.path then error("mg.trace: 'path' is required", 2) end
  state.trace = out
end

--- The near cache: hot keys answered from the gateway's own memory for at most `ttl`
-- seconds (README "Near cache"). `size` ("64m"; all workers together), `ttl` (seconds,
-- fractions allowed; default 1), `hot` (keys the hot-key detector finds hot are cached;
-- default true), `max_value` (larger values are never cached; default "64k"), `hot_rps`
-- (requests per second that make a key hot; default 100), `hot_top` (at most that many
-- hot keys; default 32). A pool's `near = { ttl =, prefixes = { ... } }` caches its keys
-- with those prefixes always (and may shorten the ttl).
function M.near(t)
  if type(t) ~= "table" then error("mg.near: expected a table", 2) end
  local out = { size = 64 * 1024 * 1024, ttl = 1, hot = true, max_value = 64 * 1024,
                hot_rps = 100, hot_top = 32 }
  for k, v in pairs(t) do
    if k == "size" or k == "max_value" then
      out[k] = parse_size(v)
      if not out[k] then
        error("mg.near: '" .. k .. "' must be a number of bytes or a size like \"64m\"", 2)
      end
    elseif k == "ttl" then
      if type(v) ~= "number" or not (v > 0 and v <= 3600) then
        error("mg.near: 'ttl' must be seconds, more than 0 and at most 3600", 2)
      end
      out.ttl = v
    elseif k == "hot" then
      if type(v) ~= "boolean" then error("mg.near: 'hot' must be a boolean", 2) end
      out.hot = v
    elseif k == "hot_rps" then
      if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then
        error("mg.near: 'hot_rps' must be a positive number", 2)
      end
      out.hot_rps = v
    elseif k == "hot_top" then
      if type(v) ~= "number" or v % 1 ~= 0 or v < 1 or v > 256 then
        error("mg.near: 'hot_top' must be a whole number from 1 to 256", 2)
      end
      out.hot_top = v
    else
      error("mg.near: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  if out.size < 64 * 1024 then error("mg.near: 'size' must be at least 64k", 2) end
  if out.max_value > 1024 * 1024 then error("mg.near: 'max_value' must be at most 1m", 2) end
  state.near = out
end

-- A pool's near = { ttl =, prefixes = { ... } }, checked.
local function pool_near(name, v)
  local what = "mg.pool '" .. name .. "': near"
  if type(v) ~= "table" then error(what .. " must be a table { ttl =, prefixes = }", 3) end
  local out = { prefixes = {} }
  for k, x in pairs(v) do
    if k == "ttl" then
      if type(x) ~= "number" or not (x > 0 and x <= 3600) then
        error(what .. ": 'ttl' must be seconds, more than 0 and at most 3600", 3)
      end
      out.ttl = x
    elseif k == "prefixes" then
      if type(x) ~= "table" then error(what .. ": 'prefixes' must be a list of strings", 3) end
      for i, pfx in ipairs(x) do
        if type(pfx) ~= "string" or pfx == "" or #pfx > 250 then
          error(what .. ": prefix " .. i .. " must be a non-empty string of at most 250 bytes", 3)
        end
        out.prefixes[i] = pfx
      end
      if #out.prefixes > 64 then error(what .. ": at most 64 prefixes", 3) end
    else
      error(what .. ": unknown option '" .. tostring(k) .. "'", 3)
    end
  end
  return out
end

--- Declare a pool of memcached servers.
-- @tparam table t `name` (string), `servers` (list of "host:port"), and optionally
-- `connect_timeout`, `timeout`, `retry_timeout` (seconds), `failure_limit`, `max_inflight`
-- (requests waiting on one server connection of a worker; more get `SERVER_ERROR backend
-- busy`), and `eject`:
-- "fail" (the default: keys of an ejected server get `SERVER_ERROR backend down`) or
-- "remap" (they go where libmemcached's ketama over the live servers puts them, as
-- pylibmc's auto_eject_hosts does, and move back once the server answers again).
-- `auth = { user =, password = }`: the servers want memcached's text auth (memcached -Y),
-- sent first on every new connection.
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
    check_addr("mg.pool '" .. t.name .. "' server " .. i, s, 2, true)
    p.servers[i] = s
  end
  if t.stale ~= nil then p.stale = stale.normalize(t.stale, 2) end
  if t.keys ~= nil then p.keys = key_style(t.keys, 2) end
  if t.near ~= nil then p.near = pool_near(t.name, t.near) end
  if t.auth ~= nil then
    local a, what = t.auth, "mg.pool '" .. t.name .. "': "
    if type(a) ~= "table" then error(what .. "'auth' must be { user = ..., password = ... }", 2) end
    for k in pairs(a) do
      if k ~= "user" and k ~= "password" then error(what .. "auth: unknown option '" .. tostring(k) .. "'", 2) end
    end
    if type(a.user) ~= "string" or not a.user:match("^[%w%p]+$") then
      error(what .. "auth 'user' must be a word (no spaces or control characters)", 2)
    end
    if type(a.password) ~= "string" or a.password:find("[\r\n%z]") then
      error(what .. "auth 'password' must be a string without line breaks", 2)
    end
    if #a.user + 1 + #a.password > 255 then error(what .. "auth: user and password too long", 2) end
    p.auth = { user = a.user, password = a.password }
  end
  if t.eject ~= nil then
    if t.eject ~= "fail" and t.eject ~= "remap" then
      error("mg.pool '" .. t.name .. "': 'eject' must be \"fail\" or \"remap\"", 2)
    end
    p.eject = t.eject
  end
  for k, v in pairs(t) do
    if k ~= "name" and k ~= "servers" and k ~= "stale" and k ~= "keys" and k ~= "eject" and
      k ~= "near" and k ~= "auth" then
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

local Route = {}
Route.__index = Route
Route.__tostring = function(r) return "mintgate." .. r.kind .. "(" .. r.name .. ")" end

-- The name of pool v (a pool object or a declared pool's name); with routes_ok, a route
-- object (mg.failover) or its name too.
local function pool_name(v, what, fn, routes_ok, level)
  local mt = getmetatable(v)
  if mt == Pool or (routes_ok and mt == Route) then return v.name end
  if type(v) == "string" and state.by_name[v] and
    (routes_ok or getmetatable(state.by_name[v]) == Pool) then
    return v
  end
  error((fn or "mg.route") .. ": " .. what .. (routes_ok and
    " must be a pool (from mg.pool), a route (mg.failover) or its name" or
    " must be a pool (from mg.pool) or a pool's name"), level or 3)
end

local FAIL_KINDS = { down = true, timeout = true, error = true }

-- Shared by the route constructors (mg.failover, mg.replicate, mg.shadow, mg.warmup): each
-- raises its errors at the line of the script that called the constructor (level 3).

-- t is a table whose keys are all in allowed (allowed[1]: a list part is allowed too).
local function route_table(t, fn, allowed)
  if type(t) ~= "table" then error(fn .. ": expected a table", 3) end
  for k in pairs(t) do
    if not (allowed[k] or (type(k) == "number" and allowed[1])) then
      error(fn .. ": unknown option '" .. tostring(k) .. "'", 3)
    end
  end
end

-- The pools listed (pool objects, routes, or their names), at least min of them.
local function route_pools(list, fn, min)
  local children = {}
  for i, c in ipairs(list) do
    children[i] = pool_name(c, "pool " .. i, fn, true, 4)
  end
  if #children < min then error(fn .. ": needs at least two pools", 3) end
  if #children > 64 then error(fn .. ": at most 64 pools", 3) end
  return children
end

-- One pool given by option what (a pool object, a route, or a name).
local function route_pool(v, what, fn)
  local name = pool_name(v, "'" .. what .. "'", fn, true, 4)
  return name -- not a tail call: pool_name's error level counts this frame
end

-- The failure kinds of option `on` as a set; all three when absent.
local function route_on(on, fn)
  if on == nil then return { down = true, timeout = true, error = true } end
  local set = {}
  if type(on) == "table" and #on > 0 then
    for _, kind in ipairs(on) do
      if not FAIL_KINDS[kind] then set = nil break end
      set[kind] = true
    end
    if set then return set end
  end
  error(fn .. ": 'on' must be a list of \"down\", \"timeout\", \"error\"", 3)
end

-- Option ttl: absent (0) or whole seconds.
local function route_ttl(ttl, fn)
  if ttl ~= nil and (type(ttl) ~= "number" or ttl < 0 or ttl % 1 ~= 0) then
    error(fn .. ": 'ttl' must be a whole number of seconds", 3)
  end
  return ttl or 0
end

-- Register route r under its name (t.name, else default made unique with #2, #3, ...).
local function route_add(r, name, default, fn)
  name = name or default
  if type(name) ~= "string" or name == "" or name:find("[%s%c]") then
    error(fn .. ": 'name' must be a non-empty string without spaces", 3)
  end
  if state.by_name[name] then
    if name ~= default then error(fn .. ": '" .. name .. "' declared twice", 3) end
    local n = 2
    while state.by_name[name .. "#" .. n] do n = n + 1 end
    name = name .. "#" .. n
  end
  r.name = name
  -- routes nest (a route's child may be a route): MG_ROUTE_DEPTH levels over MG_ROUTE_LEAVES
  -- server pools at most (core/mg.h)
  r.depth, r.leaves = 1, 0
  for _, c in ipairs(r.children) do
    local child = state.by_name[c]
    r.depth = math.max(r.depth, (child.depth or 0) + 1)
    r.leaves = r.leaves + (child.leaves or 1)
  end
  if r.depth > 4 or r.leaves > 32 then
    error(fn .. ": routes nest at most 4 deep over at most 32 pools", 3)
  end
  setmetatable(r, Route)
  state.routes[#state.routes + 1] = r
  state.by_name[name] = r
  return r
end

--- A failover route: the first pool serves; a key whose server is down, times out or
-- errs (`on`, default all three) moves on to the next pool. Writes that land on a pool
-- after the first live at most `ttl` seconds (a gutter pool: they expire instead of
-- going stale); `on_miss = true` moves reads on after a miss too; a delete goes to every
-- pool. Accepted wherever a pool is in routes, and returned by route functions.
-- @tparam table t pools in order, then optional `ttl`, `on`, `on_miss`, `name`
-- @return a route object
function M.failover(t)
  local fn = "mg.failover"
  route_table(t, fn, { true, ttl = true, on = true, on_miss = true, name = true })
  local children = route_pools(t, fn, 2)
  local ttl, on = route_ttl(t.ttl, fn), route_on(t.on, fn)
  if t.on_miss ~= nil and type(t.on_miss) ~= "boolean" then
    error(fn .. ": 'on_miss' must be a boolean", 2)
  end
  local r = route_add({ kind = "failover", children = children, ttl = ttl, on = on,
    on_miss = t.on_miss or false }, t.name, "failover(" .. table.concat(children, ",") .. ")", fn)
  return r -- not a tail call: route_add's error level counts the caller
end

local READS = { first = true, fastest = true, failover = true, random = true }
local WRITES = { all = true, majority = true, async = true }

--- A replicated route (mcrouter's AllSyncRoute / AllMajorityRoute / AllAsyncRoute for
-- writes): every write and delete goes to each pool. `writes`: the client waits for
-- "all" of them (the default), a "majority", or the first ("async": the rest go on in the
-- background), and gets the worst answer of those it waited for. `reads`: "first" (the
-- default), "failover" (the next pool after a failure, as mg.failover), "random", or
-- "fastest" (the lowest recent reply latency in this worker). A delete a replica misses
-- while down is kept and replayed before that replica serves reads again.
-- @tparam table t pools in order, then optional `reads`, `writes`, `on`, `name`
-- @return a route object
function M.replicate(t)
  local fn = "mg.replicate"
  route_table(t, fn, { true, reads = true, writes = true, on = true, name = true })
  local children = route_pools(t, fn, 2)
  local reads, writes = t.reads or "first", t.writes or "all"
  if not READS[reads] then
    error(fn .. ": 'reads' must be \"first\", \"fastest\", \"failover\" or \"random\"", 2)
  end
  if not WRITES[writes] then
    error(fn .. ": 'writes' must be \"all\", \"majority\" or \"async\"", 2)
  end
  local r = route_add({ kind = "replicate", children = children, reads = reads, writes = writes,
    on = route_on(t.on, fn), ttl = 0, on_miss = false }, t.name,
    "replicate(" .. table.concat(children, ",") .. ")", fn)
  return r -- not a tail call: route_add's error level counts the caller
end

--- A shadow route (mcrouter's ShadowRoute): `main` serves every key; a deterministic share
-- of keys (`percent`, hashed as switches hash) is also sent to `copy`, whose replies
-- never reach the client and whose failures never slow it; classic reads count a
-- mismatch when the copy answers differently (hit/miss or value). The share is the switch
-- `switch` (default "shadow." .. copy's name): change it at run time like any switch.
-- @tparam table t `main` (or t[1]), `copy`, `percent` (0..100), optional `switch`, `name`
-- @return a route object
function M.shadow(t)
  local fn = "mg.shadow"
  route_table(t, fn, { [1] = true, main = true, copy = true, percent = true, switch = true,
    name = true })
  local main = route_pool(t.main or t[1], "main", fn)
  local copy = route_pool(t.copy, "copy", fn)
  if main == copy then error(fn .. ": 'main' and 'copy' must be two pools", 2) end
  local pct = t.percent or 0
  if type(pct) ~= "number" or pct < 0 or pct > 100 then
    error(fn .. ": 'percent' must be a number from 0 to 100", 2)
  end
  -- the default switch is named after copy (a route's generated name made a word)
  local sw = t.switch or ("shadow." .. copy:gsub("[^%w_.:-]", "_"):sub(1, 56))
  if type(sw) ~= "string" or not sw:match("^[%w_.:-]+$") or #sw > 63 then
    error(fn .. ": 'switch' must be a word (letters, digits, _ . : -)", 2)
  end
  local r = route_add({ kind = "shadow", children = { main, copy }, percent = pct, switch = sw,
    ttl = 0, on = {}, on_miss = false }, t.name, "shadow(" .. main .. ">" .. copy .. ")", fn)
  return r -- not a tail call: route_add's error level counts the caller
end

--- A warm-up route (mcrouter's WarmUpRoute): reads try `cold`; a miss there reads `warm`,
-- and a hit there is returned and added to `cold` with its remaining TTL (or `ttl` when it
-- has none). Writes go to `cold`; deletes to both. With a switch in a route function, it
-- moves keys to a new pool without a miss storm.
-- @tparam table t `cold`, `warm` (pools), optional `ttl` (seconds), `name`
-- @return a route object
function M.warmup(t)
  local fn = "mg.warmup"
  route_table(t, fn, { cold = true, warm = true, ttl = true, name = true })
  local cold = route_pool(t.cold, "cold", fn)
  local warm = route_pool(t.warm, "warm", fn)
  if cold == warm then error(fn .. ": 'cold' and 'warm' must be two pools", 2) end
  local r = route_add({ kind = "warmup", children = { cold, warm }, ttl = route_ttl(t.ttl, fn),
    on = {}, on_miss = true }, t.name, "warmup(" .. cold .. "<" .. warm .. ")", fn)
  return r -- not a tail call: route_add's error level counts the caller
end

--- Staleness policies (herd protection) go by one name, `stale`, everywhere: `mg.stale`,
-- a pool's and a route entry's `stale =`. `mg.stale(spec)` sets the default for every
-- pool without its own; `mg.stale(name, spec)` names a policy that a route function may
-- pick per request (`return main, "short"`); `mg.policy(name, spec)` is its older name.
-- @param spec a policy name ("newcache", "mint", "publish", "none") or a table
-- `{ grace = 60, lock = 5, wait = 50, on_delete = "mark_stale", coalesce = true }`
-- (a table may start from a named policy with `base = "newcache"`, older spelling
-- `policy = "newcache"`, and override parts of it)
local name_policy -- below
function M.stale(spec, named)
  if named ~= nil then return name_policy("mg.stale", spec, named, 3) end
  state.stale = stale.normalize(spec, 2)
end

--- Memoize resolutions: the script promises that its route and key functions are pure,
-- their answer for a key depending only on the key, req.command (when they read it) and
-- the switches they ask (sw:on). Each worker then keeps up to `size` resolutions (pool,
-- policy, backend key) by client key and answers a key it has without calling Lua. A
-- change of any switch retires the answers that asked one; a function that reads another
-- req field (req.user, req.client, ...), makes a pool call or raises is not memoized for
-- that key. See README "Memoized resolutions".
-- @tparam table t `size`: entries per worker, a whole number from 64 to 16777216
function M.memo(t)
  if type(t) ~= "table" then error("mg.memo: expected a table { size = entries }", 2) end
  for k, v in pairs(t) do
    if k == "size" then
      if type(v) ~= "number" or v % 1 ~= 0 or v < 64 or v > 16777216 then
        error("mg.memo: 'size' must be a whole number from 64 to 16777216", 2)
      end
    else
      error("mg.memo: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  if t.size == nil then error("mg.memo: 'size' is required (entries per worker)", 2) end
  state.memo = { size = t.size }
  memo_on = true
end

--- Set how client keys become backend keys, for every pool without its own `keys`.
-- @param t a table `{ style = "newcache"|"django"|"prefix", prefix =, version =, flavor =,
-- hash_long = bool }` (compiled into C), or a `function(key, req)` returning the new key
function M.keys(t)
  state.keys = key_style(t, 2)
end

--- The key functions the gateway's resolver uses (lua/mintgate/resolver.lua), once pools
-- have their ids: by pool id, the pool's own `keys` function, false when the pool has its
-- own key style table, else the `mg.keys` function (or false); and the `mg.keys`
-- function for pools the script did not declare. Returns nil, nil when no key function
-- exists.
function M._key_fns()
  local default = type(state.keys) == "function" and state.keys or nil
  local fns, any = {}, default ~= nil
  for _, p in ipairs(state.pools) do
    local f = p.keys
    if f == nil then f = default end
    if type(f) == "function" then any = true else f = false end
    if p._id then fns[p._id] = f end
  end
  if not any then return nil, nil end
  return fns, default
end

--- Name a staleness policy so a route function can pick it per request:
-- `mg.route(function(req) return main, "short" end)`. The built-in names (newcache, mint,
-- publish, none) are always there. The same as `mg.stale(name, spec)`.
-- @tparam string name
-- @param spec a policy table or name (see mg.stale)
function name_policy(fn, name, spec, level)
  if type(name) ~= "string" or not name:match("^[%w_.:-]+$") or #name > 31 then
    error(fn .. ": the name must be a word of at most 31 characters", level)
  end
  if state.policy_ids[name] then error(fn .. ": '" .. name .. "' exists already", level) end
  add_policy(name, stale.normalize(spec, level))
end

function M.policy(name, spec)
  name_policy("mg.policy", name, spec, 3)
end

--- Route keys to pools. A table maps key prefixes to pools (the longest prefix wins) and
-- `default` to the pool for every other key. A prefix may map to `{ pool = p, stale = s }`
-- to give its keys their own staleness policy. A function(req) returning a pool is called
-- per key instead (req.command, req.key, req.client); it may return a policy name as a
-- second value to choose the staleness policy for that request.
-- @param t e.g. `{ ["session:"] = sessions, default = main }`, or a function
function M.route(t)
  if type(t) == "function" then
    state.route_fn = t
    state.route = nil
    return
  end
  if type(t) ~= "table" then error("mg.route: expected a table or a function(req)", 2) end
  state.route_fn = nil
  local r = { prefixes = {} }
  for k, v in pairs(t) do
    if k == "default" then
      r.default = pool_name(v, "default", nil, true)
    elseif type(k) == "string" and k ~= "" then
      local what = "prefix '" .. k .. "'"
      if type(v) == "table" and getmetatable(v) ~= Pool and getmetatable(v) ~= Route then
        local policy -- nil: the pool's policy; false: none
        if v.stale ~= nil then policy = stale.normalize(v.stale, 2) end
        r.prefixes[#r.prefixes + 1] = { k, pool_name(v.pool, what, nil, true), policy }
      else
        r.prefixes[#r.prefixes + 1] = { k, pool_name(v, what, nil, true) }
      end
    else
      error("mg.route: keys must be prefixes (non-empty strings) or 'default'", 2)
    end
  end
  table.sort(r.prefixes, function(a, b) return a[1] < b[1] end)
  state.route = r
end

local HOOKS = { set = true, delete = true, miss = true }

--- Run fn(req, pool) after every `set` (stored), `delete` or `miss` (a get that missed).
-- Inside it, pool calls (`pool:get`, `pool:set`, `pool:delete`, ...) wait for the backend
-- without blocking the gateway. The client's reply goes out once the hook returned.
-- @tparam string event "set", "delete" or "miss"
-- @tparam function fn
function M.on(event, fn)
  if not HOOKS[event] then error("mg.on: unknown event '" .. tostring(event) .. "'", 2) end
  if type(fn) ~= "function" then error("mg.on: expected a function", 2) end
  state.hooks[event] = fn
end

local ADMIN_OPTS = { on_data_port = "boolean", public = "boolean", secret_file = "string" }

--- Declare admin listeners ("host:port", or "unix:/path", created mode 0600). Admin commands
-- (`switch NAME PERCENT`, `reload`) are accepted there only, unless `on_data_port = true`.
-- A listener on a non-loopback address (0.0.0.0, [::], a public IP) is refused unless
-- `public = true`. With `secret_file`, a connection must send `auth <secret>` (the file's
-- content) before any admin command; `--admin-secret-file` wins.
-- @tparam table t addresses, and the options `on_data_port`, `public`, `secret_file`
function M.admin(t)
  if type(t) == "string" then t = { t } end
  local has_opt = false
  if type(t) == "table" then
    for k, v in pairs(t) do
      if type(k) ~= "number" then
        local want = ADMIN_OPTS[k]
        if not want then error("mg.admin: unknown option '" .. tostring(k) .. "'", 2) end
        if type(v) ~= want then error("mg.admin: '" .. k .. "' must be a " .. want, 2) end
        has_opt = true
      end
    end
  end
  if type(t) ~= "table" or (#t == 0 and not has_opt) then
    error("mg.admin: expected a list of \"host:port\"", 2)
  end
  if t.secret_file == "" then error("mg.admin: 'secret_file' must be a path", 2) end
  for _, a in ipairs(t) do
    check_addr("mg.admin", a, 2, true)
    state.admin[#state.admin + 1] = a
  end
  if t.on_data_port ~= nil then state.admin_on_data_port = t.on_data_port end
  if t.public ~= nil then state.admin_public = t.public end
  if t.secret_file ~= nil then state.admin_secret_file = t.secret_file end
end

--- Make every client authenticate first, against a users file in memcached's `-Y` format
-- (`user:password` per line): SASL PLAIN for binary clients, memcached's text auth (a first
-- `set` whose value is "user password") for text ones. `--auth-file` wins. The file is read
-- again at each reload (a file that cannot be read then keeps the users loaded before);
-- turning authentication on or off takes a restart. Route functions see `req.user`.
-- @tparam table t `file`: the users file's path
function M.auth(t)
  if type(t) ~= "table" then error("mg.auth: expected a table", 2) end
  for k in pairs(t) do
    if k ~= "file" then error("mg.auth: unknown option '" .. tostring(k) .. "'", 2) end
  end
  if type(t.file) ~= "string" or t.file == "" or #t.file > 4096 then
    error("mg.auth: 'file' must be a path", 2)
  end
  state.auth_file = t.file
end

local Switch = {}
Switch.__index = Switch

--- Declare a feature switch: a deterministic share of keys (by a hash of the key) is "on".
-- @tparam table t `name`, `percent` (0..100, 0.001 resolution), optional `fleet = { pool =
-- p, key = "mintgate:switch:NAME" }` to follow a value kept in memcached (polled ~1/s);
-- the key must begin with "mintgate:", the namespace clients cannot reach.
-- @return a switch; `sw:on(key)` tells whether key is on the switched side
function M.switch(t)
  if type(t) ~= "table" then error("mg.switch: expected a table", 2) end
  if type(t.name) ~= "string" or not t.name:match("^[%w_.:-]+$") then
    error("mg.switch: 'name' must be a word (letters, digits, _ . : -)", 2)
  end
  local pct = t.percent
  if pct == nil then pct = 0 end
  if type(pct) ~= "number" or pct < 0 or pct > 100 then
    error("mg.switch: 'percent' must be a number from 0 to 100", 2)
  end
  for _, s in ipairs(state.switches) do
    if s.name == t.name then error("mg.switch: switch '" .. t.name .. "' declared twice", 2) end
  end
  local sw = setmetatable({ name = t.name, percent = pct, id = #state.switches }, Switch)
  if t.fleet ~= nil then
    if type(t.fleet) ~= "table" then error("mg.switch: 'fleet' must be a table", 2) end
    sw.fleet_pool = pool_name(t.fleet.pool, "fleet.pool", "mg.switch")
    sw.fleet_key = t.fleet.key or ("mintgate:switch:" .. t.name)
    -- the gateway's own keys live under "mintgate:", which clients on the data port
    -- cannot reach; a fleet value elsewhere could be set by any client
    if type(sw.fleet_key) ~= "string" or sw.fleet_key:sub(1, 9) ~= "mintgate:"
      or not sw.fleet_key:match("^[%w%p]+$") or #sw.fleet_key > 250 then
      error("mg.switch: 'fleet.key' must be a key beginning with \"mintgate:\"", 2)
    end
  end
  state.switches[#state.switches + 1] = sw
  return sw
end

--- Is key on the switched side? Deterministic: one key always answers the same while the
-- percentage stays; raising the percentage only adds keys.
-- @tparam string key
function Switch:on(key)
  -- a memoized answer that asked a switch lives while no switch changes (no store without
  -- a memo: this runs per key)
  if memo_on then track.sw = true end
  if ffi_switch_on then return ffi_switch_on(self.id, key, #key) ~= 0 end
  if core then return core.switch_on(self.id, key) end
  -- outside the gateway (config check, unit tests): the declared percentage
  return self.percent >= 100
end

-- Pool calls, available while a request is served (route functions, key functions, hooks).
local function need_core(what)
  if not core then error(what .. ": pool calls are only possible while serving requests", 3) end
end

--- Get a value: returns value, flags; or nil on a miss; or nil, err.
function Pool:get(key) need_core("pool:get") return core.call(self, "get", key) end
--- Store a value: returns true; false when not stored (add/replace); or nil, err.
-- @tparam string key @tparam string value @tparam[opt] number ttl @tparam[opt] number flags
function Pool:set(key, value, ttl, flags)
  need_core("pool:set") return core.call(self, "set", key, value, ttl or 0, flags or 0)
end
function Pool:add(key, value, ttl, flags)
  need_core("pool:add") return core.call(self, "add", key, value, ttl or 0, flags or 0)
end
--- Delete: true, false when not found, or nil, err.
function Pool:delete(key) need_core("pool:delete") return core.call(self, "delete", key) end
--- Touch: true, false when not found, or nil, err.
function Pool:touch(key, ttl) need_core("pool:touch") return core.call(self, "touch", key, ttl or 0) end
--- Increment: the new number; nil when not found; or nil, err.
function Pool:incr(key, delta) need_core("pool:incr") return core.call(self, "incr", key, delta or 1) end
function Pool:decr(key, delta) need_core("pool:decr") return core.call(self, "decr", key, delta or 1) end

return M
