-- wrk script of bench/soak.py: cycles pre-built requests at a fixed per-connection pace.
--
-- SOAK_REQUESTS=FILE: one request per line, fields separated by tabs:
--   METHOD <tab> PATH <tab> Name: value <tab> Name: value ...
-- (bench/soak.py writes it: every authenticator, ~24k distinct JWTs, 30% `Connection: close`).
-- SOAK_DELAY_MS: pause before each request on a connection (wrk's delay()), which sets the rate.
-- done() prints `SOAKJSON {...}` (requests, duration, errors, latency) for soak.py; outcomes
-- per route come from keygate's /metrics.

local file = os.getenv("SOAK_REQUESTS")
local pause = tonumber(os.getenv("SOAK_DELAY_MS") or "0") or 0
local reqs, n, i = {}, 0, 0

function init(args)
  for line in io.lines(file) do
    if #line > 0 then
      local fields = {}
      for f in line:gmatch("[^\t]+") do
        fields[#fields + 1] = f
      end
      local h = {}
      for k, v in pairs(wrk.headers) do
        h[k] = v
      end
      for k = 3, #fields do
        local name, value = fields[k]:match("^([^:]+):%s?(.*)$")
        h[name] = value
      end
      n = n + 1
      reqs[n] = wrk.format(fields[1], fields[2], h, fields[1] == "POST" and "" or nil)
    end
  end
  -- each wrk thread starts at a different place of the file
  i = math.random(n) - 1
end

function request()
  i = i % n + 1
  return reqs[i]
end

function delay()
  return pause
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'SOAKJSON {"requests":%d,"duration_us":%d,"err_connect":%d,"err_read":%d,"err_write":%d,' ..
    '"err_status":%d,"err_timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
