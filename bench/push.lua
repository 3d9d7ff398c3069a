-- wrk script (after bench/wrk.lua): sends pre-signed pushes, never one twice.
-- Each thread reads its own file, BENCH_PUSHES .. "." .. thread_id, of whole HTTP
-- requests, each preceded by its length in 6 digits (bench/pushes.py writes them).
-- An answer counts when it is a 200 holding BENCH_EXPECT ("<Content>" for a text
-- reply, "<Encrypt>" for an encrypted one).

local file
local expect = os.getenv("BENCH_EXPECT")

function init(args)
  file = assert(io.open(os.getenv("BENCH_PUSHES") .. "." .. thread_id, "rb"))
end

function request()
  local size = file:read(6)
  if not size then
    exhausted = exhausted + 1
    return wrk.format("GET", "/bench-ran-out-of-pushes")
  end
  return file:read(tonumber(size))
end

function accept(status, body)
  return status == 200 and string.find(body, expect, 1, true) ~= nil
end
