-- The hot-key detector (issue 13, item 3): 1 in `sample` keys feeds a Space-Saving top-K per
-- worker over a sliding window; `stats hotkeys` lists the hottest with their estimated rate,
-- command mix and pool; the metrics export them (the key label only with expose_keys). It
-- must find a key that takes 1 % of the traffic among 100,000 others within 2 s.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"
local socket = require "socket"

-- `stats hotkeys` as { sample =, entries = { {key=, rps=, pool=, get_rps=, ...}, ... } }.
local function hotkeys(port)
  local st = client.connect(port):stats("stats hotkeys")
  local out = { sample = tonumber(st.hotkeys_sample), entries = {} }
  for name, v in pairs(st) do
    local rank, field = name:match("^hotkey:(%d+):([%w_]+)$")
    if rank then
      rank = tonumber(rank)
      out.entries[rank] = out.entries[rank] or {}
      out.entries[rank][field] = tonumber(v) or v
    end
  end
  return out
end

-- Drive gets for `seconds` over one pipelined connection: 1 % to hot, the rest uniformly over
-- 100,000 other keys. Returns requests sent and the hot key's share of them.
local function load(port, hot, seconds)
  local s = assert(socket.tcp())
  s:settimeout(10)
  assert(s:connect("127.0.0.1", port))
  local sent, hot_sent, t_end = 0, 0, socket.gettime() + seconds
  local rng = 12345
  while socket.gettime() < t_end do
    local batch = {}
    for i = 1, 400 do
      rng = (rng * 1103515245 + 12345) % 2147483648
      if rng % 100 == 0 then
        batch[i] = "get " .. hot .. "\r\n"
        hot_sent = hot_sent + 1
      else
        batch[i] = "get cold:" .. (rng % 100000) .. "\r\n"
      end
    end
    assert(s:send(table.concat(batch)))
    sent = sent + 400
    local ends = 0
    while ends < 400 do -- every reply ends with END (all misses but the hot key's)
      local l = assert(s:receive("*l"))
      if l == "END" then ends = ends + 1 end -- luasocket drops the \r
    end
  end
  s:close()
  return sent, hot_sent
end

describe("hot keys", function()
  local E
  lazy_setup(function() E = env.new("hotkeys") end)
  lazy_teardown(function() if E then E:teardown() end end)
  after_each(function() if E then E:close_clients() end end)

  local function gateway(mc, opts, mport)
    return E:gateway { threads = 2, args = mport and { "--metrics", "127.0.0.1:" .. mport } or nil,
      config = string.format([[
        local mg = require "mintgate"
        %s
        mg.route { default = mg.pool { name = "main", servers = { "127.0.0.1:%d" } } }
      ]], opts or "", mc.port) }
  end

  it("finds a key taking 1 % of the traffic among 100,000 others within 2 s", function()
    local A = E:memcached()
    local gw = gateway(A)
    -- stored on memcached itself: a set through the gateway would be in the command mix,
    -- and on a loaded machine (few requests in the 2 s) weigh over 1 % of the key's rate
    assert.equal("STORED", E:client(A.port):set("hot:key", "v"))
    local t0 = socket.gettime()
    local sent, hot_sent = load(gw.port, "hot:key", 2)
    local took = socket.gettime() - t0
    local h = hotkeys(gw.port)
    assert.equal(64, h.sample) -- the default
    local top = h.entries[1]
    assert(top, "no hot keys after " .. sent .. " requests")
    local rank
    for r = 1, 3 do if h.entries[r] and h.entries[r].key == "hot:key" then rank = r end end
    assert(rank, string.format("hot:key not in the top 3 after %.1f s, %d requests: top is %s",
      took, sent, tostring(top.key)))
    local e = h.entries[rank]
    assert.equal("main", e.pool)
    local true_rps = hot_sent / took
    assert(e.rps > true_rps / 2 and e.rps < true_rps * 2,
      string.format("estimated %.0f/s, sent %.0f/s", e.rps, true_rps))
    assert(e.get_rps >= e.rps * 0.99, "command mix: all gets")
  end)

  it("the metrics show the hot keys, with the key label only when expose_keys is on", function()
    local A = E:memcached()
    local mport = env.free_port()
    local gw = gateway(A, "mg.hotkeys { sample = 8, top = 4 }", mport)
    assert(env.wait_until(5, function() return env.port_open(mport) end, 0.02))
    load(gw.port, "hot:m", 0.5)
    local function scrape(port)
      local s = assert(socket.tcp())
      s:settimeout(5)
      assert(s:connect("127.0.0.1", port))
      s:send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
      local body = s:receive("*a")
      s:close()
      return body
    end
    local body = scrape(mport)
    assert.matches('mintgate_hotkey_requests_per_second{rank="1",pool="main"} [%d.]+', body)
    assert.is_nil(body:find('key="', 1, true))
    local n = select(2, body:gsub("\nmintgate_hotkey_requests_per_second{", ""))
    assert(n >= 1 and n <= 4, n .. " series (top = 4)")
    assert.equal(8, hotkeys(gw.port).sample)
    local mport2 = env.free_port()
    local gw2 = gateway(A, "mg.hotkeys { sample = 8, expose_keys = true }", mport2)
    assert(env.wait_until(5, function() return env.port_open(mport2) end, 0.02))
    load(gw2.port, 'hot"k\\ey', 0.5) -- a quote and a backslash: escaped in the label
    local body2 = scrape(mport2)
    assert(body2:find('mintgate_hotkey_requests_per_second{rank="1",pool="main",key="hot\\"k\\\\x5cey"}',
      1, true), body2:match("mintgate_hotkey_requests_per_second{[^\n]*") or "no hot key series")
  end)

  it("enabled = false turns it off", function()
    local A = E:memcached()
    local gw = gateway(A, "mg.hotkeys { enabled = false }")
    load(gw.port, "hot:off", 0.3)
    local h = hotkeys(gw.port)
    assert.equal(0, h.sample)
    assert.is_nil(h.entries[1])
  end)
end)
