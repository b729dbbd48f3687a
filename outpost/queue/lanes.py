"""Delivery lanes: one task stream per destination, read fairly.

Each destination's tasks go to its own lane (a stream with the consumer group GROUP), in
the partition its (tenant, destination) hashes to. A partition keeps an index of its lanes
that hold tasks (a lane joins it with its first task and leaves when its last one is
acked, both inside the scripts that add and ack) and a bell, rung when a lane joins.

A read asks for at most `q` tasks of each lane it names (XREADGROUP's COUNT is per
stream), `q` being the caller's free room spread over the lanes: a destination 100,000
tasks behind takes its share of a read, not the whole of it, and a lane whose destination
has no room (the worker's per-destination cap, `room`) is not read at all. Lanes are
taken round-robin, at most MAX_READ_LANES per read. The partitions' bells are read with
the lanes, so a worker blocked on the lanes it knows wakes for a new one; a ring names
its lane, which the reader adds to the lanes it knows at once (every partition's index
is read again every REFRESH_SECONDS, not at each ring). A lane that had
work stays among the lanes read for LINGER_SECONDS after it left the index: a destination
whose few tasks each leave the index when acked (a tenant sending now and then, beside
another's backlog) has its next task read by the next read, not a read and a refresh later.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from outpost.models import Task
from outpost.queue.calls import Calls, Client, is_cluster, raise_first
from outpost.queue.items import Entry
from outpost.queue.keys import GROUP, Keys

MAX_READ_LANES = 256  # lanes named in one read; more are taken in turns
REFRESH_SECONDS = 0.25  # the lanes with work are read again at least this often
BELL_MAXLEN = 1000  # rings kept (approximately) when no worker reads them
RECLAIM_COUNT = 100  # entries claimed per lane and pass
LINGER_SECONDS = 2.0  # a lane that had work is still read this long after it left the index
LANES_KEPT = 10_000  # (tenant, destination) lanes kept computed per process
CLUSTER_POLL_MS = 50  # on a cluster reads do not block: an idle reader looks this often


@dataclass(frozen=True)
class Lane:
    """The keys a task queued for one destination touches: its lane, the lane's
    partition index of lanes with work, and that partition's bell."""

    stream: str
    index: str
    bell: str
    partition: int = 0


