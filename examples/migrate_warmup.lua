-- migrate_warmup: move keys from an old pool to a new one without a miss storm.
--
-- A warm-up route reads the new pool first; a miss there reads the old pool, and a hit
-- there is answered and added to the new pool with its remaining TTL (mcrouter's
-- WarmUpRoute, the "cache warming" of Concentric Sky's django-newcache notes). Writes go
-- to the new pool, deletes to both. A switch decides which keys take the route: raise it
-- from the admin port (`switch migrate 10`, then 50, then 100) and the new pool fills as
-- traffic reaches it, instead of starting cold; at 100 % and once the old pool's TTLs
-- have run out, retire the old pool.
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MINTGATE_ADMIN=127.0.0.1:11212 \
--   MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 ./mintgate examples/migrate_warmup.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }
mg.admin { os.getenv("MINTGATE_ADMIN") or "127.0.0.1:11212" }

local old = mg.pool { name = "old", servers = { os.getenv("MEMCACHED_1") or "127.0.0.1:11311" } }
local new = mg.pool { name = "new", servers = { os.getenv("MEMCACHED_2") or "127.0.0.1:11312" } }

-- a value without a TTL in the old pool gets an hour in the new one
local warming = mg.warmup { cold = new, warm = old, ttl = 3600, name = "new<old" }

local migrate = mg.switch { name = "migrate", percent = 0 }

mg.route(function(req)
  if migrate:on(req.key) then return warming end
  return old
end)
