-- Replace a Flow Service resource only if its etag is still the one the caller holds
-- (see FlowStore).
--
-- KEYS: [1] the resources of one kind in one org and sandbox (hash of id -> JSON).
-- ARGV: [1] resource id, [2] the etag the caller holds, [3] the new JSON.
-- Returns 1 replaced, 0 the etag is stale, -1 no such resource.
local resources_key = KEYS[1]
local id, etag, fresh = ARGV[1], ARGV[2], ARGV[3]
local raw = redis.call('HGET', resources_key, id)
if not raw then return -1 end
if cjson.decode(raw)['etag'] ~= etag then return 0 end
redis.call('HSET', resources_key, id, fresh)
return 1
