-- wrk script: password sign-in, POST /auth/v1/token?grant_type=password, as
-- supabase-js signInWithPassword sends it. The e-mail and password come from the
-- environment (BENCH_EMAIL, BENCH_PASSWORD); the apikey header is given to wrk
-- with -H. Prints the WRK result line of report.lua at the end.
local dir = os.getenv("BENCH_DIR") or "bench"
dofile(dir .. "/report.lua")

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json;charset=UTF-8"
wrk.body = '{"email":' .. json_string(os.getenv("BENCH_EMAIL") or "") ..
           ',"password":' .. json_string(os.getenv("BENCH_PASSWORD") or "") ..
           ',"gotrue_meta_security":{}}'
