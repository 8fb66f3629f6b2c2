-- newcache_keys: backend keys in django-newcache's format, shared with Django apps.
--
-- Applications that use django-newcache talk to memcached directly and store `games`
-- under FLAVOR-CACHE_VERSION-md5(key). With this config, any other client (PHP, a cron
-- job in Python with pymemcache, telnet) can talk to the gateway with the plain key and
-- reach the very same items:
--
--   set games 0 0 3 / abc        through the gateway
--   get staging-2-9cfa7aefcc61936b70aaec6729329eda   on the backend finds "abc"
--
-- Replies show the client's own key (VALUE games ...). Bumping `version` (CACHE_VERSION)
-- invalidates every key at once, as in newcache. Since newcache hashes every key, keys
-- up to memcached's 250 bytes and beyond all fit. The transform is compiled into C: no
-- Lua runs per request. The herd policy is newcache's own (CACHE_HERD_TIMEOUT, 60 s).
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 \
--   ./mintgate examples/newcache_keys.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }

local main = mg.pool {
  name = "main",
  servers = {
    os.getenv("MEMCACHED_1") or "127.0.0.1:11311",
    os.getenv("MEMCACHED_2") or "127.0.0.1:11312",
  },
}

-- settings.FLAVOR and settings.CACHE_VERSION of the Django project
mg.keys { style = "newcache", flavor = os.getenv("MINTGATE_FLAVOR") or "staging", version = 2 }
mg.stale "newcache"
mg.route { default = main }
