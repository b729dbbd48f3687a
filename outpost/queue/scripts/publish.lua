-- The tenant step of publishing (see queue/outbox.py): many events of ONE tenant in one
-- call, each its own protected step. Every key is under the tenant's hash tag.
--
-- KEYS: [1] the tenant's record, [2] its generation counter, [3] its event index, [4] its
--   outbox, [5] its dead letters, then each event's record, each once.
-- ARGV: [1] retention seconds, [2] tenant log cap, [3] dead-letter MAXLEN, [4] now ms,
--   [5] the tenant id, [6] the events, a JSON array of objects, the i-th event's record
--   (its JSON, as an argument of its own) at [6 + i]:
--   {event_key: index into KEYS; event_id; time_ms; trim: bool;
--    now: seconds; routes: [destination id]; held: [destination id]; keys?: {destination
--    id: ordering key} for the routes to ordered sub-lanes (kept in the member as `o`,
--    the tasks' `k`)}.
-- Returns one entry per event: 1 stored (its tasks are owed to their lanes), 0 the tenant
--   already had an event with this id (nothing queued), -1 the tenant is deleted or being
--   deleted (nothing stored), 'ERR ...' its step failed (the others still ran); then one
--   more: the call's outbox member (a JSON string {b: [what each stored event owes], ttl}),
--   or 0 when no event was stored.
local tenant_key, generation_key, index_key = KEYS[1], KEYS[2], KEYS[3]
local outbox_key, dead_key = KEYS[4], KEYS[5]
local retention, tenant_cap, dead_maxlen, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local tenant_id = ARGV[5]
local out = {}

-- A tenant being deleted (its record marked `deleting`) or deleted (no record but a
-- generation counter) gets no write: what it had is being purged (store/purge.py).
local gone = redis.call('HEXISTS', tenant_key, 'deleting') == 1 or
  (redis.call('EXISTS', tenant_key) == 0 and redis.call('EXISTS', generation_key) == 1)
local ttl = redis.call('HGET', tenant_key, 'retention') or retention  -- the tenant's own

local function publish(e, record)
  if gone then return -1 end
  local event_key = KEYS[e.event_key]
  if not redis.call('SET', event_key, record, 'NX', 'EX', ttl) then return 0 end
  redis.call('ZADD', index_key, e.time_ms, e.event_id)
  if e.trim then redis.call('ZREMRANGEBYRANK', index_key, 0, -(tonumber(tenant_cap) + 1)) end
  for _, d in ipairs(e.held) do
    redis.call('XADD', dead_key, 'MAXLEN', '~', dead_maxlen, '*',
               't', tenant_id, 'e', e.event_id, 'd', d, 'a', '0', 'm', '0',
               'code', 'destination_disabled',
               'message', 'the destination was disabled when the event was published',
               'time', e.now)
  end
  return 1
end

-- one outbox member for the whole call: what each stored event owes
local owed = {}
local events = cjson.decode(ARGV[6])
for i, e in ipairs(events) do
  local ok, res = pcall(publish, e, ARGV[6 + i])
  if ok then out[i] = res else out[i] = 'ERR ' .. tostring(res) end
  if res == 1 then
    owed[#owed + 1] = {e = e.event_id, r = e.routes, o = e.keys, ms = e.time_ms}
  end
end
out[#events + 1] = 0
if #owed > 0 then
  local member = cjson.encode({b = owed, ttl = ttl})
  redis.call('ZADD', outbox_key, now_ms, member)
  out[#events + 1] = member
end
return out
