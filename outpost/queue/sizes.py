"""How much the queue holds, for the metrics' gauges (read now and then, never per scrape):
each partition's tasks and the age of its oldest, the retry schedule, the dead letters.
One pipelined round trip per refresh."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from outpost.queue.calls import Calls, raise_first
from outpost.queue.keys import Keys
from outpost.queue.outbox import marked_tenants

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
    """The queue's sizes in two round trips (the lanes each partition indexes, then their
    lengths and first entries; a partition stream of before the lanes counts too)."""
    tenants: Any = await redis.zrange(keys.tenants(), 0, MAX_TENANTS_COUNTED - 1)
    pipe = redis.pipeline(transaction=False)
    for n in range(partitions):
        pipe.smembers(keys.lanes(n))
    streams = [
        [keys.partition(n), *sorted(map(_s, lanes))] for n, lanes in enumerate(await pipe.execute())
    ]
    pipe = redis.pipeline(transaction=False)
    for group in streams:
        for stream in group:
            pipe.xlen(stream)
            pipe.xrange(stream, count=1)
    for n in range(partitions):
        pipe.zcard(keys.retries(n))
    for member in tenants:
        pipe.xlen(keys.dead_letters(_s(member).split(":", 1)[1]))  # `<created_ms>:<tenant id>`
    answers = iter(await pipe.execute())
    now = time.time()
    depth, ages = {}, {}
    for n, group in enumerate(streams):
        depth[n], ages[n] = 0, 0.0
        for _ in group:
            length, first = int(next(answers)), next(answers)
            depth[n] += length
            if first:
                ages[n] = max(ages[n], entry_age(first[0][0], now))
    retries = sum(int(next(answers)) for _ in range(partitions))
    return Sizes(depth, ages, retries, sum(int(x) for x in answers))


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def outboxed(redis: Any, keys: Keys, partitions: int) -> int:
    """Outbox entries not yet known to be queued in their lanes (queue/outbox.py: one per
    publish call that stored events, one per redriven dead letter): two round trips, the
    marked tenants, then their outboxes."""
    calls = Calls()
    for tenant in await marked_tenants(redis, keys, partitions):
        calls.command("ZCARD", keys.outbox(tenant))
    return sum(int(n) for n in raise_first(await calls.run(redis)))
