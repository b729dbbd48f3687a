"""How much the queue holds, for the metrics' gauges (read now and then, never per scrape):
each partition's tasks and the age of its oldest, the retry schedule, the dead letters.
One pipelined round trip per refresh."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from outpost.queue.keys import Keys

# tenants whose dead letters one refresh counts (their streams are capped; beyond this many
# tenants the gauge counts the first ones by creation)
MAX_TENANTS_COUNTED = 10_000


@dataclass(frozen=True)
class Sizes:
    depth: dict[int, int]  # partition -> tasks queued or in flight
    oldest_age: dict[int, float]  # partition -> seconds since its oldest task was queued
    retries: int
    dead_letters: int


def entry_age(entry_id: str | bytes, now: float) -> float:
    """Seconds since a stream entry id (`<ms>-<seq>`) was added."""
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return max(0.0, now - int(raw.split("-", 1)[0]) / 1000)


async def read_sizes(redis: Redis, keys: Keys, partitions: int) -> Sizes:
    """The queue's sizes in one round trip (two with the dead letters' tenants)."""
    tenants = await redis.zrange(keys.tenants(), 0, MAX_TENANTS_COUNTED - 1)
    pipe = redis.pipeline(transaction=False)
    for n in range(partitions):
        pipe.xlen(keys.partition(n))
        pipe.xrange(keys.partition(n), count=1)
    pipe.zcard(keys.retries())
    for member in tenants:
        text = member.decode() if isinstance(member, bytes) else str(member)
        pipe.xlen(keys.dead_letters(text.split(":", 1)[1]))  # `<created_ms>:<tenant id>`
    answers = await pipe.execute()
    now = time.time()
    depth, ages = {}, {}
    for n in range(partitions):
        depth[n] = int(answers[2 * n])
        first = answers[2 * n + 1]
        ages[n] = entry_age(first[0][0], now) if first else 0.0
    rest = answers[2 * partitions :]
    return Sizes(depth, ages, int(rest[0]), sum(int(x) for x in rest[1:]))
