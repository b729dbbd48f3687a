-- Dead letters back into the queue with a fresh retry budget (see Queue.redrive). Only
-- entries this call removes from the dead letters are queued, so concurrent redrives
-- cannot queue one twice.
--
-- KEYS: [1] the tenant's dead letters, then the partition stream of each item, each once.
-- ARGV: [1] the items, a JSON array of objects:
--   {dead_id: the dead letter's entry id; stream: index into KEYS; tenant_id, event_id,
--    destination_id}
-- Returns how many were queued.
local n = 0
for _, item in ipairs(cjson.decode(ARGV[1])) do
  if redis.call('XDEL', KEYS[1], item.dead_id) == 1 then
    redis.call('XADD', KEYS[item.stream], '*', 't', item.tenant_id, 'e', item.event_id,
               'd', item.destination_id, 'a', '1', 'm', '0')
    n = n + 1
  end
end
return n