class Lanes:
    def __init__(self, redis: Client, keys: Keys, partitions: int):
        self.redis = redis
        self.keys = keys
        self.partitions = partitions
        self.indexes = [keys.lanes(n) for n in range(partitions)]
        self.bells = [keys.bell(n) for n in range(partitions)]
        self._bell_set = set(self.bells)
        self.capped = False  # the last read left out a lane that had no room
        self._known: list[str] = []  # the lanes with work, as last read from the indexes
        self.working: set[str] = set()  # of those, the ones in an index (not lingering)
        self._seen: dict[str, float] = {}  # lane -> when it last had work (for LINGER_SECONDS)
        self._legacy: list[str] = []  # partition streams of before the lanes, not yet empty
        self._fresh_at = 0.0
        self._joined: list[bytes] = []  # lanes the bells named since the last read
        self._rings: dict[str, list[str]] = {}  # bell -> rings read, acked at the next refresh
        self._turn = 0
        self._lanes: dict[tuple[str, str], Lane] = {}  # (tenant, destination) -> its lane
        self.on_ordered: Callable[[], None] | None = None  # rung for an ordered sub-lane

    def of(self, tenant_id: str, destination_id: str) -> Lane:
        """Stable across processes and restarts (crc32, not Python's salted hash); kept
        for the next events of the destination (a publish batch names it once per event)."""
        lane = self._lanes.get((tenant_id, destination_id))
        if lane is None:
            if len(self._lanes) >= LANES_KEPT:
                self._lanes.clear()
            n = partition_of(tenant_id, destination_id, self.partitions)
            lane = Lane(
                self.keys.lane(n, tenant_id, destination_id), self.indexes[n], self.bells[n], n
            )
            self._lanes[tenant_id, destination_id] = lane
        return lane

    def owners_partition(self, event_id: str) -> int:
        """The partition of an event id's owners set (Keys.event_owners)."""
        return zlib.crc32(event_id.encode()) % self.partitions

    def home(self, tenant_id: str) -> int:
        """The tenant's home partition: where its share of the admin listings and its
        outbox marker sit (stable as `of`)."""
        return zlib.crc32(tenant_id.encode()) % self.partitions

    async def ensure_groups(self) -> None:
        """The bells' consumer groups, and the partition streams of before the lanes that
        still hold tasks (read until they are empty)."""
        for bell in self.bells:
            await _create_group(self.redis, bell)
        legacy = [self.keys.partition(n) for n in range(self.partitions)]
        pipe = self.redis.pipeline(transaction=False)
        for stream in legacy:
            pipe.xlen(stream)
        lengths = await pipe.execute()
        self._legacy = [s for s, n in zip(legacy, lengths, strict=True) if n]
        for stream in self._legacy:
            await _create_group(self.redis, stream)

    # -- reading --------------------------------------------------------------------------
    async def read(
        self,
        consumer: str,
        count: int,
        block_ms: int | None,
        room: Callable[[str], int] | None = None,
        *,
        watch: bool = False,
    ) -> list[Entry]:
        """Up to about `count` tasks, a fair share from each lane with room (`room(lane)`:
        how many more tasks that lane may have read; 0 leaves it out for want of room, a
        negative number for another reason). Blocks up to `block_ms` for work unless a
        lane was left out for want of room (`capped`): the caller then waits for its own
        deliveries to finish and reads again. `watch`: block all the same (a read for the
        other lanes' new tasks while the caller waits for room)."""
        for _ in range(2):  # a read that only heard the bell looks again at once
            if time.monotonic() - self._fresh_at > REFRESH_SECONDS:
                await self.refresh()
            lanes, q = self._choose(count, room)
            block = block_ms if watch or not self.capped else None
            reply = await self._read(consumer, lanes, q, block)
            entries, rang = self._split(reply)
            if rang and not self._join():  # a lane joined: the next read names it
                self._fresh_at = 0.0  # (a ring that names no lane: read the indexes)
            if entries or not rang:
                return entries
        return []

    def _choose(self, count: int, room: Callable[[str], int] | None) -> tuple[list[str], int]:
        """The lanes of this read, in turns, and how many tasks to ask of each."""
        known = self._legacy + self._known
        start = self._turn % len(known) if known else 0
        self._turn += 1
        chosen: list[str] = []
        least = count
        self.capped = False
        for lane in known[start:] + known[:start]:
            free = count if room is None else room(lane)
            if free <= 0:
                self.capped = self.capped or free == 0
                continue
            chosen.append(lane)
            least = min(least, free)
            if len(chosen) == MAX_READ_LANES:
                break
        share = -(-count // len(chosen)) if chosen else count
        return chosen, max(1, min(least, share))

    async def _read(self, consumer: str, lanes: list[str], q: int, block: int | None) -> Any:
        streams: dict[Any, Any] = {s: ">" for s in [*lanes, *self.bells]}
        try:
            return await self._xread(consumer, streams, q, block)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc) and "no longer exists" not in str(exc):
                raise
        # the first read on a new Redis, a lane removed meanwhile (a tenant purged), or
        # Redis lost its data: the groups again, then the lanes with work as they are now
        await self.repair()
        streams = {s: ">" for s in [*self._known, *self.bells] if s in lanes or s in self.bells}
        return await self._xread(consumer, streams, q, None)

    async def _xread(
        self, consumer: str, streams: dict[Any, Any], q: int, block: int | None
    ) -> Any:
        """One XREADGROUP; on a cluster one per partition (a command's keys must share a
        slot), each node's in one pipeline (calls.py), without BLOCK, then a short sleep when
        all found nothing."""
        if not is_cluster(self.redis):
            return await self.redis.xreadgroup(GROUP, consumer, streams, count=q, block=block)
        by_slot: dict[int | None, dict[Any, Any]] = {}
        for stream, at in streams.items():
            by_slot.setdefault(self.keys.partition_of(stream), {})[stream] = at
        calls = Calls()
        for group in by_slot.values():
            args = ["GROUP", GROUP, consumer, "COUNT", q, "STREAMS", *group, *group.values()]
            calls.command("XREADGROUP", *args, key=next(iter(group)))
        replies = raise_first(await calls.run(self.redis))  # (one pipeline per node)
        found = [item for reply in replies for item in reply or []]
        if not found and block:
            await asyncio.sleep(min(block, CLUSTER_POLL_MS) / 1000)
        return found

    def _split(self, reply: Any) -> tuple[list[Entry], bool]:
        entries: list[Entry] = []
        rang = False
        for raw_stream, items in reply or []:
            stream = _s(raw_stream)
            if stream in self._bell_set:
                self._rings.setdefault(stream, []).extend(_s(i) for i, _ in items)
                self._joined += [f.get(b"l", b"") for _, f in items]
                rang = True
                if self.on_ordered and any(b"}:olane:" in f.get(b"l", b"") for _, f in items):
                    self.on_ordered()  # an ordered sub-lane got work (delivery/ordered.py)
                continue
            entries.extend(_entry(stream, i, f) for i, f in items if f)
            self._seen[stream] = time.monotonic()
        return entries, rang

    def _join(self) -> bool:
        """The lanes the bells named join the lanes with work at once (a ring is a lane
        joining its index), without reading every partition's index again: a tenant whose
        lane empties and refills at each event (beside another's backlog) cost a refresh
        of all the indexes per event. An ordered sub-lane's ring is the ordered reader's.
        False when a ring named no lane (the indexes are then read again)."""
        joined, self._joined = self._joined, []
        if not all(joined):
            return False
        new = {_s(lane) for lane in joined if b"}:olane:" not in lane} - self.working
        if new:
            self.working |= new
            self._known = sorted(set(self._known) | new)
        return True

    async def refresh(self) -> None:
        """Read the indexes of lanes with work again (acking the rings heard meanwhile)."""
        pipe = self.redis.pipeline(transaction=False)
        rings = {bell: ids for bell, ids in self._rings.items() if ids}
        self._rings = {}
        for bell, ids in rings.items():
            pipe.xack(bell, GROUP, *ids)
            pipe.xdel(bell, *ids)
        acks = 2 * len(rings)
        for index in self.indexes:
            pipe.smembers(index)
        for stream in self._legacy:
            pipe.xlen(stream)
        results = (await pipe.execute())[acks:]
        members = results[: self.partitions]
        lengths = results[self.partitions :]
        self.working = {_s(m) for ms in members for m in ms}
        self._known = self._lingering(self.working)
        self._legacy = [s for s, n in zip(self._legacy, lengths, strict=True) if n]
        self._fresh_at = time.monotonic()

    def _lingering(self, working: set[str]) -> list[str]:
        """The lanes to read: those with work, and those that had work within
        LINGER_SECONDS (their next task is read without waiting for a refresh)."""
        now = time.monotonic()
        for lane in working:
            self._seen[lane] = now
        self._seen = {
            lane: at
            for lane, at in sorted(self._seen.items(), key=lambda item: -item[1])[:MAX_READ_LANES]
            if now - at <= LINGER_SECONDS
        }
        return sorted(working | self._seen.keys())

    async def repair(self) -> None:
        """After a NOGROUP: the bells' groups again, and a group on each lane with work
        that has none (a lane whose stream was made without one). Lingering lanes are
        forgotten: one may be gone (a tenant purged), and a group would make it again."""
        self._seen.clear()
        await self.refresh()
        for stream in [*self.bells, *self._known]:
            await _create_group(self.redis, stream)

    # -- crashed consumers, depth ---------------------------------------------------------
    async def reclaim(self, consumer: str, min_idle_ms: int) -> list[Entry]:
        """Take over tasks another consumer read and never acked (it crashed): XAUTOCLAIM
        over the lanes with work (and the bells, whose rings are just acked)."""
        await self.refresh()
        streams = [*self._legacy, *self._known, *self.bells]
        pipe = self.redis.pipeline(transaction=False)
        for stream in streams:
            pipe.xautoclaim(
                stream, GROUP, consumer, min_idle_ms, start_id="0-0", count=RECLAIM_COUNT
            )
        replies = await pipe.execute(raise_on_error=False)
        out: list[Entry] = []
        for stream, reply in zip(streams, replies, strict=True):
            if isinstance(reply, ResponseError):
                if "NOGROUP" not in str(reply):
                    raise reply
                continue
            if stream in self._bell_set:
                self._rings.setdefault(stream, []).extend(_s(i) for i, _ in reply[1])
                continue
            out.extend(_entry(stream, i, f) for i, f in reply[1] if f)
        return out

    async def queued(self) -> int:
        """Tasks queued or in flight, over the lanes with work: two round trips."""
        await self.refresh()
        pipe = self.redis.pipeline(transaction=False)
        for stream in [*self._legacy, *self._known]:
            pipe.xlen(stream)
        return sum(await pipe.execute())


def partition_of(tenant_id: str, destination_id: str, partitions: int) -> int:
    """The partition of a destination's lane (and of its ordered sub-lanes)."""
    return zlib.crc32(f"{tenant_id}\0{destination_id}".encode()) % partitions


async def _create_group(redis: Client, stream: str) -> None:
    try:
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _entry(stream: str, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Entry:
    return Entry(stream, _s(entry_id), Task.from_entry(fields))


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
