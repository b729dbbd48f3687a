-- Event ids' owners (the tenants that published an event with that id, for the admin's
-- lookups by id) gain one each, kept as long as the longest-kept of their events. All
-- the owners sets of one call are of one partition (Keys.event_owners).
--
-- KEYS: the owners sets, each once.
-- ARGV: [1] a JSON array of {k: index into KEYS; t: tenant id; ttl: seconds}.
-- Returns how many were written.
local n = 0
for _, o in ipairs(cjson.decode(ARGV[1])) do
  local owners_key = KEYS[o.k]
  redis.call('SADD', owners_key, o.t)
  if redis.call('TTL', owners_key) < tonumber(o.ttl) then
    redis.call('EXPIRE', owners_key, o.ttl)
  end
  n = n + 1
end
return n
