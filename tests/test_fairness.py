"""Fair delivery across destinations (issue: one tenant must not hurt another): each
destination's tasks wait in their own lane and a read takes a share of every lane, so a
destination far behind does not delay the others; one destination holds at most its
share of a worker's slots, so a hanging endpoint leaves the others their normal latency."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from outpost.models import Event, Task, parse_iso
from outpost.queue import lanes as lanes_module
from outpost.queue.items import Outcome
from outpost.queue.keys import GROUP
from outpost.runtime import build_worker
from tests.conftest import AUTH, kinesis_body


def event(tenant: str, i: int) -> Event:
    return Event(id=f"{tenant}-{i}", tenant_id=tenant, topic="t", time=datetime.now(UTC), data={})


async def test_a_read_takes_a_share_of_every_destination(deps):
    """Destination a is 1,000 tasks behind when b's task comes: the first read already
    holds b's task (before the lanes, it came after a's 1,000 in a FIFO)."""
    behind = [event("acme", i) for i in range(1000)]
    await deps.queue.publish_many([(e, [("a", e.id)], ()) for e in behind])
    await deps.queue.publish(event("beta", 0), [("b", "k")])
    entries = await deps.queue.read("c1", count=64, block_ms=100)
    taken = [e.task.destination_id for e in entries]
    assert "b" in taken and taken.count("a") <= 64


async def test_a_lane_without_room_is_not_read(deps, redis):
    await deps.queue.publish_many([(event("acme", i), [("a", "k")], ()) for i in range(10)])
    await deps.queue.publish_many([(event("beta", i), [("b", "k")], ()) for i in range(10)])
    a_lane = deps.queue.lane_of("acme", "a").stream
    b_lane = deps.queue.lane_of("beta", "b").stream
    room = {a_lane: 0, b_lane: 3}
    entries = await deps.queue.read("c1", count=64, block_ms=100, room=room.__getitem__)
    assert [e.task.destination_id for e in entries] == ["b"] * 3
    assert deps.queue.lanes.capped
    assert (await redis.xpending(a_lane, GROUP))["pending"] == 0


async def test_a_lane_leaves_the_index_with_its_last_task_and_comes_back(deps, redis):
    lane = deps.queue.lane_of("acme", "a")
    await deps.queue.publish(event("acme", 0), [("a", "k")])
    assert await redis.smembers(lane.index) == {lane.stream.encode()}
    [entry] = await deps.queue.read("c1", count=10, block_ms=100)
    await deps.queue.complete(entry, Outcome("failed", "x", retry_in=0), 1.0)
    assert not await redis.sismember(lane.index, lane.stream)
    assert await deps.queue.promote_due() == 1  # the retry, back in its lane
    assert await redis.sismember(lane.index, lane.stream)
    [again] = await deps.queue.read("c1", count=10, block_ms=100)
    assert again.task == Task("acme", "acme-0", "a", attempt=2)


async def test_a_blocked_read_wakes_for_a_new_lane(deps):
    await deps.queue.ensure_groups()
    reading = asyncio.create_task(deps.queue.read("c1", count=10, block_ms=5000))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await deps.queue.publish(event("acme", 0), [("a", "k")])
    entries = await reading
    assert [e.task.event_id for e in entries] == ["acme-0"]
    assert time.monotonic() - started < 2.5  # the bell woke it, not the 5 s block


async def test_tasks_left_in_partition_streams_are_still_delivered(deps, redis, worker):
    """Tasks queued before the lanes (in the partition streams) are read until empty."""
    old = deps.keys.partition(1)
    await redis.xgroup_create(old, GROUP, id="0", mkstream=True)
    await redis.xadd(old, Task("acme", "gone", "d1").fields())
    await worker.run_until_empty(limit=10)  # the event is gone: acked without an attempt
    assert await redis.xlen(old) == 0
    assert (await deps.queue.depth())["queued"] == 0


async def published(client, tenant: str, ids: list[str], pause: float) -> dict[str, float]:
    """Publish one event at a time to `tenant`: event id -> when it was published."""
    sent = {}
    for event_id in ids:
        sent[event_id] = time.time()
        body = {"tenant_id": tenant, "topic": "orders", "id": event_id, "data": {}}
        r = await client.post("/api/v1/publish", headers=AUTH, json=body)
        assert r.status == 202, await r.text()
        await asyncio.sleep(pause)
    return sent


async def latencies(deps, tenant: str, dest: str, sent: dict[str, float]) -> list[float]:
    """Publish -> send start of each event (its first attempt's time), once all are done."""
    deadline = time.monotonic() + 60
    while True:
        attempts = await deps.queue.attempts(tenant, dest, count=1000)
        mine = {a["event_id"]: a for a in attempts if a["event_id"] in sent}
        if len(mine) == len(sent):
            break
        assert time.monotonic() < deadline, f"{len(mine)} of {len(sent)} delivered"
        await asyncio.sleep(0.05)
    return sorted(parse_iso(mine[e]["time"]).timestamp() - sent[e] for e in sent)


async def destination(client, tenant: str, body: dict) -> str:
    assert (await client.put(f"/api/v1/tenants/{tenant}", headers=AUTH)).status == 201
    r = await client.post(f"/api/v1/tenants/{tenant}/destinations", headers=AUTH, json=body)
    assert r.status == 201, await r.text()
    return (await r.json())["id"]


async def test_a_hanging_endpoint_leaves_others_their_latency(
    client, deps, settings, moto, moto_stream, stalling
):
    """Destination a's endpoint accepts and never answers (each send waits out
    DELIVERY_TIMEOUT_SECONDS); with 200 of its tasks queued, b's deliveries start as soon
    as they would with a idle. Before the per-destination share, a's sends took every
    slot and b waited for a's timeouts (seconds)."""
    await destination(client, "acme", kinesis_body("s", stalling.url))
    b = await destination(client, "beta", kinesis_body(moto_stream, moto.url))
    worker = build_worker(deps, settings)
    running = asyncio.create_task(worker.run())
    try:
        idle = await latencies(
            deps, "beta", b, await published(client, "beta", [f"i{n}" for n in range(10)], 0.05)
        )
        before = stalling.connections
        await published(client, "acme", [f"a{n}" for n in range(200)], 0)
        await asyncio.sleep(0.5)  # a's sends are hanging now
        hanging = stalling.connections - before  # one connection per send
        busy = await latencies(
            deps, "beta", b, await published(client, "beta", [f"h{n}" for n in range(10)], 0.05)
        )
    finally:
        worker.stop()
        await running
    assert busy[-1] < 5 * idle[-1] + 1.0, (idle, busy)
    assert 0 < hanging <= settings.delivery_max_inflight_per_destination


async def test_a_retry_promoted_after_its_tenant_was_purged_leaves_no_lane(client, deps, redis):
    """A retry waiting when its tenant is deleted is promoted into a lane made again; once
    its task is acked (the tenant is gone: nothing recorded) the lane goes too."""
    assert (await client.put("/api/v1/tenants/acme", headers=AUTH)).status == 201
    await deps.queue.publish(event("acme", 0), [("a", "k")])
    [entry] = await deps.queue.read("c1", count=10, block_ms=100)
    await deps.queue.complete(entry, Outcome("failed", "x", retry_in=0), 1.0)
    assert (await client.delete("/api/v1/tenants/acme", headers=AUTH)).status == 200
    assert not await redis.exists(entry.stream)
    assert await deps.queue.promote_due() == 1
    [again] = await deps.queue.read("c1", count=10, block_ms=100)
    await deps.queue.complete(again, Outcome("failed", "x", retry_in=0), 1.0)
    left = [k.decode() async for k in redis.scan_iter(match="*")]
    assert [k for k in left if "acme" in k] == [deps.keys.tenant_generation("acme")]
    assert (await deps.queue.depth())["retrying"] == 0


async def test_the_read_after_a_bell_names_the_new_lane(deps):
    """A read that brings tasks and a bell: the next read names the new lane (b's lane
    once waited for the periodic re-read of the lanes, 0.25 s, whenever a's tasks came
    with the bell; b's p99 behind a's backlog was 250 ms against 33 ms after)."""
    await deps.queue.publish_many([(event("acme", i), [("a", "k")], ()) for i in range(100)])
    first = await deps.queue.read("c1", count=5, block_ms=100)
    assert {e.task.destination_id for e in first} == {"a"}
    await deps.queue.publish(event("beta", 0), [("b", "k")])
    then = [e for _ in range(2) for e in await deps.queue.read("c1", count=5, block_ms=100)]
    assert "b" in {e.task.destination_id for e in then}


async def test_a_lane_that_just_had_work_is_read_by_the_next_read(deps, monkeypatch):
    """b's lane left the index with its last task acked; with a 1,000 tasks behind, b's
    next task is in the very next read. Before the lanes lingered, that read named a's
    lane alone (b's was read only after the bell and a refresh: two more round trips, each
    behind a's deliveries on a busy worker)."""
    monkeypatch.setattr(lanes_module, "REFRESH_SECONDS", 60.0)  # no periodic refresh here
    await deps.queue.publish_many([(event("acme", i), [("a", "k")], ()) for i in range(1000)])
    await deps.queue.publish(event("beta", 0), [("b", "k")])
    await deps.queue.lanes.refresh()
    first = await deps.queue.read("c1", count=10, block_ms=100)
    [b] = [e for e in first if e.task.destination_id == "b"]
    await deps.queue.complete(b, Outcome("success"), 1.0)
    await deps.queue.lanes.refresh()  # the index now holds a's lane only
    await deps.queue.publish(event("beta", 1), [("b", "k")])
    then = await deps.queue.read("c1", count=10, block_ms=100)
    assert "beta-1" in {e.task.event_id for e in then}


async def test_a_watch_read_waits_for_other_lanes_while_one_has_no_room(deps):
    """The worker's read while it waits for a lane's room (`watch`): it leaves that lane
    out and still blocks, so another destination's new task wakes it at once; a plain
    read in that state does not block (the worker is waiting for its own deliveries)."""
    await deps.queue.publish_many([(event("acme", i), [("a", "k")], ()) for i in range(10)])
    a_lane = deps.queue.lane_of("acme", "a").stream
    room = {a_lane: 0}.get
    started = time.monotonic()
    assert await deps.queue.read("c1", count=10, block_ms=3000, room=room) == []
    assert time.monotonic() - started < 1.0
    watching = asyncio.create_task(
        deps.queue.read("c1", count=10, block_ms=5000, room=lambda s: room(s, 10), watch=True)
    )
    await asyncio.sleep(0.2)
    assert not watching.done()
    started = time.monotonic()
    await deps.queue.publish(event("beta", 0), [("b", "k")])
    entries = await watching
    assert [e.task.event_id for e in entries] == ["beta-0"]
    assert time.monotonic() - started < 2.5  # the bell woke it, not the 5 s block


async def test_a_batching_lane_alone_may_use_the_batched_allowance(
    client, deps, settings, moto, moto_stream
):
    """The share divides the batched allowance between lanes with work: a batching lane
    alone may take all of it but a quarter of its share (with its share alone, the batched
    drain was ~12 % lower); once another lane has work it is back to its share."""
    body = kinesis_body(moto_stream, moto.url, batching=True, batch_linger_ms=5)
    a = await destination(client, "acme", body)
    worker = build_worker(deps, settings)
    await published(client, "acme", ["a0"], 0)
    await worker.run_until_empty(limit=20)  # the worker has seen that a's lane batches
    lane = deps.queue.lane_of("acme", a).stream
    conc = settings.delivery_max_concurrency
    per_destination = min(settings.delivery_max_inflight_per_destination, conc)
    share = settings.delivery_batch_max_inflight * per_destination // conc
    await published(client, "acme", ["a1"], 0)
    await deps.queue.lanes.refresh()
    assert worker.room(lane) == settings.delivery_batch_max_inflight - share // 4
    await deps.queue.publish(event("beta", 0), [("b", "k")])
    await deps.queue.lanes.refresh()
    assert worker.room(lane) == share
