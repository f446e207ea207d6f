-- wrk script: POST a full-size challenge answer (18x62 values, ~2.3 KB of JSON) under 500 rotating names to
-- $CHALLENGE_PATH; prints how many answers got each status (200 recorded, 409 past the answer bounds).
local vals = {}
for i = 1, 18 * 62 do vals[i] = (i % 7 == 0) and "1" or "0" end
local n = 0
wrk.method = "POST"
wrk.path = os.getenv("CHALLENGE_PATH")
wrk.headers["content-type"] = "application/json"
request = function()
  n = n + 1
  local body = '{"name":"student ' .. (n % 500) .. '","answer":[' .. table.concat(vals, ",") .. ']}'
  return wrk.format(nil, wrk.path, nil, body)
end
local statuses = {}
response = function(status) statuses[status] = (statuses[status] or 0) + 1 end
done = function() for s, c in pairs(statuses) do io.write(string.format("status %d: %d\n", s, c)) end end
