-- mintgate.stale alone: the named staleness policies and normalize(), which turns a name,
-- a table, or a table based on a name plus overrides into what the C core compiles.
assert(jit ~= nil, "specs must run under LuaJIT")

local function fresh()
  package.loaded["mintgate.stale"] = nil
  return require "mintgate.stale"
end

-- fn must raise an error containing text, located in this file (normalize's caller).
local function raises(fn, text)
  local ok, err = pcall(fn)
  assert(not ok, "expected an error containing: " .. text)
  err = tostring(err)
  assert(err:find(text, 1, true), "error does not contain <" .. text .. ">: " .. err)
  assert(err:match("^[^\n]*stale_spec%.lua:%d+: "), "error does not point at the caller: " .. err)
  return err
end

describe("mintgate.stale", function()
  local stale
  before_each(function() stale = fresh() end)

  describe("named policies", function()
    it("newcache: django-newcache's herd timeout, 60 s grace and lock", function()
      assert.same({ grace = 60, lock = 60, wait = 0, on_delete = "delete", coalesce = true, guard = true },
        stale.normalize "newcache")
    end)

    it("mint: MintCache's stale date 30 s before expiry", function()
      assert.same({ grace = 30, lock = 30, wait = 0, on_delete = "delete", coalesce = true, guard = true },
        stale.normalize "mint")
    end)

    it("publish: delete marks stale, cold misses wait 50 ms", function()
      assert.same({ grace = 0, lock = 5, wait = 50, on_delete = "mark_stale", coalesce = true, guard = true },
        stale.normalize "publish")
    end)

    it("xfetch: no grace, early refresh with beta 1 and a measured delta, cold misses wait", function()
      assert.same({ grace = 0, lock = 5, wait = 50, on_delete = "delete", coalesce = true, beta = 1,
                    guard = true }, stale.normalize "xfetch")
      assert.same({ grace = 0, lock = 5, wait = 50, on_delete = "delete", coalesce = true, beta = 2,
                    delta = 300, guard = true }, stale.normalize { base = "xfetch", beta = 2, delta = 300 })
      -- beta on any base: grace plus an early draw
      assert.equal(1.5, stale.normalize({ base = "mint", beta = 1.5 }).beta)
    end)

    it("xfetch's beta and delta are checked", function()
      for _, bad in ipairs { 0.5, -1, 1001, 0 / 0, "1" } do
        assert.has_error(function() stale.normalize { base = "xfetch", beta = bad } end,
          "stale: 'beta' must be 0 (no early refresh) or from 1 to 1000")
      end
      assert.equal(0, stale.normalize({ base = "xfetch", beta = 0 }).beta)
      for _, bad in ipairs { -1, 1.5, 3600001, "5" } do
        assert.has_error(function() stale.normalize { base = "xfetch", delta = bad } end,
          "stale: 'delta' must be whole milliseconds from 0 (measured) to 3600000")
      end
    end)

    it("none, \"none\" and false all mean no policy", function()
      assert.is_false(stale.normalize "none")
      assert.is_false(stale.normalize(false))
      assert.is_false(stale.normalize { policy = "none" })
      -- an override on "none" would be silently ignored: refused instead
      assert.has_error(function() stale.normalize { policy = "none", grace = 5 } end,
                       'stale: policy "none" takes no other options')
    end)

    it("every name in policies normalizes", function()
      local n = 0
      for name, p in pairs(stale.policies) do
        n = n + 1
        local got = stale.normalize(name)
        if p == false then
          assert.is_false(got)
        else
          assert.same(p, got)
          assert.are_not.equal(p, got) -- a copy: the caller may not change the named policy
        end
      end
      assert.equal(5, n)
    end)
  end)

  describe("tables", function()
    it("an empty table gets the defaults", function()
      assert.same({ grace = 60, lock = 5, wait = 50, on_delete = "delete", coalesce = true, guard = true },
        stale.normalize {})
    end)

    it("options override the defaults", function()
      assert.same({ grace = 10, lock = 2, wait = 300, on_delete = "mark_stale", coalesce = false, guard = true },
        stale.normalize { grace = 10, lock = 2, wait = 300, on_delete = "mark_stale", coalesce = false })
      assert.same({ grace = 0, lock = 5, wait = 0, on_delete = "delete", coalesce = true, guard = true },
        stale.normalize { grace = 0, wait = 0 })
      assert.same({ grace = 60, lock = 5, wait = 50, on_delete = "delete", coalesce = true, guard = false },
        stale.normalize { guard = false })
      raises(function() stale.normalize { guard = "no" } end, "stale: 'guard' must be a boolean")
    end)

    it("a table may start from a named policy and override parts", function()
      assert.same({ grace = 60, lock = 60, wait = 20, on_delete = "delete", coalesce = true, guard = true },
        stale.normalize { policy = "newcache", wait = 20 })
      assert.same({ grace = 30, lock = 30, wait = 0, on_delete = "mark_stale", coalesce = false, guard = true },
        stale.normalize { policy = "mint", on_delete = "mark_stale", coalesce = false })
      assert.same({ grace = 7, lock = 5, wait = 50, on_delete = "mark_stale", coalesce = true, guard = true },
        stale.normalize { policy = "publish", grace = 7 })
    end)

    it("lock 0 becomes 1 (memcached's N flag needs a positive lock)", function()
      assert.equal(1, stale.normalize({ lock = 0 }).lock)
      assert.equal(1, stale.normalize({ policy = "newcache", lock = 0 }).lock)
    end)

    it("wait is in milliseconds from 0 to 60000, fractions allowed", function()
      assert.equal(0, stale.normalize({ wait = 0 }).wait)
      assert.equal(60000, stale.normalize({ wait = 60000 }).wait)
      assert.equal(2.5, stale.normalize({ wait = 2.5 }).wait)
    end)

    it("does not change the table it was given nor the named policies", function()
      local spec = { policy = "newcache", wait = 20 }
      local got = stale.normalize(spec)
      got.grace = 1
      assert.same({ policy = "newcache", wait = 20 }, spec)
      assert.equal(60, stale.policies.newcache.grace)
      assert.equal(60, stale.normalize("newcache").grace)
    end)
  end)

  describe("errors", function()
    it("unknown names", function()
      raises(function() stale.normalize "fast" end, "unknown staleness policy 'fast'")
      raises(function() stale.normalize { policy = "fast" } end, "unknown staleness policy 'fast'")
      raises(function() stale.normalize { policy = 3 } end, "unknown staleness policy '3'")
    end)

    it("what is neither a table nor a name", function()
      for _, v in ipairs { 5, true, function() end } do
        raises(function() stale.normalize(v) end, "a staleness policy is a table or a policy name")
      end
      raises(function() stale.normalize(nil) end, "a staleness policy is a table or a policy name")
    end)

    it("grace and lock must be whole seconds >= 0", function()
      for _, k in ipairs { "grace", "lock" } do
        for _, v in ipairs { -1, 1.5, "60", true } do
          raises(function() stale.normalize { [k] = v } end,
            "stale: '" .. k .. "' must be whole seconds >= 0")
        end
      end
    end)

    it("wait must be milliseconds from 0 to 60000", function()
      for _, v in ipairs { -1, 60001, "50", false } do
        raises(function() stale.normalize { wait = v } end,
          "stale: 'wait' must be milliseconds from 0 to 60000")
      end
    end)

    it("on_delete must be delete or mark_stale", function()
      for _, v in ipairs { "purge", "mark-stale", true, 1 } do
        raises(function() stale.normalize { on_delete = v } end,
          "stale: 'on_delete' must be \"delete\" or \"mark_stale\"")
      end
    end)

    it("coalesce must be a boolean", function()
      for _, v in ipairs { 1, "yes", "true" } do
        raises(function() stale.normalize { coalesce = v } end, "stale: 'coalesce' must be a boolean")
      end
    end)

    it("unknown options, also on top of a named policy", function()
      raises(function() stale.normalize { graze = 60 } end, "stale: unknown option 'graze'")
      raises(function() stale.normalize { policy = "mint", timeout = 1 } end,
        "stale: unknown option 'timeout'")
      raises(function() stale.normalize { 60 } end, "stale: unknown option '1'")
    end)

    it("an explicit level moves the error's location up the stack", function()
      local function declare(spec)
        local p = stale.normalize(spec, 2) -- not a tail call: that would drop this frame
        return p
      end
      raises(function() declare "fast" end, "unknown staleness policy 'fast'")
    end)
  end)
end)

describe("one name for staleness policies", function()
  local stale = require "mintgate.stale"

  it("takes base = name, and policy = name as its older spelling", function()
    assert.same(stale.normalize { base = "newcache", wait = 20 },
      stale.normalize { policy = "newcache", wait = 20 })
    assert.equal(20, stale.normalize({ base = "newcache", wait = 20 }).wait)
    assert.equal(60, stale.normalize({ base = "newcache", wait = 20 }).grace)
    assert.is_false(stale.normalize { base = "none" })
    assert.has_error(function() stale.normalize { base = "newcache", policy = "mint" } end,
      "stale: 'base' and 'policy' are one option (policy is its older name)")
  end)

  it("names a policy with mg.stale(name, spec), as mg.policy does", function()
    package.loaded.mintgate = nil
    local mg = require "mintgate"
    mg.stale("short", { grace = 5, lock = 1, wait = 0 })
    mg.policy("long", { base = "publish" })
    local st = mg._state
    assert.is_number(st.policy_ids.short)
    assert.is_number(st.policy_ids.long)
    assert.equal(5, st.policies[st.policy_ids.short + 1][2].grace)
    assert.is_nil(st.stale, "naming a policy does not set the default")
    local ok, err = pcall(mg.stale, "short", { grace = 1 })
    assert.is_false(ok)
    assert.matches("mg.stale: 'short' exists already", err)
    assert.matches("stale_spec.lua", err, "the error points at the script")
    package.loaded.mintgate = nil
  end)
end)
