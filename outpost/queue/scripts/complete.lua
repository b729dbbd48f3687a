-- The tenant step of completing deliveries (see Queue._complete_many): many tasks of ONE
-- tenant in one call, each its own protected step. Every key is under the tenant's hash
-- tag; the partition step (ack.lua) runs after it, so a crash between them delivers a
-- task again at most, never loses it.
--
-- KEYS: [1] the tenant's record, [2] its generation counter, [3] its attempt index,
--   [4] its dead letters, then every key of the tasks, each once: per task the event's
--   and the destination's attempt indexes and the destination's failure counter.
-- ARGV: [1] retention seconds, [2] log cut-off ms, [3] per-destination cap (also the
--   dead-letter MAXLEN), [4] tenant cap, [5] the tasks, a JSON array of objects:
--   {event_attempts, destination_attempts, failures: indexes into KEYS; record: bool
--    (keep an attempt); attempt_id; time_ms; success: bool; trim: bool;
--    dead?: a dead letter's fields as a flat [field, value, ...] array}
-- Returns one entry per task: {failures, ttl, gone}: the destination's consecutive
--   failures after a failed attempt (-1 otherwise), the attempt record's time to live,
--   1 when the tenant is deleted or being deleted (nothing written); 'ERR ...' its step
--   failed.
local tenant_key, generation_key, dead_key = KEYS[1], KEYS[2], KEYS[4]
local retention, cutoff = ARGV[1], ARGV[2]
local caps = {ARGV[3], ARGV[4]}
local out = {}
local cleared = {}  -- failure counters (index in KEYS) already deleted in this call

-- A tenant being deleted (its record marked `deleting`) or deleted (no record but a
-- generation counter) gets no write: what it had is being purged (store/purge.py).
local gone = redis.call('HEXISTS', tenant_key, 'deleting') == 1 or
  (redis.call('EXISTS', tenant_key) == 0 and redis.call('EXISTS', generation_key) == 1)
local ttl = redis.call('HGET', tenant_key, 'retention') or retention  -- its own

local function record(t)
  local event_attempts = KEYS[t.event_attempts]
  redis.call('ZADD', event_attempts, t.time_ms, t.attempt_id)
  redis.call('EXPIRE', event_attempts, ttl)
  local indexes = {KEYS[t.destination_attempts], KEYS[3]}
  for j = 1, 2 do redis.call('ZADD', indexes[j], t.time_ms, t.attempt_id) end
  if t.trim then
    for j = 1, 2 do
      redis.call('ZREMRANGEBYSCORE', indexes[j], '-inf', cutoff)
      redis.call('ZREMRANGEBYRANK', indexes[j], 0, -(tonumber(caps[j]) + 1))
    end
  end
  if t.success then
    if not cleared[t.failures] then
      redis.call('DEL', KEYS[t.failures])
      cleared[t.failures] = true
    end
    return -1
  end
  cleared[t.failures] = nil
  return redis.call('INCR', KEYS[t.failures])
end

local function complete(t)
  if gone then return {-1, ttl, 1} end
  local failures = -1
  if t.record then failures = record(t) end
  if t.dead then
    redis.call('XADD', dead_key, 'MAXLEN', '~', caps[1], '*', unpack(t.dead))
  end
  return {failures, ttl, 0}
end

for i, t in ipairs(cjson.decode(ARGV[5])) do
  local ok, res = pcall(complete, t)
  if ok then out[i] = res else out[i] = 'ERR ' .. tostring(res) end
end
return out
