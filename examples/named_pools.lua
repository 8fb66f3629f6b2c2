-- named_pools: two named pools and prefix routing.
--
-- Sessions live apart from the general cache: keys starting with "session:" go to their
-- own pool (MEMCACHED_3), so that a flood of page fragments can never evict a user's
-- session, and sessions get no herd logic (a session is written by one client only).
-- Every other key goes to "main" (MEMCACHED_1 and MEMCACHED_2, placed by ketama).
-- "user:" keys also live in main but with django-newcache's herd policy: an expired
-- profile goes on being served for 60 s while one client regenerates it.
-- The prefix table is compiled into C: routing costs no Lua call per request.
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 \
--   MEMCACHED_3=127.0.0.1:11313 ./mintgate examples/named_pools.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }

local main = mg.pool {
  name = "main",
  servers = {
    os.getenv("MEMCACHED_1") or "127.0.0.1:11311",
    os.getenv("MEMCACHED_2") or "127.0.0.1:11312",
  },
  timeout = 0.5,
}

local sessions = mg.pool {
  name = "sessions",
  servers = { os.getenv("MEMCACHED_3") or "127.0.0.1:11313" },
  stale = "none",       -- no herd logic for sessions
  timeout = 0.2,
  failure_limit = 1,    -- a session store that hiccups is ejected at once...
  retry_timeout = 1,    -- ...and tried again after a second
}

mg.route {
  ["session:"] = sessions,
  ["user:"] = { pool = main, stale = "newcache" },
  default = main,
}
