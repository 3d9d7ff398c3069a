-- wrk script: signed plaintext text pushes, a fresh MsgId on every request.
-- Every wrk thread numbers its own MsgIds; signatures for each minute of the
-- run are precomputed by the Python driver (wrk's Lua has no sha1).
-- Environment: BENCH_PATH, BENCH_SIGS ("ts:sig,ts:sig,..." one per minute),
-- BENCH_RUN (digits unique to the run, so no MsgId repeats across runs either).
-- Pushes come from FOLLOWERS followers in turn, as a bot's load does, so per-follower
-- work (a greeting's lookup) is not served from one warm entry.

local FOLLOWERS = 1000

local threads = {}
local counter = 0
local id = 0
local sigs = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  id = wrk.thread:get("id")
  for ts, sig in string.gmatch(os.getenv("BENCH_SIGS"), "(%d+):(%x+)") do
    table.insert(sigs, {tonumber(ts), sig})
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "text/xml"
end

local function signed_path(openid)
  local now = os.time()
  local best = sigs[1]
  for _, pair in ipairs(sigs) do
    if pair[1] <= now then best = pair end
  end
  return os.getenv("BENCH_PATH") .. "?signature=" .. best[2] .. "&timestamp=" .. best[1]
    .. "&nonce=1514711492&openid=" .. openid, best[1]
end

function request()
  counter = counter + 1
  local openid = string.format("o6_bmjrPTlm6_2sgVt7hMZ%06d", (counter * 7 + id) % FOLLOWERS)
  local path, ts = signed_path(openid)
  local body = "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
    .. "<FromUserName><![CDATA[" .. openid .. "]]></FromUserName>"
    .. "<CreateTime>" .. ts .. "</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    .. "<Content><![CDATA[你好]]></Content><MsgId>" .. os.getenv("BENCH_RUN") .. string.format("%02d%010d", id, counter)
    .. "</MsgId></xml>"
  return wrk.format(nil, path, nil, body)
end

errors = 0
function response(status, headers, body)
  if status ~= 200 or not string.find(body, "<xml>", 1, true) then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("errors")
  end
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, '
    .. '"max_ms": %.3f, "socket_errors": %d, "bad_answers": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
      + summary.errors.status, bad))
end
