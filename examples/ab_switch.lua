-- ab_switch: an A/B switch that sends a share of keys to a canary pool.
--
-- A new memcached pool (say, bigger machines) is brought in gradually: the switch
-- "canary" puts a deterministic share of keys (a hash of the key, so one key always
-- lands on the same side) on the canary pool (MEMCACHED_3); the rest stay on "main"
-- (MEMCACHED_1, MEMCACHED_2). Raising the percentage only adds keys to the canary side.
--
-- The percentage starts at MINTGATE_CANARY_PERCENT (default 10) and is changed at run
-- time, on every worker at once and without a restart, from the admin listener:
--
--   printf 'switch canary 50\r\n'  | nc -q1 127.0.0.1 11212     -> OK
--   printf 'stats switches\r\n'    | nc -q1 127.0.0.1 11212
--   STAT switch:canary:percent 50.000 / STAT switch:canary:on N / ...:off N / END
--
-- Admin commands are refused on the data port. The route function runs per key, in a
-- coroutine of the worker's Lua state; req.command, req.key and req.client are there.
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MINTGATE_ADMIN=127.0.0.1:11212 \
--   MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 MEMCACHED_3=127.0.0.1:11313 \
--   ./mintgate examples/ab_switch.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }
mg.admin { os.getenv("MINTGATE_ADMIN") or "127.0.0.1:11212" }

local main = mg.pool {
  name = "main",
  servers = {
    os.getenv("MEMCACHED_1") or "127.0.0.1:11311",
    os.getenv("MEMCACHED_2") or "127.0.0.1:11312",
  },
}

local canary = mg.pool {
  name = "canary",
  servers = { os.getenv("MEMCACHED_3") or "127.0.0.1:11313" },
}

local to_canary = mg.switch {
  name = "canary",
  percent = tonumber(os.getenv("MINTGATE_CANARY_PERCENT") or "") or 10,
}

mg.route(function(req)
  if to_canary:on(req.key) then return canary end
  return main
end)
