-- xfetch: probabilistic early recomputation; a reader refreshes a key before it expires
-- with a chance that grows as the expiry nears and with the measured recompute time, so
-- hot keys rarely expire into a miss; a cold miss takes a lease (others wait 50 ms).
-- A policy for ./mintgate-lab, which adds the pool and route (mintgate --check refuses it alone).
local mg = require "mintgate"
mg.stale "xfetch"
