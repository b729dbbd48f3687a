"""REDIS_WAIT_REPLICAS on a real master + replica pair (redis-server --replicaof): with the
replica up a publish answers 202 after WAIT saw it take the write; with the replica gone,
503 within the timeout, saying the event is stored on the master; the same id published
again once the replica is back is 202. One WAIT per batched publish call, not per event."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from outpost.deps import Deps
from outpost.dev import devstack
from outpost.errors import Unavailable
from outpost.models import Event
from outpost.runtime import create_app, redis_client
from tests.conftest import AUTH, make_settings

TIMEOUT_MS = 400


def replica_of(master: devstack.RedisServer, port: int | None = None) -> devstack.RedisServer:
    server = devstack.redis_server(port=port)
    server.argv += ["--replicaof", "127.0.0.1", str(master.port)]
    return server


async def linked(master: Redis, replicas: int, within: float = 20.0) -> None:
    """Until the master sees `replicas` replicas online."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        info = await master.info("replication")
        if info.get("connected_slaves") == replicas and (
            replicas == 0 or "online" in str(info.get("slave0", {}).get("state", ""))
        ):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the master never saw {replicas} replica(s)")


async def caught_up(master: Redis, within: float = 10.0) -> None:
    """Until the replica has acknowledged every write of the master (it acks each second)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        info = await master.info("replication")
        if info.get("slave0", {}).get("offset") == info["master_repl_offset"]:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the replica never caught up")


@pytest.fixture
def pair() -> Iterator[tuple[devstack.RedisServer, devstack.RedisServer]]:
    master = devstack.redis_server().start()
    replica = replica_of(master).start()
    yield master, replica
    replica.stop()
    master.stop()


@pytest.fixture
async def api(aiohttp_client: Any, pair: Any) -> AsyncIterator[tuple[Any, Redis]]:
    master, _ = pair
    client, deps = await wait_api(aiohttp_client, master.redis_url)
    await linked(deps.redis, 1)
    assert (await client.put("/api/v1/tenants/w", headers=AUTH)).status in (200, 201)
    yield client, deps.redis
    await deps.registry.close()
    await deps.redis.aclose()


async def wait_api(aiohttp_client: Any, url: str) -> tuple[Any, Deps]:
    """An API process of its own (its own Redis connections), waiting for 1 replica."""
    settings = make_settings(url, redis_wait_replicas=1, redis_wait_timeout_ms=TIMEOUT_MS)
    deps = Deps.build(settings, redis_client(settings))
    return await aiohttp_client(create_app(settings, deps, run_promoter=False)), deps


async def publish(client: Any, event_id: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    body = {"tenant_id": "w", "topic": "orders", "id": event_id, "data": {"n": 1}}
    r = await client.post("/api/v1/publish", json=body, headers=AUTH)
    return r.status, await r.json(), time.monotonic() - started


async def test_202_with_the_replica_up_503_without_it(api, pair):
    client, redis = api
    master, replica = pair
    status, body, _ = await publish(client, "e1")
    assert status == 202, body
    replica.kill()
    await linked(redis, 0)
    status, body, took = await publish(client, "e2")
    assert status == 503, body
    assert "stored on the Redis master" in str(body) and "same id" in str(body)
    assert took < TIMEOUT_MS / 1000 + 1.0
    assert await redis.exists(b"{t:w}:event:e2")  # stored: the answer says so truly
    back = replica_of(master, replica.port).start()
    try:
        await linked(redis, 1)
        await caught_up(redis)  # (its first sync done: on a loaded machine it takes a while)
        status, body, _ = await publish(client, "e2")
        assert status == 202 and body["duplicate"] is True, body
    finally:
        back.stop()


async def test_a_retry_waits_for_the_replica_to_have_the_first_write(api, pair):
    """The replica connected but behind (stopped): the first publish is 503; the same id
    again, from another process on a connection whose own writes the replica has, finds
    the event stored and must WAIT for that first write too, not pass at once."""
    client, _ = api
    master, replica = pair
    settings = make_settings(
        master.redis_url, redis_wait_replicas=1, redis_wait_timeout_ms=TIMEOUT_MS
    )
    other = Deps.build(settings, Redis.from_url(master.redis_url, single_connection_client=True))
    try:
        assert await other.queue.publish(event("r0"), []) is True  # it wrote before
        await caught_up(other.redis)
        os.kill(replica.proc.pid, signal.SIGSTOP)
        try:
            status, body, _ = await publish(client, "r1")
            assert status == 503, body
            with pytest.raises(Unavailable, match="stored on the Redis master"):
                await other.queue.publish(event("r1"), [])
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)
        assert await other.queue.publish(event("r1"), []) is False  # (a duplicate: 202)
    finally:
        await other.registry.close()
        await other.redis.aclose()


async def test_a_duplicate_publish_makes_a_replicated_write(api, pair):
    """What the test above rests on, whatever the server's WAIT does for a connection
    that wrote nothing: the duplicate's call writes (its event's expiry set to itself),
    so the replication stream moves and the call's WAIT covers the first write."""
    _, redis = api
    deps = Deps.build(make_settings(pair[0].redis_url), redis)  # (no WAIT)
    try:
        before = (await redis.info("replication"))["master_repl_offset"]
        assert await deps.queue.publish(event("d1"), []) is True
        stored = (await redis.info("replication"))["master_repl_offset"]
        ttl = await redis.pttl("{t:w}:event:d1")
        assert stored > before
        assert await deps.queue.publish(event("d1"), []) is False
        assert (await redis.info("replication"))["master_repl_offset"] > stored
        assert ttl - 1000 < await redis.pttl("{t:w}:event:d1") <= ttl  # (its expiry kept)
    finally:
        await deps.registry.close()


