-- wrk script: POST a full-size challenge answer (18x62 values, ~2.3 KB of JSON) under 500 rotating names to
-- $CHALLENGE_PATH. The first 2000
-- answers are recorded, the rest answered 409 (the per-challenge bound) after the same parsing and check;
-- wrk reports those as non-2xx.
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
