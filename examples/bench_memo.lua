-- bench_memo: the configuration `make bench-ir` measures as "mintgate+lua-memo" (bench/ir.sh).
--
-- examples/bench.lua's routing with its key transform written in Lua, and mg.memo: the
-- script promises its functions are pure, so each worker keeps the resolution of every
-- key it saw (pool, backend key) and answers a key again without calling Lua:
--
--   - a route function and a switch at 10 % (a hash of the key, in C), as in bench.lua;
--   - a key function in Lua, "app:" .. key (bench.lua uses the built-in prefix style);
--   - mg.memo { size = 100000 }: up to 100,000 resolutions per worker (the bench's
--     10,000 keys all fit). A switch change (admin `switch next PERCENT`) retires the
--     ones that asked it; they are computed again on their next request.
--
-- Pools: "main" over MEMCACHED_1 and MEMCACHED_2 (ketama), "next" on MEMCACHED_2 alone,
-- the switched 10 %. Set MINTGATE_BENCH_PERCENT to change the share.
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 \
--   ./mintgate -t 1 examples/bench_memo.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }

local m1 = os.getenv("MEMCACHED_1") or "127.0.0.1:11311"
local m2 = os.getenv("MEMCACHED_2") or "127.0.0.1:11312"

local main = mg.pool { name = "main", servers = { m1, m2 } }
local next_pool = mg.pool { name = "next", servers = { m2 } }

mg.keys(function(key) return "app:" .. key end)

local sw = mg.switch {
  name = "next",
  percent = tonumber(os.getenv("MINTGATE_BENCH_PERCENT") or "") or 10,
}

mg.route(function(req)
  if sw:on(req.key) then return next_pool end
  return main
end)

mg.memo { size = 100000 }
