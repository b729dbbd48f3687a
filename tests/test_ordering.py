"""Per-key ordered Kinesis delivery (`config.ordering: "partition_key"`: queue/ordered.py,
delivery/ordered.py) against the local Kinesis that enforces shard limits and fails a
key's records on request (tests/servers/kinesis_shards.py): records of one key land in
publish order across retries and a worker's kill -9, and a failing key holds only its
own sub-lane."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import time
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest

from outpost.models import Event, OrderedBy, Task
from outpost.queue.items import Entry, Outcome
from outpost.queue.keys import Keys
from outpost.runtime import build_worker
from tests.conftest import AUTH, kinesis_body
from tests.test_batching import publish_batch
from tests.test_delivery import setup_destination
from tests.test_faults import Stack
from tests.test_keys import TRICKY
from tests.topologies import topology  # noqa: F401  (single node and cluster)

BUCKETS = 64  # DELIVERY_ORDERING_LANES' default


def distinct_keys(n: int) -> list[str]:
    """`n` keys in different sub-lanes (a failing key then holds none of the others)."""
    keys: list[str] = []
    for i in range(1000):
        key = f"key-{i}"
        if zlib.crc32(key.encode()) % BUCKETS not in {
            zlib.crc32(k.encode()) % BUCKETS for k in keys
        }:
            keys.append(key)
        if len(keys) == n:
            return keys
    raise AssertionError("no keys")


def landed(records: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Per partition key, (the event's number, when it landed), in the order they landed."""
    out: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        doc = json.loads(base64.b64decode(r["Data"]))
        out.setdefault(r["PartitionKey"], []).append((doc["data"]["i"], r["at"]))
    return out


def assert_in_order(numbers: list[int], n: int) -> None:
    """Every one of 0..n-1 landed, and none before all earlier ones of its key had: a
    duplicate may only be a re-send of what was sent and not acknowledged (it goes back,
    then on in order)."""
    highest = -1
    for x in numbers:
        assert x <= highest + 1, f"{x} landed before {highest + 1}: {numbers}"
        highest = max(highest, x)
    assert sorted(set(numbers)) == list(range(n)), numbers


