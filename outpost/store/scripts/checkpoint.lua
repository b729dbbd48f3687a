-- Record a shard's checkpoint and the flow's counters, only while this reader holds the
-- shard's lease.
--
-- KEYS: [1] the lease, [2] the flow's checkpoints (hash of shard -> sequence number),
--   [3] the flow's metrics (hash).
-- ARGV: [1] this reader's owner id, [2] shard id, [3] sequence number, [4] records read,
--   [5] events published, [6] failed records, [7] now ms.
-- Returns 1 recorded, 0 the lease is lost (nothing written).
local lease_key, checkpoints_key, metrics_key = KEYS[1], KEYS[2], KEYS[3]
if redis.call('GET', lease_key) ~= ARGV[1] then return 0 end
redis.call('HSET', checkpoints_key, ARGV[2], ARGV[3])
redis.call('HINCRBY', metrics_key, 'records_read', ARGV[4])
redis.call('HINCRBY', metrics_key, 'events_published', ARGV[5])
redis.call('HINCRBY', metrics_key, 'failed_records', ARGV[6])
redis.call('HSET', metrics_key, 'last_run_ms', ARGV[7])
return 1
