-- Opens allocation under the node's epoch when the settle rule allows it
-- (docs/continuity.md, "Every check", step 4), recording the base.
--
-- KEYS[1]: the registry hash. KEYS[2]: the open epoch. KEYS[3]: pending.
-- KEYS[4]: the base hash.
-- ARGV[1]: the epoch. ARGV[2]: settle period, ms. ARGV[3]: lease, ms.
-- ARGV[4...]: counter name, value, name, value, ... (the base).
--
-- Replies {"open"}, {"moved", epoch} or {"wait", why}.
local replication = redis.call('INFO', 'replication')
local role = string.match(replication, 'role:(%a+)') or '?'
local epoch = string.match(replication, 'master_replid:(%x+)') or ''
if role ~= 'master' or epoch ~= ARGV[1] then
  return {'moved', epoch}
end
if redis.call('GET', KEYS[2]) == epoch then
  return {'open'}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local first = tonumber(redis.call('HGET', KEYS[3], epoch) or '')
if not first then
  return {'wait', 'no instance has announced this epoch yet'}
end
local period = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local seen, state, at, own = string.match(entries[i + 1], '^(%x*):(%a+):(%d+):?(%d*):?%d*$')
  -- Each instance's own period: instances may run with other intervals.
  local its_period = tonumber(own) or 0
  local its_lease = math.max(lease, its_period)
  local age = now - (tonumber(at) or 0)
  if age <= its_lease and age >= -its_lease then
    period = math.max(period, its_period)
    if seen ~= epoch or state ~= 'verified' then
      return {'wait', 'instance ' .. entries[i] .. ' has not compared its marks yet'}
    end
  elseif age > 3600000 or age < -3600000 then
    -- Gone for an hour, or stamped by a clock far ahead: forgotten.
    redis.call('HDEL', KEYS[1], entries[i])
  end
end
local left = period - (now - first)
if left > 0 then
  return {'wait', string.format('settle period: %.0f ms left', left)}
end
redis.call('DEL', KEYS[4])
redis.call('HSET', KEYS[4], '@epoch', epoch)
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
end
redis.call('SET', KEYS[2], epoch)
redis.call('DEL', KEYS[3])
return {'open'}
