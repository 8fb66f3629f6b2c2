-- mint: MintCache; values live 30 s past their TTL, the first reader past the TTL
-- regenerates, the others get the old value meanwhile.
-- A policy for ./mintgate-lab, which adds the pool and route (mintgate --check refuses it alone).
local mg = require "mintgate"
mg.stale "mint"
