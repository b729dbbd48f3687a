"""Delivery of ordered destinations (`config.ordering`): their sub-lanes
(queue/ordered.py), each delivered by the one worker holding its lease.

A sub-lane's owner reads its head, sends at most one task of each ordering key in one go
(a PutRecords call does not stop at a failed entry, so two records of one key in one call
could land out of order; one in flight per key keeps them in order), waits for every
outcome, and reads the head again. A failed task stays at the head (complete.lua `hold`)
and the sub-lane waits for its backoff while the other sub-lanes flow; a task dead-lettered
(retries exhausted, a permanent error) leaves the sub-lane and the next one of its key goes
on: order of the remaining records is kept, the dead one skipped. A worker that dies
leaves its leases to expire (DELIVERY_RECLAIM_IDLE_SECONDS); the next owner reads the same
head again, so what the dead one sent and never acknowledged is sent again, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

import structlog

from outpost.delivery.deliverer import Deliverer
from outpost.models import Event
from outpost.queue.connection import REDIS_DOWN
from outpost.queue.items import Entry
from outpost.queue.ordered import RELEASED_WITH_WORK

log = structlog.get_logger("outpost.delivery")
Loaded = tuple[Event | None, bytes | None]
HEAD = 200  # tasks read from a sub-lane's head at once (a batching destination sends all)
SENDS = 32  # unbatched sends of one sub-lane at once (distinct keys)
MAX_OWNED = 256  # sub-lanes one worker delivers at once
POLL_SECONDS = 1.0  # the indexes are looked at this often; the bell wakes a worker sooner
CRASH_PAUSE_SECONDS = 1.0  # after an unexpected error, before the sub-lane is let go


class OrderedRunner:
    def __init__(self, deliverer: Deliverer, name: str, lease_seconds: float):
        self.deliverer = deliverer
        self.lanes = deliverer.queue.ordered
        self.name = name
        self.lease_ms = int(lease_seconds * 1000)
        self.stopping = asyncio.Event()
        self._owned: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A sub-lane got work (its partition's bell rang): look now."""
        self._wake.set()

    async def run(self) -> None:
        """Until `stopping`: take the sub-lanes with work no worker holds; then let each
        owned sub-lane finish the batch it has in flight, and release them."""
        try:
            while not self.stopping.is_set():
                self._wake.clear()
                try:
                    await self.step()
                except REDIS_DOWN as exc:
                    log.warning("redis_unavailable", error=str(exc))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        finally:
            await self.settle()

    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    async def step(self) -> None:
        """Take the sub-lanes with work that no worker holds (up to MAX_OWNED here),
        each delivered by its own task."""
        for lane in await self.lanes.with_work():
            if len(self._owned) >= MAX_OWNED:
                return
            if lane in self._owned:
                continue
            if await self.lanes.lease("take", lane, self.name, self.lease_ms):
                self._owned[lane] = asyncio.create_task(self._own(lane))

    async def settle(self) -> None:
        """Wait for the owned sub-lanes' tasks (each ends once its sub-lane is empty)."""
        while self._owned:
            await asyncio.gather(*list(self._owned.values()), return_exceptions=True)

    async def _own(self, lane: str) -> None:
        keys: dict[str, str] = {}  # entry id -> ordering key, of the entries at the head
        try:
            while not self.stopping.is_set():
                head = await self.lanes.head(lane, HEAD, self.name, self.lease_ms)
                if not head.held:
                    log.warning("ordered_lane_lost", lane=lane)  # its lease expired
                    return
                if not head.entries:
                    return
                if head.wait > 0:  # the head waits for its retry; the lease is kept
                    await self._pause(min(head.wait, self.lease_ms / 3000))
                    continue
                await self._renewing(lane, self._deliver(head.entries, keys))
        except Exception:
            log.exception("ordered_lane_failed", lane=lane)  # its head is read again later
            await self._pause(CRASH_PAUSE_SECONDS)
        finally:
            await self._release(lane)

    async def _release(self, lane: str) -> None:
        self._owned.pop(lane, None)
        try:
            if await self.lanes.lease("release", lane, self.name, 0) == RELEASED_WITH_WORK:
                self._wake.set()  # tasks came meanwhile: take it again
        except REDIS_DOWN:
            pass  # the lease expires

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _renewing(self, lane: str, work: Awaitable[None]) -> None:
        """Run one batch, renewing the lease while it lasts."""
        task = asyncio.ensure_future(work)
        while True:
            done, _ = await asyncio.wait({task}, timeout=self.lease_ms / 3000)
            if done:
                return task.result()
            with contextlib.suppress(*REDIS_DOWN):
                if not await self.lanes.lease("renew", lane, self.name, self.lease_ms):
                    log.warning("ordered_lane_lost", lane=lane)

    async def _deliver(self, entries: list[Entry], keys: dict[str, str]) -> None:
        """One batch: the first task of each ordering key in the head (up to SENDS, or
        the whole head for a batching destination), all sent, every outcome completed
        before the next read. `keys`: the ordering key of each entry id seen at the head
        before (kept by the owner: an event is loaded for its key once, and again only
        when it is sent)."""
        d = self.deliverer
        loaded: dict[str, Loaded] = {}
        await self._load([e for e in entries if e.entry_id not in keys], loaded)
        for entry_id, (event, raw) in loaded.items():
            keys[entry_id] = self._key(event, raw) or f"\0{entry_id}"
        for gone in set(keys) - {e.entry_id for e in entries}:
            del keys[gone]  # completed: no longer at the head
        chosen = _window(entries, keys, SENDS)
        await self._load(chosen, loaded)
        raw = next((loaded[e.entry_id][1] for e in chosen if loaded[e.entry_id][1]), None)
        dest = None if raw is None else d.destinations.parse(raw)
        if dest is None or not d.registry.get(dest.type).batching(dest):
            items = [(e, *loaded[e.entry_id]) for e in chosen]
            await asyncio.gather(*(d.process(e, ev, r, loaded=True) for e, ev, r in items))
            return
        if len(chosen) == SENDS:  # a PutRecords call's worth
            chosen = _window(entries, keys, len(entries))
            await self._load(chosen, loaded)
        await d.process_group([(e, *loaded[e.entry_id]) for e in chosen])

    async def _load(self, entries: list[Entry], loaded: dict[str, Loaded]) -> None:
        """What `entries` name, into `loaded` (by entry id), for those not there yet."""
        wanted = [e for e in entries if e.entry_id not in loaded]
        if wanted:
            work = await self.deliverer.queue.load_work(wanted)
            loaded.update(zip((e.entry_id for e in wanted), work, strict=True))

    def _key(self, event: Event | None, raw: bytes | None) -> str | None:
        if event is None or raw is None:
            return None
        dest = self.deliverer.destinations.parse(raw)
        if dest.type not in self.deliverer.registry:
            return None
        provider: Any = self.deliverer.registry.get(dest.type)
        return str(provider.ordering_key(event, dest))


def _window(entries: list[Entry], keys: dict[str, str], limit: int) -> list[Entry]:
    """The head's first entry of each ordering key (an entry whose event or destination is
    gone has a key of its own: it is only completed), up to `limit`."""
    seen: set[str] = set()
    out: list[Entry] = []
    for entry in entries:
        key = keys[entry.entry_id]
        if key in seen:
            continue
        seen.add(key)
        out.append(entry)
        if len(out) == limit:
            break
    return out
