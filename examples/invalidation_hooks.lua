-- invalidation_hooks: invalidation in the gateway, with hooks and a key function.
--
-- 1. Dependent keys. A rendered page embeds posts: "page:<id>" shows post <id> and
--    "page:index" lists them all. Whenever "post:<id>" is stored (set, add, replace,
--    append, prepend, cas) or deleted through the gateway, the hook deletes the pages
--    that embed it before the client gets its STORED / DELETED, so a client that reads
--    after its write never sees a stale page. If the invalidation cannot be done (a
--    backend down), the hook raises: the writer gets `SERVER_ERROR lua: ...` (the post
--    itself was stored) and the gateway logs it.
--
-- 2. Namespace versioning (the memcached FAQ's "namespaces"). A key "<ns>/<rest>" (for
--    example "catalog/item:42") is stored in memcached as "<ns>/<version>/<rest>", where
--    <version> is the value of the counter key "ns:<ns>". `incr ns:catalog 1` through
--    the gateway invalidates every key of the namespace at once: later reads build new
--    backend keys, and the old items simply age out. A missing counter starts from the
--    clock, so an evicted counter never brings back an old version. Keys without a "/"
--    are left as they are. Replies always show the client's key.
--
-- Pool calls inside hooks and key functions (pool:get, pool:add, pool:delete) wait for
-- memcached without blocking the gateway. Note the cost: every namespaced key costs one
-- more backend round trip (the counter read).
--
--   MINTGATE_LISTEN=127.0.0.1:11211 MEMCACHED_1=127.0.0.1:11311 MEMCACHED_2=127.0.0.1:11312 \
--   ./mintgate examples/invalidation_hooks.lua
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

-- The pages that show post `id`.
local function pages_of(id)
  return { "page:" .. id, "page:index" }
end

local function invalidate_pages(req, pool)
  local id = req.key:match("^post:(.+)$")
  if not id then return end
  for _, page in ipairs(pages_of(id)) do
    local ok, err = pool:delete(page) -- true: deleted; false: was not cached
    if ok == nil then error("cannot invalidate " .. page .. ": " .. err, 0) end
  end
end

mg.on("set", invalidate_pages)
mg.on("delete", invalidate_pages)

-- "<ns>/<rest>" -> "<ns>/<version>/<rest>"
mg.keys(function(key)
  local ns, rest = key:match("^([%w_]+)/(.+)$")
  if not ns then return nil end -- not namespaced: the key as it is
  local counter = "ns:" .. ns
  local version, err = main:get(counter)
  if version == nil then
    if err then error("namespace " .. ns .. ": " .. err, 0) end
    local start = tostring(os.time())
    if main:add(counter, start) then
      version = start
    else -- someone else created it meanwhile, or the add failed
      version, err = main:get(counter)
      if version == nil then error("namespace " .. ns .. ": " .. (err or "no version"), 0) end
    end
  end
  return ns .. "/" .. version .. "/" .. rest
end)
