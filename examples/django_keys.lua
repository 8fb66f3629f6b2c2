-- django_keys: two Django named caches, each a pool with its own KEY_PREFIX and VERSION.
--
-- Mirrors a Django settings.CACHES like
--
--   CACHES = {
--     "default": { "BACKEND": "...PyMemcacheCache", "LOCATION": [M1, M2] },
--     "pages":   { "BACKEND": "...PyMemcacheCache", "LOCATION": [M3],
--                  "KEY_PREFIX": "pages", "VERSION": 3 },
--   }
--
-- Django stores cache.set("k", v) as "<KEY_PREFIX>:<VERSION>:k" (default_key_func).
-- Through the gateway, a client that knows nothing of Django reads and writes the same
-- items with the bare key: "k" becomes ":1:k" in the default cache, and keys starting
-- with "page:" go to the pages cache as "pages:3:page:...". Replies show the bare key.
-- Keys that would be over memcached's 250 bytes (or contain spaces) become the md5 of
-- the whole Django key (hash_long, the usual Django KEY_FUNCTION recipe), so long keys
-- work too. All of it is compiled into C: no Lua runs per request.
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 \
--   MEMCACHED_3=127.0.0.1:11313 ./mintgate examples/django_keys.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }

local default = mg.pool {
  name = "default",
  servers = {
    os.getenv("MEMCACHED_1") or "127.0.0.1:11311",
    os.getenv("MEMCACHED_2") or "127.0.0.1:11312",
  },
  keys = { style = "django", hash_long = true },   -- KEY_PREFIX "", VERSION 1
}

local pages = mg.pool {
  name = "pages",
  servers = { os.getenv("MEMCACHED_3") or "127.0.0.1:11313" },
  keys = { style = "django", prefix = "pages", version = 3, hash_long = true },
}

mg.route { ["page:"] = pages, default = default }
