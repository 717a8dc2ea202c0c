-- recordCallEvents load: valid call.started then call.ended events for bulk-loaded pending contacts.
-- args: campaign_id api_key first_contact_id pool_size events_per_request [address]
-- address "phone" names each contact by its phone (bench/dataset.py's pending contacts:
-- +1 2122000000 + its offset in the campaign) instead of contact_id.
-- Batches (events_per_request = 2k) carry k contacts, each started and ended in the same request.
-- Single events (events_per_request = 1) start a block of LAG contacts, then end them, so an end
-- is sent thousands of requests after its start. A contact is called again in the next round
-- (outcomes are all retryable and max_attempts is 100), with new call and event ids.
package.path = package.path .. ";" .. debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua"
local report = require("report")

local LAG = 2048
local OUTCOMES = { "busy", "no_answer", "voicemail", "failed" }
local campaign, first, pool, per, sent, by_phone = "", 0, 1, 1, 0, false
ok, bad = 0, 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  campaign, first, pool, per = args[1], tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  by_phone = args[6] == "phone"
  wrk.method = "POST"
  wrk.headers["x-api-key"] = args[2]
  wrk.headers["Content-Type"] = "application/json"
  applied = '"applied":' .. per .. ","
end

local function event(slot, ended)
  local contact = first + slot % pool
  local call = "r" .. math.floor(slot / pool) .. "c" .. contact
  local who = string.format('"contact_id":%d', contact)
  if by_phone then
    who = string.format('"phone":"+1%d"', 2122000000 + slot % pool)
  end
  if ended then
    return string.format(
      '{"event_id":"%se","campaign_id":"%s",%s,"call_id":"%s","type":"call.ended",'
        .. '"outcome":"%s","duration_seconds":0,"occurred_at":"2024-01-16T09:00:30Z"}',
      call, campaign, who, call, OUTCOMES[slot % 4 + 1])
  end
  return string.format(
    '{"event_id":"%ss","campaign_id":"%s",%s,"call_id":"%s","type":"call.started",'
      .. '"occurred_at":"2024-01-16T09:00:00Z"}',
    call, campaign, who, call)
end

function request()
  local n = sent
  sent = sent + 1
  local items = {}
  if per == 1 then
    local block, pos = math.floor(n / (2 * LAG)), n % (2 * LAG)
    items[1] = event(block * LAG + pos % LAG, pos >= LAG)
  else
    local pairs_per = per / 2
    for k = 0, pairs_per - 1 do
      local slot = n * pairs_per + k
      items[#items + 1] = event(slot, false)
      items[#items + 1] = event(slot, true)
    end
  end
  return wrk.format(nil, "/recordCallEvents", nil, '{"events":[' .. table.concat(items, ",") .. "]}")
end

function response(status, headers, body)
  if status == 200 and string.find(body, applied, 1, true) then
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
