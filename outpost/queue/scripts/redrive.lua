-- Dead letters back to delivery with a fresh retry budget (see Queue.redrive): the tenant
-- step. Each dead letter this call removes becomes an outbox member in the same atomic
-- call (queue/outbox.py drains it into its lane next), so concurrent redrives cannot
-- queue one twice and a crash cannot lose one.
--
-- KEYS: [1] the tenant's dead letters, [2] its outbox.
-- ARGV: [1] now ms, [2] the items, a JSON array of {id: the dead letter's entry id;
--   e: event id; d: destination id; o?: its ordering key, for an ordered sub-lane}.
-- Returns the outbox members added (one per dead letter removed here).
local dead_key, outbox_key = KEYS[1], KEYS[2]
local out = {}
for _, item in ipairs(cjson.decode(ARGV[2])) do
  if redis.call('XDEL', dead_key, item.id) == 1 then
    local keys = nil
    if item.o then keys = {[item.d] = item.o} end
    local member = cjson.encode({e = item.e, r = {item.d}, k = item.id, o = keys})
    redis.call('ZADD', outbox_key, ARGV[1], member)
    table.insert(out, member)
  end
end
return out
