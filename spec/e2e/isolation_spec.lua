-- One client must never affect another (issue 9): meta flags whose reply memcached would
-- hide or mangle, line ends that echo control bytes, base64 keys that skipped the key
-- transform, oversized base64 keys, TTLs that overflow with a grace period, and the
-- gateway's own keys. Every case runs against real memcached through one worker (-t 1),
-- so all clients share one backend connection: a reply out of step shows up at once.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

-- Standard base64 of s (coreutils).
local function b64(s)
  local rc, out = env.run({ "base64", "-w0" }, { stdin = s, timeout = 5 })
  assert(rc == 0, "base64 failed")
  return out
end

-- A direct connection to memcached, for what really landed there.
local function direct(port) return client.connect(port) end

-- memcached 1.6 echoes k for an item that mg's N flag created with the decoded bytes of a
-- base64 key, not base64: "x\r\nEN" split the reply line, and the backend connection every
-- client shares was out of step (found by the wire fuzzer). The gateway sends such an mg
-- without k and adds the client's key itself; `me` takes no b flag.
local function vivified_b64_key(connect, stats)
  local x, a = connect(), connect()
  assert.equal("STORED", a:set("alpha", "AAAAA"))
  local enc = b64("x\r\nEN")
  assert.equal("HD s0 k" .. enc .. " b W", x:cmd("mg " .. enc .. " b N30 s k"))
  x:send("mg " .. enc .. " b s v k\r\n")
  local line, v = x:meta_reply()
  assert.equal("VA 0 s0 k" .. enc .. " b Z", line)
  assert.equal("", v)
  assert.equal("EN k" .. b64("nokey") .. " b", x:cmd("mg " .. b64("nokey") .. " b k"))
  -- k where memcached puts it: returned flags in the request's order, then W/X/Z
  local l = x:cmd("mg " .. enc .. " b c k t O7")
  assert.truthy(l:match("^HD c%d+ k" .. (enc:gsub("%p", "%%%0")) .. " b t%-?%d+ O7 Z$"), l)
  assert.equal("CLIENT_ERROR invalid flag", x:cmd("me " .. enc .. " b"))
  assert.equal("AAAAA", a:value("alpha"))
  local st = stats()
  for k, n in pairs(st) do
    if k:match(":ejections$") or k:match(":errors$") then assert.equal("0", n, k) end
  end
end

-- One memcached and a gateway with one worker (so every client shares one backend
-- connection) for a describe block: with `script`, a config declaring pool "main" on that
-- memcached followed by `script`; else plain -s. `args(mc)` gives extra arguments. set(E,
-- gw, mc) receives them in lazy_setup; teardown and closing clients are done here.
local function fixture(name, script, args, set)
  local E
  lazy_setup(function()
    env.require_binary()
    E = env.new(name)
    local mc = E:memcached()
    local opts = { threads = 1, args = args and args(mc) or nil }
    if script then
      opts.config = string.format([[
        local mg = require "mintgate"
        mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
      ]], mc.port) .. script
    else
      opts.servers = { mc.port }
    end
    set(E, E:gateway(opts), mc)
  end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)
end

