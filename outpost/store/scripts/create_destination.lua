-- Add a destination to an existing tenant, within its destination cap
-- (see Store.create_destination).
--
-- KEYS: [1] the tenant's hash, [2] the tenant's destinations (hash of id -> stored JSON).
-- ARGV: [1] destination id, [2] the stored destination, [3] the cap.
-- Returns 1 created, -1 no such tenant, -2 the id is taken, -3 the cap is reached.
local tenant_key, destinations_key = KEYS[1], KEYS[2]
local id, stored, cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', tenant_key) == 0 then return -1 end
if redis.call('HEXISTS', destinations_key, id) == 1 then return -2 end
if redis.call('HLEN', destinations_key) >= cap then return -3 end
redis.call('HSET', destinations_key, id, stored)
return 1
