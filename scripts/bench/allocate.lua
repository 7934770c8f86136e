-- wrk script: POST /api/segment/allocate with a fixed body; any non-2xx
-- answer is counted by wrk and reported as "Non-2xx or 3xx responses".
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"system_code":"bench","db_name":"db","table_name":"orders","field_name":"id","segment_count":100}'
