-- wrk script: like allocate.lua, but each connection waits KXY_BENCH_DELAY_MS
-- before each request, which holds the total rate near
-- connections * 1000 / (delay + latency) requests per second. wrk cannot hold
-- an exact rate; this is how the half-of-peak run approximates one.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"system_code":"bench","db_name":"db","table_name":"orders","field_name":"id","segment_count":100}'
local delay_ms = tonumber(os.getenv("KXY_BENCH_DELAY_MS") or "0")
function delay()
    return delay_ms
end
