"""Ordered sub-lanes: the lanes of a destination with `config.ordering` (per-key order).

Such a destination's tasks go to one of `buckets` sub-lanes by the crc32 of their ordering
key (keys of one bucket share a sub-lane, so a failing head holds its bucket's keys and no
other's), each a stream in the destination's partition `{p:n}` beside that partition's
index of ordered sub-lanes with work (`olanes`). A sub-lane is read by one worker at a
time, the holder of its lease (SET PX, renewed while it delivers), always from its head
(XRANGE, no consumer group): a crashed holder's lease expires and the next one reads the
same head again, in order. A head whose attempt failed stays at the head (ack.lua
`hold`): the sub-lane's state hash says until when it waits and the attempt it is at.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Any

from outpost.models import Task
from outpost.queue.calls import Calls, Client, raise_first
from outpost.queue.items import Entry
from outpost.queue.keys import Keys
from outpost.queue.lanes import Lane, partition_of
from outpost.queue.lua import register

RELEASED_WITH_WORK = 2  # lease.lua: released, and the sub-lane holds tasks again


@dataclass(frozen=True)
class Head:
    """What a sub-lane's owner reads before each batch."""

    entries: list[Entry]  # the tasks after the ones asked after
    attempts: dict[str, int]  # entry id -> the attempt a task retried in place is at
    wait: float  # seconds its head still waits for its retry
    held: bool  # the owner still holds the lease (renewed by this read)


class OrderedLanes:
    def __init__(self, redis: Client, keys: Keys, partitions: int, buckets: int):
        self.redis, self.keys = redis, keys
        self.partitions, self.buckets = partitions, buckets
        self.indexes = [keys.ordered_lanes(n) for n in range(partitions)]
        self._lease = register(redis, "outpost.queue", "lease")

    def of(self, tenant_id: str, destination_id: str, key: str) -> Lane:
        """The sub-lane of `key`: stable across processes (crc32) while `buckets` is."""
        n = partition_of(tenant_id, destination_id, self.partitions)
        bucket = zlib.crc32(key.encode()) % self.buckets
        stream = self.keys.ordered_lane(n, bucket, tenant_id, destination_id)
        return Lane(stream, self.indexes[n], self.keys.bell(n), n)

    async def with_work(self) -> list[str]:
        """Every ordered sub-lane that holds tasks: one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for index in self.indexes:
            pipe.smembers(index)
        return sorted(_s(m) for members in await pipe.execute() for m in members)

    async def lease(self, op: str, lane: str, owner: str, ms: int) -> int:
        """take / renew / release the sub-lane's lease (lease.lua says what comes back)."""
        index = self.keys.lanes_of(lane)
        assert index is not None
        keys = [self.keys.lane_lease(lane), lane, index, self.keys.lane_state(lane)]
        return int(await self._lease(keys=keys, args=[op, owner, ms]))

    async def head(self, lane: str, count: int, after: str | None, owner: str, ms: int) -> Head:
        """The sub-lane's next `count` tasks after entry id `after` (None: its first),
        the attempt each task retried in place is at, how many seconds its head must
        still wait for its retry (0: none), and whether `owner` still holds its lease
        (renewed for `ms` in the same round trip)."""
        index = self.keys.lanes_of(lane)
        assert index is not None
        state_key = self.keys.lane_state(lane)
        keys = [self.keys.lane_lease(lane), lane, index, state_key]
        calls = Calls().script(self._lease, keys, ["renew", owner, ms])
        calls.command("HGETALL", state_key)
        if count > 0:
            start = "-" if after is None else f"({after}"
            calls.command("XRANGE", lane, start, "+", "COUNT", count)
        held, raw_state, *rows = raise_first(await calls.run(self.redis))
        state = {_s(k): _s(v) for k, v in _pairs(raw_state)}
        attempts = {k[2:]: int(v) for k, v in state.items() if k.startswith("a:")}
        entries = []
        for raw_id, fields in rows[0] if rows else []:
            task = Task.from_fields({_s(k): _s(v) for k, v in fields.items()})
            entries.append(Entry(lane, _s(raw_id), task))
        wait = int(state.get("until", 0)) / 1000 - time.time()
        return Head(entries, attempts, max(0.0, wait), bool(held))

    async def queued(self) -> int:
        """Tasks in the ordered sub-lanes: two round trips."""
        lanes = await self.with_work()
        pipe = self.redis.pipeline(transaction=False)
        for lane in lanes:
            pipe.xlen(lane)
        return int(sum(await pipe.execute()))


def _pairs(reply: Any) -> list[tuple[Any, Any]]:
    """HGETALL's answer as pairs: a dict, or (RESP2 through execute_command) a flat list."""
    if isinstance(reply, dict):
        return list(reply.items())
    return list(zip(reply[::2], reply[1::2], strict=True))


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
