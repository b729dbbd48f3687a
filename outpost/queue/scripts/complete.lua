-- Many completions in one call (see Queue._complete_many). Each task is its own protected
-- step: one failing (say a wrong-typed key) fails only itself, and only the tasks whose
-- step succeeded are acked.
--
-- KEYS: [1] the all-attempts index, [2] the retries, then every key of the tasks, each
--   once: per task its tenant's record and generation counter, its lane (or a partition
--   stream of before the lanes) and the lane's partition index of lanes with work, its
--   attempt record, the event's, the destination's and the tenant's attempt indexes, the
--   destination's failure counter and the tenant's dead letters.
-- ARGV: [1] consumer group, [2] retention seconds, [3] log cut-off ms, [4] per-destination
--   cap (also the dead-letter MAXLEN), [5] tenant cap, [6] total cap, [7] the tasks, a
--   JSON array of objects:
--   {tenant_key, generation_key, stream, lanes?, attempt_key, event_attempts, destination_attempts, tenant_attempts,
--    failures, dead_key, state?: indexes into KEYS; entry_id; record: bool (keep an attempt);
--    attempt: the attempt's JSON; attempt_id; time_ms; success: bool; trim: bool;
--    retry?: the retry member (JSON) and retry_at_ms; dead?: a dead letter's fields as
--    a flat [field, value, ...] array; hold?: an ordered sub-lane's head retried in
--    place (its `state` hash gets `until` = retry_at_ms and `a:<entry_id>` =
--    next_attempt, and it stays unacked at the head; delivery/ordered.py)}
-- Returns one entry per task: the destination's consecutive failures after a failed
--   attempt, -1 otherwise, 'ERR ...' its step failed. A task of a tenant deleted or being
--   deleted is only acked (no attempt, retry or dead letter). A lane left with no task
--   (queued or in flight) leaves its partition's index (and goes, if it held a deleted
--   tenant's task).
local group, retention, cutoff = ARGV[1], ARGV[2], ARGV[3]
local caps = {ARGV[4], ARGV[5], ARGV[6]}
local out = {}
local acks = {}  -- stream's index in KEYS -> entry ids
local indexes = {}  -- lane's index in KEYS -> its partition's index of lanes (in KEYS)
local gone_lanes = {}  -- lanes with a task of a deleted tenant: removed once empty
local cleared = {}  -- failure counters (index in KEYS) already deleted in this call
local states = {}  -- ordered sub-lane's index in KEYS -> its state hash (in KEYS)

-- A tenant being deleted (its record marked `deleting`) or deleted (no record but a
-- generation counter) gets no write: what it had is being purged (store/purge.py).
local function tenant_gone(t)
  local tenant_key, generation_key = KEYS[t.tenant_key], KEYS[t.generation_key]
  if redis.call('HEXISTS', tenant_key, 'deleting') == 1 then return true end
  return redis.call('EXISTS', tenant_key) == 0 and redis.call('EXISTS', generation_key) == 1
end

local function record(t)
  local ttl = redis.call('HGET', KEYS[t.tenant_key], 'retention') or retention  -- its own
  redis.call('SET', KEYS[t.attempt_key], t.attempt, 'EX', ttl)
  local event_attempts = KEYS[t.event_attempts]
  redis.call('ZADD', event_attempts, t.time_ms, t.attempt_id)
  redis.call('EXPIRE', event_attempts, ttl)
  local indexes = {KEYS[t.destination_attempts], KEYS[t.tenant_attempts], KEYS[1]}
  for j = 1, 3 do redis.call('ZADD', indexes[j], t.time_ms, t.attempt_id) end
  if t.trim then
    for j = 1, 3 do
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
  local failures = -1
  local gone = tenant_gone(t)
  if t.record and not gone then failures = record(t) end
  if t.hold and not gone then
    redis.call('HSET', KEYS[t.state], 'until', t.retry_at_ms, 'a:' .. t.entry_id, t.next_attempt)
    return failures
  end
  if t.state then
    redis.call('HDEL', KEYS[t.state], 'a:' .. t.entry_id)
    states[t.stream] = t.state
  end
  if t.retry and not gone then redis.call('ZADD', KEYS[2], t.retry_at_ms, t.retry) end
  if t.dead and not gone then
    redis.call('XADD', KEYS[t.dead_key], 'MAXLEN', '~', caps[1], '*', unpack(t.dead))
  end
  indexes[t.stream] = t.lanes
  if gone then gone_lanes[t.stream] = true end
  acks[t.stream] = acks[t.stream] or {}
  table.insert(acks[t.stream], t.entry_id)
  return failures
end

for i, t in ipairs(cjson.decode(ARGV[7])) do
  local ok, res = pcall(complete, t)
  if ok then out[i] = res else out[i] = 'ERR ' .. tostring(res) end
end
for at, ids in pairs(acks) do
  local stream = KEYS[at]
  redis.call('XACK', stream, group, unpack(ids))
  redis.call('XDEL', stream, unpack(ids))
  if indexes[at] and redis.call('XLEN', stream) == 0 then
    local lanes = KEYS[indexes[at]]
    redis.call('SREM', lanes, stream)
    if states[at] then redis.call('DEL', KEYS[states[at]]) end
    -- (a retry of a deleted tenant queued after its purge made the lane again)
    if gone_lanes[at] then redis.call('DEL', stream) end
  end
end
return out
