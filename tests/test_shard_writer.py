"""The shard-aware Kinesis writer (kinesis/shards.py, kinesis/shardbatch.py): shard
prediction and token buckets as pure functions, and the batcher against a local endpoint
that enforces per-shard limits (tests/servers/kinesis_shards.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import time

import pytest
from botocore.exceptions import ClientError

from outpost.destinations.aws import sigv4
from outpost.destinations.kinesis import shards as sh
from outpost.destinations.kinesis.format import Record
from outpost.destinations.kinesis.shardbatch import StreamBatcher

HALF = 2**127


def test_hash_key_is_the_md5_of_the_partition_key_big_endian_or_the_explicit_key():
    digest = hashlib.md5(b"customer-42").hexdigest()
    assert sh.hash_key("customer-42") == int(digest, 16)
    assert sh.hash_key("anything", "12345") == 12345


def test_shard_map_routes_by_range_and_skips_closed_shards():
    listed = [
        {
            "ShardId": "s0",
            "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**128 - 1)},
            "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"},
        },
        {"ShardId": "s1", "HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(HALF - 1)}},
        {"ShardId": "s2", "HashKeyRange": {"StartingHashKey": str(HALF), "EndingHashKey": "200"}},
    ]
    m = sh.ShardMap.from_list_shards(listed)
    assert [s.shard_id for s in m.shards] == ["s1", "s2"]  # s0 was split: closed
    assert m.shard_for(0) == "s1" and m.shard_for(HALF - 1) == "s1"
    assert m.shard_for(HALF + 500) is None  # past s2's end: a gap, list again
    assert not m.due(m.listed_at + 1) and m.due(m.listed_at + sh.MAP_TTL_S + 1)
    m.stale = True
    assert m.due(m.listed_at)


@pytest.mark.parametrize("size", [100, 5000, 300_000, 1_040_000])
def test_token_bucket_never_exceeds_the_limit_in_any_rolling_second(size):
    bucket = sh.TokenBucket(at=0.0)
    taken: list[tuple[float, int]] = []
    now = 0.0
    while now < 5.0:
        while bucket.take(1, size, now):
            taken.append((now, size))
        now += 0.0005
    worst_records = worst_bytes = 0
    for i, (start, _) in enumerate(taken):
        window = [s for t, s in taken[i:] if t < start + 1.0]
        worst_records = max(worst_records, len(window))
        worst_bytes = max(worst_bytes, sum(window))
    assert worst_records <= sh.SHARD_RECORDS_PER_S and worst_bytes <= sh.SHARD_BYTES_PER_S
    per_s = max(1, min(sh.SHARD_RECORDS_PER_S, (sh.SHARD_BYTES_PER_S * sh.WINDOW_SHARE) // size))
    assert len(taken) >= 0.9 * 5 * per_s  # and it uses nearly all of it (whole records)


def test_token_bucket_backs_off_and_says_how_long_to_wait():
    bucket = sh.TokenBucket(at=0.0)
    assert bucket.wait(1, 10, 0.0) == 0.0
    bucket.back_off(0.25, 0.0)
    assert not bucket.take(1, 10, 0.1)
    assert bucket.wait(1, 10, 0.1) == pytest.approx(0.15)  # the pause outlasts the refill
    assert bucket.take(1, 10, 0.26)


def test_a_take_counts_from_when_its_call_was_answered():
    # Kinesis counts a record when it arrives: a 1 MiB record answered at 0.4 s still
    # fills the shard's second until 1.4 s, not 1.0 s after it was taken
    bucket = sh.TokenBucket(at=0.0)
    assert bucket.take(1, 1_040_000, 0.0)
    bucket.arrived(0.0, 0.4)
    assert not bucket.take(1, 20_000, 1.2)
    assert bucket.wait(1, 20_000, 1.2) == pytest.approx(0.2)
    assert bucket.take(1, 20_000, 1.41)


def _target(url: str) -> sigv4.Target:
    return sigv4.target(url, "us-east-1", "AKIDEXAMPLE", "secret", None)


async def _put_all(batcher: StreamBatcher, records: list[Record]) -> list[object]:
    futures = [batcher.add(r, 500) for r in records]
    return await asyncio.gather(*futures, return_exceptions=True)


async def test_batcher_keeps_each_shard_under_its_limit_at_near_the_limit(shard_endpoint):
    http = sigv4.KinesisHTTP(10.0, 16)
    batcher = StreamBatcher(http, _target(shard_endpoint.url), "s")
    rng = random.Random(7)
    records = [Record(b"x" * 100, f"k{rng.random()}") for _ in range(6000)]
    started = time.monotonic()
    results = await _put_all(batcher, records)
    elapsed = time.monotonic() - started
    await batcher.close()
    await http.close()
    stats = shard_endpoint.stats()
    assert all(isinstance(r, dict) for r in results) and stats["accepted"] == 6000
    assert stats["throttled"] <= 0.01 * 6000  # throttling is rare, not retried
    assert max(stats["busiest"].values()) <= 1000  # no rolling second over the limit
    # 2 shards of 1,000/s: ~3.1 s at the buckets' 94%; wide headroom for a loaded machine
    assert elapsed >= 2.5 and 6000 / elapsed >= 0.5 * 2000
    assert batcher.map is not None and len(batcher.map.shards) == 2


async def test_throttled_entries_fail_alone_and_back_their_shard_off(shard_endpoint):
    shard_endpoint.reset(shards=1, records_per_s=100)  # far under what the buckets assume
    http = sigv4.KinesisHTTP(10.0, 16)
    batcher = StreamBatcher(http, _target(shard_endpoint.url), "s")
    results = await _put_all(batcher, [Record(b"{}", f"k{i}") for i in range(30)])
    results += await _put_all(batcher, [Record(b"{}", f"j{i}") for i in range(200)])
    await batcher.close()
    await http.close()
    ok = [r for r in results if isinstance(r, dict)]
    failed = [r for r in results if isinstance(r, ClientError)]
    assert len(ok) + len(failed) == 230 and 100 <= len(ok) < 230 and failed
    assert {e.response["Error"]["Code"] for e in failed} == {
        "ProvisionedThroughputExceededException"
    }
    landed = [r["PartitionKey"] for r in shard_endpoint.records()]
    assert sorted(landed) == sorted(r["partition_key"] for r in ok)  # each once
    [bucket] = batcher.buckets.values()
    assert bucket.paused_until > 0  # the shard was backed off


async def test_idle_stream_sends_a_record_at_once(shard_endpoint):
    http = sigv4.KinesisHTTP(10.0, 16)
    batcher = StreamBatcher(http, _target(shard_endpoint.url), "s")
    await _put_all(batcher, [Record(b"{}", "warm")])  # the shard map is listed once
    started = time.monotonic()
    [result] = await _put_all(batcher, [Record(b"{}", "alone")])
    elapsed = time.monotonic() - started
    await batcher.close()
    await http.close()
    assert isinstance(result, dict) and result["batch_size"] == 1
    assert elapsed < 1.0  # no linger to wait out (the old fixed one was 50 ms)


async def test_a_split_mid_run_loses_and_duplicates_nothing(shard_endpoint):
    http = sigv4.KinesisHTTP(10.0, 16)
    batcher = StreamBatcher(http, _target(shard_endpoint.url), "s")
    first = await _put_all(batcher, [Record(b"{}", f"a{i}") for i in range(300)])
    shard_endpoint.split("shardId-000000000000", HALF // 2)
    second = await _put_all(batcher, [Record(b"{}", f"b{i}") for i in range(600)])
    for _ in range(50):  # a result on a shard it did not predict marks the map stale
        if batcher.map is not None and len(batcher.map.shards) == 3:
            break
        await _put_all(batcher, [Record(b"{}", f"c{random.random()}")])
        await asyncio.sleep(0.1)
    await batcher.close()
    await http.close()
    assert all(isinstance(r, dict) for r in first + second)
    landed = [r["PartitionKey"] for r in shard_endpoint.records()]
    assert len(landed) == len(set(landed))
    assert {f"a{i}" for i in range(300)} | {f"b{i}" for i in range(600)} <= set(landed)
    assert batcher.map is not None and len(batcher.map.shards) == 3  # listed again


async def test_aggregated_records_land_on_their_predicted_shard_and_read_back(shard_endpoint):
    from tests.kpl_decoder import deaggregate

    http = sigv4.KinesisHTTP(10.0, 16)
    batcher = StreamBatcher(http, _target(shard_endpoint.url), "s", aggregation=True)
    records = [Record(f'{{"n":{i}}}'.encode(), f"key-{i % 97}") for i in range(5000)]
    results = await _put_all(batcher, records)
    await batcher.close()
    await http.close()
    assert all(isinstance(r, dict) for r in results)
    assert max(r.get("aggregated", 1) for r in results) > 100  # gathered per shard
    landed, puts = [], shard_endpoint.records()
    shard_map = batcher.map
    assert shard_map is not None and len(puts) < 100  # few Kinesis records for 5,000
    for put in puts:
        users = deaggregate(base64.b64decode(put["Data"]))
        assert put["PartitionKey"] == users[0][0]
        for key, _ in users:  # every user record belongs to the shard it was put on
            assert shard_map.shard_for(sh.hash_key(key)) == put["ShardId"]
        landed += users
    assert sorted(landed) == sorted((r.partition_key, r.data) for r in records)
    assert shard_endpoint.stats()["throttled"] == 0


async def test_a_record_too_big_to_aggregate_goes_alone_and_the_rest_still_aggregate(
    shard_endpoint,
):
    from tests.kpl_decoder import MAGIC

    http = sigv4.KinesisHTTP(10.0, 16)
    batcher = StreamBatcher(http, _target(shard_endpoint.url), "s", aggregation=True)
    await _put_all(batcher, [Record(b"{}", "warm")])  # the shard map is listed
    big = Record(b"b" * (1024 * 1024 - 10), "big")  # fits as a record, not in an aggregate
    small = [Record(b"{}", f"k{i}") for i in range(50)]
    results = await _put_all(batcher, [big, *small])
    await batcher.close()
    await http.close()
    assert all(isinstance(r, dict) for r in results)
    puts = {r["PartitionKey"]: base64.b64decode(r["Data"]) for r in shard_endpoint.records()}
    assert puts["big"] == big.data  # plain, not wrapped
    assert results[1].get("aggregated", 1) > 1  # the small ones were aggregated
    assert sum(data.startswith(MAGIC) for data in puts.values()) >= 1
