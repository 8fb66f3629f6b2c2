-- shadow: try a new pool (or a new memcached version) on real traffic before it serves.
--
-- Every key is served by "main"; a sticky 5 % of keys (hashed as switches hash) is also
-- sent to "test": writes land there too, reads are compared. The client only ever sees
-- main's answer, and a slow or dead test pool never slows it. `stats routes` counts the
-- copies, the copies that failed, and the reads whose copy answered differently
-- (shadow_mismatches). Raise the share at run time from the admin port:
-- `switch shadow.test 25`.
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MINTGATE_ADMIN=127.0.0.1:11212 \
--   MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 ./mintgate examples/shadow.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }
mg.admin { os.getenv("MINTGATE_ADMIN") or "127.0.0.1:11212" }

local main = mg.pool { name = "main", servers = { os.getenv("MEMCACHED_1") or "127.0.0.1:11311" } }
local test = mg.pool { name = "test", servers = { os.getenv("MEMCACHED_2") or "127.0.0.1:11312" },
  timeout = 0.2 }

mg.route { default = mg.shadow { main, copy = test, percent = 5, name = "main+test" } }
