-- Many publishes in one call, each its own protected step (see Queue.publish_many).
--
-- KEYS: [1] the global event index, then every key of the events, each once: per event
--   its tenant's record and generation counter, its record, its owners set, its tenant's event index, its tenant's dead letters (only
--   when it has held destinations) and, per route, its destination's lane, the lane's
--   partition index of lanes with work and that partition's bell.
-- ARGV: [1] retention seconds, [2] tenant log cap, [3] total log cap, [4] dead-letter
--   MAXLEN, [5] the events, a JSON array of objects:
--   {tenant_key, generation_key, event_key, owners_key, index_key, dead_key?: index into KEYS;
--    record: the event's JSON; tenant_id, event_id; time_ms; trim: bool; now: seconds;
--    routes: [{stream, lanes, bell: indexes into KEYS; destination_id; key?: the
--    ordering key, kept as the task's `k` in an ordered sub-lane}];
--    held: [destination id]}, [6] the consumer group, [7] the bell's MAXLEN.
-- Returns one entry per event: 1 stored and queued, 0 the tenant already had an event
--   with this id (nothing queued), -1 the tenant is deleted or being deleted (nothing
--   stored), 'ERR ...' its step failed (the others still ran).
local retention, tenant_cap, total_cap, dead_maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local group, bell_maxlen = ARGV[6], ARGV[7]
local out = {}

-- A lane that had no task joins its partition's index (with its consumer group, made
-- the first time) and rings the bell, so a waiting worker learns of it.
local function wake(r)
  local lane, lanes, bell = KEYS[r.stream], KEYS[r.lanes], KEYS[r.bell]
  if redis.call('SADD', lanes, lane) == 0 then return end
  if redis.call('EXISTS', lane) == 0 then
    redis.call('XGROUP', 'CREATE', lane, group, '0', 'MKSTREAM')
  end
  redis.call('XADD', bell, 'MAXLEN', '~', bell_maxlen, '*', 'l', lane)
end

local function publish(e)
  -- A tenant being deleted (its record marked `deleting`) or deleted (no record but a
  -- generation counter) gets no write: what it had is being purged (store/purge.py).
  local tenant_key, generation_key = KEYS[e.tenant_key], KEYS[e.generation_key]
  if redis.call('HEXISTS', tenant_key, 'deleting') == 1 then return -1 end
  if redis.call('EXISTS', tenant_key) == 0 and redis.call('EXISTS', generation_key) == 1 then
    return -1
  end
  local event_key, owners_key, index_key = KEYS[e.event_key], KEYS[e.owners_key], KEYS[e.index_key]
  local ttl = redis.call('HGET', tenant_key, 'retention') or retention  -- the tenant's own
  if not redis.call('SET', event_key, e.record, 'NX', 'EX', ttl) then return 0 end
  redis.call('SADD', owners_key, e.tenant_id)
  if redis.call('TTL', owners_key) < tonumber(ttl) then redis.call('EXPIRE', owners_key, ttl) end
  redis.call('ZADD', index_key, e.time_ms, e.event_id)
  redis.call('ZADD', KEYS[1], e.time_ms, e.tenant_id .. '/' .. e.event_id)
  if e.trim then
    redis.call('ZREMRANGEBYRANK', index_key, 0, -(tonumber(tenant_cap) + 1))
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(total_cap) + 1))
  end
  for _, r in ipairs(e.routes) do
    wake(r)
    local task = {'t', e.tenant_id, 'e', e.event_id, 'd', r.destination_id, 'a', '1', 'm', '0'}
    if r.key then table.insert(task, 'k'); table.insert(task, r.key) end
    redis.call('XADD', KEYS[r.stream], '*', unpack(task))
  end
  for _, d in ipairs(e.held) do
    redis.call('XADD', KEYS[e.dead_key], 'MAXLEN', '~', dead_maxlen, '*',
               't', e.tenant_id, 'e', e.event_id, 'd', d, 'a', '0', 'm', '0',
               'code', 'destination_disabled',
               'message', 'the destination was disabled when the event was published',
               'time', e.now)
  end
  return 1
end

for i, e in ipairs(cjson.decode(ARGV[5])) do
  local ok, res = pcall(publish, e)
  if ok then out[i] = res else out[i] = 'ERR ' .. tostring(res) end
end
return out
