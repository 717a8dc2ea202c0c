-- Signed carrier callbacks, one per request, replayed from a file written by bench/carrier_callbacks.py:
-- one request per line, "path<TAB>signature<TAB>form body". Each connection takes the next line; the
-- file holds more callbacks than the run can send, so none repeats.
-- args: requests_file
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local report = require("report")

local lines = {}
local next_line = 1
ok, bad = 0, 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local path, signature, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    lines[#lines + 1] = { path, signature, body }
  end
end

function request()
  local item = lines[next_line]
  next_line = next_line % #lines + 1
  return wrk.format("POST", item[1], {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = item[2],
  }, item[3])
end

function response(status, headers, body)
  if status == 204 then
    ok = ok + 1
  else
    bad = bad + 1
    if bad <= 3 then
      io.stderr:write("unexpected response " .. status .. ": " .. string.sub(body, 1, 300) .. "\n")
    end
  end
end

function done(summary, latency, requests)
  report.json_with_counts(summary, latency, threads)
end
