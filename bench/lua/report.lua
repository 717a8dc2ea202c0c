-- Shared by every wrk run of the bench: print one JSON line with the figures bench/wrk.py reads.
local M = {}

function M.json(summary, latency, extra)
  local e = summary.errors
  local parts = {
    string.format('"requests":%d', summary.requests),
    string.format('"duration_us":%d', summary.duration),
    string.format('"bytes":%d', summary.bytes),
    string.format('"p50_us":%d', latency:percentile(50.0)),
    string.format('"p90_us":%d', latency:percentile(90.0)),
    string.format('"p99_us":%d', latency:percentile(99.0)),
    string.format('"max_us":%d', latency.max),
    string.format('"errors_connect":%d', e.connect),
    string.format('"errors_read":%d', e.read),
    string.format('"errors_write":%d', e.write),
    string.format('"errors_status":%d', e.status),
    string.format('"errors_timeout":%d', e.timeout),
  }
  for name, value in pairs(extra or {}) do
    table.insert(parts, string.format('"%s":%d', name, value))
  end
  io.write("BENCH_JSON {" .. table.concat(parts, ",") .. "}\n")
end

-- The JSON line of a script that counts good and bad answers in the globals `ok` and `bad` of each
-- of its `threads` (wrk's per-thread Lua states), summed.
function M.json_with_counts(summary, latency, threads)
  local total_ok, total_bad = 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_bad = total_bad + thread:get("bad")
  end
  M.json(summary, latency, { ok = total_ok, bad = total_bad })
end

return M
