-- memcached's binary protocol from clients (issue 16): real client libraries, unmodified
-- (pylibmc binary=True, Dalli 3.0, memjs, php-memcached with OPT_BINARY_PROTOCOL), each
-- run against a memcached of its own and then through the gateway in front of another:
-- every answer must be the same, and what the gateway's client wrote must be what lands
-- in its memcached. Then raw packets: statuses, opaque, quiet commands and noop batches
-- in order, and bad input (bad magic, lengths that do not add up, oversized bodies,
-- unknown opcodes, a switch of protocols) answered as memcached answers it, without
-- disturbing another client.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local HELPERS = "spec/helpers/binary/"
local NODE_PATH = "build/node/node_modules"

-- The clients: how to run each scenario, and whether it can run here.
local CLIENTS = {
  {
    name = "pylibmc binary=True",
    check = { "/usr/bin/python3", "-c", "import pylibmc" },
    argv = function(port, prefix, mode)
      return { "/usr/bin/python3", HELPERS .. "pylibmc_scenario.py", "127.0.0.1:" .. port, prefix, mode }
    end,
  },
  {
    name = "Dalli 3.0",
    check = { "ruby", "-e", "require 'dalli'" },
    argv = function(port, prefix, mode)
      return { "ruby", HELPERS .. "dalli_scenario.rb", "127.0.0.1:" .. port, prefix, mode }
    end,
  },
  {
    name = "memjs",
    check = { "node", "-e", "require('memjs')" },
    env = { NODE_PATH = NODE_PATH },
    argv = function(port, prefix, mode)
      return { "node", HELPERS .. "memjs_scenario.js", "127.0.0.1:" .. port, prefix, mode }
    end,
  },
  {
    name = "php-memcached OPT_BINARY_PROTOCOL",
    check = { "php", "-r", "exit(class_exists('Memcached') ? 0 : 1);" },
    argv = function(port, prefix, mode)
      return { "php", HELPERS .. "php_scenario.php", "127.0.0.1", tostring(port), prefix, mode }
    end,
  },
}

local bin = require "spec.helpers.bin"
local be, packet, response, SET_EXT = bin.be, bin.packet, bin.response, bin.SET_EXT

