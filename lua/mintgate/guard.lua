--- mintgate.guard: inside the gateway's own coroutines only pool calls may wait.
--
-- A script that calls coroutine.yield itself in a route function, key function or hook
-- would leave its request waiting for a resume that never comes; the guard makes that an
-- error (the request fails with SERVER_ERROR lua: ...). Coroutines the script makes
-- itself yield as usual. The gateway installs it once per worker, before the script runs.
local M = {}

--- Replace coroutine.yield with the guarded one.
-- @param cos the gateway's coroutines: a table whose keys are their threads
-- @return the original coroutine.yield, for the gateway's own waits
function M.install(cos)
  local yield, running, error = coroutine.yield, coroutine.running, error
  coroutine.yield = function(...) -- luacheck: ignore 122
    if cos[running()] then
      error("coroutine.yield is not allowed here (only pool calls wait)", 2)
    end
    return yield(...)
  end
  return yield
end

return M
