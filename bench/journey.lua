-- The OAuth journey's wrk script (after bench/wrk.lua): each callback URL made before
-- the run (a fresh code from the simulator, a state the contender minted) is sent
-- once, never again; the sign-in cookie its answer sets is then sent to /me, before
-- any further callback. So every other request is a callback and every other a /me.
-- Environment: BENCH_JOURNEYS (a file, one callback path and query per line; thread
-- n of BENCH_WRK_THREADS takes lines n, n + threads, ...), BENCH_ME_MARK (what a
-- follower's page holds), BENCH_ME_OFFLINE (what it holds when WeChat failed).

local callbacks = {}
local next_callback = 1
local cookies = {}

function init(args)
  local threads = tonumber(os.getenv("BENCH_WRK_THREADS"))
  local line_number = 0
  for line in io.lines(os.getenv("BENCH_JOURNEYS")) do
    if line_number % threads == thread_id - 1 then
      table.insert(callbacks, line)
    end
    line_number = line_number + 1
  end
end

function request()
  local cookie = table.remove(cookies)
  if cookie then
    return wrk.format("GET", "/me", {["Cookie"] = cookie})
  end
  local path = callbacks[next_callback]
  if path == nil then
    exhausted = exhausted + 1
    return wrk.format("GET", "/healthz")
  end
  next_callback = next_callback + 1
  return wrk.format("GET", path)
end

local mark, offline = os.getenv("BENCH_ME_MARK"), os.getenv("BENCH_ME_OFFLINE")

function response(status, headers, body)
  local cookie = headers["Set-Cookie"]
  if status == 303 and cookie then
    table.insert(cookies, string.match(cookie, "^[^;]+"))
  elseif status ~= 200 or not string.find(body, mark, 1, true)
      or (offline ~= "" and string.find(body, offline, 1, true)) then
    bad = bad + 1
  end
end
