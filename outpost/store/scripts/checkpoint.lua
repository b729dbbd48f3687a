-- Record a shard's checkpoint, the flow's counters and its current run window's counts,
-- only while this reader holds the shard's lease: one step, so the run counts match the
-- records read exactly (a batch re-read after a crash was never counted).
--
-- KEYS: [1] the lease, [2] the flow's checkpoints (hash of shard -> sequence number),
--   [3] the flow's metrics (hash), [4] the window's run (hash), [5] the flow's runs
--   (zset of window start ms), [6] the flow's open runs (zset of window start ms).
-- ARGV: [1] this reader's owner id, [2] shard id, [3] sequence number, [4] records read,
--   [5] events published, [6] failed records, [7] now ms, [8] window start ms,
--   [9] the run's time to live ms, [10] runs older than this (window start ms) are
--   forgotten, then pairs (error code, failed records with it).
-- Returns 1 recorded, 0 the lease is lost (nothing written).
local lease_key, checkpoints_key, metrics_key = KEYS[1], KEYS[2], KEYS[3]
local run_key, runs_key, open_key = KEYS[4], KEYS[5], KEYS[6]
if redis.call('GET', lease_key) ~= ARGV[1] then return 0 end
redis.call('HSET', checkpoints_key, ARGV[2], ARGV[3])
redis.call('HINCRBY', metrics_key, 'records_read', ARGV[4])
redis.call('HINCRBY', metrics_key, 'events_published', ARGV[5])
redis.call('HINCRBY', metrics_key, 'failed_records', ARGV[6])
redis.call('HSET', metrics_key, 'last_run_ms', ARGV[7])
if tonumber(ARGV[4]) == 0 then return 1 end
if redis.call('HSETNX', run_key, 'started_ms', ARGV[7]) == 1 then
  redis.call('ZADD', runs_key, ARGV[8], ARGV[8])
  redis.call('ZADD', open_key, ARGV[8], ARGV[8])
end
redis.call('HSET', run_key, 'last_ms', ARGV[7])
redis.call('HINCRBY', run_key, 'input', ARGV[4])
redis.call('HINCRBY', run_key, 'output', ARGV[5])
redis.call('HINCRBY', run_key, 'failed', ARGV[6])
for i = 11, #ARGV, 2 do
  redis.call('HINCRBY', run_key, 'error:' .. ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', run_key, ARGV[9])
redis.call('ZREMRANGEBYSCORE', runs_key, '-inf', '(' .. ARGV[10])
redis.call('ZREMRANGEBYSCORE', open_key, '-inf', '(' .. ARGV[10])
return 1
