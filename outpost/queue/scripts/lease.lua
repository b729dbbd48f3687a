-- An ordered sub-lane's lease (queue/ordered.py): one worker at a time reads the
-- sub-lane, from its head, so at most one batch of it is in flight.
--
-- KEYS: [1] the lease, [2] the sub-lane, [3] its partition's index of ordered sub-lanes
--   with work, [4] its state hash (all in the sub-lane's partition, one slot).
-- ARGV: [1] 'take' | 'renew' | 'release', [2] the worker's name, [3] the lease's ms.
-- Returns for take and renew 1 when the worker holds the lease now, else 0; for release
-- 0 when the worker did not hold it, 1 released, 2 released and the sub-lane still holds
-- tasks (queued meanwhile: the caller looks for work again). A released sub-lane left
-- empty leaves the index (and drops its state) in this same step, so a task queued
-- meanwhile is never left out of the index.
local lease, lane, index, state = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, me, ms = ARGV[1], ARGV[2], ARGV[3]
local holder = redis.call('GET', lease)
if op == 'take' then
  if holder and holder ~= me then return 0 end
  redis.call('SET', lease, me, 'PX', ms)
  return 1
end
if holder ~= me then return 0 end
if op == 'renew' then
  redis.call('PEXPIRE', lease, ms)
  return 1
end
redis.call('DEL', lease)
if redis.call('XLEN', lane) > 0 then return 2 end
redis.call('SREM', index, lane)
redis.call('DEL', state)
return 1
