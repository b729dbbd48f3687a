-- Replace a stored destination only if it is still what the caller read (compare and
-- swap; see Store.reencrypt_all).
--
-- KEYS: [1] the tenant's destinations (hash of id -> stored JSON).
-- ARGV: [1] destination id, [2] the stored value read, [3] the new stored value.
-- Returns 1 swapped, 0 it changed meanwhile (nothing written).
local destinations_key = KEYS[1]
local id, expected, fresh = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', destinations_key, id) ~= expected then return 0 end
redis.call('HSET', destinations_key, id, fresh)
return 1
