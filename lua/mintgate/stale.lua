--- mintgate.stale: staleness policies (herd protection for classic clients).
-- A policy is a table { grace, lock, wait, on_delete, coalesce, guard, beta, delta } or the
-- name of one of the policies below; `normalize` turns either (plus overrides) into the table the C core
-- compiles. Times: grace and lock in whole seconds (memcached's TTL clock), wait in ms.
local M = {}

--- The named policies.
-- newcache: django-newcache's CACHE_HERD_TIMEOUT: an expired value goes on being served
--   to everyone else for herd_timeout (60 s) while the first caller refreshes it.
-- mint: MintCache: a stale date MINT_DELAY (30 s) before the real expiry; the first reader
--   past the stale date refreshes, the others get the stale value meanwhile.
-- publish: values are cached "forever" and invalidation marks them stale (fill on
--   invalidate): delete marks, the next reader refreshes, the rest get the stale value,
--   and a cold miss waits up to 50 ms for the refresher.
-- xfetch: probabilistic early recomputation (Vattani, Chierichetti, Lowenstein, VLDB 2015):
--   a reader refreshes before the expiry when delta * beta * -ln(rand()) reaches the
--   remaining TTL, delta the recompute time the gateway measures per pool (from a win to
--   the winner's store; `delta` = ms fixes it), beta >= 1 (larger: earlier). The gateway
--   draws, memcached picks one winner fleet-wide (R flag), that client gets a miss and
--   everyone else keeps the value; a cold miss takes a lease and the rest wait 50 ms.
-- none: no herd logic at all.
-- guard (every policy's default): a regeneration's store that comes after a newer write or
--   delete of its key does not overwrite it (the winner's store is conditional on the
--   item's CAS; a write revokes the key's cold-miss lease, so the late store is retracted).
M.policies = {
  newcache = { grace = 60, lock = 60, wait = 0, on_delete = "delete", coalesce = true,
               guard = true },
  mint = { grace = 30, lock = 30, wait = 0, on_delete = "delete", coalesce = true, guard = true },
  publish = { grace = 0, lock = 5, wait = 50, on_delete = "mark_stale", coalesce = true,
              guard = true },
  xfetch = { grace = 0, lock = 5, wait = 50, on_delete = "delete", coalesce = true, beta = 1,
             guard = true },
  none = false,
}

local DEFAULTS = { grace = 60, lock = 5, wait = 50, on_delete = "delete", coalesce = true,
                   guard = true }

local function whole(v) return type(v) == "number" and v >= 0 and v == math.floor(v) end

--- Normalize a policy spec: a name, a table (optionally with `base = name`, or its older
-- spelling `policy = name`, as its base), or false/"none". Returns the policy table, or
-- false for none. Raises on bad input.
-- @param spec the policy
-- @tparam[opt] number level error level for the caller
function M.normalize(spec, level)
  level = (level or 1) + 1
  if spec == false or spec == "none" then return false end
  local base = DEFAULTS
  if type(spec) == "string" then
    local p = M.policies[spec]
    if p == nil then error("unknown staleness policy '" .. spec .. "'", level) end
    if p == false then return false end
    spec = {}
    base = p
  elseif type(spec) ~= "table" then
    error("a staleness policy is a table or a policy name", level)
  elseif spec.base ~= nil or spec.policy ~= nil then
    if spec.base ~= nil and spec.policy ~= nil then
      error("stale: 'base' and 'policy' are one option (policy is its older name)", level)
    end
    local bk = spec.base ~= nil and "base" or "policy"
    local p = M.policies[spec[bk]]
    if p == nil then error("unknown staleness policy '" .. tostring(spec[bk]) .. "'", level) end
    if p == false then
      if next(spec, nil) ~= bk or next(spec, bk) ~= nil then
        error("stale: policy \"none\" takes no other options", level)
      end
      return false
    end
    base = p
  end
  local out = {}
  for k, v in pairs(base) do out[k] = v end
  for k, v in pairs(spec) do
    if k == "grace" or k == "lock" then
      if not whole(v) then error("stale: '" .. k .. "' must be whole seconds >= 0", level) end
      out[k] = v
    elseif k == "wait" then
      if type(v) ~= "number" or v < 0 or v > 60000 then
        error("stale: 'wait' must be milliseconds from 0 to 60000", level)
      end
      out.wait = v
    elseif k == "on_delete" then
      if v ~= "delete" and v ~= "mark_stale" then
        error("stale: 'on_delete' must be \"delete\" or \"mark_stale\"", level)
      end
      out.on_delete = v
    elseif k == "beta" then
      if type(v) ~= "number" or v ~= v or (v ~= 0 and (v < 1 or v > 1000)) then
        error("stale: 'beta' must be 0 (no early refresh) or from 1 to 1000", level)
      end
      out.beta = v
    elseif k == "delta" then
      if not whole(v) or v > 3600000 then
        error("stale: 'delta' must be whole milliseconds from 0 (measured) to 3600000", level)
      end
      out.delta = v
    elseif k == "coalesce" or k == "guard" then
      if type(v) ~= "boolean" then error("stale: '" .. k .. "' must be a boolean", level) end
      out[k] = v
    elseif k ~= "policy" and k ~= "base" then
      error("stale: unknown option '" .. tostring(k) .. "'", level)
    end
  end
  if out.lock == 0 then out.lock = 1 end
  return out
end

return M
