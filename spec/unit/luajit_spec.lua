-- The suite must run under LuaJIT, like the gateway's embedded VM.
describe("the test runner", function()
  it("is LuaJIT", function()
    assert.is_not_nil(jit, "busted is not running under LuaJIT: check .busted (lua = \"luajit\")")
    assert.truthy(jit.version:match("^LuaJIT 2%."))
  end)
end)
