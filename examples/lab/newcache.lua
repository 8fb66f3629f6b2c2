-- newcache: django-newcache's herd protection; past the TTL one reader regenerates and
-- the others are served the old value for up to 60 s (grace).
-- A policy for ./mintgate-lab, which adds the pool and route (mintgate --check refuses it alone).
local mg = require "mintgate"
mg.stale "newcache"
