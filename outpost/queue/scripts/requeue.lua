-- Tasks back into their lanes (see Queue.promote_due, Queue.redrive, Queue.enqueue): due
-- retries, dead letters redriven with a fresh retry budget, a manual retry. A task taken
-- from a source (the retries, the dead letters) is queued only when this call removed it
-- there, so concurrent promoters or redrives cannot queue one twice.
--
-- KEYS: [1] the source (the retries' sorted set, a tenant's dead letters; any declared
--   key when nothing is taken), then per item its lane, the lane's partition index of
--   lanes with work and that partition's bell, each key once.
-- ARGV: [1] the items, a JSON array of objects:
--   {take?: 'retry' (ZREM `member` from the source) | 'dead' (XDEL `member`), member?;
--    stream, lanes, bell: indexes into KEYS; t, e, d, a, m: the task's fields; k?: its
--    ordering key, in an ordered sub-lane},
--   [2] the consumer group, [3] the bell's MAXLEN.
-- Returns how many were queued.
local source = KEYS[1]
local group, bell_maxlen = ARGV[2], ARGV[3]

-- as in publish.lua: a lane that had no task joins the index and rings the bell
local function wake(r)
  local lane, lanes, bell = KEYS[r.stream], KEYS[r.lanes], KEYS[r.bell]
  if redis.call('SADD', lanes, lane) == 0 then return end
  if redis.call('EXISTS', lane) == 0 then
    redis.call('XGROUP', 'CREATE', lane, group, '0', 'MKSTREAM')
  end
  redis.call('XADD', bell, 'MAXLEN', '~', bell_maxlen, '*', 'l', lane)
end

local function taken(item)
  if item.take == 'retry' then return redis.call('ZREM', source, item.member) == 1 end
  if item.take == 'dead' then return redis.call('XDEL', source, item.member) == 1 end
  return true
end

local n = 0
for _, item in ipairs(cjson.decode(ARGV[1])) do
  if taken(item) then
    wake(item)
    local lane = KEYS[item.stream]
    local task = {'t', item.t, 'e', item.e, 'd', item.d, 'a', item.a, 'm', item.m}
    if item.k then table.insert(task, 'k'); table.insert(task, item.k) end
    redis.call('XADD', lane, '*', unpack(task))
    n = n + 1
  end
end
return n
