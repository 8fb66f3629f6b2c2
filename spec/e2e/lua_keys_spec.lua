-- Key transforms against real memcached: examples/newcache_keys.lua (django-newcache's
-- FLAVOR-VERSION-md5 keys) and examples/django_keys.lua (two Django named caches as two
-- pools, each with its own KEY_PREFIX and VERSION, hash_long). What lands on the backends
-- is checked directly there, and what a Django app writes directly is read through the
-- gateway; replies always show the client's key.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local start_example = env.start_example

-- md5 hex of s (coreutils md5sum).
local function md5hex(s)
  local rc, out, err = env.run({ "md5sum" }, { stdin = s, timeout = 5 })
  assert(rc == 0, "md5sum failed: " .. tostring(err))
  return assert(out:match("^(%x+)"))
end

-- Value of key on each of the servers (direct get): { [i] = value or nil }.
local function on_servers(mcs, key)
  local t = {}
  for i, m in ipairs(mcs) do
    local c = client.connect(m.port)
    t[i] = c:value(key)
    c:close()
  end
  return t
end

-- The one server index that holds key (fails unless exactly one does), and its value.
local function only_one(mcs, key)
  local t, at = on_servers(mcs, key), nil
  for i = 1, #mcs do
    if t[i] ~= nil then
      assert(at == nil, "backend key " .. key .. " is on more than one server")
      at = i
    end
  end
  assert(at, "backend key " .. key .. " is on no server")
  return at, t[at]
end

describe("examples/newcache_keys.lua", function()
  local E, gw, mcs

  local function connect(port) return E:client(port or gw.port) end

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_newcache")
    gw, mcs = start_example(E, "newcache_keys", 2)
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  after_each(function() E:close_clients() end)

  it("stores `games` as staging-2-9cfa7aefcc61936b70aaec6729329eda (newcache's README vector)", function()
    local c = connect()
    assert.equal("STORED", c:cmd("set games 5 0 3\r\nabc"))
    local _, v = only_one(mcs, "staging-2-9cfa7aefcc61936b70aaec6729329eda")
    assert.equal("abc", v)
    -- the plain key itself is nowhere
    assert.same({}, on_servers(mcs, "games"))
    c:send("get games\r\n")
    assert.equal("VALUE games 5 3", c:line())
    assert.equal("abc", c:line())
    assert.equal("END", c:line())
  end)

  it("reads what a newcache app wrote directly to memcached", function()
    local c = connect()
    assert.equal("STORED", c:set("shared:1", "from-gateway"))
    local bkey = "staging-2-" .. md5hex("shared:1")
    local at = only_one(mcs, bkey)
    local d = client.connect(mcs[at].port)
    assert.equal("STORED", d:set(bkey, "from-django", 7))
    d:close()
    assert.same({ flags = 7, value = "from-django" }, c:get("shared:1")["shared:1"])
  end)

  it("many keys in one get come back under the client's keys, in order", function()
    local c = connect()
    local keys = {}
    for i = 1, 30 do
      keys[i] = "nc:" .. i
      assert.equal("STORED", c:set(keys[i], "v" .. i))
    end
    local ask = { "nc:3", "nc:miss", "nc:1", "nc:30", "nc:3" }
    local items, order = c:get(unpack(ask))
    assert.same({ "nc:3", "nc:1", "nc:30", "nc:3" }, order)
    assert.equal("v30", items["nc:30"].value)
    -- spread over both servers by their hashed keys
    local n = { 0, 0 }
    for i = 1, 30 do
      local at = only_one(mcs, "staging-2-" .. md5hex(keys[i]))
      n[at] = n[at] + 1
    end
    assert(n[1] > 0 and n[2] > 0, "newcache keys are not spread over both servers")
  end)

  it("gets, cas, delete, incr, touch work on the transformed key", function()
    local c = connect()
    assert.equal("STORED", c:set("ops:k", "1"))
    local cas = c:gets("ops:k")["ops:k"].cas
    assert.matches("^%d+$", cas)
    assert.equal("STORED", c:cmd("cas ops:k 0 0 1 " .. cas .. "\r\n2"))
    assert.equal("3", c:cmd("incr ops:k 1"))
    assert.equal("TOUCHED", c:cmd("touch ops:k 100"))
    local _, v = only_one(mcs, "staging-2-" .. md5hex("ops:k"))
    assert.equal("3", v)
    assert.equal("DELETED", c:cmd("delete ops:k"))
    assert.same({}, on_servers(mcs, "staging-2-" .. md5hex("ops:k")))
  end)

  it("meta commands answer with the client's key (k flag)", function()
    local c = connect()
    assert.equal("HD", c:cmd("ms meta:k 2\r\nhi"))
    local line, value = c:send("mg meta:k k v\r\n"):meta_reply()
    assert.equal("hi", value)
    assert.matches("kmeta:k", line, 1, true)
    assert.not_matches("staging", line, 1, true)
    only_one(mcs, "staging-2-" .. md5hex("meta:k"))
  end)

  it("a 250-byte key fits (newcache hashes every key)", function()
    local c = connect()
    local k = ("k"):rep(250)
    assert.equal("STORED", c:set(k, "long"))
    local _, v = only_one(mcs, "staging-2-" .. md5hex(k))
    assert.equal("long", v)
    assert.equal("long", c:value(k))
  end)
end)

