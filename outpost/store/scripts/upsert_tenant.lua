-- Create a tenant, or update its metadata (see Store.upsert_tenant). The tenants index
-- (a key of its own slot) gets the answered member after this call, by the caller.
--
-- KEYS: [1] the tenant's hash, [2] the tenant id's generation counter (kept across
--   deletes: a tenant created again is the next generation).
-- ARGV: [1] tenant id, [2] metadata (JSON), [3] now (ISO time), [4] its index member
--   (`<created ms>:<tenant id>`, kept on the tenant to find it again when deleting),
--   [5] its own event retention in seconds (0: the deployment's, -1: unchanged).
-- Returns {1 created | 0 updated, its index member}, {-1, ''} the tenant is being deleted
--   (marked `deleting`).
local tenant_key, generation_key = KEYS[1], KEYS[2]
local tenant_id, metadata, now, member = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HEXISTS', tenant_key, 'deleting') == 1 then return {-1, ''} end
local function retain()
  local retention = tonumber(ARGV[5])
  if retention > 0 then redis.call('HSET', tenant_key, 'retention', retention)
  elseif retention == 0 then redis.call('HDEL', tenant_key, 'retention') end
end
if redis.call('HGET', tenant_key, 'created_at') then
  redis.call('HSET', tenant_key, 'metadata', metadata, 'updated_at', now)
  retain()
  return {0, redis.call('HGET', tenant_key, 'index') or member}
end
local generation = redis.call('INCR', generation_key)
redis.call('HSET', tenant_key, 'id', tenant_id, 'metadata', metadata, 'created_at', now,
           'updated_at', now, 'index', member, 'generation', generation)
retain()
return {1, member}
