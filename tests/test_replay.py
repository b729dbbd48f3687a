"""Replay and control: what a destination missed (listed, replayed since a time, delivered
on enable when it opts in), the log's prefix filters and a destination's own retry and
timeout overrides, through the API and the real worker against real Redis (the `memory`
destination type records what it was sent)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from outpost.deps import Deps
from outpost.destinations.base import Kind
from outpost.destinations.memory.provider import MemoryDestination
from outpost.dev import devstack
from outpost.retry import RetryPolicy
from outpost.runtime import build_worker, create_app
from outpost.settings import Settings
from tests.conftest import AUTH, kinesis_body
from tests.faults import KinesisProxy
from tests.topologies import topology  # noqa: F401  (single node and cluster)

T = "2026-06-01T12:00:00Z"  # "since T"
BEFORE, AFTER = "2026-06-01T11:00:00Z", "2026-06-01T12:30:00Z"
DESTS = "/api/v1/tenants/acme/destinations"


@pytest.fixture
async def memory_deps(settings: Settings, redis: Redis) -> AsyncIterator[Deps]:
    d = Deps.build(settings, redis, extra_types=[MemoryDestination()])
    yield d
    await d.registry.close()


@pytest.fixture
async def api(aiohttp_client: Any, settings: Settings, memory_deps: Deps) -> Any:
    client = await aiohttp_client(create_app(settings, memory_deps, run_promoter=False))
    assert (await client.put("/api/v1/tenants/acme", headers=AUTH)).status in (200, 201)
    return client


@pytest.fixture
def memory(memory_deps: Deps) -> MemoryDestination:
    provider = memory_deps.registry.get("memory")
    assert isinstance(provider, MemoryDestination)
    return provider


async def make_dest(api: Any, name: str, **extra: Any) -> str:
    body = {"type": "memory", "topics": ["orders"], "config": {"name": name}}
    r = await api.post(DESTS, headers=AUTH, json={**body, "credentials": {"token": "t"}, **extra})
    assert r.status == 201, await r.text()
    return str((await r.json())["id"])


async def publish(api: Any, event_id: str, when: str, **data: Any) -> None:
    body = {"tenant_id": "acme", "id": event_id, "topic": "orders", "time": when, "data": data}
    r = await api.post("/api/v1/publish", headers=AUTH, json=body)
    assert r.status == 202, await r.text()


async def undelivered(api: Any, dest: str, query: str = "") -> dict[str, str]:
    r = await api.get(f"{DESTS}/{dest}/undelivered{query}", headers=AUTH)
    assert r.status == 200, await r.text()
    return {m["event_id"]: m["status"] for m in (await r.json())["models"]}


async def replay(api: Any, dest: str, **body: Any) -> dict[str, int]:
    r = await api.post(f"{DESTS}/{dest}/replay", headers=AUTH, json=body)
    assert r.status == 202, await r.text()
    return dict(await r.json())


async def toggle(api: Any, dest: str, action: str) -> None:
    r = await api.put(f"{DESTS}/{dest}/{action}", headers=AUTH)
    assert r.status == 200, await r.text()


def received(memory: MemoryDestination, name: str) -> Counter[str]:
    return Counter(d.key for d in memory.received[name])


async def test_replay_since_t_delivers_exactly_the_missed_events_once(
    api, memory_deps, memory, settings
):
    worker = build_worker(memory_deps, settings)
    # no retries: a failed attempt is a dead letter at once (the override under test too)
    dest = await make_dest(api, "shop", delivery_overrides={"retry_limit": 0})
    for key in ("old_failed", "failed_1", "failed_2"):
        memory.fail_record(key, Kind.RETRY, "throttled")
    await publish(api, "old_ok", BEFORE)
    await publish(api, "old_failed", BEFORE)
    for event_id in ("ok_1", "failed_1", "failed_2"):
        await publish(api, event_id, AFTER)
    await worker.run_until_empty()
    await toggle(api, dest, "disable")
    await publish(api, "while_off", AFTER)  # kept for it (not opted in: not sent on enable)
    await toggle(api, dest, "enable")
    await worker.run_until_empty()
    assert received(memory, "shop") == Counter(["old_ok", "ok_1"])
    assert await undelivered(api, dest) == {
        "old_failed": "dead_lettered",
        "failed_1": "dead_lettered",
        "failed_2": "dead_lettered",
        "while_off": "missed",
    }
    since_t = f"?time[gte]={T}"
    assert set(await undelivered(api, dest, since_t)) == {"failed_1", "failed_2", "while_off"}
    # asked twice at once: each missed event is queued by one of them only
    first, second = await asyncio.gather(replay(api, dest, since=T), replay(api, dest, since=T))
    assert first["replayed"] + second["replayed"] == 3
    await worker.run_until_empty()
    assert await replay(api, dest, since=T) == {"replayed": 0, "expired": 0}
    await worker.run_until_empty()
    assert received(memory, "shop") == Counter(
        ["old_ok", "ok_1", "failed_1", "failed_2", "while_off"]
    )
    assert await undelivered(api, dest, since_t) == {}
    assert await undelivered(api, dest) == {"old_failed": "dead_lettered"}  # before T: kept


async def test_opted_in_destinations_get_what_they_missed_when_enabled(
    api, memory_deps, memory, settings
):
    worker = build_worker(memory_deps, settings)
    opted = await make_dest(api, "opted", deliver_missed_on_enable=True)
    other = await make_dest(api, "other")
    for dest in (opted, other):
        await toggle(api, dest, "disable")
    await publish(api, "off_1", AFTER)
    await publish(api, "off_2", AFTER)
    for dest in (opted, other):
        await toggle(api, dest, "enable")
    await toggle(api, opted, "enable")  # already enabled: nothing queued again
    await worker.run_until_empty()
    assert received(memory, "opted") == Counter(["off_1", "off_2"])
    assert received(memory, "other") == Counter()
    assert await undelivered(api, other) == {"off_1": "missed", "off_2": "missed"}
    assert await undelivered(api, opted) == {}
    # enabling through PATCH (disabled_at: null) delivers what was missed too
    await toggle(api, opted, "disable")
    await publish(api, "off_3", AFTER)
    r = await api.patch(f"{DESTS}/{opted}", headers=AUTH, json={"disabled_at": None})
    assert r.status == 200 and (await r.json())["deliver_missed_on_enable"] is True
    await worker.run_until_empty()
    assert received(memory, "opted") == Counter(["off_1", "off_2", "off_3"])


async def test_undelivered_lists_pending_and_failed_with_filters(
    api, memory_deps, memory, settings
):
    worker = build_worker(memory_deps, settings)
    dest = await make_dest(api, "slow", delivery_overrides={"retry_schedule": [3600]})
    memory.fail_record("flaky", Kind.RETRY, "throttled")
    await publish(api, "flaky", BEFORE)
    await publish(api, "sent", BEFORE)
    entries = await memory_deps.queue.read(worker.name, count=10, block_ms=100)
    await asyncio.gather(*(worker.process(e) for e in entries))
    await publish(api, "queued", AFTER)  # not attempted yet
    assert await undelivered(api, dest) == {"flaky": "failed", "queued": "pending"}
    assert await undelivered(api, dest, "?status=pending") == {"queued": "pending"}
    assert await undelivered(api, dest, f"?time[lt]={T}") == {"flaky": "failed"}
    r = await api.get(f"{DESTS}/{dest}/undelivered?status=lost", headers=AUTH)
    assert r.status == 422 and "status" in (await r.json())["data"][0]
    # the retry waits on the destination's own schedule (an hour), not the deployment's
    [member] = await memory_deps.queue.retry_schedule()
    delay = member[1] / 1000 - time.time()
    assert 0.7 * 3600 < delay < 1.3 * 3600


async def test_replay_refuses_a_disabled_destination_and_bad_bodies(api):
    dest = await make_dest(api, "shop")
    for body in ({}, {"since": "yesterday"}, {"since": T, "until": BEFORE}, {"since": T, "x": 1}):
        r = await api.post(f"{DESTS}/{dest}/replay", headers=AUTH, json=body)
        assert r.status == 422, (body, await r.text())
    await toggle(api, dest, "disable")
    r = await api.post(f"{DESTS}/{dest}/replay", headers=AUTH, json={"since": T})
    assert r.status == 400 and "disabled" in (await r.json())["message"]
    r = await api.post(f"{DESTS}/nope/replay", headers=AUTH, json={"since": T})
    assert r.status == 404


async def test_delivery_overrides_are_bounded_by_the_operator(api):
    over = [
        ({"retry_limit": 21}, "DESTINATION_MAX_RETRY_LIMIT"),
        ({"retry_schedule": [1.0] * 21}, "DESTINATION_MAX_RETRY_LIMIT"),
        ({"retry_schedule": [90_000]}, "retry_schedule"),
        ({"timeout_seconds": 31}, "DESTINATION_MAX_TIMEOUT_SECONDS"),
        ({"timeout_seconds": 6}, "DELIVERY_RECLAIM_IDLE_SECONDS"),  # the tests' reclaim: 6 s
        ({"retry_limit": -1}, "retry_limit"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"retries": 3}, "retries"),
    ]
    body = {"type": "memory", "topics": ["orders"], "config": {"name": "b"}}
    for overrides, named in over:
        r = await api.post(
            DESTS,
            headers=AUTH,
            json={**body, "credentials": {"token": "t"}, "delivery_overrides": overrides},
        )
        assert r.status == 422, (overrides, await r.text())
        assert named in str((await r.json())["data"]), overrides
    dest = await make_dest(api, "b", delivery_overrides={"retry_limit": 20, "timeout_seconds": 4})
    r = await api.get(f"{DESTS}/{dest}", headers=AUTH)
    shown = (await r.json())["delivery_overrides"]
    assert shown == {"retry_limit": 20, "timeout_seconds": 4}
    r = await api.patch(f"{DESTS}/{dest}", headers=AUTH, json={"delivery_overrides": {"x": 1}})
    assert r.status == 422
    r = await api.patch(
        f"{DESTS}/{dest}", headers=AUTH, json={"delivery_overrides": {"retry_limit": 99}}
    )
    assert r.status == 422
    r = await api.patch(f"{DESTS}/{dest}", headers=AUTH, json={"delivery_overrides": None})
    assert r.status == 200 and (await r.json())["delivery_overrides"] is None


async def test_the_logs_filter_by_event_id_prefix(api, memory_deps, settings):
    worker = build_worker(memory_deps, settings)
    await make_dest(api, "p")
    for event_id in ("ord_1", "ord_2", "inv_1"):
        await publish(api, event_id, AFTER)
    await worker.run_until_empty()
    r = await api.get("/api/v1/events?tenant_id=acme&id_prefix=ord_", headers=AUTH)
    assert sorted(e["id"] for e in (await r.json())["models"]) == ["ord_1", "ord_2"]
    r = await api.get("/api/v1/attempts?tenant_id=acme&event_id_prefix=inv", headers=AUTH)
    assert [a["event_id"] for a in (await r.json())["models"]] == ["inv_1"]


def test_a_destinations_policy_overrides_the_deployments():
    base = RetryPolicy(max_retries=10, interval=30.0, jitter=0.0)
    assert base.overridden(None) is base
    assert base.overridden({"timeout_seconds": 3}) is base
    limited = base.overridden({"retry_limit": 2})
    assert (limited.limit, limited.delay(2), limited.delay(3)) == (2, 60.0, None)
    scheduled = RetryPolicy(schedule=(1.0,), jitter=0.0).overridden({"retry_schedule": [5, 7]})
    assert (scheduled.delay(1), scheduled.delay(2), scheduled.delay(3)) == (5.0, 7.0, None)
    no_retry = RetryPolicy(schedule=(1.0, 2.0), jitter=0.0).overridden({"retry_limit": 0})
    assert no_retry.delay(1) is None


async def test_a_tenant_keeps_its_log_for_its_own_retention(api, memory_deps, settings, redis):
    keys, worker = memory_deps.keys, build_worker(memory_deps, settings)
    most = settings.event_retention_seconds
    r = await api.put("/api/v1/tenants/acme", headers=AUTH, json={"event_retention_seconds": 120})
    assert r.status == 200 and (await r.json())["event_retention_seconds"] == 120
    dest = await make_dest(api, "r")
    await publish(api, "short", AFTER)
    await worker.run_until_empty()
    [attempt] = await memory_deps.queue.attempts("acme", dest)
    assert 60 < await redis.ttl(keys.event("acme", "short")) <= 120
    assert 60 < await redis.ttl(keys.attempt(attempt["id"])) <= 120
    # an upsert without the field keeps it; null gives the deployment's back
    r = await api.put("/api/v1/tenants/acme", headers=AUTH, json={"metadata": {"a": "b"}})
    assert (await r.json())["event_retention_seconds"] == 120
    r = await api.put("/api/v1/tenants/acme", headers=AUTH, json={"event_retention_seconds": None})
    assert "event_retention_seconds" not in await r.json()
    await publish(api, "long", AFTER)
    assert await redis.ttl(keys.event("acme", "long")) > most - 60
    for bad in (most + 1, 59, "a"):
        r = await api.put(
            "/api/v1/tenants/acme", headers=AUTH, json={"event_retention_seconds": bad}
        )
        assert r.status == 422 and "event_retention_seconds" in str((await r.json())["data"])


async def test_replay_since_t_on_kinesis_sends_each_missed_record_once(
    client, worker, moto, moto_stream
):
    """The same acceptance through a real destination type: Kinesis (moto behind a proxy
    that refuses records carrying a marker: a permanent failure, dead-lettered at once)."""
    proxy = await KinesisProxy(moto.url, reject_marker=b"poison").start()
    try:
        await client.put("/api/v1/tenants/acme", headers=AUTH)
        body = kinesis_body(moto_stream, proxy.url, partition_key_template="data.k")
        r = await client.post(DESTS, headers=AUTH, json=body)
        assert r.status == 201, await r.text()
        dest = (await r.json())["id"]
        await publish(client, "k_old", BEFORE, k="poison-old")
        await publish(client, "k_ok", AFTER, k="ok")
        await publish(client, "k_bad", AFTER, k="poison-bad")
        await worker.run_until_empty()
        await toggle(client, dest, "disable")
        await publish(client, "k_off", AFTER, k="off")
        await toggle(client, dest, "enable")
        proxy.reject_marker = None  # the receiving side is fixed
        answers = await asyncio.gather(*(replay(client, dest, since=T) for _ in range(3)))
        assert sum(a["replayed"] for a in answers) == 2
        await worker.run_until_empty()
    finally:
        await proxy.close()
    records = devstack.read_stream(moto.url, moto_stream, expect=3)
    assert sorted(r["PartitionKey"] for r in records) == ["off", "ok", "poison-bad"]
    assert await undelivered(client, dest) == {"k_old": "dead_lettered"}


async def test_a_destinations_own_timeout_ends_its_sends(api, memory_deps, memory, settings):
    """DELIVERY_TIMEOUT_SECONDS is 5 s here; the destination's own 0.5 s ends a stalled
    send well before it (the deadline adds a 0.5 s margin)."""
    worker = build_worker(memory_deps, settings)
    await make_dest(api, "quick", delivery_overrides={"timeout_seconds": 0.5})
    memory.stall_next(30)
    await publish(api, "stalled", AFTER)
    [entry] = await memory_deps.queue.read(worker.name, count=10, block_ms=100)
    began = time.monotonic()
    outcome = await worker.process(entry)
    assert time.monotonic() - began < settings.delivery_timeout_seconds - 2
    assert (outcome.status, outcome.code) == ("failed", "timeout")


async def test_a_dead_letter_delivered_by_a_manual_retry_is_not_missed(
    api, memory_deps, memory, settings
):
    worker = build_worker(memory_deps, settings)
    dest = await make_dest(api, "m", delivery_overrides={"retry_limit": 0})
    memory.fail_record("again", Kind.RETRY, "throttled")
    await publish(api, "again", AFTER)
    await worker.run_until_empty()
    assert await undelivered(api, dest) == {"again": "dead_lettered"}
    body = {"event_id": "again", "destination_id": dest}
    assert (await api.post("/api/v1/retry", headers=AUTH, json=body)).status == 202
    await worker.run_until_empty()
    assert await undelivered(api, dest) == {}
    assert await replay(api, dest, since=BEFORE) == {"replayed": 0, "expired": 0}
    await worker.run_until_empty()
    assert received(memory, "m") == Counter(["again"])
