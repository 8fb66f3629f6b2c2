-- Shutting down while Lua waits: SIGTERM drains for at most 2 s, then the worker tears its
-- backends down. A key function still waiting on a pool call to a hung backend is then
-- resumed (its call fails) and tries to dispatch again; that must be refused cleanly, not
-- touch a backend already freed (under ASan a use-after-free fails the exit status).
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"

local CONFIG = [[
local mg = require "mintgate"
local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
local hung = mg.pool { name = "hung", servers = { "127.0.0.1:%d" }, timeout = 30 }
mg.route { default = main }
mg.keys(function(key)
  if key:sub(1, 5) == "slow:" then
    local v = hung:get("ns")   -- waits: the backend never answers
    return key .. ":" .. tostring(v)
  end
  return key
end)
]]

describe("shutdown with a pool call in flight", function()
  local E

  lazy_setup(function()
    env.require_binary()
    E = env.new("lua_shutdown")
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  -- A gateway whose key function waits on a hung backend for slow:* keys; the client
  -- sends `request` (it parks), another client is served meanwhile, then SIGTERM must end
  -- the gateway with status 0 within the drain time.
  local function stop_while_parked(request)
    local mc = E:memcached()
    local hung_port = env.free_port()
    E:fake_backend(hung_port, "hang", 60)
    local gw = E:gateway { threads = 1, config = string.format(CONFIG, mc.port, hung_port) }
    local c = E:client(gw.port)
    assert.equal("STORED", c:set("fast", "1"))
    c:send(request)
    local other = E:client(gw.port)
    assert.same({ "fast", "fast" }, select(2, other:get("fast", "fast")))
    env.sleep(0.2)
    local t0 = env.now()
    local rc, killed = E:stop(gw, 15)
    assert.is_falsy(killed, "the gateway did not exit after SIGTERM")
    assert.equal(0, rc, "exit status on SIGTERM:\n" .. env.tail(gw:stderr(), 40))
    -- the README promises at most 2 s of draining; 1 s of margin for exiting and for a
    -- loaded machine
    local took = env.now() - t0
    assert(took < 3, string.format("shutdown took %.2f s (at most 2 s of draining promised)", took))
    E:close_clients()
  end

  it("SIGTERM ends the gateway cleanly while a key function waits on a hung backend", function()
    stop_while_parked("get slow:1\r\n")
  end)

  it("the same with a multi-key get whose batch waits on the hung backend", function()
    stop_while_parked("get fast slow:1 fast slow:2 fast\r\n")
  end)
end)
