-- wrk script: at the end of a run, print one machine-readable line with the
-- request rate, latency percentiles and error counts, which bench/run.sh parses:
--   WRK rps=1234.5 p50_ms=1.234 p90_ms=2.345 p99_ms=5.678 requests=37035 non2xx=0 socket_errors=0
-- Load it with `wrk -s bench/report.lua`, or from another script with dofile().
done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "WRK rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f requests=%d non2xx=%d socket_errors=%d\n",
    summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
