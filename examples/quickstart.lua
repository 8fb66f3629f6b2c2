-- quickstart: one pool of two local memcached servers behind the gateway.
-- `make run` starts the two servers and fills in their ports through the environment.
local mg = require "mintgate"

mg.listen { os.getenv("MINTGATE_LISTEN") or "127.0.0.1:11211" }

local main = mg.pool {
  name = "main",
  servers = {
    os.getenv("MEMCACHED_1") or "127.0.0.1:11311",
    os.getenv("MEMCACHED_2") or "127.0.0.1:11312",
  },
}

mg.route { default = main }