describe("binary protocol", function()
  local E, ref, mc, gw

  lazy_setup(function()
    env.require_binary()
    E = env.new("binary")
    ref, mc = E:memcached(), E:memcached()
    gw = E:gateway { servers = { mc.port } }
  end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() E:close_clients() end)

  describe("real clients answer as memcached does", function()
    for _, cl in ipairs(CLIENTS) do
      local rc = env.run(cl.check, { env = cl.env, timeout = 20 })
      local run = rc == 0 and it or pending
      run(cl.name .. ": the same answers as memcached, the same items in it", function()
        local prefix = "bin:" .. cl.name:match("^%S+") .. ":"
        local rc1, want, err1 = env.run(cl.argv(ref.port, prefix), { env = cl.env })
        assert.equal(0, rc1, err1)
        local rc2, got, err2 = env.run(cl.argv(gw.port, prefix), { env = cl.env })
        assert.equal(0, rc2, err2)
        assert.is_truthy(want:find("\nget hello\n", 1, true) or want:find("^set True\nget hello\n"))
        assert.equal(want, got)
        -- what landed: the gateway's memcached holds what the reference holds
        for _, k in ipairs { "a", "b", "n", "new", "ctr" } do
          assert.equal(client.value_on(ref.port, prefix .. k), client.value_on(mc.port, prefix .. k),
            prefix .. k)
        end
        assert.is_not_nil(client.value_on(mc.port, prefix .. "b"))
      end)
      run(cl.name .. ": flush", function()
        local prefix = "binf:" .. cl.name:match("^%S+") .. ":"
        local rc1, want = env.run(cl.argv(ref.port, prefix, "flush"), { env = cl.env })
        local rc2, got, err2 = env.run(cl.argv(gw.port, prefix, "flush"), { env = cl.env })
        assert.equal(0, rc1)
        assert.equal(0, rc2, err2)
        assert.is_truthy(want == "set True\nflush True\nget None\n" or
          want == "set True\nflush True\nget False\n", want) -- php's miss is false
        assert.equal(want, got)
        assert.is_nil(client.value_on(mc.port, prefix .. "f"))
      end)
    end
  end)

  describe("raw packets", function()
    it("get, getk, set with the item's CAS, opaque echoed", function()
      local c = client.connect(gw.port)
      c:send(packet(0x01, { ext = SET_EXT, key = "raw:a", val = "hello", opaque = 0x11223344 }))
      local r = response(c)
      assert.equal(0x81, r.magic)
      assert.equal(0x01, r.op)
      assert.equal(0, r.status)
      assert.equal(be(0x11223344, 4), r.opaque)
      assert.are_not.equal(be(0, 8), r.cas) -- memcached answers the new CAS
      local set_cas = r.cas
      c:send(packet(0x0c, { key = "raw:a", opaque = 7 }))
      r = response(c)
      assert.equal(0, r.status)
      assert.equal("\0\0\0\5", r.extras)
      assert.equal("raw:a", r.key)
      assert.equal("hello", r.value)
      assert.equal(set_cas, r.cas)
      c:send(packet(0x00, { key = "raw:missing", opaque = 8 }))
      r = response(c)
      assert.equal(1, r.status)
      assert.equal("Not found", r.value)
      c:send(packet(0x0c, { key = "raw:missing" }))
      r = response(c)
      assert.equal(1, r.status)
      assert.equal("raw:missing", r.key)
      -- a set with a stale CAS: exists
      c:send(packet(0x01, { ext = SET_EXT, key = "raw:a", val = "x", cas = 1 }))
      assert.equal(2, response(c).status)
      assert.equal("hello", client.value_on(mc.port, "raw:a"))
    end)

    it("quiet commands and a noop batch are answered in order", function()
      local c = client.connect(gw.port)
      local batch = packet(0x11, { ext = SET_EXT, key = "raw:q1", val = "one", opaque = 1 }) ..
        packet(0x11, { ext = SET_EXT, key = "raw:q2", val = "two", opaque = 2 }) ..
        packet(0x0d, { key = "raw:q1", opaque = 3 }) ..
        packet(0x0d, { key = "raw:nope", opaque = 4 }) ..
        packet(0x0d, { key = "raw:q2", opaque = 5 }) ..
        packet(0x12, { ext = SET_EXT, key = "raw:q1", val = "dup", opaque = 6 }) ..
        packet(0x0a, { opaque = 9 })
      c:send(batch)
      local r = response(c)
      assert.same({ 3, 0, "raw:q1", "one" }, { r.opaque:byte(4), r.status, r.key, r.value })
      r = response(c)
      assert.same({ 5, 0, "raw:q2", "two" }, { r.opaque:byte(4), r.status, r.key, r.value })
      r = response(c) -- the quiet add that failed is answered
      assert.same({ 6, 0x12, 2 }, { r.opaque:byte(4), r.op, r.status })
      r = response(c)
      assert.same({ 9, 0x0a, 0 }, { r.opaque:byte(4), r.op, r.status })
      assert.is_false(c:has_data(0.2))
    end)

    it("incr with an initial value and expiry, and without (0xffffffff)", function()
      local c = client.connect(gw.port)
      local ext = be(5, 8) .. be(100, 8) .. be(0, 4)
      c:send(packet(0x05, { ext = ext, key = "raw:ctr" }))
      local r = response(c)
      assert.equal(0, r.status)
      assert.equal(be(100, 8), r.value)
      c:send(packet(0x05, { ext = ext, key = "raw:ctr" }))
      assert.equal(be(105, 8), response(c).value)
      c:send(packet(0x06, { ext = be(1, 8) .. be(0, 8) .. "\255\255\255\255", key = "raw:ctr2" }))
      assert.equal(1, response(c).status)
      assert.is_nil(client.value_on(mc.port, "raw:ctr2"))
      assert.equal("105", client.value_on(mc.port, "raw:ctr"))
      c:send(packet(0x01, { ext = SET_EXT, key = "raw:txt", val = "abc" }))
      response(c)
      c:send(packet(0x05, { ext = ext, key = "raw:txt" }))
      assert.equal(6, response(c).status)
    end)

    it("version, noop, stat with a group, verbosity, quit", function()
      local c = client.connect(gw.port)
      c:send(packet(0x0b))
      assert.equal("1.6.18", response(c).value)
      c:send(packet(0x10, { key = "settings" }))
      local n, last = 0
      repeat
        last = response(c)
        n = n + 1
      until last.body == 0
      assert.is_true(n > 3)
      c:send(packet(0x1b, { ext = "\0\0\0\1" }))
      assert.equal(0, response(c).status)
      c:send(packet(0x07, { opaque = 3 }))
      local r = response(c)
      assert.same({ 0x07, 0 }, { r.op, r.status })
      assert.is_true(c:closed(2))
      local q = client.connect(gw.port)
      q:send(packet(0x17))
      assert.is_true(q:closed(2))
      assert.equal(0, q:buffered())
    end)

    it("unknown opcodes: 0x81, the body dropped, the connection goes on", function()
      local c = client.connect(gw.port)
      c:send(packet(0x77, { ext = "xx", key = "kk", val = "vvvv", opaque = 4 }) .. packet(0x0a, { opaque = 5 }))
      local r = response(c)
      assert.same({ 0x77, 0x81, "Unknown command" }, { r.op, r.status, r.value })
      r = response(c)
      assert.same({ 0x0a, 0, 5 }, { r.op, r.status, r.opaque:byte(4) })
      -- SASL without authentication configured: as memcached without -S
      c:send(packet(0x20))
      assert.equal(0x81, response(c).status)
    end)

    it("a body over the item size limit: too large, the old value gone, the connection goes on", function()
      client.set_on(mc.port, "raw:big", "old")
      local c = client.connect(gw.port)
      local big = string.rep("x", 1024 * 1024 + 1)
      c:send(packet(0x01, { ext = SET_EXT, key = "raw:big", val = big }))
      local r = response(c, 5)
      assert.same({ 3, "Too large." }, { r.status, r.value })
      c:send(packet(0x0a))
      assert.equal(0x0a, response(c).op)
      assert.is_true(env.wait_until(2, function() return client.value_on(mc.port, "raw:big") == nil end))
    end)

    local closing = {
      { "bad magic", packet(0x0a) .. packet(0x00, { key = "k", magic = 0x81 }), 0 },
      { "key and extras longer than the body", packet(0x00, { key = "key", body = 2 }), 0x81 },
      { "extras on a get", packet(0x00, { ext = "abcd", key = "k" }), 0x04 },
      { "a key over 250 bytes", packet(0x00, { key = string.rep("k", 251) }), 0x04 },
      { "a set without its extras", packet(0x01, { key = "k", val = "v" }), 0x04 },
      { "a text command after a binary one", packet(0x0a) .. "get foo\r\n", 0 },
    }
    for _, case in ipairs(closing) do
      it(case[1] .. ": " .. (case[3] and string.format("status 0x%02x, then", case[3]) or "") ..
        " closed", function()
        local c = client.connect(gw.port)
        c:send(case[2])
        if case[3] then
          assert.equal(case[3], response(c).status)
        end
        assert.is_true(c:closed(2))
        -- another client on the gateway is unaffected
        local other = client.connect(gw.port)
        assert.equal("STORED", other:set("raw:other", "fine"))
        assert.equal("fine", other:value("raw:other"))
      end)
    end

    it("every byte on its own, and a pipeline split at every point", function()
      local batch = packet(0x01, { ext = SET_EXT, key = "raw:s", val = "split" }) ..
        packet(0x0c, { key = "raw:s", opaque = 2 }) .. packet(0x0a, { opaque = 3 })
      local c = client.connect(gw.port)
      for i = 1, #batch do
        c:send(batch:sub(i, i))
      end
      assert.equal(0, response(c).status)
      assert.equal("split", response(c).value)
      assert.equal(0x0a, response(c).op)
      for cut = 1, #batch - 1, 7 do
        c:send(batch:sub(1, cut))
        env.sleep(0.001)
        c:send(batch:sub(cut + 1))
        assert.equal(0, response(c).status)
        assert.equal("split", response(c).value)
        assert.equal(0x0a, response(c).op)
      end
    end)
  end)

  describe("with a config script", function()
    local gw2, other

    lazy_setup(function()
      other = E:memcached()
      gw2 = E:gateway { config = string.format([[
local mg = require "mintgate"
local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
local side = mg.pool { name = "side", servers = { "127.0.0.1:%d" } }
mg.route { ["side:"] = side, default = main }
]], mc.port, other.port) }
    end)

    it("routes apply to binary clients", function()
      local c = client.connect(gw2.port)
      c:send(packet(0x01, { ext = SET_EXT, key = "side:x", val = "routed" }))
      assert.equal(0, response(c).status)
      c:send(packet(0x01, { ext = SET_EXT, key = "main:x", val = "home" }))
      assert.equal(0, response(c).status)
      assert.equal("routed", client.value_on(other.port, "side:x"))
      assert.is_nil(client.value_on(mc.port, "side:x"))
      assert.equal("home", client.value_on(mc.port, "main:x"))
      c:send(packet(0x00, { key = "side:x" }))
      assert.equal("routed", response(c).value)
    end)
  end)

  describe("with key transforms, a staleness policy and hooks", function()
    local gw4

    lazy_setup(function()
      gw4 = E:gateway { config = string.format([[
local mg = require "mintgate"
local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
mg.keys { style = "prefix", prefix = "app:" }
mg.stale { grace = 10, lock = 2, wait = 0 }
mg.route { default = main }
mg.on("set", function(req, pool) pool:set("audit:" .. req.key, "seen") end)
]], mc.port) }
    end)

    it("apply to binary clients as to text ones: a get past the TTL, one miss, the rest stale", function()
      local c = client.connect(gw4.port)
      -- set with exptime 1 (extras: flags, exptime): stored as app:hk with TTL 1 + grace
      c:send(packet(0x01, { ext = "\0\0\0\7\0\0\0\1", key = "hk", val = "old" }))
      assert.equal(0, response(c).status)
      assert.equal("old", client.value_on(mc.port, "app:hk"), "the key transform")
      assert.equal("seen", client.value_on(mc.port, "audit:hk"), "the set hook ran")
      local ttl = client.ttl_on(mc.port, "app:hk")
      assert.is_true(ttl >= 10 and ttl <= 11, "TTL 1 + grace 10, got " .. tostring(ttl))
      -- past the nominal TTL: the first binary get is the winner's miss, then stale values
      local misses, t0 = 0, env.now()
      while misses == 0 and env.now() - t0 < 5 do
        local v, st = bin.get(c, "hk")
        if v == nil then
          assert.equal(0x01, st)
          misses = 1
        else
          assert.equal("old", v)
          env.sleep(0.05)
        end
      end
      assert.equal(1, misses, "no winner's miss within 5 s")
      local d = client.connect(gw4.port)
      for _ = 1, 3 do assert.equal("old", bin.get(d, "hk"), "the others get the stale value") end
      d:close()
      c:close()
    end)
  end)

  describe("authentication (--auth-file)", function()
    local gw3

    lazy_setup(function()
      local path = E.dir .. "/users"
      env.write_file(path, "alice:s3cret\nbob:pw2\n")
      gw3 = E:gateway { servers = { mc.port }, args = { "--auth-file", path } }
    end)

    it("binary: SASL PLAIN accepted and refused; nothing reaches a backend before", function()
      local c = client.connect(gw3.port)
      c:send(packet(0x20))
      assert.equal("PLAIN", response(c).value)
      c:send(packet(0x21, { key = "PLAIN", val = "\0alice\0wrong" }))
      local r = response(c)
      assert.same({ 0x20, "Auth failure." }, { r.status, r.value })
      c:send(packet(0x21, { key = "PLAIN", val = "\0alice\0s3cret" }))
      r = response(c)
      assert.same({ 0, "Authenticated" }, { r.status, r.value })
      c:send(packet(0x01, { ext = SET_EXT, key = "auth:b", val = "ok" }))
      assert.equal(0, response(c).status)
      assert.equal("ok", client.value_on(mc.port, "auth:b"))
      -- unauthenticated: memcached's auth error, then a close
      local u = client.connect(gw3.port)
      u:send(packet(0x01, { ext = SET_EXT, key = "auth:nope", val = "x" }))
      assert.equal(0x20, response(u).status)
      assert.is_true(u:closed(2))
      assert.is_nil(client.value_on(mc.port, "auth:nope"))
    end)

    it("text: a set of \"user password\" first", function()
      local c = client.connect(gw3.port)
      assert.equal("CLIENT_ERROR unauthenticated", c:cmd("get auth:b"))
      assert.equal("CLIENT_ERROR authentication failure", c:cmd("set x 0 0 9\r\nbob wrong\r\n"))
      assert.equal("STORED", c:cmd("set x 0 0 7\r\nbob pw2\r\n"))
      assert.equal("ok", c:value("auth:b"))
      assert.is_nil(client.value_on(mc.port, "x")) -- the auth set stored nothing
    end)

    it("pylibmc with a username and password", function()
      if env.run { "/usr/bin/python3", "-c", "import pylibmc" } ~= 0 then return pending("no pylibmc") end
      local script = [=[
import sys, pylibmc
c = pylibmc.Client(["127.0.0.1:" + sys.argv[1]], binary=True, username=sys.argv[2], password=sys.argv[3])
try:
    print(c.set("auth:py", "yes"), c.get("auth:py"))
except pylibmc.Error as e:
    print("refused")
]=]
      local _, ok = env.run { "/usr/bin/python3", "-c", script, tostring(gw3.port), "alice", "s3cret" }
      assert.equal("True yes\n", ok)
      local _, bad = env.run { "/usr/bin/python3", "-c", script, tostring(gw3.port), "alice", "nope" }
      assert.equal("refused\n", bad)
    end)
  end)
end)
