-- Takes IDs from a counter, in one atomic step with the checks that make
-- the answer safe to hand out (docs/continuity.md, "Every allocation").
-- The durability settings a script cannot read (CONFIG is not allowed in
-- scripts) follow it on the same connection.
--
-- KEYS[1]: the counter. KEYS[2]: the open epoch.
-- ARGV[1]: count. ARGV[2]: "1" to create a missing counter.
-- ARGV[3]: the epoch the instance trusts.
--
-- Replies, without incrementing: {"role", role}, {"moved", epoch},
-- {"unsettled", epoch}, {"missing"}; after trying:
-- {"ok", new_value}, {"exhausted", value}, {"fenced", floor},
-- {"refused", redis_error} (OOM, say) or {"corrupt", value}.
--
-- Lua numbers are doubles, exact only up to 2^53: INCRBY adds in Redis's
-- own 64-bit integers and the values travel back as strings. A fenced
-- counter holds `fenced:<floor>`, which INCRBY refuses, so the fence costs
-- nothing on the usual path (and the seed's Python service refuses it too).
local replication = redis.call('INFO', 'replication')
local role = string.match(replication, 'role:(%a+)') or '?'
if role ~= 'master' then
  return {'role', role}
end
local epoch = string.match(replication, 'master_replid:(%x+)') or ''
if epoch ~= ARGV[3] then
  return {'moved', epoch}
end
if redis.call('GET', KEYS[2]) ~= epoch then
  return {'unsettled', epoch}
end
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing'}
end
local r = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(r) == 'table' and r.err then
  local value = redis.call('GET', KEYS[1]) or ''
  local floor = string.match(value, '^fenced:(%d+)$')
  if floor then
    return {'fenced', floor}
  end
  if string.find(r.err, 'overflow') then
    return {'exhausted', value}
  end
  if string.match(value, '^-?%d+$') then
    -- A number INCRBY refused: Redis said no (OOM, say), not the value.
    return {'refused', r.err}
  end
  return {'corrupt', value}
end
return {'ok', redis.call('GET', KEYS[1])}
