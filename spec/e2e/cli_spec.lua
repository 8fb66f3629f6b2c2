-- The command line: --version, --help, bad flags, --check on good and broken config
-- scripts, and starting from a config script (the quickstart example).
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local GOOD = [[
local mg = require "mintgate"
mg.listen { "127.0.0.1:1" }
local p = mg.pool { name = "main", servers = { "127.0.0.1:1" } }
mg.route { default = p }
]]

local SYNTAX_ERROR = [[
local mg = require "mintgate"
mg.listen { "127.0.0.1:1" }
local p = mg.pool { name = "main", servers = { "127.0.0.1:1" }
mg.route { default = p }
]]

local RUNTIME_ERROR = [[
local mg = require "mintgate"
local p = mg.pool { name = "main", servers = {} }
mg.route { default = p }
]]

describe("command line", function()
  local E, dir

  lazy_setup(function()
    env.require_binary()
    E = env.new("cli")
    dir = env.mktemp_dir()
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. env.shquote(dir)) end
    if E then E:teardown() end
  end)

  local function write(name, text)
    local path = dir .. "/" .. name
    env.write_file(path, text)
    return path
  end

  -- A sanitizer report exits 1 too (ASan's and UBSan's default exit code), so an exit
  -- status alone does not tell a clean refusal from a crash in the ASan build.
  local function no_sanitizer_report(what, err)
    for _, needle in ipairs { "AddressSanitizer", "LeakSanitizer", "runtime error:",
      "UndefinedBehaviorSanitizer" } do
      assert(not err:find(needle, 1, true), what .. ": a sanitizer report on stderr:\n" .. err)
    end
  end

  local function run(...)
    local rc, out, err = env.run({ env.bin, ... }, { timeout = 10 })
    no_sanitizer_report(table.concat({ ... }, " "), err)
    return rc, out, err
  end

  it("--version prints the version and exits 0", function()
    local rc, out, err = run("--version")
    assert.equal(0, rc, err)
    assert.matches("%d+%.%d+%.%d+", out)
  end)

  it("--help prints the usage and exits 0", function()
    local rc, out, err = run("--help")
    assert.equal(0, rc, err)
    assert.matches("usage", out:lower())
    for _, opt in ipairs { "-l", "-s", "-t", "-c", "-I", "--connect-timeout", "--timeout",
      "--failure-limit", "--retry-timeout", "--batch-loops", "--check", "--admin-public",
      "--admin-secret-file" } do
      assert(out:find(opt, 1, true), "--help does not mention " .. opt)
    end
  end)

  it("an unknown flag exits 2 with a message", function()
    local rc, out, err = run("--no-such-flag")
    assert.equal(2, rc)
    assert(err:find("no-such-flag", 1, true), "stderr does not name the flag: " .. err .. out)
  end)

  it("a bad option value exits 2 with a message", function()
    for _, args in ipairs { { "-t", "abc" }, { "-t", "0" }, { "-I", "lots" }, { "--timeout", "-1" },
      { "--failure-limit", "x" }, { "-c", "-5" }, { "--batch-loops", "17" }, { "--batch-loops", "-1" },
      { "--batch-loops", "1.5" } } do
      local rc, out, err = run(unpack(args))
      assert.equal(2, rc, table.concat(args, " ") .. ": " .. err .. out)
      assert(#err > 0, table.concat(args, " ") .. ": no message on stderr")
    end
  end)

  it("a malformed server address exits non-zero and names it", function()
    local rc, out, err = run("-l", "127.0.0.1:" .. env.free_port(), "-s", "nohostport")
    assert.equal(1, rc, "exit status (a startup error exits 1): " .. err .. out)
    assert(err:find("nohostport", 1, true), "stderr does not name the address: " .. err .. out)
    assert(err:find("want host:port", 1, true), "stderr does not say what is wanted: " .. err)
  end)

  it("an option missing its argument exits 2", function()
    local rc, out, err = run("-l")
    assert.equal(2, rc, err .. out)
    assert(#err > 0, "no message on stderr")
  end)

  it("--check on a good config exits 0", function()
    local rc, out, err = run("--check", write("good.lua", GOOD))
    assert.equal(0, rc, out .. err)
  end)

  it("--check on a config with a syntax error exits 1 and says where", function()
    local path = write("syntax.lua", SYNTAX_ERROR)
    local rc, out, err = run("--check", path)
    assert.equal(1, rc, out .. err)
    local msg = out .. err
    assert(msg:find("syntax.lua", 1, true), "the error does not name the file: " .. msg)
    assert(msg:find(":4") or msg:find(":3") or msg:find("line"), "the error gives no line: " .. msg)
  end)

  it("--check on a config that fails when run exits 1 with the error", function()
    local rc, out, err = run("--check", write("runtime.lua", RUNTIME_ERROR))
    assert.equal(1, rc, out .. err)
    assert(((out .. err):find("servers", 1, true)), "the error does not say what is wrong: " .. out .. err)
  end)

  it("--check on a missing file exits 1", function()
    local rc, out, err = run("--check", dir .. "/nosuch.lua")
    assert.equal(1, rc, out .. err)
    assert(#(out .. err) > 0, "no message")
  end)

  it("starting with a broken config exits non-zero without serving", function()
    local port = env.free_port()
    local rc, out, err = env.run({ env.bin, "-l", "127.0.0.1:" .. port, write("syntax2.lua", SYNTAX_ERROR) },
      { timeout = 10 })
    no_sanitizer_report("a broken config", err)
    assert.equal(1, rc, "exit status (a startup error exits 1): " .. out .. err)
    assert(err:find("syntax2.lua:4", 1, true), "the message does not point at the error: " .. out .. err)
    assert.is_false(env.port_open(port), "something listens on the port after the failed start")
  end)

  it("runs the quickstart example config (examples/quickstart.lua)", function()
    local a, b = E:memcached(), E:memcached()
    local port = env.free_port()
    local gw = E:gateway { listen = false, port = port, args = { "examples/quickstart.lua" },
      env = { MINTGATE_LISTEN = "127.0.0.1:" .. port, MEMCACHED_1 = "127.0.0.1:" .. a.port,
        MEMCACHED_2 = "127.0.0.1:" .. b.port } }
    local c = client.connect(gw.port)
    for i = 1, 20 do assert.equal("STORED", c:set("qs:" .. i, "v" .. i)) end
    local n = { 0, 0 }
    for j, m in ipairs { a, b } do
      local d = client.connect(m.port)
      for i = 1, 20 do if d:value("qs:" .. i) then n[j] = n[j] + 1 end end
      d:close()
    end
    assert.equal(20, n[1] + n[2])
    assert(n[1] > 0 and n[2] > 0, "keys not spread over the example's two servers")
    c:close()
    assert.equal(0, (E:stop(gw)), "exit status on SIGTERM")
  end)
end)
