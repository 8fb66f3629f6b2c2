-- replicated: sessions kept on two pools, so losing a server loses no session.
--
-- Every write and delete goes to both pools; the client waits for both and gets the
-- worse answer (writes = "all"). Reads come from the first pool and fail over to the
-- second when a server there is down or slow (reads = "failover"). A delete that the
-- second pool misses while it is unreachable is replayed before it serves reads again,
-- so a logged-out session cannot come back from it. Other keys use a plain pool.
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 \
--   MEMCACHED_3=127.0.0.1:11313 ./mintgate examples/replicated.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }
mg.admin { os.getenv("MINTGATE_ADMIN") or "127.0.0.1:11212" }

local opts = { timeout = 0.3, failure_limit = 1, retry_timeout = 2 }
local function pool(name, addr)
  local t = { name = name, servers = { addr } }
  for k, v in pairs(opts) do t[k] = v end
  return mg.pool(t)
end

local east = pool("sessions-east", os.getenv("MEMCACHED_1") or "127.0.0.1:11311")
local west = pool("sessions-west", os.getenv("MEMCACHED_2") or "127.0.0.1:11312")
local main = pool("main", os.getenv("MEMCACHED_3") or "127.0.0.1:11313")

mg.route {
  ["session:"] = mg.replicate { east, west, reads = "failover", writes = "all", name = "sessions" },
  default = main,
}
