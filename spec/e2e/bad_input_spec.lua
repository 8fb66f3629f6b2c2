-- Bad input through the gateway (two real memcached behind it): every row sends some
-- bytes on a fresh connection, checks the reply lines, then proves the connection still
-- works (`version`, set/get) or that it was closed.
--
-- Every expected line is compared exactly. MINTGATE_REFERENCE=1 (spec/run_reference.sh)
-- runs the same rows against one real memcached directly, to check that the expected
-- answers are what memcached 1.6.18 really says; `memcached` holds its lines where the
-- gateway deliberately differs (and the row's note says so).
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local REF = env.reference
local K250, K251 = ("k"):rep(250), ("k"):rep(251)

-- The small value maximum the gateway runs with here (-I). memcached 1.6.18 is not usable
-- with a small -I (below 128k it will not start or crashes, and at 128k it crashed on a
-- value swallowed in pieces), so reference mode uses plain memcached and its 1 MB maximum.
local SMALL_MAX = REF and 1048576 or 1024
local TOO_BIG = 2 * SMALL_MAX

-- Rows: name, bytes (a string, or a list of chunks sent 50 ms apart), the exact reply
-- lines the gateway sends (and memcached too, unless `memcached` says otherwise), and
-- options:
--   memcached = the exact lines memcached 1.6.18 answers where the gateway deliberately
--               differs (checked in reference mode instead of the gateway's; the note
--               must say "deliberate"); pattern = true when the lines are Lua patterns
--               (anchored) because they hold a version; reference = false for a row
--               plain memcached cannot run; survives = false when the connection must be closed;
--   small = true to run against the gateway started with -I SMALL_MAX; check = function
--   (c) run after the row on the same connection; note = why the row is the way it is.
local rows = {
  { "unknown command", "foo\r\n", { "ERROR" } },
  { "empty line", "\r\n", { "ERROR" } },
  { "commands are case sensitive", "GET k\r\n", { "ERROR" } },
  { "get without a key", "get\r\n", { "ERROR" } },
  { "a line ending in a bare LF is accepted", "version\n", { "VERSION .+" }, pattern = true },
  { "a key of 250 bytes is fine", "get " .. K250 .. "\r\n", { "END" } },
  { "get: key of 251 bytes", "get " .. K251 .. "\r\n", { "CLIENT_ERROR bad command line format" } },
  { "get: 251-byte key among good keys", "get a " .. K251 .. " b\r\n",
    { "CLIENT_ERROR bad command line format" } },
  { "gets: key of 251 bytes", "gets " .. K251 .. "\r\n",
    { "CLIENT_ERROR bad command line format" } },
  { "set: key of 251 bytes (its data line is then read as a command)",
    "set " .. K251 .. " 0 0 1\r\nx\r\n", { "CLIENT_ERROR bad command line format", "ERROR" },
    note = "memcached does not trust the line, so it does not skip the data block" },
  { "delete: key of 251 bytes", "delete " .. K251 .. "\r\n",
    { "CLIENT_ERROR bad command line format" } },
  { "incr: key of 251 bytes", "incr " .. K251 .. " 1\r\n",
    { "CLIENT_ERROR bad command line format" } },
  { "touch: key of 251 bytes", "touch " .. K251 .. " 0\r\n",
    { "CLIENT_ERROR bad command line format" } },
  { "mg: key of 251 bytes", "mg " .. K251 .. " v\r\n", { "CLIENT_ERROR bad command line format" } },
  { "get: key with a control character", "get a\1b\r\n", { "CLIENT_ERROR bad command line format" },
    memcached = { "END" },
    note = "deliberate: memcached's text protocol does not check key bytes, the gateway " ..
      "rejects control characters (they could not be forwarded safely)" },
  { "set: negative length", "set k 0 0 -1\r\n", { "CLIENT_ERROR bad command line format" } },
  { "set: non-numeric length", "set k 0 0 abc\r\n", { "CLIENT_ERROR bad command line format" } },
  { "set: length over 32 bits", "set k 0 0 4294967296\r\n",
    { "CLIENT_ERROR bad command line format" },
    reference = false,
    note = "deliberate: memcached 1.6.18 truncates the length to 32 bits (0 here) and waits " ..
      "for that data block; the gateway refuses the line" },
  { "set: non-numeric flags", "set k abc 0 1\r\n", { "CLIENT_ERROR bad command line format" } },
  { "set: negative flags", "set k -1 0 1\r\n", { "CLIENT_ERROR bad command line format" } },
  { "set: non-numeric exptime", "set k 0 abc 1\r\n", { "CLIENT_ERROR bad command line format" } },
  { "set: too few fields", "set k 0 0\r\n", { "ERROR" } },
  { "cas: non-numeric cas", "cas k 0 0 1 abc\r\n", { "CLIENT_ERROR bad command line format" } },
  { "incr: non-numeric delta", "incr k abc\r\n",
    { "CLIENT_ERROR invalid numeric delta argument" } },
  { "incr: negative delta", "incr k -1\r\n", { "CLIENT_ERROR invalid numeric delta argument" } },
  { "incr: delta over 64 bits", "incr k 18446744073709551616\r\n",
    { "CLIENT_ERROR invalid numeric delta argument" } },
  { "incr: no delta", "incr k\r\n", { "ERROR" } },
  { "touch: non-numeric exptime", "touch k abc\r\n", { "CLIENT_ERROR invalid exptime argument" } },
  { "gat: non-numeric exptime", "gat abc k\r\n", { "CLIENT_ERROR invalid exptime argument" } },
  { "delete with a non-zero time", "delete k 5\r\n",
    { "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]" } },
  { "verbosity without a level", "verbosity\r\n", { "ERROR" } },
  { "flush_all: non-numeric delay", "flush_all abc\r\n",
    { "CLIENT_ERROR invalid exptime argument" } },
  { "ms: non-numeric length", "ms k abc T0\r\n", { "CLIENT_ERROR bad command line format" } },
  { "ms: invalid mode flag", "ms k 2 MX\r\nyo\r\n",
    { "CLIENT_ERROR invalid mode for ms M token" } },
  { "mg: a duplicate flag", "mg k v v\r\n", { "CLIENT_ERROR duplicate flag" } },
  { "mg: two flags run together (qx)", "mg k qx\r\n", { "CLIENT_ERROR invalid flag" },
    memcached = {},
    note = "deliberate: memcached reads `qx` as `q` (a quiet miss: no reply); the gateway " ..
      "refuses flags it cannot forward with exactly one reply of a known shape" },
  { "mg: a flag run together after a good one", "mg k v qx\r\n", { "CLIENT_ERROR invalid flag" },
    memcached = {},
    note = "deliberate: as above, memcached answers the quiet miss with nothing" },
  { "ms: a flag with a stray \\r (line ending \\r\\r\\n): refused with its block",
    "ms msq 2 q\r\r\nyo\r\n", { "CLIENT_ERROR invalid flag" },
    memcached = {},
    note = "deliberate: memcached takes `q\\r` as `q` and stores quietly; the gateway refuses " ..
      "the flag and drops the data block" },
  { "ms: key of 251 bytes: refused with its data block", "ms " .. K251 .. " 2 T0\r\nyo\r\n",
    { "CLIENT_ERROR bad command line format" },
    memcached = { "CLIENT_ERROR bad command line format", "ERROR" },
    note = "deliberate: the gateway swallows the data block, as newer memcached does; " ..
      "1.6.18 reads it as a command" },
  { "data block longer than announced", "set badchunk 0 0 3\r\nabcdef\r\n",
    { "CLIENT_ERROR bad data chunk", "ERROR" },
    note = "5 bytes are taken as the block (3 + \\r\\n); the rest, \"f\", is an unknown command",
    check = function(c)
      assert.is_nil(c:get("badchunk").badchunk, "a bad data chunk must not be stored")
    end },
  { "data block shorter than announced (the next line completes it)",
    { "set k 0 0 10\r\nabc\r\n", "version\r\n" }, { "CLIENT_ERROR bad data chunk", "ERROR" },
    note = "\"abc\\r\\nversi\" is the block, \"on\" is not \\r\\n, the last \\r\\n is an empty line" },
  { "data block not ending in \\r\\n", "set k 0 0 2\r\nab\n\r\n",
    { "CLIENT_ERROR bad data chunk", "ERROR" } },
  { "ms: data block longer than announced", "ms k 2 T0\r\nabcdef\r\n",
    { "CLIENT_ERROR bad data chunk", "ERROR" } },
  { "value over the maximum (-I): refused and swallowed",
    "set big 0 0 " .. TOO_BIG .. "\r\n" .. ("v"):rep(TOO_BIG) .. "\r\n",
    { "SERVER_ERROR object too large for cache" }, small = true,
    check = function(c) assert.is_nil(c:get("big").big) end },
  { "value over the maximum arriving in pieces: swallowed as it comes",
    { "set big 0 0 " .. TOO_BIG .. "\r\n" .. ("v"):rep(10), ("v"):rep(TOO_BIG / 2),
      ("v"):rep(TOO_BIG / 2 - 10) .. "\r\n" },
    { "SERVER_ERROR object too large for cache" }, small = true,
    check = function(c) assert.is_nil(c:get("big").big) end },
  { "value over the maximum with noreply: swallowed, nothing comes back",
    "set big 0 0 " .. TOO_BIG .. " noreply\r\n" .. ("v"):rep(TOO_BIG) .. "\r\n", {},
    small = true },
  { "ms: value over the maximum", "ms big " .. TOO_BIG .. " T0\r\n" .. ("v"):rep(TOO_BIG) .. "\r\n",
    { "SERVER_ERROR object too large for cache" }, small = true },
  { "value over the 1 MB default maximum (1 MB + 1)",
    "set big 0 0 1048577\r\n" .. ("v"):rep(1048577) .. "\r\n",
    { "SERVER_ERROR object too large for cache" },
    check = function(c) assert.is_nil(c:get("big").big) end },
  { "binary garbage", "\128\0\0\0\255\254\1\r\n", { "ERROR" },
    note = "not as the first bytes of a connection: memcached would switch to its binary protocol" },
  { "binary garbage over several lines", "\128\1\r\n\255\254\r\n\0\0\r\n",
    { "ERROR", "ERROR", "ERROR" } },
  { "a long multiget line (50 KB, 5000 keys) is fine",
    "get " .. ("abcdefghi "):rep(5000) .. "\r\n", { "END" } },
  { "a 3000-byte line without newline: an error, then close", ("x"):rep(3000),
    { "CLIENT_ERROR line too long" },
    memcached = {}, survives = false,
    note = "deliberate: memcached closes without a word, the gateway says why first" },
}

local function show_lines(lines)
  local t = {}
  for i, l in ipairs(lines) do t[i] = client.show(l) end
  return "{ " .. table.concat(t, ", ") .. " }"
end

describe("bad input" .. (REF and " [reference: memcached directly]" or " through the gateway"), function()
  local E, target, small

  local function connect(port) return E:client(port) end

  lazy_setup(function()
    E = env.new("bad_input")
    if REF then
      target = E:memcached()
      small = target
    else
      local a, b = E:memcached(), E:memcached()
      -- under ASan, freed memory sits in a quarantine (256 MB by default) and would make
      -- the RSS bound below meaningless: keep it small (ignored by a normal build)
      local asan = os.getenv("ASAN_OPTIONS")
      target = E:gateway { servers = { a.port, b.port },
        env = { ASAN_OPTIONS = (asan and asan ~= "" and asan .. ":" or "") .. "quarantine_size_mb=8" } }
      small = E:gateway { servers = { a.port, b.port }, args = { "-I", tostring(SMALL_MAX) } }
    end
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  after_each(function() E:close_clients() end)

  it("the table: every row where memcached answers otherwise says why it is deliberate", function()
    for _, row in ipairs(rows) do
      if row.memcached or row.reference == false then
        assert(row.note and row.note:find("deliberate", 1, true),
          "row '" .. row[1] .. "' differs from memcached without a note saying it is deliberate")
      end
      if row.memcached then
        assert(not row.pattern, "row '" .. row[1] .. "': memcached's lines must be exact")
        assert.are_not.same(row[3], row.memcached, "row '" .. row[1] .. "': memcached = the same lines")
      end
    end
  end)

  for _, row in ipairs(rows) do
    local name, bytes, expect = row[1], row[2], row[3]
    local test = (REF and row.reference == false) and pending or it
    test(name, function()
      local port = row.small and small.port or target.port
      local c = connect(port)
      -- a text command first: memcached picks its protocol from a connection's first byte
      assert.matches("^VERSION ", c:cmd("version"))
      local chunks = type(bytes) == "table" and bytes or { bytes }
      for i, chunk in ipairs(chunks) do
        if i > 1 then env.sleep(0.05) end
        c:send(chunk)
      end
      local want = (REF and row.memcached) or expect
      local exact = not row.pattern
      local got = {}
      for i, w in ipairs(want) do
        local l, err = c:try_line(row.timeout or 3)
        assert(l, string.format("reply line %d: %s; expected %s, got so far %s", i, tostring(err),
          show_lines(want), show_lines(got)))
        got[#got + 1] = l
        if exact then
          assert(l == w, string.format("line %d: expected %s, got %s (all so far %s)", i,
            client.show(w), client.show(l), show_lines(got)))
        else
          assert(l:match("^" .. w .. "$"), string.format("line %d: expected /%s/, got %s (all so far %s)",
            i, w, client.show(l), show_lines(got)))
        end
      end
      if row.survives == false then
        assert.is_true(c:closed(3), "the connection should have been closed")
        assert.equal("", c:drain(), "nothing more than the expected lines before the close")
      else
        c:send("version\r\n")
        local v = c:line(3)
        assert(v:match("^VERSION "), "after the row, `version` should answer VERSION; got " ..
          client.show(v) .. " (an extra or missing reply line, or the connection is out of step)")
        if row.check then row.check(c) end
        assert.equal("STORED", c:set("bad_input_proof", "ok"))
        assert.equal("ok", c:value("bad_input_proof"))
      end
      -- and the server serves a new connection
      local d = connect(port)
      assert.matches("^VERSION ", d:cmd("version"))
    end)
  end

  it("a client that disconnects mid-request or mid-value does not disturb others", function()
    local other = connect(target.port)
    assert.equal("STORED", other:set("dc:k", "before"))
    local cases = {
      "get dc:k",                               -- mid line
      "set dc:k 0 0 100\r\nabc",                -- mid value
      "set dc:k 0 0 5\r\n",                     -- after the line, before the value
      ("get dc:k\r\n"):rep(200),                -- replies for a client that has gone
      "set dc:big 0 0 " .. TOO_BIG .. "\r\nvvv", -- mid swallow (too large for -I when small)
    }
    for _, bytes in ipairs(cases) do
      local c = client.connect(target.port)
      c:send(bytes)
      c:close()
      local s = client.connect(small.port)
      s:send(bytes)
      s:close()
    end
    env.sleep(0.1)
    assert.equal("before", other:value("dc:k"))
    assert.equal("STORED", other:set("dc:k", "after"))
    local fresh = connect(target.port)
    assert.equal("after", fresh:value("dc:k"))
    local fresh2 = connect(small.port)
    assert.matches("^VERSION ", fresh2:cmd("version"))
    assert.is_true(target:alive(), "the server died")
  end)

  it("a value over the maximum also removes the key's old value, as memcached does", function()
    -- memcached unlinks the old item when a set fails for size, so that a failed update
    -- never leaves the previous (now wrong) value readable.
    local c = connect(small.port)
    assert.equal("STORED", c:set("big:old", "previous"))
    c:send("set big:old 0 0 " .. TOO_BIG .. "\r\n" .. ("v"):rep(TOO_BIG) .. "\r\n")
    assert.equal("SERVER_ERROR object too large for cache", c:line(3))
    assert.is_nil(c:value("big:old"), "the old value is still readable after a refused set")
  end)

  it("a client that pipelines 50,000 gets and never reads: memory stays bounded, others served", function()
    local pid = target.pid
    local setup = connect(target.port)
    local value = ("r"):rep(4000)
    local keys = {}
    for i = 1, 8 do
      keys[i] = "hog:" .. i
      assert.equal("STORED", setup:set(keys[i], value))
    end
    local req = {}
    for i = 1, 50000 do req[i] = "get " .. keys[i % 8 + 1] .. "\r\n" end
    req = table.concat(req)
    local rss0 = assert(env.rss_kb(pid), "cannot read VmRSS of pid " .. pid)
    local hog = connect(target.port)
    -- 50,000 replies of 4 KB = 200 MB unread: the server must stop reading this client.
    local sent = hog:try_send(req, 3)
    local peak = rss0
    local other = connect(target.port)
    local deadline = env.now() + 1.5
    local served = 0
    while env.now() < deadline do
      peak = math.max(peak, env.rss_kb(pid) or peak)
      assert.equal(value, other:value(keys[served % 8 + 1]), "another client is not served")
      served = served + 1
      env.sleep(0.05)
    end
    peak = math.max(peak, env.rss_kb(pid) or peak)
    local growth_mb = (peak - rss0) / 1024
    assert(growth_mb < 64, string.format("RSS grew by %.1f MB (from %d kB to %d kB) while a client " ..
      "did not read its replies (%d of %d request bytes were accepted)", growth_mb, rss0, peak, sent, #req))
    hog:close()
    env.sleep(0.1)
    assert.equal(value, other:value("hog:1"))
    assert.is_true(target:alive(), "the server died")
  end)
end)
