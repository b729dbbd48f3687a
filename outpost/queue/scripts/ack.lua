-- The partition step of completing deliveries (see Queue._complete_many), after the
-- tenant step (complete.lua): many tasks of ONE partition in one call. Every key is
-- under the partition's hash tag.
--
-- KEYS: [1] the partition's retries, [2] its share of the admin attempt listing, then
--   per task its lane (or a partition stream of before the lanes, or an ordered sub-lane)
--   and the lane's partition index of lanes with work, and an ordered sub-lane's state
--   hash, and each attempt record's key (Keys.attempt: in this partition), each once.
-- ARGV: [1] consumer group, [2] log cut-off ms, [3] the listing's cap, [4] the tasks, a
--   JSON array of objects:
--   {stream?, lanes?: indexes into KEYS; entry_id? (ack it); attempt_key?: index into
--    KEYS, attempt (the attempt's record) and ttl (seconds): keep it; attempt_id? and
--    time_ms (list it); trim: bool; retry? (the retry member, JSON) and retry_at_ms; gone: bool (the
--    tenant is deleted: its emptied lane goes); state?: index into KEYS (an ordered
--    sub-lane's); hold?: its head retried in place, not acked (`state` gets `until` =
--    retry_at_ms and `a:<entry_id>` = next_attempt; delivery/ordered.py)}
-- Returns how many tasks it acked. A lane left with no task (queued or in flight) leaves
--   its partition's index (and goes, if it held a deleted tenant's task; an ordered
--   sub-lane's state goes with it).
local retries, listing = KEYS[1], KEYS[2]
local group, cutoff, cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
local acks = {}  -- stream's index in KEYS -> entry ids
local indexes = {}  -- lane's index in KEYS -> its partition's index of lanes (in KEYS)
local gone_lanes = {}  -- lanes with a task of a deleted tenant: removed once empty
local states = {}  -- ordered sub-lane's index in KEYS -> its state hash (in KEYS)
local n = 0

for _, t in ipairs(cjson.decode(ARGV[4])) do
  if t.retry then redis.call('ZADD', retries, t.retry_at_ms, t.retry) end
  if t.attempt_key then redis.call('SET', KEYS[t.attempt_key], t.attempt, 'EX', t.ttl) end
  if t.attempt_id then
    redis.call('ZADD', listing, t.time_ms, t.attempt_id)
    if t.trim then
      redis.call('ZREMRANGEBYSCORE', listing, '-inf', cutoff)
      redis.call('ZREMRANGEBYRANK', listing, 0, -(cap + 1))
    end
  end
  if t.hold then
    redis.call('HSET', KEYS[t.state], 'until', t.retry_at_ms, 'a:' .. t.entry_id, t.next_attempt)
  elseif t.entry_id then
    if t.state then
      redis.call('HDEL', KEYS[t.state], 'a:' .. t.entry_id)
      states[t.stream] = t.state
    end
    indexes[t.stream] = t.lanes
    if t.gone then gone_lanes[t.stream] = true end
    acks[t.stream] = acks[t.stream] or {}
    table.insert(acks[t.stream], t.entry_id)
    n = n + 1
  end
end
for at, ids in pairs(acks) do
  local stream = KEYS[at]
  redis.call('XACK', stream, group, unpack(ids))
  redis.call('XDEL', stream, unpack(ids))
  if indexes[at] and redis.call('XLEN', stream) == 0 then
    redis.call('SREM', KEYS[indexes[at]], stream)
    if states[at] then redis.call('DEL', KEYS[states[at]]) end
    -- (a retry of a deleted tenant queued after its purge made the lane again)
    if gone_lanes[at] then redis.call('DEL', stream) end
  end
end
return n
