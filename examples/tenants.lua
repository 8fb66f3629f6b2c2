-- tenants: one gateway, several tenants, each with its own memcached pool.
--
-- Every client authenticates (SASL PLAIN for binary clients, memcached's text auth for
-- text ones) against the users file; the route function sends each request to the pool
-- of the user its connection authenticated as (req.user). Tenants share the gateway and
-- the key space they see, never the items: acme's "cart:1" and globex's "cart:1" are two
-- items on two pools, and no key lets one tenant reach the other's. Edit the users file
-- and reload (SIGHUP or `reload` on the admin port) to change a password: connections
-- already authenticated stay, new ones need the new password.
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MINTGATE_ADMIN=127.0.0.1:11212 \
--   MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 \
--   MINTGATE_USERS=examples/tenants.users ./mintgate examples/tenants.lua
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }
mg.admin { os.getenv("MINTGATE_ADMIN") or "127.0.0.1:11212" }
mg.auth { file = os.getenv("MINTGATE_USERS") or "examples/tenants.users" }

local pools = {
  acme = mg.pool { name = "acme", servers = { os.getenv("MEMCACHED_1") or "127.0.0.1:11311" } },
  globex = mg.pool { name = "globex", servers = { os.getenv("MEMCACHED_2") or "127.0.0.1:11312" } },
}

-- A user in the file without a pool here gets SERVER_ERROR for every key, not another
-- tenant's pool.
mg.route(function(req)
  local pool = pools[req.user]
  if pool == nil then error("no pool for user " .. tostring(req.user)) end
  return pool
end)
