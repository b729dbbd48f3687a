-- An event id's owners (the tenants that published an event with this id, for the admin's
-- lookups by id) gain one, kept as long as the longest-kept of their events.
--
-- KEYS: [1] the event id's owners set.
-- ARGV: [1] tenant id, [2] the event's time to live (seconds).
-- Returns 1.
local owners_key = KEYS[1]
redis.call('SADD', owners_key, ARGV[1])
if redis.call('TTL', owners_key) < tonumber(ARGV[2]) then
  redis.call('EXPIRE', owners_key, ARGV[2])
end
return 1