describe("examples/django_keys.lua", function()
  local E, gw, mcs, main, pages

  local function connect(port) return E:client(port or gw.port) end

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_django")
    gw, mcs = start_example(E, "django_keys", 3)
    main, pages = { mcs[1], mcs[2] }, { mcs[3] }
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  after_each(function() E:close_clients() end)

  it("the default cache stores k as :1:k on MEMCACHED_1/2", function()
    local c = connect()
    assert.equal("STORED", c:set("foo", "F", 3))
    local _, v = only_one(main, ":1:foo")
    assert.equal("F", v)
    assert.same({}, on_servers(pages, ":1:foo"))
    assert.same({}, on_servers(mcs, "foo"))
    c:send("get foo\r\n")
    assert.equal("VALUE foo 3 1", c:line())
    assert.equal("F", c:line())
    assert.equal("END", c:line())
  end)

  it("the pages cache stores page:* as pages:3:page:* on MEMCACHED_3 only", function()
    local c = connect()
    for i = 1, 20 do assert.equal("STORED", c:set("page:" .. i, "P" .. i)) end
    for i = 1, 20 do
      assert.same({ "P" .. i }, on_servers(pages, "pages:3:page:" .. i))
      assert.same({}, on_servers(main, "pages:3:page:" .. i))
      assert.same({}, on_servers(main, ":1:page:" .. i))
    end
    local items, order = c:get("page:2", "foo", "page:1")
    assert.same({ "page:2", "foo", "page:1" }, order)
    assert.equal("P2", items["page:2"].value)
  end)

  it("reads what Django wrote directly (cache.set through its own client)", function()
    local d = client.connect(mcs[3].port)
    assert.equal("STORED", d:set("pages:3:page:from-django", "D", 1))
    d:close()
    assert.same({ flags = 1, value = "D" }, connect():get("page:from-django")["page:from-django"])
  end)

  it("hash_long: a key that would pass 250 bytes becomes md5 of the whole Django key", function()
    local c = connect()
    -- "pages:3:" + 245 bytes = 253 > 250
    local k = "page:" .. ("x"):rep(240)
    assert.equal("STORED", c:set(k, "hashed"))
    local h = md5hex("pages:3:" .. k)
    assert.same({ "hashed" }, on_servers(pages, h))
    c:send("get " .. k .. "\r\n")
    assert.equal("VALUE " .. k .. " 0 6", c:line())
    assert.equal("hashed", c:line())
    assert.equal("END", c:line())
    -- default cache: ":1:" + 248 = 251 -> hashed; ":1:" + 247 = 250 -> as is
    local k251, k250 = ("y"):rep(248), ("z"):rep(247)
    assert.equal("STORED", c:set(k251, "a"))
    assert.equal("STORED", c:set(k250, "b"))
    only_one(main, md5hex(":1:" .. k251))
    only_one(main, ":1:" .. k250)
    assert.equal("a", c:value(k251))
    assert.equal("b", c:value(k250))
  end)

  it("hash_long: a 300-byte client key is stored as md5(':1:' .. key)", function()
    local c = connect()
    local k = ("L"):rep(300)
    assert.equal("STORED", c:set(k, "three hundred"))
    only_one(main, md5hex(":1:" .. k))
    local items, order = c:get(k)
    assert.same({ k }, order)
    assert.equal("three hundred", items[k].value)
  end)
end)
