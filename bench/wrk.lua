-- wrk script used by bench/bench.py for every throughput run.
--
-- * done() prints one line `BENCHJSON {...}` (requests, duration, errors, latency percentiles in
--   microseconds) that bench.py parses.
-- * With BENCH_TOKENS=FILE (one credential per line), every request carries the next credential
--   of the file, cycling: header BENCH_TOKEN_HEADER (default Authorization) with the value
--   BENCH_TOKEN_PREFIX (default "Bearer ") .. line. The requests are pre-built in init(), so the
--   per-request Lua cost is one table lookup. Used by the "distinct tokens" rows of HAProxy and
--   keygate alike. BENCH_TOKEN_OFFSET=K starts at the K-th token.
-- * Without BENCH_TOKENS no request() is defined and wrk keeps its static (-H) request path.

-- * With BENCH_BODY=JSON, every request is a POST of that body (Content-Type: application/json),
--   for the bind_json row.

if os.getenv("BENCH_BODY") then
  wrk.method = "POST"
  wrk.body = os.getenv("BENCH_BODY")
  wrk.headers["Content-Type"] = "application/json"
end

local tokens_file = os.getenv("BENCH_TOKENS")
local reqs, n, i = {}, 0, 0

function init(args)
  if not tokens_file then
    return
  end
  local name = os.getenv("BENCH_TOKEN_HEADER") or "Authorization"
  local prefix = os.getenv("BENCH_TOKEN_PREFIX") or "Bearer "
  for line in io.lines(tokens_file) do
    if #line > 0 then
      local h = {}
      for k, v in pairs(wrk.headers) do
        h[k] = v
      end
      h[name] = prefix .. line
      n = n + 1
      reqs[n] = wrk.format(nil, nil, h)
    end
  end
  if n == 0 then
    error("BENCH_TOKENS: no tokens in " .. tokens_file)
  end
  -- BENCH_TOKEN_OFFSET: start after the tokens earlier runs sent (the warm-up's extensions)
  i = (tonumber(os.getenv("BENCH_TOKEN_OFFSET") or "0") or 0) % n
end

if tokens_file then
  function request()
    i = i % n + 1
    return reqs[i]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
