-- A heartbeat (docs/continuity.md, "Every check"): reads the node's epoch,
-- records this instance in the registry, and notes when the epoch was first
-- seen while not open.
--
-- KEYS[1]: the registry hash. KEYS[2]: the open epoch. KEYS[3]: pending.
-- ARGV[1]: the instance's id. ARGV[2]: the epoch it has verified under.
-- ARGV[3]: its settle period in ms (a settle waits for the longest).
-- ARGV[4]: the numbers its previous heartbeat may carry, comma-separated
-- ("" when unknown). ARGV[5]: this heartbeat's number. A store that no
-- longer holds the previous heartbeat went back in time, whatever its
-- epoch: the open epoch is closed, so every instance compares again.
--
-- Replies {"role", role, epoch} on a replica (which takes no writes), else
-- {"ok", epoch, open, first_seen_ms, now_ms, lost} (open and first_seen may
-- be ""; lost is "1" when the previous heartbeat was missing).
local replication = redis.call('INFO', 'replication')
local role = string.match(replication, 'role:(%a+)') or '?'
local epoch = string.match(replication, 'master_replid:(%x+)') or ''
if role ~= 'master' then
  return {'role', role, epoch}
end
local time = redis.call('TIME')
local now = string.format('%.0f', tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000))
local state = 'seen'
if ARGV[2] == epoch then
  state = 'verified'
end
local lost = '0'
if ARGV[4] ~= '' then
  local previous = redis.call('HGET', KEYS[1], ARGV[1]) or ''
  local number = string.match(previous, ':(%d+)$') or 'none'
  if not string.find(',' .. ARGV[4] .. ',', ',' .. number .. ',', 1, true) then
    lost = '1'
    redis.call('DEL', KEYS[2])
  end
end
redis.call('HSET', KEYS[1], ARGV[1],
  epoch .. ':' .. state .. ':' .. now .. ':' .. ARGV[3] .. ':' .. ARGV[5])
local open = redis.call('GET', KEYS[2]) or ''
local first = ''
if open ~= epoch then
  first = redis.call('HGET', KEYS[3], epoch)
  if not first then
    first = now
    redis.call('HSET', KEYS[3], epoch, first)
  end
end
return {'ok', epoch, open, first, now, lost}
