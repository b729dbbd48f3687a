"""`make bench`'s ordering figures: the same backlog (KEYS partition keys, batched) drained
by a worker with the destination unordered, then with `config.ordering: "partition_key"`
(delivery/ordered.py: one task per key in flight, sub-lanes under leases), against the
bench endpoint: `ordered_per_s`, `unordered_same_backlog_per_s` and their ratio
`ordered_vs_unordered`; and the same for PutRecord (no batching)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

BACKLOG = 50_000
KEYS = 1_000  # distinct partition keys (data.k)
SINGLE_BACKLOG = 10_000


async def measure(
    prefill: Callable[..., Awaitable[Any]],
    drain: Callable[..., Awaitable[tuple[float, float, float]]],
    redis_url: str,
    env: dict[str, str],
    endpoint: str,
) -> dict[str, Any]:
    """`prefill` and `drain` are bench.py's."""
    out: dict[str, Any] = {}
    for batching, n, name in ((True, BACKLOG, ""), (False, SINGLE_BACKLOG, "_putrecord")):
        rates = []
        for ordering in ("none", "partition_key"):
            deps = await _keyed_backlog(prefill, redis_url, endpoint, n, batching, ordering)
            per_s, _, _ = await drain(deps, env, n, 240)
            rates.append(per_s)
            await deps.redis.aclose()
        out[f"unordered_same_backlog{name}_per_s"] = rates[0]
        out[f"ordered{name}_per_s"] = rates[1]
        out[f"ordered{name}_vs_unordered"] = rates[1] / rates[0] if rates[0] else None
    return out


async def _keyed_backlog(
    prefill: Callable[..., Awaitable[Any]],
    redis_url: str,
    endpoint: str,
    n: int,
    batching: bool,
    ordering: str,
) -> Any:
    """bench.py's destination (no events), keyed by `data.k` and ordered or not, and `n`
    events over KEYS keys queued as publish would (the route's lane key)."""
    from outpost.models import Event

    deps = await prefill(redis_url, endpoint, 0, batching=batching)
    dest = await deps.store.get_destination("bench", "d1")
    dest.config |= {"partition_key_template": "data.k", "ordering": ordering}
    await deps.store.replace_destination(dest)
    provider, now = deps.registry.get(dest.type), datetime.now(UTC)
    for start in range(0, n, 1000):
        chunk: list[Any] = []
        for i in range(start, min(n, start + 1000)):
            data = {"k": f"k{i % KEYS}", "n": i, "pad": "x" * 200}
            ev = Event(id=f"b{i}", tenant_id="bench", topic="orders", time=now, data=data)
            chunk.append((ev, [(dest.id, provider.lane_key(ev, dest))], ()))
        await deps.queue.publish_many(chunk)
    return deps
