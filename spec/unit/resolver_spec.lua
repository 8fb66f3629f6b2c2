-- lua/mintgate/resolver.lua alone: the loop the gateway's resolving coroutines run, driven
-- here as the C side drives it (one key per turn, or a batch in ks/rs).
assert(jit ~= nil, "specs must run under LuaJIT")

local resolver = require "mintgate.resolver"

local DONE = {}

-- A coroutine running the loop; turn(k, cmd, n, tp) resumes it once and returns what it
-- yielded after the done mark. With track (mg.memo), req gets an __index that notes reads
-- as the gateway's does (command: cmd, anything else: other).
local function start(route_fn, key_fns, key_default, policy_ids, track)
  local loop = resolver.new(route_fn, key_fns, key_default, policy_ids or {}, DONE, coroutine.yield,
    track)
  local req, ks, rs = {}, {}, {}
  if track then
    setmetatable(req, { __index = function(_, k)
      if k == "command" then track.cmd = true return "get" end
      track.other = true
    end })
  end
  local co = coroutine.create(loop)
  local first = true
  local function pack(...) return { n = select("#", ...), ... } end
  local function turn(...)
    local res
    if first then
      first = false
      res = pack(coroutine.resume(co, req, ks, rs, ...))
    else
      res = pack(coroutine.resume(co, ...))
    end
    assert(res[1], res[2])
    assert.equal(DONE, res[2])
    return unpack(res, 3, res.n)
  end
  return turn, req, ks, rs
end

local a, b = { _id = 0 }, { _id = 1 }

describe("mintgate.resolver", function()
  it("resolves one key per turn: pool, key, policy; req.key and req.command set", function()
    local seen = {}
    local turn, req = start(function(r)
      seen[#seen + 1] = r.key .. "/" .. tostring(r.command)
      if r.key == "b" then return b, "short" end
      return a
    end, { [0] = function(k) return "A:" .. k end, [1] = false }, nil, { short = 3 })
    local id0, key0 = turn("x", "get", nil, 1)
    assert.equal(0, id0)
    assert.equal("A:x", key0)
    local id, key, pid = turn("b", nil, nil, 0)
    assert.equal(1, id)
    assert.is_nil(key, "pool b has its own style: no key function")
    assert.equal(3, pid)
    assert.same({ "x/get", "b/get" }, seen)
    assert.equal("b", req.key)
  end)

  it("picks the key function of the table's pool when the route function names none", function()
    local turn = start(function() return nil end,
      { [0] = function(k) return "A:" .. k end, [1] = false }, function(k) return "G:" .. k end)
    local id0, key0 = turn("k", "get", nil, 0)
    assert.is_nil(id0)
    assert.equal("A:k", key0)
    local id, key = turn("k", nil, nil, 1)
    assert.is_nil(id)
    assert.is_nil(key)
    -- a pool the script did not declare (the -s default): mg.keys' function
    local _, k2 = turn("k", nil, nil, 7)
    assert.equal("G:k", k2)
  end)

  it("resolves a batch, packing results, failing only the keys that raise", function()
    local turn, _, ks, rs = start(function(r)
      if r.key == "boom" then error("no route for boom") end
      return r.key == "b" and b or a
    end, { [0] = function(k) return k:upper() end, [1] = false }, nil, {})
    ks[1], ks[2], ks[3] = "x", "boom", "b"
    rs[1], rs[2], rs[3] = 1, 1, 1
    assert.equal(0, select("#", turn(nil, "get", 3)))
    assert.equal(0 + 2, rs[1])
    assert.equal("X", ks[1])
    assert.equal(0, rs[2])
    assert.matches("no route for boom", ks[2])
    assert.equal(1 + 2, rs[3])
    assert.equal(false, ks[3])
  end)

  it("refuses a route function's made-up pool and a key function's non-string", function()
    local turn, _, ks, rs = start(function(r)
      if r.key == "fake" then return { _id = 65536 } end
      return a
    end, { [0] = function(k) if k == "num" then return 5 end return k end }, nil, {})
    ks[1], ks[2], ks[3] = "fake", "num", "ok"
    turn(nil, "get", 3)
    assert.equal(0, rs[1])
    assert.matches("route function returned no pool", ks[1])
    assert.equal(0, rs[2])
    assert.matches("key function returned no string", ks[2])
    assert.equal(2, rs[3])
  end)

  describe("with a memo's track table", function()
    local track, sw
    before_each(function()
      track = { sw = false, cmd = false, other = false }
      sw = { on = function(_, k) track.sw = true return k:sub(1, 1) == "s" end }
    end)

    it("yields what one key's functions asked: 1 switch, 2 command, 4 anything else", function()
      local turn, req = start(function(r)
        if r.key == "plain" then return a end
        if r.key == "cmd" then return r.command == "get" and b or a end
        if r.key == "user" then return r.user and b or a end
        if sw:on(r.key) and r.command == "get" then return b end
        return a
      end, nil, nil, {}, track)
      local function dep(k) return select(4, turn(k, "get", nil, 0)) end
      assert.equal(0, dep("plain"))
      assert.equal(2, dep("cmd"))
      assert.equal(4, dep("user"))
      assert.equal(1 + 2, dep("s1"), "a switch that was on, then req.command")
      assert.equal(1, dep("x1"), "a switch that was off: the command never read")
      assert.equal(0, dep("plain"), "cleared between keys")
      assert.is_nil(rawget(req, "command"), "the command is never set raw")
    end)

    it("counts a key function's reads too, and puts a batch's in rs[64 + i]", function()
      local turn, _, ks, rs = start(nil, { [0] = function(k, r)
        if k == "boom" then track.sw = true error("boom") end
        if k == "u" then return r.client .. k end
        return "K:" .. k
      end }, nil, {}, track)
      ks[1], ks[2], ks[3], ks[4] = "a", "boom", "u", "b"
      rs[1], rs[2], rs[3], rs[4] = 0, 0, 0, 0
      local ok = pcall(turn, nil, nil, 4)
      assert.is_true(ok)
      assert.equal(1, rs[1]) -- the table's pool, pool id -1 + 2
      assert.equal("K:a", ks[1])
      assert.equal(0, rs[64 + 1])
      assert.equal(0, rs[2], "failed")
      assert.equal(1, rs[64 + 2], "asked before it raised (C keeps no failed key anyway)")
      assert.equal(0, rs[3], "r.client is nil here: the concatenation raised")
      assert.equal(4, rs[64 + 3])
      assert.equal("K:b", ks[4])
      assert.equal(0, rs[64 + 4], "cleared after the key that raised")
    end)
  end)
end)
