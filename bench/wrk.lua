-- Put by bench/harness.py in front of every scenario's wrk script: numbers the
-- threads (`thread_id` in init), checks each answer and prints one JSON line at
-- the end. The scenario's script defines request() and may define
-- accept(status, body) (default: a 200) and count `exhausted` requests it could
-- not send (it ran out of pre-generated ones).

local threads = {}
bad = 0
exhausted = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function accept(status, body)
  return status == 200
end

function response(status, headers, body)
  if not accept(status, body) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total_bad, total_exhausted = 0, 0
  for _, thread in ipairs(threads) do
    total_bad = total_bad + thread:get("bad")
    total_exhausted = total_exhausted + thread:get("exhausted")
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, '
    .. '"max_ms": %.3f, "socket_errors": %d, "bad_answers": %d, "exhausted": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    errors.connect + errors.read + errors.write + errors.timeout, total_bad, total_exhausted))
end
