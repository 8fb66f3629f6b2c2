-- bench: the configuration `make bench` measures as "mintgate+lua" (bench/run.sh, ir.sh).
--
-- It exercises the request-phase Lua path on every key, as a real deployment of the
-- gateway with scripting would:
--
--   - a route function (one Lua call per key, in a reused coroutine of the worker);
--   - a switch at 10 %: a hash of the key, in C, asked from the route function;
--   - a key transform: the built-in prefix style, "app:" + key (compiled into C),
--     applied to whatever pool the route function picked.
--
-- Pools: "main" over MEMCACHED_1 and MEMCACHED_2 (ketama), "next" on MEMCACHED_2 alone,
-- the switched 10 %. Set MINTGATE_BENCH_PERCENT to change the share.
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 \
--   ./mintgate -t 1 examples/bench.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }

local m1 = os.getenv("MEMCACHED_1") or "127.0.0.1:11311"
local m2 = os.getenv("MEMCACHED_2") or "127.0.0.1:11312"

local main = mg.pool { name = "main", servers = { m1, m2 } }
local next_pool = mg.pool { name = "next", servers = { m2 } }

mg.keys { style = "prefix", prefix = "app:" }

local sw = mg.switch {
  name = "next",
  percent = tonumber(os.getenv("MINTGATE_BENCH_PERCENT") or "") or 10,
}

mg.route(function(req)
  if sw:on(req.key) then return next_pool end
  return main
end)
