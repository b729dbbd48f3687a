-- Create a tenant, or update its metadata (see Store.upsert_tenant).
--
-- KEYS: [1] the tenant's hash, [2] the tenants index.
-- ARGV: [1] tenant id, [2] metadata (JSON), [3] now (ISO time), [4] its index member
--   (`<created ms>:<tenant id>`, kept on the tenant to find it again when deleting).
-- Returns 1 created, 0 updated.
local tenant_key, index_key = KEYS[1], KEYS[2]
local tenant_id, metadata, now, member = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HGET', tenant_key, 'created_at') then
  redis.call('HSET', tenant_key, 'metadata', metadata, 'updated_at', now)
  return 0
end
redis.call('HSET', tenant_key, 'id', tenant_id, 'metadata', metadata, 'created_at', now,
           'updated_at', now, 'index', member)
redis.call('ZADD', index_key, 0, member)
return 1
