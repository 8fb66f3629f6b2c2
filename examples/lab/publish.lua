-- publish: values cached "forever"; a delete marks the value stale instead of removing it,
-- the next reader refreshes and the others get the old value meanwhile; a cold miss
-- takes a lease and the others wait up to 50 ms for the value.
-- A policy for ./mintgate-lab, which adds the pool and route (mintgate --check refuses it alone).
local mg = require "mintgate"
mg.stale "publish"
