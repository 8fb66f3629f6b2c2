-- Meta commands (mg/ms/md/ma/mn/me) through the gateway, with two real memcached behind
-- it: flags and opaque tokens come back exactly as memcached gives them.
--
-- MINTGATE_REFERENCE=1 runs the same expectations against one real memcached directly.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local REF = env.reference

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {}
    for j = 3, 0, -1 do
      local v = math.floor(n / 64 ^ j) % 64
      q[#q + 1] = B64:sub(v + 1, v + 1)
    end
    if not b then q[3], q[4] = "=", "=" elseif not c then q[4] = "=" end
    out[#out + 1] = table.concat(q)
  end
  return table.concat(out)
end

describe("meta commands" .. (REF and " [reference: memcached directly]" or " through the gateway"), function()
  local E, target

  local function connect() return E:client(target.port) end

  lazy_setup(function()
    E = env.new("meta")
    local a = E:memcached()
    if REF then
      target = a
    else
      local b = E:memcached()
      target = E:gateway { servers = { a.port, b.port } }
    end
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  after_each(function() E:close_clients() end)

  it("ms stores with client flags and TTL; mg returns the flags asked for, in order", function()
    local c = connect()
    assert.equal("HD", c:cmd("ms mt:k 2 T0 F5\r\nhi"))
    c:send("mg mt:k v f t O99\r\n")
    local line, value = c:meta_reply()
    assert.equal("VA 2 f5 t-1 O99", line)
    assert.equal("hi", value)
    c:send("mg mt:k t v f O123 k s c\r\n")
    line, value = c:meta_reply()
    assert.matches("^VA 2 t%-1 f5 O123 kmt:k s2 c%d+$", line)
    assert.equal("hi", value)
    -- no v: HD with the flags
    assert.equal("HD f5 Oabc", c:cmd("mg mt:k f Oabc"))
    assert.equal("HD", c:cmd("mg mt:k"))
  end)

  it("a miss is EN, with the opaque and key echoed", function()
    local c = connect()
    assert.equal("EN", c:cmd("mg mt:nosuch v"))
    assert.equal("EN O5", c:cmd("mg mt:nosuch v O5"))
    assert.equal("EN kmt:nosuch O5", c:cmd("mg mt:nosuch v k O5"))
  end)

  it("ms with a TTL: mg t shows it", function()
    local c = connect()
    assert.equal("HD", c:cmd("ms mt:ttl 1 T100\r\nx"))
    local line = c:cmd("mg mt:ttl t")
    local ttl = tonumber(line:match("^HD t(%d+)$"))
    assert(ttl and ttl > 90 and ttl <= 100, "unexpected " .. line)
  end)

  it("ms c returns the cas; C compares it (EX on mismatch); mg c agrees", function()
    local c = connect()
    local cas = c:cmd("ms mt:cas 2 c\r\nv1"):match("^HD c(%d+)$")
    assert(cas, "ms c did not return a cas")
    assert.equal("HD c" .. cas, c:cmd("mg mt:cas c"))
    assert.equal("EX O3", c:cmd("ms mt:cas 2 C" .. (tonumber(cas) + 1000) .. " O3\r\nv2"))
    assert.equal("HD", c:cmd("ms mt:cas 2 C" .. cas .. "\r\nv3"))
    c:send("mg mt:cas v\r\n")
    assert.equal("v3", select(2, c:meta_reply()))
  end)

  it("ms modes: append (MA), add (ME), replace (MR)", function()
    local c = connect()
    assert.equal("HD", c:cmd("ms mt:mode 2\r\nhi"))
    assert.equal("HD", c:cmd("ms mt:mode 2 MA\r\nyo"))
    c:send("mg mt:mode v\r\n")
    assert.equal("hiyo", select(2, c:meta_reply()))
    assert.equal("NS", c:cmd("ms mt:mode 2 ME\r\nxx"))
    assert.equal("HD", c:cmd("ms mt:mode:new 2 ME\r\nxx"))
    assert.equal("NS", c:cmd("ms mt:mode:none 2 MR\r\nxx"))
  end)

  it("mn is answered after every earlier reply", function()
    local c = connect()
    c:send("ms mt:a 1\r\na\r\nms mt:b 1\r\nb\r\nmg mt:a v\r\nmg mt:nosuch v\r\nmg mt:b v\r\nmn\r\n")
    assert.equal("HD", c:line())
    assert.equal("HD", c:line())
    assert.same({ "VA 1", "a" }, { c:meta_reply() })
    assert.equal("EN", c:line())
    assert.same({ "VA 1", "b" }, { c:meta_reply() })
    assert.equal("MN", c:line())
  end)

  it("quiet mode: misses and HD are left out, hits and mn are not", function()
    local c = connect()
    assert.equal("HD", c:cmd("ms mt:q 2\r\nqq"))
    c:send("mg mt:missing v q\r\nmg mt:q v q\r\nmn\r\n")
    assert.same({ "VA 2", "qq" }, { c:meta_reply() })
    assert.equal("MN", c:line())
    c:send("ms mt:q2 1 q\r\nx\r\nmd mt:q2 q\r\nmg mt:q k q\r\nmn\r\n")
    assert.equal("HD kmt:q", c:line())
    assert.equal("MN", c:line())
    assert.equal("EN", c:cmd("mg mt:q2 v"))
    assert.is_false(c:has_data(0.1), "unexpected bytes: " .. client.show(c:drain()))
  end)

  it("base64 keys: b decodes the key, k echoes it encoded", function()
    local c = connect()
    -- "bWV0YWtleQ==" is base64 for "metakey"
    assert.equal("HD", c:cmd("ms bWV0YWtleQ== 3 b\r\nabc"))
    c:send("mg bWV0YWtleQ== b v k\r\n")
    assert.same({ "VA 3 kbWV0YWtleQ== b", "abc" }, { c:meta_reply() })
  end)

  it("base64 keys are the same items as their plain names (placed by the decoded key)", function()
    local c = connect()
    -- with two backends one key could land right by chance: 16 keys cannot
    local wrong = {}
    for i = 1, 16 do
      local plain = "b64:key:" .. i
      local enc = base64(plain)
      assert.equal("HD", c:cmd(string.format("ms %s 2 b\r\n%02d", enc, i)))
      local items = c:get(plain)
      if not (items[plain] and items[plain].value == string.format("%02d", i)) then
        wrong[#wrong + 1] = plain .. " (" .. enc .. ")"
      end
      assert.equal("STORED", c:set(plain, "p" .. i))
      c:send(string.format("mg %s b v\r\n", enc))
      local line, value = c:meta_reply()
      if value ~= "p" .. i then wrong[#wrong + 1] = plain .. " via b: " .. line .. " " .. client.show(value) end
    end
    assert(#wrong == 0, "base64 and plain names reach different items: " .. table.concat(wrong, ", "))
  end)

  it("md deletes (HD, then NF); q hides HD", function()
    local c = connect()
    assert.equal("HD", c:cmd("ms mt:del 1\r\nx"))
    assert.equal("HD O7", c:cmd("md mt:del O7"))
    assert.equal("NF", c:cmd("md mt:del"))
    assert.equal("EN", c:cmd("mg mt:del v"))
    assert.equal("HD", c:cmd("ms mt:del 1\r\nx"))
    c:send("md mt:del q\r\nmn\r\n")
    assert.equal("MN", c:line())
    assert.equal("EN", c:cmd("mg mt:del v"))
  end)

  it("md I marks stale instead of deleting: mg then shows X and W", function()
    local c = connect()
    assert.equal("HD", c:cmd("ms mt:stale 1 T100\r\nx"))
    assert.equal("HD", c:cmd("md mt:stale I T30"))
    -- the return flags as a sorted list (memcached puts W/X/Z after the others, in no
    -- documented order)
    local function flags(line)
      local t = {}
      for tok in line:gmatch("%S+") do t[#t + 1] = tok:match("^c%d+$") and "c" or tok end
      table.sort(t)
      return table.concat(t, " ")
    end
    c:send("mg mt:stale v c\r\n")
    local line, value = c:meta_reply()
    assert.equal(flags("VA 1 c W X"), flags(line))
    assert.equal("x", value)
    -- the win is given once: the next reader gets Z
    c:send("mg mt:stale v\r\n")
    line = c:meta_reply()
    assert.equal(flags("VA 1 X Z"), flags(line))
  end)

  it("ma: NF when missing, N/J autovivify, D delta, MD decrement, v returns the value", function()
    local c = connect()
    assert.equal("NF", c:cmd("ma mt:cnt"))
    assert.equal("HD", c:cmd("ma mt:cnt N0 J13"))
    c:send("ma mt:cnt v\r\n")
    assert.same({ "VA 2", "14" }, { c:meta_reply() })
    c:send("ma mt:cnt MD D5 v\r\n")
    assert.same({ "VA 1", "9" }, { c:meta_reply() })
    c:send("ma mt:cnt MI D100 v N0 t\r\n")
    assert.same({ "VA 3 t-1", "109" }, { c:meta_reply() })
    c:send("ma mt:cnt v O7 k\r\n")
    assert.same({ "VA 3 O7 kmt:cnt", "110" }, { c:meta_reply() })
    assert.equal("110", c:value("mt:cnt"))
    assert.equal("CLIENT_ERROR invalid mode for ma M token", c:cmd("ma mt:cnt MX"))
  end)

  it("me returns the debug line of the key's backend, EN when missing", function()
    local c = connect()
    assert.equal("HD", c:cmd("ms mt:me 2\r\nhi"))
    assert.matches("^ME mt:me exp=%-1 la=%d+ cas=%d+ fetch=%a+ cls=%d+ size=%d+$", c:cmd("me mt:me"))
    assert.equal("EN", c:cmd("me mt:nosuch"))
  end)

  it("meta and classic commands see the same items", function()
    local c = connect()
    assert.equal("STORED", c:cmd("set mt:mix 9 0 3\r\nabc"))
    c:send("mg mt:mix v f\r\n")
    assert.same({ "VA 3 f9", "abc" }, { c:meta_reply() })
    assert.equal("HD", c:cmd("ms mt:mix 3 F4\r\nxyz"))
    assert.same({ flags = 4, value = "xyz" }, c:get("mt:mix")["mt:mix"])
  end)

  it("a pipelined mix of meta and classic commands is answered in order", function()
    local c = connect()
    local req = {}
    for i = 1, 100 do
      req[#req + 1] = string.format("ms mt:p%d %d T0 F%d O%d\r\n%s\r\n", i, #tostring(i), i, i, i)
      req[#req + 1] = string.format("mg mt:p%d f v O%d\r\n", i, i)
      req[#req + 1] = string.format("get mt:p%d\r\n", i)
    end
    req[#req + 1] = "mn\r\n"
    c:send(table.concat(req))
    for i = 1, 100 do
      assert.equal("HD O" .. i, c:line())
      assert.same({ string.format("VA %d f%d O%d", #tostring(i), i, i), tostring(i) }, { c:meta_reply() })
      assert.equal(tostring(i), c:get_reply()["mt:p" .. i].value)
    end
    assert.equal("MN", c:line())
  end)
end)
