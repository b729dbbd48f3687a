"""What observability costs on the hot paths (a micro-benchmark, not a test):
`python -m outpost.dev.bench_obs [N] [rounds]` publishes N events through the API
in-process (aiohttp's test server: routing, middlewares, the access log line) to a memory
destination, then delivers them with one worker, against a private redis-server; it
prints microseconds per publish and per delivery, the best of `rounds`; `... hooks` times
the metric and log hooks alone. Run it on two
trees to compare (it uses only what predates the metrics). Logs go to stderr as JSON:
redirect them (2>/dev/null) so the terminal is not what is measured."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from outpost import logs
from outpost.deps import Deps
from outpost.destinations.memory.provider import MemoryDestination
from outpost.dev import devstack
from outpost.queue.connection import connect_redis
from outpost.runtime import build_worker, create_app
from outpost.settings import Settings

AUTH = {"Authorization": "Bearer bench-admin-key"}
CONCURRENCY = 32


def settings(redis_url: str) -> Settings:
    return Settings(
        api_key="bench-admin-key",
        api_jwt_secret="bench-jwt-secret-of-at-least-32-bytes",
        aes_encryption_secret="bench-aes-secret-16+",
        redis_url=redis_url,
        delivery_partitions=4,
    )


async def publish_all(client: TestClient, n: int, tag: str) -> float:
    """Seconds to publish n events, CONCURRENCY at a time."""
    ids = iter(range(n))

    async def one_by_one() -> None:
        for i in ids:
            body = {"tenant_id": "bench", "topic": "t", "id": f"{tag}-{i}", "data": {"i": i}}
            r = await client.post("/api/v1/publish", json=body, headers=AUTH)
            assert r.status == 202, await r.text()

    began = time.perf_counter()
    await asyncio.gather(*(one_by_one() for _ in range(CONCURRENCY)))
    return time.perf_counter() - began


async def one_round(s: Settings, n: int, tag: str) -> tuple[float, float]:
    redis = connect_redis(s.redis_dsn(), 64)
    deps = Deps.build(s, redis, extra_types=[MemoryDestination()])
    client = TestClient(TestServer(create_app(s, deps, run_promoter=False)))
    await client.start_server()
    try:
        await client.put("/api/v1/tenants/bench", headers=AUTH)
        dest = {"type": "memory", "topics": ["t"], "config": {"name": tag}}
        dest["credentials"] = {"token": "t-bench"}
        await client.post("/api/v1/tenants/bench/destinations", json=dest, headers=AUTH)
        published = await publish_all(client, n, tag)
        worker = build_worker(deps, s, name=f"bench-{tag}")
        began = time.perf_counter()
        await worker.run_until_empty(limit=600)
        delivered = time.perf_counter() - began
    finally:
        await client.close()
        await deps.registry.close()
        await redis.aclose()
    return published / n * 1e6, delivered / n * 1e6


async def main(n: int, rounds: int) -> None:
    logs.configure("info", "json")
    server = devstack.redis_server()
    server.start()
    try:
        s = settings(server.redis_url)
        results = [await one_round(s, n, f"r{r}") for r in range(rounds)]
    finally:
        server.stop()
    pub, dlv = min(r[0] for r in results), min(r[1] for r in results)
    print(f"{n} events, best of {rounds}: publish {pub:.0f} us/event, delivery {dlv:.0f} us/event")


def _in_flight(t: Any) -> None:
    t.inflight.inc()
    t.inflight.dec()


def hooks(n: int = 200_000) -> None:
    """The hooks alone, microseconds per call (the part of the figures above they are)."""
    import io
    import timeit

    from aiohttp.test_utils import make_mocked_request

    from outpost.api.access import report
    from outpost.delivery.deliverer import observe
    from outpost.models import Event, Task, utcnow
    from outpost.queue.items import Outcome, stored_event
    from outpost.telemetry import Telemetry

    stderr, sys.stderr = sys.stderr, io.StringIO()  # production's JSON lines, kept in memory
    logs.configure("info", "json")
    sys.stderr = stderr
    t = Telemetry()
    task, ok = Task("t", "e", "d"), Outcome("success", destination_type="aws_kinesis")
    started = time.time() - 0.02  # a 20 ms attempt of an event published 50 ms ago
    event = Event("e", "t", "x", utcnow(), {}, published_at=started - 0.03)
    record = {**event.to_json(), "_pt": time.time(), "_tp": "00-" + "1" * 32 + "-" + "2" * 16}
    request = make_mocked_request("POST", "/api/v1/publish")
    cases = {
        "on_publish (1 destination)": lambda: t.on_publish("t", ["aws_kinesis"]),
        "observe (success, both histograms)": lambda: observe(t, task, ok, event, started),
        "in-flight inc + dec": lambda: _in_flight(t),
        "access line + request histogram": lambda: report(request, 202, 0.001, t, True),
        "stored event with what it carries": lambda: stored_event(record),
        "stored event, plain (before)": lambda: Event.from_json(record),
    }
    for name, call in cases.items():
        seconds = min(timeit.repeat(call, number=n // 10, repeat=5)) / (n // 10)
        print(f"{name:40s} {seconds * 1e6:6.2f} us")


if __name__ == "__main__":
    if sys.argv[1:2] == ["hooks"]:
        hooks()
        sys.exit()
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [3000, 3][len(args) :])))
