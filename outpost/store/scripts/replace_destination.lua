-- Overwrite a destination that exists (see Store.replace_destination).
--
-- KEYS: [1] the tenant's destinations (hash of id -> stored JSON).
-- ARGV: [1] destination id, [2] the new stored value.
-- Returns 1 replaced, 0 no such destination (nothing written).
local destinations_key = KEYS[1]
local id, stored = ARGV[1], ARGV[2]
if redis.call('HEXISTS', destinations_key, id) == 0 then return 0 end
redis.call('HSET', destinations_key, id, stored)
return 1