describe("meta flags a backend would answer differently", function()
  local E, gw

  local function connect() return E:client(gw.port) end

  fixture("isolation_flags", nil, nil, function(e, g) E, gw = e, g end)

  -- A and B keep their values while X sends line; X's own answer is returned.
  local function others_unaffected(line)
    local a, b, x = connect(), connect(), connect()
    assert.equal("STORED", a:set("alpha", "AAAAA"))
    assert.equal("STORED", a:set("beta", "BBBB"))
    x:send(line)
    local got = x:line()
    assert.equal("AAAAA", a:value("alpha"))
    assert.equal("BBBB", b:value("beta"))
    assert.equal("MN", x:cmd("mn"), "the hostile connection itself is still in step")
    assert.equal("AAAAA", x:value("alpha"))
    return got
  end

  for _, case in ipairs {
    { "mg nokey v qx\r\n", "CLIENT_ERROR invalid flag" },
    { "mg nokey v q1\r\n", "CLIENT_ERROR invalid flag" },
    { "mg nokey v q\rjunk\r\n", "CLIENT_ERROR invalid flag" },
    { "mg nokey v q\0\r\n", "CLIENT_ERROR invalid flag" },
    { "md nokey qq\r\n", "CLIENT_ERROR invalid flag" },
    { "ma nokey q2\r\n", "CLIENT_ERROR invalid flag" },
    { "mg nokey v q q\r\n", "CLIENT_ERROR duplicate flag" },
    { "mg nokey v Z\r\n", "CLIENT_ERROR invalid flag" },
    { "mg nokey v O1\r\r\n", "CLIENT_ERROR invalid flag" },
    { "mg nokey v\r\r\n", "CLIENT_ERROR invalid flag" },
    { "mg nokey O\1\r\n", "CLIENT_ERROR invalid flag" },
    { "me nokey v\r\n", "CLIENT_ERROR invalid flag" },
    { "mg nokey v O" .. string.rep("9", 80) .. "\r\n", "CLIENT_ERROR invalid flag" },
  } do
    it("refuses " .. client.show(case[1]) .. " before it reaches a backend", function()
      assert.equal(case[2], others_unaffected(case[1]))
    end)
  end

  it("drops the data block of a refused ms", function()
    assert.equal("CLIENT_ERROR invalid flag", others_unaffected("ms nk 1 qz\r\nx\r\n"))
    assert.equal("CLIENT_ERROR invalid flag", others_unaffected("ms nk 5 T1\r\r\nab\r\nc\r\n"))
    -- a key too long for the backend: memcached (1.6.19+) swallows the value too
    assert.equal("CLIENT_ERROR bad command line format",
      others_unaffected("ms " .. string.rep("k", 300) .. " 5\r\nhello\r\n"))
  end)

  it("keeps valid quiet meta commands working", function()
    local c = connect()
    c:send("ms qk 2 q T0\r\nhi\r\nmg qk v q\r\nmg nothere v q\r\nmn\r\n")
    assert.equal("VA 2", c:line())
    assert.equal("hi", c:line())
    assert.equal("MN", c:line())
    assert.equal("HD O12", c:cmd("mg qk O12 q"), "q hides EN, not HD")
  end)

  it("k on an item mg's N created echoes the base64 key, not its raw bytes", function()
    vivified_b64_key(connect, function() return connect():stats("stats backends") end)
  end)

  it("never blames the backend for a client's bytes", function()
    local x = connect()
    for _ = 1, 3 do
      x:send("mg foo v O1\r\r\n")
      assert.equal("CLIENT_ERROR invalid flag", x:line())
    end
    local st = connect():stats("stats backends")
    for k, v in pairs(st) do
      if k:match(":ejections$") or k:match(":errors$") then assert.equal("0", v, k) end
    end
    assert.equal("STORED", connect():set("still", "up"))
  end)
end)

