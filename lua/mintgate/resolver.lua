--- mintgate.resolver: the loop each of the gateway's resolving coroutines runs for good.
--
-- The gateway calls the factory once per worker with the script's route function, the key
-- functions by pool id, the named policies' ids, a done mark and the coroutine yield;
-- each coroutine then runs the returned loop: one resume per key, or one per batch of up
-- to 64 keys of a multi-key get. A turn gets (k, cmd, n, tp):
--
--   k   one key to resolve (n nil): yield(done, pool id or nil, key or nil, policy id
--       or nil); req.key is set where the JIT sees it.
--   n   resolve ks[1..n] in one turn, each under xpcall so an error fails its key only:
--       rs[i] holds the pool the prefix table gives ks[i] on the way in, and on the way
--       out (pool id + 2) + (policy id + 1) * 65536 (pool id -1: the table; policy id
--       -1: the pool's), or 0 when it failed; ks[i] = the key function's key (false: the
--       pool's style) or the error message; then yield(done). C reads one number per key
--       (and the key only when there is a key function).
--   tp  (one key) the pool the prefix table gives k.
--   cmd the command's name when it changed since the last turn, else nil.
--
-- A key's function is its pool's (the route function's pool, else the table's): the
-- pool's own `keys` function, none when the pool has its own key style table, else the
-- `mg.keys` function.
--
-- With a memo (mg.memo; `track` given), each key's turn also tells what its functions
-- asked besides the key, as a number: 1 a switch (sw:on), 2 req.command, 4 anything else
-- of req (req.user, req.client, ...), added up. `track` is the table where sw:on and the
-- req table's __index note it (fields sw, cmd, other); the loop clears it before each key.
-- One key: the number is yielded after the policy id; a batch: it is in rs[64 + i]. The
-- command is never set on req then (cmd is nil): req.command comes from __index, so
-- reading it is noted.
local M = {}

-- Keys a batch turn resolves at most (lua_resolve.h's LUA_BATCH_MAX).
local BATCH_MAX = 64

--- Build the resolver loop.
-- @param route_fn the script's route function, or nil
-- @param key_fns key function (or false) by pool id, or nil when there are none
-- @param key_default the `mg.keys` function for pools the script did not declare, or nil
-- @param policy_ids named policy -> id
-- @param done the mark a finished turn yields first
-- @param yield the gateway's coroutine yield
-- @param track with a memo, the table sw:on and req's __index note reads in; else nil
-- @return function(req, ks, rs, k, cmd, n, tp): the loop
function M.new(route_fn, key_fns, key_default, policy_ids, done, yield, track)
  local type, error, xpcall, tb = type, error, xpcall, debug.traceback

  local function one(req, tp)
    local id, key, pid
    if route_fn then
      local pool, policy = route_fn(req)
      if pool ~= nil then
        id = type(pool) == "table" and pool._id or nil
        if type(id) ~= "number" or id < 0 or id >= 65534 or id % 1 ~= 0 then
          error("route function returned no pool", 0)
        end
      end
      if policy ~= nil then
        pid = policy_ids[policy]
        if pid == nil then error("unknown staleness policy " .. tostring(policy), 0) end
      end
    end
    local kf = key_default
    if key_fns then
      kf = key_fns[id or tp]
      if kf == nil then kf = key_default end
    end
    if kf then
      key = kf(req.key, req)
      if key ~= nil and type(key) ~= "string" then
        error("key function returned no string", 0)
      end
    end
    return id, key, pid
  end

  local function trace(e) return tb(tostring(e), 2) end

  -- one batch of n keys (ks) into their packed results (rs); note(): what the key's
  -- functions asked, for the memo (nil without one)
  local function batch(req, ks, rs, n, note)
    for i = 1, n do
      req.key = ks[i]
      local ok, id, key, pid = xpcall(one, trace, req, rs[i])
      if ok then
        rs[i] = (id or -1) + 2 + ((pid or -1) + 1) * 65536
        ks[i] = key or false
      else
        rs[i] = 0
        ks[i] = id
      end
      if note then rs[BATCH_MAX + i] = note() end
    end
  end

  if track then
    -- what the last key's functions asked (see the header), and a clean slate
    local function asked()
      local d = track.sw and 1 or 0
      if track.cmd then d = d + 2 end
      if track.other then d = d + 4 end
      track.sw, track.cmd, track.other = false, false, false
      return d
    end
    return function(req, ks, rs, k, _, n, tp)
      track.sw, track.cmd, track.other = false, false, false
      while true do
        if n then
          batch(req, ks, rs, n, asked)
          k, _, n, tp = yield(done)
        else
          req.key = k
          local id, key, pid = one(req, tp)
          k, _, n, tp = yield(done, id, key, pid, asked())
        end
      end
    end
  end

  return function(req, ks, rs, k, cmd, n, tp)
    while true do
      if cmd then req.command = cmd end
      if n then
        batch(req, ks, rs, n, nil)
        k, cmd, n, tp = yield(done)
      else
        req.key = k
        k, cmd, n, tp = yield(done, one(req, tp))
      end
    end
  end
end

return M
