-- lua/mintgate/guard.lua alone: coroutine.yield raises inside the gateway's coroutines and
-- works as usual elsewhere.
assert(jit ~= nil, "specs must run under LuaJIT")

local guard = require "mintgate.guard"

describe("mintgate.guard", function()
  local saved = coroutine.yield
  after_each(function() coroutine.yield = saved end) -- luacheck: ignore 122

  it("refuses a bare yield in the gateway's coroutines, lets others yield", function()
    local cos = {}
    local raw = guard.install(cos)
    assert.equal(saved, raw)
    local mine = coroutine.create(function() coroutine.yield(1) end)
    cos[mine] = true
    local ok, err = coroutine.resume(mine)
    assert.is_false(ok)
    assert.matches("coroutine.yield is not allowed here", err)
    local theirs = coroutine.create(function() coroutine.yield(2); return 3 end)
    assert.same({ true, 2 }, { coroutine.resume(theirs) })
    assert.same({ true, 3 }, { coroutine.resume(theirs) })
    -- the gateway's own waits use the original
    local waits = coroutine.create(function() raw(4) end)
    cos[waits] = true
    assert.same({ true, 4 }, { coroutine.resume(waits) })
  end)
end)
