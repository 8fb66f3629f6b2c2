-- herd: thundering-herd protection for classic clients (used by bench/herd.sh).
--
-- One pool "main" over MEMCACHED_1 and MEMCACHED_2 and a default staleness policy:
--
--   grace = 10  a value stays in memcached 10 s past the TTL the client asked for;
--               in that window exactly one client gets a miss (and regenerates), every
--               other client gets the old value as an ordinary hit;
--   lock  = 2   if the winner has not stored a new value after 2 s, another client wins;
--   wait  = 300 on a cold miss (no old value at all) one client regenerates and the
--               others wait up to 300 ms for its set instead of all hitting the database.
--
-- memcached itself picks the winner (meta-protocol win flags), so this holds across a
-- whole fleet of gateways in front of the same servers. `stats herd` counts it all.
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 \
--   ./mintgate examples/herd.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }

local main = mg.pool {
  name = "main",
  servers = {
    os.getenv("MEMCACHED_1") or "127.0.0.1:11311",
    os.getenv("MEMCACHED_2") or "127.0.0.1:11312",
  },
}

mg.stale { grace = 10, lock = 2, wait = 300 }
mg.route { default = main }
