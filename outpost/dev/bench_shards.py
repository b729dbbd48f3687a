"""`make bench`'s shard figures: the batched worker against a Kinesis endpoint that
enforces per-shard limits (outpost.dev.kinesis_shards), and the aggregated drain
(KPL aggregation) against the bench endpoint, in user records/s; and the ordering figures
(bench_ordered.py)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientSession

from outpost.dev import bench_ordered

SHARDS = 2
SHARD_RECORDS_PER_S = 1000
SHARD_BACKLOG = 12_000  # ~6 s at the 2 shards' limit
AGGREGATED_BACKLOG = 200_000


async def measure(
    prefill: Callable[..., Awaitable[Any]],
    drain: Callable[..., Awaitable[tuple[float, float, float]]],
    redis_url: str,
    env: dict[str, str],
    bench_endpoint: str,
) -> dict[str, Any]:
    """`prefill(redis_url, endpoint, n, batching=, aggregation=)` and
    `drain(deps, env, n, limit)` are bench.py's."""
    from outpost.dev import devstack

    out: dict[str, Any] = {}
    deps = await prefill(redis_url, bench_endpoint, AGGREGATED_BACKLOG, aggregation=True)
    out["pipeline_aggregated_per_s"], _, _ = await drain(deps, env, AGGREGATED_BACKLOG, 240)
    await deps.redis.aclose()
    port = devstack.free_port()
    argv = [sys.executable, "-m", "outpost.dev.kinesis_shards", str(port), str(SHARDS)]
    server = devstack.Server(argv, port).start()
    try:
        deps = await prefill(redis_url, server.url, SHARD_BACKLOG, batching=True)
        await drain(deps, env, SHARD_BACKLOG, 120)  # stops the worker once all were sent
        await deps.redis.aclose()
        async with ClientSession() as http, http.get(f"{server.url}/stats") as resp:
            stats = await resp.json()
    finally:
        server.stop()
    # the endpoint's own clock: the worker reads ahead, so the queue empties early
    out["shard_limited_per_s"] = stats["accepted"] / stats["seconds"] if stats["seconds"] else 0.0
    out["shard_limit_per_s"] = float(SHARDS * SHARD_RECORDS_PER_S)
    sent = stats["accepted"] + stats["throttled"]
    out["shard_throttled_share"] = stats["throttled"] / sent if sent else None
    out["shard_busiest_second"] = max(stats["busiest"].values())
    return out | await bench_ordered.measure(prefill, drain, redis_url, env, bench_endpoint)