describe("base64 keys and the key transform", function()
  local E, gw, mc

  local function connect() return E:client(gw.port) end

  fixture("isolation_b64", [[
      mg.keys { style = "prefix", prefix = "app:" }
  ]], nil, function(e, g, m) E, gw, mc = e, g, m end)

  it("reads and writes only inside the namespace", function()
    local d = direct(mc.port)
    assert.equal("STORED", d:set("victim", "SECRET"))
    local c = connect()
    local enc = b64("victim")
    assert.equal("dmljdGlt", enc)
    assert.equal("EN", c:cmd("mg " .. enc .. " b v"))
    assert.equal("HD", c:cmd("ms " .. enc .. " 5 b\r\nEVIL!"))
    assert.equal("SECRET", d:value("victim"))
    assert.equal("EVIL!", d:value("app:victim"))
    -- the text protocol sees the same key
    assert.equal("EVIL!", c:value("victim"))
    -- k echoes the client's own base64 key, not the backend's
    c:send("mg " .. enc .. " b v k\r\n")
    local line, v = c:meta_reply()
    assert.equal("VA 5 k" .. enc .. " b", line)
    assert.equal("EVIL!", v)
    assert.equal("HD", c:cmd("md " .. enc .. " b"))
    assert.is_nil(d:value("app:victim"))
    assert.equal("SECRET", d:value("victim"))
  end)

  it("takes binary keys and keeps them binary on the backend", function()
    local c = connect()
    local raw = "a b\0c\255"
    local enc = b64(raw)
    assert.equal("HD", c:cmd("ms " .. enc .. " 3 b\r\nbin"))
    local d = direct(mc.port)
    d:send("mg " .. b64("app:" .. raw) .. " b v\r\n")
    local _, v = d:meta_reply()
    assert.equal("bin", v)
  end)

  it("answers bad base64 without touching the backend", function()
    assert.equal("CLIENT_ERROR error decoding key", connect():cmd("mg !!!! b v"))
  end)

  it("k on an item mg's N created echoes the base64 key, not its raw bytes", function()
    vivified_b64_key(connect, function() return connect():stats("stats backends") end)
  end)
end)

describe("base64 keys with a Lua key function", function()
  local E, gw, mc

  local function connect() return E:client(gw.port) end

  fixture("isolation_b64_fn", [[
      mg.keys(function(key, req) return "v1:" .. key end)
  ]], nil, function(e, g, m) E, gw, mc = e, g, m end)

  it("refuses a base64 key too long to decode (it overflowed a stack buffer)", function()
    local c = connect()
    local enc = b64(string.rep("x", 300))
    assert.equal("CLIENT_ERROR bad command line format", c:cmd("mg " .. enc .. " b v"))
    assert.equal("CLIENT_ERROR bad command line format", c:cmd("mg " .. enc:sub(1, 1000) .. " b v"))
    assert.is_true(gw:alive())
    assert.equal("STORED", c:set("after", "ok"))
  end)

  it("applies the function to the decoded key", function()
    local d = direct(mc.port)
    assert.equal("STORED", d:set("victim", "SECRET"))
    local c = connect()
    assert.equal("HD", c:cmd("ms " .. b64("victim") .. " 3 b\r\nnew"))
    assert.equal("SECRET", d:value("victim"))
    assert.equal("new", d:value("v1:victim"))
  end)
end)

describe("staleness policy: TTLs and the gateway's own keys", function()
  local E, gw, mc, admin

  local function connect(port) return E:client(port or gw.port) end

  admin = env.free_port()
  fixture("isolation_herd", [[
      mg.stale { grace = 60, lock = 5, wait = 50 }
  ]], function() return { "-A", "127.0.0.1:" .. admin } end, function(e, g, m) E, gw, mc = e, g, m end)

  it("does not overflow a TTL near the int64 limit", function()
    local c = connect()
    -- adding the grace overflowed (the sanitizer build aborted); now the TTL goes to
    -- memcached unchanged, and it answers for it
    assert.matches("^[A-Z_]+", c:cmd("set a 0 9223372036854775807 1\r\nx"))
    assert.matches("^[A-Z_]+$", c:cmd("gats 9223372036854775807 k"))
    assert.matches("^[A-Z_]+$", c:cmd("touch a 9223372036854775800"))
    assert.is_true(gw:alive())
    assert.equal("STORED", c:set("a", "fine", 0, 100))
    assert.equal("fine", c:value("a"))
  end)

  it("keeps lease keys out of data-port clients' reach", function()
    local c = connect()
    local err = "CLIENT_ERROR key is in the gateway's reserved namespace"
    assert.equal(err, c:set("mintgate:lease:hot", "1"))
    assert.equal(err, c:cmd("delete mintgate:lease:hot"))
    assert.equal(err, c:cmd("mg " .. b64("mintgate:lease:hot") .. " b v"))
    assert.equal(err, c:cmd("get mintgate:lease:hot"))
    -- other keys of the same multi-get are still served
    assert.equal("STORED", c:set("plain", "p"))
    local items = c:get("plain", "mintgate:x")
    assert.equal("p", items.plain.value)
    assert.is_nil(direct(mc.port):value("mintgate:lease:hot"))
    -- the trusted writer: a connection on the admin listener
    assert.equal("STORED", connect(admin):set("mintgate:lease:hot", "1"))
    assert.equal("1", direct(mc.port):value("mintgate:lease:hot"))
  end)
end)

