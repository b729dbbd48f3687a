"""The queue on a single node beside the queue on a local Redis Cluster (outpost.dev.cluster:
3 masters + 3 replicas), in the same run: publish rate (coalesced batches through
Queue.publish_many: the tenant step, the drain, the outbox cleared) and drain rate (a
worker's own Redis work: read a fair share of the lanes, complete each task as a
success: the tenant step, the attempt records, the partition step), by one worker
process and by two. No destination is called: this measures what the layout costs.

`python -m outpost.dev.bench_cluster [single|cluster|both] [events]` prints a table and
one JSON line; `make bench` runs it as one of its parts.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

TENANTS = 40  # with two destinations each: lanes spread over every partition
DESTINATIONS = ("d1", "d2")
BATCH = 500  # events per publish_many call (as the API's coalescer makes them)
PARTITIONS = 16


def client(target: str) -> Any:
    """A client of `redis://...` or of `cluster:<port>`."""
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    if target.startswith("cluster:"):
        return RedisCluster(host="127.0.0.1", port=int(target.split(":", 1)[1]))
    return Redis.from_url(target)


def deps_of(redis: Any) -> Any:
    from outpost.deps import Deps
    from outpost.settings import Settings

    settings = Settings(
        api_key="bench",
        aes_encryption_secret="bench-aes-secret",
        redis_url="redis://127.0.0.1:1/0",  # unused: the client is handed over
        delivery_partitions=PARTITIONS,
    )
    return Deps.build(settings, redis)


async def publish(target: str, n: int) -> float:
    """Publish `n` events over TENANTS tenants: events/s."""
    from outpost.models import Event

    redis = client(target)
    deps = deps_of(redis)
    now = datetime.now(UTC)
    items = []
    for i in range(n):
        event = Event(id=f"b{i}", tenant_id=f"t{i % TENANTS}", topic="t", time=now, data={})
        items.append((event, [(d, event.id) for d in DESTINATIONS], ()))
    started = time.monotonic()
    for at in range(0, n, BATCH):
        await deps.queue.publish_many(items[at : at + BATCH])
    elapsed = time.monotonic() - started
    await redis.aclose()
    return n / elapsed


async def drain_worker(target: str, consumer: str) -> dict[str, float]:
    """One worker's loop until the queue stays empty: tasks done, first and last time."""
    from outpost.queue.items import Outcome

    redis = client(target)
    deps = deps_of(redis)
    queue = deps.queue
    await queue.ensure_groups()
    done, first, last, idle = 0, 0.0, 0.0, 0
    while idle < 3:
        entries = await queue.read(consumer, count=BATCH, block_ms=100)
        if not entries:
            idle += 1
            continue
        idle = 0
        first = first or time.monotonic()
        waits = [queue.complete_soon(e, Outcome("success"), time.time()) for e in entries]
        for w in waits:
            await w
        done += len(entries)
        last = time.monotonic()
    await redis.aclose()
    return {"done": done, "first": first, "last": last}


def drain(target: str, workers: int) -> float:
    """`workers` processes drain the queue together: tasks/s."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "outpost.dev.bench_cluster", "drain", target, f"w{i}"],
            stdout=subprocess.PIPE,
        )
        for i in range(workers)
    ]
    results = [json.loads(p.communicate(timeout=600)[0].decode().splitlines()[-1]) for p in procs]
    done = sum(r["done"] for r in results)
    span = max(r["last"] for r in results) - min(r["first"] for r in results if r["first"])
    return done / span if span > 0 else 0.0


async def flush(target: str) -> None:
    redis = client(target)
    if target.startswith("cluster:"):
        await redis.flushall(target_nodes=redis.PRIMARIES)
    else:
        await redis.flushall()
    await redis.aclose()


async def topology_figures(name: str, target: str, n: int) -> dict[str, float]:
    """Publish then drain with one worker, then again with two."""
    out: dict[str, float] = {}
    for workers in (1, 2):
        await flush(target)
        out[f"{name}_publish_per_s"] = await publish(target, n)
        out[f"{name}_drain_{workers}w_per_s"] = drain(target, workers)
    return out


async def figures(n: int = 20_000, which: str = "both") -> dict[str, float]:
    from outpost.dev import devstack
    from outpost.dev.cluster import RedisCluster

    out: dict[str, float] = {}
    if which in ("single", "both"):
        server = devstack.redis_server()
        server.start()
        try:
            out |= await topology_figures("single", server.redis_url, n)
        finally:
            server.stop()
    if which in ("cluster", "both"):
        cluster = RedisCluster().start()
        try:
            out |= await topology_figures("cluster", f"cluster:{cluster.port}", n)
        finally:
            cluster.stop()
    if which == "both":
        out["cluster_vs_single_drain_1w"] = (
            out["cluster_drain_1w_per_s"] / out["single_drain_1w_per_s"]
        )
        out["cluster_2w_vs_1w"] = out["cluster_drain_2w_per_s"] / out["cluster_drain_1w_per_s"]
        out["cluster_vs_single_publish"] = (
            out["cluster_publish_per_s"] / out["single_publish_per_s"]
        )
    return out


def main(argv: list[str]) -> None:
    if argv and argv[0] == "drain":
        print(json.dumps(asyncio.run(drain_worker(argv[1], argv[2]))))
        return
    which = argv[0] if argv else "both"
    n = int(argv[1]) if len(argv) > 1 else 20_000
    out = asyncio.run(figures(n, which))
    for key, value in out.items():
        print(f"{key:32} {value:12.2f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
