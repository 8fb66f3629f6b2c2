-- none: no staleness policy; every expiry or delete is a plain miss for every reader.
-- A policy for ./mintgate-lab, which adds the pool and route (mintgate --check refuses it alone).
local mg = require "mintgate"
mg.stale "none"
