-- Backend write batching: requests that arrive together reach memcached in one write
-- (`stats backends` counts the writes), and --batch-loops, which lets a write wait a few
-- loop iterations for more requests, never holds a request back once nothing more comes.
assert(jit ~= nil, "specs must run under LuaJIT")

local env = require "spec.helpers.env"
local client = require "spec.helpers.client"

local function backend_counter(c, port, name)
  local s = c:stats("stats backends")
  return tonumber(s["backend:127.0.0.1:" .. port .. ":" .. name])
end

describe("backend write batching", function()
  local E, mc

  lazy_setup(function()
    env.require_binary()
    E = env.new("batching")
    mc = E:memcached()
  end)

  lazy_teardown(function()
    if E then E:teardown() end
  end)

  for _, loops in ipairs { "0", "3", "16" } do
    describe("with --batch-loops " .. loops, function()
      local gw

      lazy_setup(function()
        gw = E:gateway { threads = 1, servers = { mc.port }, args = { "--batch-loops", loops } }
      end)

      it("sends 200 pipelined gets that arrive together in a handful of writes", function()
        local c = client.connect(gw.port)
        local prefix = "batch" .. loops .. ":"
        for i = 1, 200 do assert.equal("STORED", c:set(prefix .. i, "v" .. i)) end
        local req0 = backend_counter(c, mc.port, "requests")
        local wr0 = backend_counter(c, mc.port, "writes")
        assert(req0 and wr0, "stats backends has no requests/writes for the backend")
        local parts = {}
        for i = 1, 200 do parts[i] = "get " .. prefix .. i .. "\r\n" end
        c:send(table.concat(parts))
        for i = 1, 200 do
          local items = c:get_reply()
          assert.equal("v" .. i, items[prefix .. i] and items[prefix .. i].value, "get #" .. i)
        end
        local req1 = backend_counter(c, mc.port, "requests")
        local wr1 = backend_counter(c, mc.port, "writes")
        assert.equal(200, req1 - req0)
        -- One client write, one read (a 3 KB segment): one backend write, a few at most.
        assert(wr1 - wr0 <= 5, "200 gets took " .. (wr1 - wr0) .. " backend writes")
        c:close()
      end)

      it("answers lone requests without waiting for more to arrive", function()
        -- Every request here is alone in the loop: a write that waited for company
        -- would never be sent and the client would time out.
        local c = client.connect(gw.port, { timeout = 2 })
        for i = 1, 50 do
          assert.equal("STORED", c:set("lone:" .. loops .. ":" .. i, "x" .. i))
          assert.equal("x" .. i, c:value("lone:" .. loops .. ":" .. i))
        end
        c:close()
      end)

      it("keeps each connection's replies in order when many connections send at once", function()
        local conns = {}
        for j = 1, 20 do conns[j] = client.connect(gw.port) end
        for round = 1, 10 do
          for j, c in ipairs(conns) do
            c:send(string.format("set m:%d:%d 0 0 %d\r\n%s\r\nget m:%d:%d\r\n", j, round,
              #tostring(j * round), tostring(j * round), j, round))
          end
          for j, c in ipairs(conns) do
            assert.equal("STORED", c:line())
            local items = c:get_reply()
            local key = string.format("m:%d:%d", j, round)
            assert.equal(tostring(j * round), items[key] and items[key].value, key)
          end
        end
        for _, c in ipairs(conns) do c:close() end
      end)
    end)
  end
end)