async def wait_for_records(endpoint: Any, count: int, limit: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + limit
    while True:
        records = await asyncio.to_thread(endpoint.records)
        if len({(r["PartitionKey"], r["Data"]) for r in records}) >= count:
            return records
        assert time.monotonic() < deadline, f"{len(records)} of {count} records landed"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("batching", [False, True], ids=["putrecord", "putrecords"])
async def test_a_failing_key_keeps_its_order_and_holds_no_other_key(
    client, deps, shard_endpoint, batching
):
    n = 40
    keys = distinct_keys(3)
    await setup_destination(
        client,
        "s",
        shard_endpoint.url,
        config={"partition_key_template": "data.k", "ordering": "partition_key"}
        | ({"batching": True} if batching else {}),
        delivery_overrides={"retry_schedule": [0.5, 0.5, 0.5]},
    )
    shard_endpoint.fail(keys[0], 3)  # its first record fails 3 times: 1.5 s of backoff
    events = [{"id": f"{k}-{i:03d}", "data": {"k": k, "i": i}} for i in range(n) for k in keys]
    for chunk in range(0, len(events), 30):
        r = await client.post(
            "/api/v1/publish/batch",
            json=[
                {"tenant_id": "acme", "topic": "orders", **e} for e in events[chunk : chunk + 30]
            ],
            headers=AUTH,
        )
        assert r.status == 202, await r.text()
    worker = build_worker(deps, deps.settings)
    running = asyncio.create_task(worker.run(promote_retries=False))
    try:
        records = await wait_for_records(shard_endpoint, 3 * n, limit=30)
    finally:
        worker.stop()
        await running
    per_key = landed(records)
    for key in keys:
        assert_in_order([i for i, _ in per_key[key]], n)
    failing_first = per_key[keys[0]][0][1]
    others_done = max(at for k in keys[1:] for _, at in per_key[k])
    print(
        f"\nORDERED {'batched' if batching else 'single'}: other keys done "
        f"{others_done - failing_first:+.3f}s from the failing key's first record"
    )
    assert others_done < failing_first  # they all landed while the failing key waited
    assert (await deps.queue.depth())["queued"] == 0
    assert not await deps.queue.ordered.with_work()  # every sub-lane left the index


async def test_the_ordering_setting_is_validated(client):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    for value, status in (("partition_key", 201), ("none", 201), ("bogus", 422), (True, 422)):
        body = kinesis_body("s", "http://127.0.0.1:1", ordering=value)
        r = await client.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
        assert r.status == status, await r.text()
        if status == 422:
            assert "config.ordering" in await r.text()


async def test_unordered_destinations_keep_their_one_lane(client, deps, shard_endpoint):
    """No ordering: one lane, no ordering key computed at publish, no sub-lane."""
    dest = await setup_destination(client, "s", shard_endpoint.url)
    await publish_batch(client, ["u1", "u2"])
    lane = deps.queue.lane_of("acme", dest["id"])
    assert await deps.redis.xlen(lane.stream) == 2
    assert not await deps.queue.ordered.with_work()


@pytest.mark.parametrize("batching", [False, True], ids=["putrecord", "putrecords"])
async def test_kill_9_mid_run_keeps_every_key_in_order(tmp_path, shard_endpoint, batching):
    stack = Stack(tmp_path, shard_endpoint.url, "s")
    try:
        config = {"partition_key_template": "data.k", "ordering": "partition_key"}
        body = kinesis_body("s", shard_endpoint.url, **config, batching=batching)
        stack.dest = stack.deps.registry.create("acme", body, "d1")
        await stack.deps.store.upsert_tenant("acme", None)
        await stack.deps.store.create_destination(stack.dest)
        n, keys = 300, distinct_keys(3)
        items = []
        for i in range(n):
            for k in keys:
                ev = Event(
                    id=f"{k}-{i:04d}",
                    tenant_id="acme",
                    topic="orders",
                    time=datetime.now(UTC),
                    data={"k": k, "i": i},
                )
                items.append((ev, [(stack.dest.id, OrderedBy(k))], ()))
        assert all(r is True for r in await stack.deps.queue.publish_many(items))
        shard_endpoint.fail(keys[0], 2)  # and a retried head on the way
        # the first worker's leases are left to expire (DELIVERY_RECLAIM_IDLE_SECONDS 6)
        await stack.kill_mid_run(
            tmp_path, lambda: wait_for_records(shard_endpoint, 3 * n // 4, limit=60)
        )
        records = await asyncio.to_thread(shard_endpoint.records)
        per_key = landed(records)
        dupes = len(records) - 3 * n
        print(f"\nORDERED kill -9 ({'batched' if batching else 'single'}): re-sent {dupes}")
        for key in keys:
            assert_in_order([i for i, _ in per_key[key]], n)
    finally:
        await stack.close()


async def test_a_dead_lettered_head_is_skipped_and_its_key_goes_on_in_order(
    client, deps, shard_endpoint
):
    """Retries used up: the head is dead-lettered and leaves the sub-lane, the key's next
    records go on in order; redriven, the dead one goes to its key's sub-lane again."""
    n, [key] = 10, distinct_keys(1)
    dest = await setup_destination(
        client,
        "s",
        shard_endpoint.url,
        config={"partition_key_template": "data.k", "ordering": "partition_key"},
        delivery_overrides={"retry_schedule": [0.05, 0.05]},
    )
    shard_endpoint.fail(key, 3)  # its first record: 3 attempts, all failed
    events = [{"id": f"{key}-{i:03d}", "data": {"k": key, "i": i}} for i in range(n)]
    r = await client.post(
        "/api/v1/publish/batch",
        json=[{"tenant_id": "acme", "topic": "orders", **e} for e in events],
        headers=AUTH,
    )
    assert r.status == 202, await r.text()
    worker = build_worker(deps, deps.settings)
    await worker.run_until_empty(limit=30)
    numbers = [i for i, _ in landed(shard_endpoint.records())[key]]
    assert numbers == list(range(1, n))
    [dead] = await deps.queue.dead_letters("acme")
    assert dead["e"] == f"{key}-000" and dead["code"] == "server_error"
    assert "k" not in dead  # the ordering key is the sub-lane's, not the dead letter's
    r = await client.post(
        f"/api/v1/tenants/acme/destinations/{dest['id']}/replay",
        json={"since": "2000-01-01T00:00:00Z"},
        headers=AUTH,
    )
    assert r.status < 300, await r.text()
    await worker.run_until_empty(limit=30)
    numbers = [i for i, _ in landed(shard_endpoint.records())[key]]
    assert numbers == [*range(1, n), 0], await r.text()


def _glob(pattern: str) -> str:
    return re.escape(pattern).replace(r"\*", ".*")


@pytest.mark.parametrize("deployment", ["", "d{e}p"])
def test_an_ordered_sub_lane_names_its_destination_and_shares_its_partition_slot(deployment):
    keys = Keys(deployment)
    for a, b in itertools.product(TRICKY, repeat=2):
        lane = keys.ordered_lane(5, 17, a, b)
        assert keys.lane_owner(lane) == (a, b)
        assert keys.lanes_of(lane) == keys.ordered_lanes(5)
        assert keys.state_of(lane) == keys.lane_state(lane) != lane
        assert keys.state_of(keys.lane(5, a, b)) is None
        assert re.fullmatch(_glob(keys.ordered_lane_pattern(a)), lane)
        assert not re.fullmatch(_glob(keys.lane_pattern(a)), lane)
        related = [lane, keys.lane_lease(lane), keys.lane_state(lane), keys.ordered_lanes(5)]
        assert len({re.findall(r"\{[^}]*\}", k)[0] for k in [*related, keys.bell(5)]}) == 1
        assert len(set(related)) == 4


async def test_a_purged_tenant_leaves_no_ordered_sub_lane(client, deps, redis, shard_endpoint):
    await setup_destination(client, "s", shard_endpoint.url, config={"ordering": "partition_key"})
    await publish_batch(client, ["o1", "o2"])
    lanes = await deps.queue.ordered.with_work()
    assert len(lanes) == 2  # no template: the event id is the key (o1, o2: two buckets)
    assert await deps.queue.ordered.lease("take", lanes[0], "w1", 60_000) == 1
    await redis.hset(deps.keys.lane_state(lanes[0]), "until", "1")
    assert (await client.delete("/api/v1/tenants/acme", headers=AUTH)).status == 200
    left = [k.decode() async for k in redis.scan_iter(match="*")]
    assert [k for k in left if "acme" in k] == [deps.keys.tenant_generation("acme")]
    assert not await deps.queue.ordered.with_work()


async def test_an_ordering_key_travels_through_the_outbox_and_a_redrive(deps, redis):
    """The slot-safe publish: the key goes from the tenant step's outbox member to the
    partition step that queues the task in its sub-lane (`k`); a redriven dead letter's
    too. A plain route gets no key and its destination's lane."""
    queue, ordered = deps.queue, OrderedBy("k-1")
    event = Event(id="e1", tenant_id="acme", topic="t", time=datetime.now(UTC), data={})
    assert await queue.publish_many([(event, [("d1", ordered), ("d2", "")], ())]) == [True]
    sub_lane = queue.lane_of("acme", "d1", ordered).stream
    [(_, fields)] = await redis.xrange(sub_lane)
    assert fields[b"k"] == b"k-1" and fields[b"d"] == b"d1"
    [(_, plain)] = await redis.xrange(queue.lane_of("acme", "d2").stream)
    assert b"k" not in plain
    assert not await redis.zcard(deps.keys.outbox("acme"))  # drained
    dead_id = await redis.xadd(
        deps.keys.dead_letters("acme"), {"t": "acme", "e": "e1", "d": "d1", "a": "3", "m": "0"}
    )
    task = Task("acme", "e1", "d1")
    assert await queue.redrive("acme", [(dead_id.decode(), task, ordered)]) == 1
    *_, (_, again) = await redis.xrange(sub_lane)
    assert again[b"k"] == b"k-1" and again[b"a"] == b"1"


async def test_a_held_head_stays_unless_its_tenant_is_gone(deps, redis):
    """A failed head of a sub-lane is held in place by the partition step (ack.lua): not
    acked, its state set, the attempt recorded by the tenant step; once the tenant is
    being deleted the tenant step answers it gone and the head is acked instead."""
    queue, ordered = deps.queue, OrderedBy("k-1")
    await deps.store.upsert_tenant("acme", None)
    event = Event(id="e1", tenant_id="acme", topic="t", time=datetime.now(UTC), data={})
    assert await queue.publish_many([(event, [("d1", ordered)], ())]) == [True]
    lane = queue.lane_of("acme", "d1", ordered)
    [(raw_id, _)] = await redis.xrange(lane.stream)
    entry = Entry(lane.stream, raw_id.decode(), Task("acme", "e1", "d1"))
    await queue.complete(entry, Outcome("failed", "x", retry_in=5), time.time())
    state = await redis.hgetall(deps.keys.lane_state(lane.stream))
    assert state[f"a:{entry.entry_id}".encode()] == b"2" and int(state[b"until"]) > 0
    assert await redis.xlen(lane.stream) == 1  # not acked
    assert len(await queue.attempts("acme", "d1")) == 1
    assert not await redis.zcard(deps.keys.retries(lane.partition))  # no retry set entry
    await redis.hset(deps.keys.tenant("acme"), "deleting", "1")
    await queue.complete(entry, Outcome("failed", "x", retry_in=5), time.time())
    assert await redis.xlen(lane.stream) == 0  # acked: no hold for a tenant being deleted
    assert not await redis.exists(deps.keys.lane_state(lane.stream))
    assert not await redis.sismember(lane.index, lane.stream)