def event(event_id: str) -> Event:
    return Event(id=event_id, tenant_id="w", topic="orders", time=datetime.now(UTC), data={})


async def test_one_wait_per_batch_not_per_event(api):
    client, redis = api
    await redis.config_resetstat()
    answers = await asyncio.gather(*(publish(client, f"b{i}") for i in range(40)))
    assert [a[0] for a in answers] == [202] * 40
    waits = (await redis.info("commandstats"))["cmdstat_wait"]["calls"]
    assert 1 <= waits < 40, waits


async def cluster_api(aiohttp_client: Any, url: str, replicas: int) -> tuple[Any, Deps]:
    settings = make_settings(url, redis_cluster_enabled=True, redis_wait_replicas=replicas)
    deps = Deps.build(settings, redis_client(settings))
    return await aiohttp_client(create_app(settings, deps, run_promoter=False)), deps


async def test_on_the_cluster_each_tenants_node_waits_for_its_replica(
    aiohttp_client, redis_cluster
):
    """Tenants spread over the 3 masters (1 replica each): WAIT 1 is met on each owning
    node; WAIT 2 cannot be (503, saying 1 of 2)."""
    redis_cluster.flush()
    client, deps = await cluster_api(aiohttp_client, redis_cluster.redis_url, 1)
    strict, strict_deps = await cluster_api(aiohttp_client, redis_cluster.redis_url, 2)
    try:
        for tenant in [f"c{i}" for i in range(9)]:
            assert (await client.put(f"/api/v1/tenants/{tenant}", headers=AUTH)).status == 201
            body = {"tenant_id": tenant, "topic": "orders", "id": "e1", "data": {}}
            r = await client.post("/api/v1/publish", json=body, headers=AUTH)
            assert r.status == 202, await r.text()
            r = await strict.post("/api/v1/publish", json={**body, "id": "e2"}, headers=AUTH)
            assert r.status == 503 and "1 of 2 replica(s)" in await r.text()
    finally:
        for d in (deps, strict_deps):
            await d.registry.close()
            await d.redis.aclose()
        redis_cluster.flush()
