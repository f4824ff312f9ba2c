-- wrk script for benches/ack.rs: POSTs a body template in which every `__SEQ__` becomes a
-- 15-digit sequence number unique to this request (a new Notification Id / EventUuid each
-- time, so nothing is deduplicated away), and prints one machine-readable summary line.
--
-- wrk -t1 -c64 -d5s -s post.lua URL -- TEMPLATE_FILE CONTENT_TYPE ROUND [BEARER_TOKEN [vary]]
--
-- ROUND (0-99) prefixes the sequence so rounds never reuse an id. `vary` writes the sequence
-- into the token's signature too (from its 11th character), so every request carries a
-- token never seen before: a flood of distinct forgeries.

local template, content_type, prefix, token, vary
local counter = 0

function init(args)
  local file = assert(io.open(args[1], "rb"))
  template = file:read("*a")
  file:close()
  content_type = args[2]
  prefix = string.format("%02d", tonumber(args[3]))
  token = args[4]
  vary = args[5] == "vary"
end

-- The token with `seq` over 15 characters of its signature (digits are base64url).
local function varied(seq)
  local signature = token:find("%.[^.]*$") + 11
  return token:sub(1, signature - 1) .. seq .. token:sub(signature + #seq)
end

function request()
  counter = counter + 1
  local seq = prefix .. string.format("%013d", counter)
  local body = template:gsub("__SEQ__", seq)
  local headers = { ["Content-Type"] = content_type }
  if token ~= nil and token ~= "" then
    headers["Authorization"] = "Bearer " .. (vary and varied(seq) or token)
  end
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\":%d,\"duration_us\":%d,\"status_errors\":%d,\"socket_errors\":%d," ..
    "\"p50_us\":%d,\"p99_us\":%d,\"max_us\":%d}\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
