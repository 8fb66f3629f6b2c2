-- near_cache: hot keys answered from the gateway's own memory (README "Near cache").
--
-- Keys the hot-key detector finds at 200 requests per second or more, in every pool, and
-- every key starting with "feed:" in pool main, are answered by the gateway for at most
-- half a second (a second for hot keys elsewhere): a write through this gateway is seen at
-- once by all its clients, a write through another gateway within that time.
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 \
--   ./mintgate examples/near_cache.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }

-- 64 MB for every worker together; values over 64 KB are never kept; hot keys for 1 s
mg.near { size = "64m", ttl = 1, hot = true, hot_rps = 200, max_value = "64k" }

local main = mg.pool {
  name = "main",
  servers = {
    os.getenv("MEMCACHED_1") or "127.0.0.1:11311",
    os.getenv("MEMCACHED_2") or "127.0.0.1:11312",
  },
  near = { ttl = 0.5, prefixes = { "feed:" } },
}

mg.route { default = main }
