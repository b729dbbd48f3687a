"""The Kinesis source reader against a source that always has more records: at most 5
GetRecords calls per second per shard however fast it could go, and a batch costs a
fixed number of Redis round trips however many records it holds (publish: the tenant's
destinations and one script; then the checkpoint)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from outpost.dev import bench_source
from outpost.flow.source import SourceReader
from tests.test_round_trips import RoundTrips


async def test_at_most_5_get_records_per_second_per_shard(aiohttp_server, redis_server):
    calls: list = []
    server = await aiohttp_server(bench_source.source_app(10**6, 2, calls))
    url = str(server.make_url(""))
    deps = await bench_source.setup(redis_server.redis_url, url, "http://127.0.0.1:9")
    reader = SourceReader(deps, poll_seconds=0.2, discover_seconds=0.5, batch=50)
    task = asyncio.create_task(reader.run())
    await asyncio.sleep(3.5)
    reader.stop()
    await task
    await deps.redis.aclose()
    by_shard: dict[str, list[float]] = {}
    for at, op, body in calls:
        if op == "GetRecords":
            by_shard.setdefault(body["ShardIterator"].rpartition("/")[0], []).append(at)
    assert len(by_shard) == 2
    for shard, times in by_shard.items():
        assert len(times) >= 6, (shard, len(times))  # it read as fast as it may
        spans = [later - first for first, later in zip(times, times[5:], strict=False)]
        assert min(spans) >= 0.9, (shard, min(spans))  # 6 calls take a second (less jitter)


async def test_a_batch_costs_the_same_round_trips_whatever_its_size(redis_server, monkeypatch):
    deps = await bench_source.setup(redis_server.redis_url, "http://127.0.0.1:9", "http://x:9")
    reader = SourceReader(deps, owner="me")
    plan = await reader.plan("bench", "prod", "f1")
    assert plan is not None
    trips = RoundTrips(monkeypatch)
    costs = []
    for n, shard in ((1, "shardId-0"), (1, "shardId-1"), (500, "shardId-2")):  # (a warm-up)
        assert await deps.sources.lease(plan.flow_id, shard, "me", 10_000)
        records = [
            {
                "SequenceNumber": str(i + 1),
                "Data": b'{"n": %d}' % i,
                "ApproximateArrivalTimestamp": datetime.now(UTC),
                "PartitionKey": "k",
            }
            for i in range(n)
        ]
        spent, _ = await trips.of(reader._deliver(plan, shard, records))
        costs.append(spent)
    metrics = await deps.redis.hgetall(deps.keys.flow_state("f1", "metrics"))
    await deps.redis.aclose()
    # the destinations, the publish's tenant step, its partition step, the outbox's
    # release (queue/outbox.py: one call per hash tag), the checkpoint
    assert costs[1:] == [5, 5] and int(metrics[b"events_published"]) == 502, (costs, metrics)
