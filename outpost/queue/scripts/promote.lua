-- Retries whose time has come back into their partition streams (see Queue.promote_due).
--
-- KEYS: [1] the retries (sorted set, score = due ms), then every partition stream.
-- ARGV: [1] now ms, [2] how many at most.
-- A retry member is JSON {s: stream key, t, e, d: tenant, event, destination ids,
--   a: attempt, m: manual '0'|'1'}; `s` is data naming one of the declared streams. One
--   naming no declared stream (the partition count changed since it was written) goes to
--   the first partition, so that it is delivered rather than lost.
-- Returns how many were moved.
local streams = {}  -- stream key -> its index in KEYS
for i = 2, #KEYS do streams[KEYS[i]] = i end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  local t = cjson.decode(member)
  local stream = KEYS[streams[t.s] or 2]
  redis.call('XADD', stream, '*', 't', t.t, 'e', t.e, 'd', t.d, 'a', t.a, 'm', t.m)
  redis.call('ZREM', KEYS[1], member)
end
return #due
