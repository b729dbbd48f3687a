-- Close a flow's run windows that have ended: each is handed to exactly one caller
-- (across all processes), which notifies about it.
--
-- KEYS: [1] the flow's open runs (zset of window start ms).
-- ARGV: [1] windows that started at or before this (ms) have ended.
-- Returns the window starts closed now.
local open_key = KEYS[1]
local ended = redis.call('ZRANGEBYSCORE', open_key, '-inf', ARGV[1])
if #ended > 0 then redis.call('ZREM', open_key, unpack(ended)) end
return ended