describe("staleness policy: a connection's reads never see its later writes", function()
  local E, gw

  local function connect() return E:client(gw.port) end

  fixture("isolation_order", [[
      mg.stale { grace = 30, lock = 2, wait = 300 }
  ]], nil, function(e, g) E, gw = e, g end)

  it("a get after a delete does not share the get sent before it", function()
    local c = connect()
    c:send("set ord1 0 0 1\r\nA\r\nget ord1\r\ndelete ord1\r\nget ord1\r\n")
    assert.equal("STORED", c:line())
    local items = c:get_reply()
    assert.equal("A", items.ord1.value)
    assert.equal("DELETED", c:line())
    local after = c:get_reply()
    assert.is_nil(after.ord1, "the second get returned the value its own delete removed")
  end)

  it("a waiting get does not return the value its own connection stored after it", function()
    local c = connect()
    local t0 = env.now()
    c:send("get ord2\r\nget ord2\r\nset ord2 0 0 1\r\nB\r\n")
    assert.is_nil(c:get_reply().ord2, "the first get wins the miss")
    assert.is_nil(c:get_reply().ord2, "the second get saw a later write")
    assert.equal("STORED", c:line())
    assert(env.now() - t0 < 0.25, "the second get waited for its own connection's write")
    assert.equal("B", c:value("ord2"))
  end)

  it("another connection's waiter still gets the winner's value", function()
    local a, b = connect(), connect()
    a:send("get ord3\r\n")
    assert.is_nil(a:get_reply().ord3, "a wins the miss")
    b:send("get ord3\r\n")
    env.sleep(0.05)
    assert.equal("STORED", a:set("ord3", "C"))
    local items = b:get_reply()
    assert.equal("C", items.ord3 and items.ord3.value, "b waited for a's value")
  end)
end)

describe("a k flag rewritten after the client's buffer moved on", function()
  local E, gw

  fixture("isolation_rekey", [[
      mg.keys { style = "prefix", prefix = "app:" }
  ]], nil, function(e, g) E, gw = e, g end)

  it("echoes each client's own key (it read freed memory)", function()
    local c = E:client(gw.port)
    local n = 300
    local batch = {}
    for i = 1, n do
      batch[#batch + 1] = string.format("ms rk%d 2 T0 k\r\nv%d\r\n", i, i % 10)
    end
    c:send(table.concat(batch))
    for i = 1, n do assert.equal("HD krk" .. i, c:line()) end
    -- other clients' traffic reuses the buffers in between
    local d = E:client(gw.port)
    for i = 1, n do
      c:send(string.format("mg rk%d k v\r\n", i))
      d:send(string.rep("x", 100) .. "\r\n")
      local line, v = c:meta_reply()
      assert.equal("VA 2 krk" .. i, line)
      assert.equal("v" .. (i % 10), v)
      assert.equal("ERROR", d:line())
    end
  end)
end)

describe("staleness policy: a base64 meta write counts as a write of its key", function()
  local E, gw

  fixture("isolation_order_b64", [[
      mg.keys { style = "prefix", prefix = "app:" }
      mg.stale { grace = 30, lock = 2, wait = 300 }
  ]], nil, function(e, g) E, gw = e, g end)

  it("a waiting get does not see its connection's later ms with the b flag", function()
    local c = E:client(gw.port)
    c:send("get o64\r\nget o64\r\nms " .. b64("o64") .. " 1 b F7\r\nZ\r\n")
    assert.is_nil(c:get_reply().o64)
    assert.is_nil(c:get_reply().o64, "the second get saw a later write")
    assert.equal("HD", c:line())
  end)
end)
