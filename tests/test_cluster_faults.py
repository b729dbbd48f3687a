"""Faults on a real Redis Cluster (a private one: its masters are killed here): a master
killed (SIGKILL) during a publish + delivery run, its replica takes over, the client
follows (MOVED, a new topology) and the run finishes; a worker killed (SIGKILL) during the
failover loses nothing (another worker reclaims what it had read).

Replication is asynchronous: without WAIT (REDIS_WAIT_REPLICAS, built on the i18-ops
branch) a write acknowledged by the killed master in the last moments may not have reached
its replica. The test counts those and bounds them by what one publish batch holds in
flight; with WAIT the count must be 0."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from outpost.deps import Deps
from outpost.dev.cluster import RedisCluster as LocalCluster
from outpost.models import Event
from outpost.queue import outbox as outbox_module
from outpost.queue.calls import Calls, raise_first
from outpost.queue.items import Outcome
from tests.conftest import make_settings

TENANTS = 12
DESTINATIONS = ("d1", "d2")
BATCH = 50


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster().start()
    yield c
    c.stop()


async def publish_all(deps: Deps, batches: range, acked: set[str]) -> None:
    """Publish batch after batch; a batch that fails (the master is gone) is sent again
    until it is answered. An event answered True (stored) or False (stored before)
    counts as acknowledged."""
    for b in batches:
        now = datetime.now(UTC)
        batch = [
            (
                Event(id=f"e{b}-{i}", tenant_id=f"t{i % TENANTS}", topic="t", time=now, data={}),
                [(d, f"e{b}-{i}") for d in DESTINATIONS],
                (),
            )
            for i in range(BATCH)
        ]
        while True:
            try:
                results = await deps.queue.publish_many(batch)
                break
            except Exception:  # the master is down or moving: as a publishing client would
                await asyncio.sleep(0.2)
        acked.update(
            e.id for (e, _, _), r in zip(batch, results, strict=True) if r in (True, False)
        )


async def drain(deps: Deps, consumer: str, until: float, stop: asyncio.Event) -> None:
    """Read and complete (success) until `stop` and an empty read, or `until`."""
    queue = deps.queue
    while time.monotonic() < until:
        try:
            await queue.promote_due()  # (with the outbox sweep)
            entries = await queue.read(consumer, count=200, block_ms=50)
            entries += await queue.reclaim(consumer, 1000) if not entries else []
            if not entries and stop.is_set() and await settled(deps):
                return
            waits = [queue.complete_soon(e, Outcome("success"), time.time()) for e in entries]
            await asyncio.gather(*waits)
        except Exception:
            await asyncio.sleep(0.2)


async def settled(deps: Deps) -> bool:
    """Nothing queued, in flight, waiting to be retried or owed by an outbox."""
    depth = await deps.queue.depth()
    calls = Calls()
    for t in range(TENANTS):
        calls.command("ZCARD", deps.keys.outbox(f"t{t}"))
    owed = sum(raise_first(await calls.run(deps.redis)))
    return depth["queued"] == 0 and depth["retrying"] == 0 and owed == 0


async def delivered(deps: Deps, acked: set[str]) -> set[str]:
    """The acknowledged events with an attempt at every destination."""
    calls = Calls()
    ordered = sorted(acked)
    for event_id in ordered:
        tenant = f"t{int(event_id.split('-')[1]) % TENANTS}"
        calls.command("ZCARD", deps.keys.event_attempts(tenant, event_id))
    counts = raise_first(await calls.run(deps.redis))
    return {e for e, n in zip(ordered, counts, strict=True) if n >= len(DESTINATIONS)}


def worker_process(port: int) -> subprocess.Popen[bytes]:
    run = [sys.executable, "-m", "outpost.dev.bench_cluster", "drain", f"cluster:{port}", "w9"]
    return subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_master_and_worker_killed_during_a_run(cluster: LocalCluster, monkeypatch):
    monkeypatch.setattr(outbox_module, "OUTBOX_AGE_SECONDS", 1.0)
    redis: Any = RedisCluster(host="127.0.0.1", port=cluster.port)
    deps = Deps.build(make_settings("redis://127.0.0.1:1/0", delivery_partitions=16), redis)
    for t in range(TENANTS):
        await deps.store.upsert_tenant(f"t{t}", None)
    acked: set[str] = set()
    stop = asyncio.Event()
    other = worker_process(cluster.port)  # a second worker, killed during the failover
    drainer = asyncio.create_task(drain(deps, "w1", time.monotonic() + 120, stop))
    await publish_all(deps, range(10), acked)
    victim = cluster.master_of(deps.keys.lanes(0))
    victim.kill()  # SIGKILL: its replica takes over after cluster-node-timeout
    other.kill()
    other.wait()
    await publish_all(deps, range(10, 40), acked)
    cluster.wait_ok(60, alive=[n for n in cluster.nodes if n is not victim])
    assert cluster.master_of(deps.keys.lanes(0)) in cluster.nodes[cluster.masters :]  # took over
    stop.set()
    await asyncio.wait_for(drainer, 150)
    got = await delivered(deps, acked)
    lost = acked - got
    print(f"acknowledged {len(acked)}, delivered {len(got)}, lost {len(lost)} (no WAIT)")
    assert len(acked) == 40 * BATCH
    assert len(lost) <= BATCH  # at most what was in flight to the killed master
    await redis.aclose()
