"""`make bench`'s durability figures: publish latency and rate with REDIS_WAIT_REPLICAS 0
and 1, on a private master + replica pair (redis-server --replicaof) on 127.0.0.1. In
this process, through Ingest (the coalescer and the publish script, as the API's publish
route uses them): one caller at a time for latency, CONCURRENCY callers for the rate.
`python -m outpost.dev.bench_wait` runs only this part."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from typing import Any

EVENTS = 2000
CONCURRENCY = 64


def _pair() -> tuple[Any, Any]:
    from outpost.dev import devstack

    master = devstack.redis_server().start()
    replica = devstack.redis_server()
    replica.argv += ["--replicaof", "127.0.0.1", str(master.port)]
    return master, replica.start()


async def _linked(redis: Any) -> None:
    for _ in range(400):
        info = await redis.info("replication")
        if "online" in str(info.get("slave0", {}).get("state", "")):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the replica never came online")


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _one(url: str, replicas: int) -> dict[str, float]:
    from outpost.deps import Deps
    from outpost.models import Event
    from outpost.queue.connection import connect_redis
    from outpost.settings import Settings

    settings = Settings(
        api_key="bench",
        aes_encryption_secret="bench-aes-secret",
        redis_url=url,
        redis_wait_replicas=replicas,
        destinations_allow_private_endpoints=True,
    )
    redis = connect_redis(url)
    deps = Deps.build(settings, redis)
    await _linked(redis)
    tenant = f"wait{replicas}"
    await deps.store.upsert_tenant(tenant, None)
    body = {"type": "webhook", "topics": "*", "config": {"url": "http://127.0.0.1:9/h"}}
    await deps.store.create_destination(deps.registry.create(tenant, body, "d1"))
    now = datetime.now(UTC)

    def event(i: int) -> Event:
        return Event(id=f"w{i}", tenant_id=tenant, topic="t", time=now, data={"i": i})

    took: list[float] = []
    for i in range(EVENTS):
        started = time.perf_counter()
        await deps.ingest.publish(event(i))
        took.append(time.perf_counter() - started)
    started = time.perf_counter()
    await asyncio.gather(*(deps.ingest.publish(event(EVENTS + i)) for i in range(EVENTS * 5)))
    rate = EVENTS * 5 / (time.perf_counter() - started)
    await deps.registry.close()
    await redis.aclose()
    return {
        f"{tenant}_publish_p50_ms": _ms(took, 0.5),
        f"{tenant}_publish_p99_ms": _ms(took, 0.99),
        f"{tenant}_publish_mean_ms": 1000 * statistics.fmean(took),
        f"{tenant}_publish_burst_per_s": rate,
    }


async def measure() -> dict[str, float]:
    master, replica = _pair()
    out: dict[str, float] = {}
    try:
        for replicas in (0, 1):
            out.update(await _one(master.redis_url, replicas))
    finally:
        replica.stop()
        master.stop()
    return out


if __name__ == "__main__":
    for name, value in asyncio.run(measure()).items():
        print(f"{name:<28} {value:.1f}")
