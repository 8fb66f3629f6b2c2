-- An admin listener on a unix socket (-A unix:/path): created owner-only, takes admin
-- commands, which the data port still refuses; the socket file goes away with the gateway.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"
local unix = require "socket.unix"

local CONFIG = [[
local mg = require "mintgate"
local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
mg.switch { name = "canary", percent = 0 }
mg.route { default = main }
]]

-- One command line over the unix socket; returns the reply lines up to and including `last`.
local function admin(path, line, last)
  local s = assert(unix.stream())
  s:settimeout(3)
  assert(s:connect(path))
  assert(s:send(line .. "\r\n"))
  local out = {}
  repeat
    local l = assert(s:receive("*l"))
    out[#out + 1] = l:gsub("\r$", "")
  until out[#out] == last or out[#out]:match("ERROR")
  s:close()
  return out
end

describe("admin listener on a unix socket", function()
  local E, gw, path

  lazy_setup(function()
    env.require_binary()
    E = env.new("admin_unix")
    local mc = E:memcached()
    path = E.dir .. "/admin.sock"
    gw = E:gateway { threads = 2, args = { "-A", "unix:" .. path },
                     config = string.format(CONFIG, mc.port) }
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  it("is created owner-only", function()
    local p = io.popen("stat -c %a " .. env.shquote(path))
    local mode = p:read("*l")
    p:close()
    assert.equal("600", mode)
  end)

  it("takes switch changes and serves stats; the data port refuses admin words", function()
    assert.same({ "OK" }, admin(path, "switch canary 25", "OK"))
    local lines = admin(path, "stats switches", "END")
    assert.truthy(table.concat(lines, "\n"):find("STAT switch:canary:percent 25.000", 1, true))
    local c = client.connect(gw.port)
    assert.equal("CLIENT_ERROR admin commands are only accepted on the admin port",
                 c:cmd("switch canary 50"))
    c:close()
  end)

  it("is removed when the gateway stops", function()
    local rc = E:stop(gw, 10)
    assert.equal(0, rc)
    assert.is_false(env.file_exists(path))
  end)
end)
