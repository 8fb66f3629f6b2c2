-- Admin commands are parsed strictly: a percent is a plain decimal number from 0 to 100
-- (digits, optionally a fraction: no sign, hex, exponent, nan/inf, whitespace or trailing
-- junk), words are separated by single spaces, and each command takes exactly its words.
-- A refused command changes nothing and the connection goes on.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local CONFIG = [[
local mg = require "mintgate"
local main = mg.pool { name = "main", servers = { "127.0.0.1:%d" } }
mg.switch { name = "canary", percent = 0 }
mg.route { default = main }
]]

local BAD_PERCENT = "CLIENT_ERROR percent must be a number from 0 to 100"
local SWITCH_USAGE = "CLIENT_ERROR usage: switch NAME PERCENT"
local RELOAD_USAGE = "CLIENT_ERROR usage: reload"

describe("strict admin parsing", function()
  local E, gw, admin_port, c

  lazy_setup(function()
    env.require_binary()
    E = env.new("admin_strict")
    local mc = E:memcached()
    admin_port = env.free_port()
    gw = E:gateway { threads = 2, args = { "-A", "127.0.0.1:" .. admin_port },
                     config = string.format(CONFIG, mc.port) }
    c = E:client(admin_port)
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  local function percent()
    local st = c:stats("stats switches")
    return st["switch:canary:percent"]
  end

  it("takes plain decimal percentages from 0 to 100", function()
    for _, case in ipairs {
      { "0", "0.000" }, { "100", "100.000" }, { "12.5", "12.500" }, { "0.001", "0.001" },
      { "007", "7.000" }, { "100.000", "100.000" }, { "99.9990", "99.999" }, { "50", "50.000" },
    } do
      assert.equal("OK", c:cmd("switch canary " .. case[1]), case[1])
      assert.equal(case[2], percent(), case[1])
    end
  end)

  it("refuses every other spelling of a number, and leaves the switch alone", function()
    assert.equal("OK", c:cmd("switch canary 25"))
    for _, v in ipairs {
      "0x10", "0X1A", "1e1", "1E1", "1e+1", "10e0", "nan", "NaN", "NAN(1)", "inf", "Inf",
      "infinity", "-inf", "+10", "-0", "-5", "10abc", "10%", "10.", ".5", "1..2", "1.2.3",
      "101", "100.001", "1000", "1,5", "\t10", "10\t", "\v10", "\f10", "0x", "x10", "١٠",
      "99999999999999999999999999999",
    } do
      assert.equal(BAD_PERCENT, c:cmd("switch canary " .. v), "percent " .. client.show(v))
    end
    assert.equal("25.000", percent())
  end)

  it("wants exactly NAME and PERCENT after switch, separated by single spaces", function()
    for _, line in ipairs {
      "switch", "switch canary", "switch canary 10 x", "switch canary 10 10",
      "switch  canary 10", "switch canary  10", "switch canary 10 ", " switch canary 10",
      "switch canary 10  ",
    } do
      assert.equal(SWITCH_USAGE, c:cmd(line), client.show(line))
    end
    assert.equal("25.000", percent())
    assert.equal("CLIENT_ERROR unknown switch", c:cmd("switch nosuch 10"))
  end)

  it("reload takes no argument", function()
    for _, line in ipairs { "reload now", "reload 1", "reload ", "reload  x", " reload" } do
      assert.equal(RELOAD_USAGE, c:cmd(line), client.show(line))
    end
    assert.equal("OK", c:cmd("reload", 10))
  end)

  it("the connection and the gateway go on after refused commands", function()
    assert.equal("OK", c:cmd("switch canary 30"))
    assert.equal("30.000", percent())
    assert.is_true(gw:alive())
  end)
end)
