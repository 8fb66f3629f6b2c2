-- failover_gutter: a main pool with a gutter pool behind it (Facebook's "gutter" servers,
-- Scaling Memcache at Facebook, NSDI 2013).
--
-- While a main server is down, hangs or errs, its keys are served by the small gutter
-- pool instead of turning into errors (and into load on the database behind the cache).
-- What is written to the gutter lives at most 10 s, so it expires instead of going stale
-- once the main server is back; a delete goes to both pools, so a deleted value cannot
-- come back from the gutter. The failover is compiled into C: no Lua call per request.
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 \
--   MEMCACHED_3=127.0.0.1:11313 ./mintgate examples/failover_gutter.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }
mg.admin { os.getenv("MINTGATE_ADMIN") or "127.0.0.1:11212" }

local main = mg.pool {
  name = "main",
  servers = {
    os.getenv("MEMCACHED_1") or "127.0.0.1:11311",
    os.getenv("MEMCACHED_2") or "127.0.0.1:11312",
  },
  timeout = 0.3,        -- a hung server is given up on after 0.3 s ...
  failure_limit = 1,    -- ... and ejected at once: later keys go to the gutter directly
  retry_timeout = 5,
}

local gutter = mg.pool {
  name = "gutter",
  servers = { os.getenv("MEMCACHED_3") or "127.0.0.1:11313" },
}

mg.route { default = mg.failover { main, gutter, ttl = 10, name = "main+gutter" } }
