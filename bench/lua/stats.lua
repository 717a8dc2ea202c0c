-- GET with fixed headers (given on the wrk command line); prints the JSON summary.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local report = require("report")

function done(summary, latency, requests)
  report.json(summary, latency)
end
