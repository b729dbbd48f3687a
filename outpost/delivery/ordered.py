"""Delivery of ordered destinations (`config.ordering`): their sub-lanes
(queue/ordered.py), each delivered by the one worker holding its lease.

A sub-lane's owner reads its head, sends at most one task of each ordering key in one go
(a PutRecords call does not stop at a failed entry, so two records of one key in one call
could land out of order; one in flight per key keeps them in order), waits for every
outcome, and reads the head again. A failed task stays at the head (ack.lua `hold`)
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
from dataclasses import replace

import structlog

from outpost.delivery.deliverer import Deliverer
from outpost.queue.connection import REDIS_DOWN
from outpost.queue.items import Entry, Outcome
from outpost.queue.ordered import RELEASED_WITH_WORK

log = structlog.get_logger("outpost.delivery")
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
        """Deliver the sub-lane until it is empty. Its head is kept here as read (only
        this owner takes tasks off it): each read asks only for the tasks after it."""
        pending: list[Entry] = []  # the head, in order
        try:
            while not self.stopping.is_set():
                after = pending[-1].entry_id if pending else None
                head = await self.lanes.head(
                    lane, HEAD - len(pending), after, self.name, self.lease_ms
                )
                if not head.held:
                    log.warning("ordered_lane_lost", lane=lane)  # its lease expired
                    return
                pending = _at_attempts(pending + head.entries, head.attempts)
                if not pending:
                    return
                if head.wait > 0:  # the head waits for its retry; the lease is kept
                    await self._pause(min(head.wait, self.lease_ms / 3000))
                    continue
                done = await self._renewing(lane, self._deliver(pending))
                pending = [e for e in pending if e.entry_id not in done]
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

    async def _renewing(self, lane: str, work: Awaitable[set[str]]) -> set[str]:
        """Run one batch, renewing the lease while it lasts."""
        task = asyncio.ensure_future(work)
        while True:
            done, _ = await asyncio.wait({task}, timeout=self.lease_ms / 3000)
            if done:
                return task.result()
            with contextlib.suppress(*REDIS_DOWN):
                if not await self.lanes.lease("renew", lane, self.name, self.lease_ms):
                    log.warning("ordered_lane_lost", lane=lane)

    async def _deliver(self, entries: list[Entry]) -> set[str]:
        """One batch: the first task of each ordering key in the head (up to SENDS, or
        the whole head for a batching destination), all sent, every outcome completed
        before the next read. Returns the entry ids that left the sub-lane (acked: not
        retried in place)."""
        d = self.deliverer
        chosen = _window(entries, SENDS)
        loaded = await d.queue.load_work(chosen)
        raw = next((r for _, r in loaded if r is not None), None)
        dest = None if raw is None else d.destinations.parse(raw)
        if dest is None or not d.registry.get(dest.type).batching(dest):
            sends = (d.process(e, *w, loaded=True) for e, w in zip(chosen, loaded, strict=True))
            return _left(chosen, await asyncio.gather(*sends))
        if len(chosen) == SENDS:  # a PutRecords call's worth
            more = _window(entries, len(entries))[SENDS:]
            chosen, loaded = chosen + more, loaded + await d.queue.load_work(more)
        items = [(e, *w) for e, w in zip(chosen, loaded, strict=True)]
        return _left(chosen, await d.process_group(items))


def _left(entries: list[Entry], outcomes: list[Outcome]) -> set[str]:
    """The entries whose outcome took them off the sub-lane (no retry in place)."""
    return {e.entry_id for e, o in zip(entries, outcomes, strict=True) if o.retry_in is None}


def _at_attempts(entries: list[Entry], attempts: dict[str, int]) -> list[Entry]:
    """The entries, each retried in place at the attempt its sub-lane's state says."""
    out = []
    for e in entries:
        at = attempts.get(e.entry_id)
        if at is not None and at != e.task.attempt:
            e = replace(e, task=replace(e.task, attempt=at))
        out.append(e)
    return out


def _window(entries: list[Entry], limit: int) -> list[Entry]:
    """The head's first entry of each ordering key (the key it was queued with; an entry
    without one is a key of its own), up to `limit`."""
    seen: set[str] = set()
    out: list[Entry] = []
    for entry in entries:
        key = entry.task.key or f"\0{entry.entry_id}"
        if key in seen:
            continue
        seen.add(key)
        out.append(entry)
        if len(out) == limit:
            break
    return out
