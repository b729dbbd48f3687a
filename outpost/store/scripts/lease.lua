-- Take or renew a shard's lease (see the Kinesis source reader).
--
-- KEYS: [1] the lease.
-- ARGV: [1] this reader's owner id, [2] the lease length ms.
-- Returns 1 held by this reader now, 0 another reader holds it.
local lease_key = KEYS[1]
local owner, ms = ARGV[1], ARGV[2]
local cur = redis.call('GET', lease_key)
if cur == false then redis.call('SET', lease_key, owner, 'PX', ms) return 1 end
if cur == owner then redis.call('PEXPIRE', lease_key, ms) return 1 end
return 0
