-- Give up a shard's lease if this reader still holds it.
--
-- KEYS: [1] the lease.
-- ARGV: [1] this reader's owner id.
-- Returns 1 released, 0 not held by this reader.
local lease_key = KEYS[1]
if redis.call('GET', lease_key) == ARGV[1] then return redis.call('DEL', lease_key) end
return 0
