"""Delivery workers: read tasks, hand each to the deliverer (deliverer.py: one task, one
outcome), and keep going. `run()` is the loop with bounded concurrency, periodic reclaim of
crashed consumers' tasks and retry promotion; `stop()` stops reading and `run()` returns
once what is in flight is done.

Reads are fair across destinations (queue/lanes.py: a share of each destination's lane
per read) and each destination holds at most its share of the worker's slots
(`max_inflight_per_destination`): a lane at its share is not read until a quarter of the
share is free again, so a hanging endpoint ties up its share and no more. While the
worker waits for such a lane's room, a blocking read watches the other lanes (and the
bells): another destination's new task is read at once, not when the busy lane has room.
A batching destination alone (no other lane with work) may use the batched allowance but a
quarter of its share (kept for a newcomer's first read): its share is there to divide the
allowance, not to idle half of it.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass

import structlog

from outpost.delivery.alerts import Alerts
from outpost.delivery.deliverer import Deliverer
from outpost.delivery.ordered import OrderedRunner
from outpost.delivery.promoter import promote_loop
from outpost.deps import Deps
from outpost.destinations.endpoints import EndpointPolicy
from outpost.models import Event
from outpost.queue.connection import REDIS_DOWN
from outpost.queue.items import Entry
from outpost.retry import RetryPolicy

log = structlog.get_logger("outpost.delivery")
READ_AHEAD = 2  # reads whose events are being loaded while the next read waits
GROUP_MAX = 250  # batched deliveries run together in one coroutine; groups overlap
LANES_REMEMBERED = 10_000  # lanes whose batching this worker remembers (for their share)
CAPPED_POLL_SECONDS = 0.02  # with a lane at its share, how often other lanes are looked at
WATCH_BLOCK_MS = 200  # the watch's blocking read (see the module's docstring)


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker runs: its retry policy and its tuning knobs (the DELIVERY_* settings;
    `runtime.build_worker` reads them)."""

    policy: RetryPolicy
    concurrency: int = 64  # unbatched deliveries in flight
    batch_inflight: int = 2000  # batched deliveries in flight
    reclaim_idle_seconds: float = 60.0  # a pending task idle this long is reclaimed
    # unbatched deliveries of one destination at once (batched ones: the same share of
    # batch_inflight)
    max_inflight_per_destination: int = 32
    name: str | None = None  # the consumer name; unique to this process when None


class Worker(Deliverer):
    """The loop around the deliverer: bounded concurrency, read-ahead, reclaim of crashed
    consumers' tasks, retry promotion, a drain on stop."""

    def __init__(
        self,
        deps: Deps,
        config: WorkerConfig,
        *,
        endpoints: EndpointPolicy,
        alerts: Alerts | None = None,
    ):
        """`endpoints` is the SSRF guard of the send path: no default, the caller decides
        (the runtime passes the one of DESTINATIONS_ALLOW_PRIVATE_ENDPOINTS)."""
        super().__init__(deps, config.policy, endpoints=endpoints, alerts=alerts)
        self.concurrency = config.concurrency
        self.reclaim_idle_ms = int(config.reclaim_idle_seconds * 1000)
        self.name = config.name or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._slots = asyncio.Semaphore(config.concurrency)
        # tasks of batching destinations have their own, larger allowance: they spend
        # most of their time waiting for their batch to fill, not holding a connection
        self.batch_inflight = config.batch_inflight
        self._batch_slots = asyncio.Semaphore(config.batch_inflight)
        self._batched_inflight = 0
        self._unbatched_inflight = 0
        self._reserved = 0  # read, not yet dispatched
        self._loading = asyncio.Semaphore(READ_AHEAD)
        self._batching_seen = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._inflight_ids: set[str] = set()  # entries this worker is processing now
        self._stopping = asyncio.Event()
        share = min(config.max_inflight_per_destination, config.concurrency)
        self._share = (share, max(1, config.batch_inflight * share // config.concurrency))
        self._holding: dict[str, str] = {}  # entry id -> its lane, from read to finish
        self._held: dict[str, int] = {}  # lane -> its entries held
        self._lane_batched: dict[str, bool] = {}
        self._freed = asyncio.Event()  # a lane left out for want of room has room again
        self._watch: asyncio.Task[None] | None = None  # the other lanes' read while capped
        # ordered destinations' sub-lanes, each read by the worker holding its lease
        self.ordered = OrderedRunner(self, self.name, config.reclaim_idle_seconds)
        self.queue.lanes.on_ordered = self.ordered.wake

    # -- the loop -------------------------------------------------------------------------
    async def run(self, promote_retries: bool = True) -> None:
        await self._ensure_groups()
        side = [asyncio.create_task(self._reclaim_loop())]
        ordered = asyncio.create_task(self.ordered.run())  # stopped, not cancelled: drains
        if promote_retries:
            side.append(asyncio.create_task(promote_loop(self.queue, self._stopping)))
        log.info("worker_started", worker=self.name, concurrency=self.concurrency)
        try:
            while not self._stopping.is_set():
                # the next read goes out while the last one's events load (at most
                # READ_AHEAD reads being loaded): a read is one round trip, not two
                await self._loading.acquire()
                free = await self._wait_for_slot()
                try:
                    self._freed.clear()  # (set from now on: a lane had room again meanwhile)
                    entries = await self._read(free, block_ms=1000)
                except REDIS_DOWN as exc:
                    self._loading.release()
                    log.warning("redis_unavailable", error=str(exc))
                    await asyncio.sleep(0.5)
                    continue
                if not entries:
                    self._loading.release()
                    await self._wait_capped(free)
                    continue
                self._reserved += len(entries)
                self._start(self._load_and_dispatch(entries))
        finally:
            for t in side:
                t.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            if self._watch is not None:
                await asyncio.gather(self._watch, return_exceptions=True)
            self.ordered.stop()
            await asyncio.gather(ordered, return_exceptions=True)
            await self._wait_inflight()
            log.info("worker_stopped", worker=self.name)

    async def _ensure_groups(self) -> None:
        """The lanes' consumer groups, waiting for Redis (or until stopped)."""
        while not self._stopping.is_set():
            try:
                await self.queue.ensure_groups()
                return
            except REDIS_DOWN as exc:
                log.warning("redis_unavailable", error=str(exc))
                await asyncio.sleep(0.5)

    async def _load_and_dispatch(self, entries: list[Entry]) -> None:
        try:
            await self._dispatch(entries)
        except REDIS_DOWN as exc:
            # left pending: reclaimed after the idle time, like a crashed consumer's
            log.warning("redis_unavailable", error=str(exc))
            await asyncio.sleep(0.5)
        except Exception:
            log.exception("dispatch_failed", tasks=len(entries))  # pending, reclaimed later
        finally:
            self._reserved -= len(entries)
            self._loading.release()
            self._release_unstarted(entries)

    # -- the per-destination share ----------------------------------------------------------
    async def _read(self, count: int, block_ms: int, watch: bool = False) -> list[Entry]:
        entries = await self.queue.read(
            self.name, count=count, block_ms=block_ms, room=self.room, watch=watch
        )
        self._hold(entries)
        return entries

    def room(self, lane: str) -> int:
        """How many more tasks of `lane` this worker may read now: its share less what it
        holds; 0 until a quarter of the share is free again (so a busy lane is read in
        chunks, not one task a time); -1 while `accepts(lane)` says no."""
        if not self.accepts(lane):
            return -1  # left out, but not for want of room: nothing to wait for here
        free = self._lane_share(lane) - self._held.get(lane, 0)
        return free if free >= self._chunk(lane) else 0

    def _chunk(self, lane: str) -> int:
        """The least room a lane is read with: a quarter of its share."""
        return max(1, self._share[self._lane_batched.get(lane, False)] // 4)

    def _lane_share(self, lane: str) -> int:
        """A lane's share of the slots; a batching lane alone (no other lane with work
        here or in the indexes) all of the batched allowance but a quarter of its share."""
        if not self._lane_batched.get(lane, False):
            return self._share[0]
        share = self._share[1]
        others = self.queue.lanes.working | self._held.keys()
        if others <= {lane}:
            return self.batch_inflight - share // 4
        return share

    def accepts(self, lane: str) -> bool:
        """Whether to read `lane` at all (False leaves its tasks waiting in the lane): the
        seam for a scheduler that skips a destination whose circuit breaker is open,
        `self.breakers.is_open(*Keys.lane_owner(lane))`. Not wired yet: the breaker holds
        such tasks itself (back on the retry schedule), and a skipped lane is looked at
        again only at the next read (up to a blocking read's second), which would delay
        the breaker's probe."""
        return True

    def _hold(self, entries: list[Entry]) -> None:
        for entry in entries:
            if entry.entry_id not in self._holding:
                self._holding[entry.entry_id] = entry.stream
                self._held[entry.stream] = self._held.get(entry.stream, 0) + 1

    def _release(self, entry: Entry) -> None:
        lane = self._holding.pop(entry.entry_id, None)
        if lane is None:
            return
        left = self._held[lane] - 1
        if left:
            self._held[lane] = left
        else:
            del self._held[lane]
        if not left or self._lane_share(lane) - left >= self._chunk(lane):  # see `room`
            self._freed.set()

    def _release_unstarted(self, entries: list[Entry]) -> None:
        """Entries read but never started (a failed load): left pending for the reclaim,
        they no longer count toward their lane's share here."""
        for entry in entries:
            if entry.entry_id not in self._inflight_ids:
                self._release(entry)

    async def _wait_capped(self, count: int) -> None:
        """After an empty read that left a lane out for want of room: wait until that lane
        may be read again (or a short while), the watch reading the other lanes meanwhile."""
        if not self.queue.lanes.capped:
            return
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._watch_others(count))
        freed = asyncio.create_task(self._freed.wait())
        await asyncio.wait(
            (freed, self._watch), timeout=CAPPED_POLL_SECONDS, return_when="FIRST_COMPLETED"
        )
        freed.cancel()

    async def _watch_others(self, count: int) -> None:
        """One blocking read of the lanes with room and the bells (a lane at its share is
        left out by `room`): what it finds is dispatched like the loop's reads."""
        try:
            entries = await self._read(count, WATCH_BLOCK_MS, watch=True)
        except REDIS_DOWN as exc:
            log.warning("redis_unavailable", error=str(exc))
            return
        except Exception:  # the loop's own next read meets it too (and ends the loop)
            log.exception("watch_read_failed")
            return
        if entries:
            await self._loading.acquire()
            self._reserved += len(entries)
            self._start(self._load_and_dispatch(entries))

    async def _wait_for_slot(self) -> int:
        """How many tasks to read next: free unbatched slots (less what reads being loaded
        will take), plus free batched ones once this worker has seen a batching
        destination."""
        await self._slots.acquire()
        self._slots.release()
        free = self.concurrency - self._unbatched_inflight
        if self._batching_seen:
            free += self.batch_inflight - self._batched_inflight
        # what reads being loaded will take (batched or not, we do not know yet)
        return max(1, free - self._reserved)

    def _batched(self, raw_dest: bytes | None) -> bool:
        if raw_dest is None:
            return False
        dest = self.destinations.parse(raw_dest)
        return dest.type in self.registry and self.registry.get(dest.type).batching(dest)

    async def _dispatch(self, entries: list[Entry]) -> None:
        """One task per unbatched delivery; the batching destinations' deliveries of this
        read go to one task together."""
        loaded = await self._load(entries)
        group: list[tuple[Entry, Event | None, bytes | None]] = []
        for entry, (event, raw_dest) in zip(entries, loaded, strict=True):
            self._inflight_ids.add(entry.entry_id)
            if len(self._lane_batched) > LANES_REMEMBERED:
                self._lane_batched.clear()
            batched = self._lane_batched[entry.stream] = self._batched(raw_dest)
            if batched:
                if group and (len(group) >= GROUP_MAX or self._batch_slots.locked()):
                    # groups of at most GROUP_MAX overlap (one's sends while another
                    # completes); and the group so far must run to free slots before waiting
                    self._start(self._guarded_group(group))
                    group = []
                await self._batch_slots.acquire()
                self._batching_seen = True
                self._batched_inflight += 1
                group.append((entry, event, raw_dest))
                continue
            await self._slots.acquire()
            self._unbatched_inflight += 1
            self._start(self._guarded(entry, event, raw_dest))
        if group:
            self._start(self._guarded_group(group))

    def _start(self, work: Awaitable[None]) -> None:
        t = asyncio.ensure_future(work)
        self._inflight.add(t)
        t.add_done_callback(self._inflight.discard)

    async def _guarded_group(self, items: list[tuple[Entry, Event | None, bytes | None]]) -> None:
        try:
            await self.process_group(items)
        except Exception:
            # left unacked: another consumer (or this one) reclaims them after the idle time
            log.exception("delivery_crashed", tasks=len(items))
        finally:
            for entry, _, _ in items:
                self._inflight_ids.discard(entry.entry_id)
                self._release(entry)
                self._batched_inflight -= 1
                self._batch_slots.release()

    async def _guarded(self, entry: Entry, event: Event | None, raw_dest: bytes | None) -> None:
        try:
            await self.process(entry, event, raw_dest, loaded=True)
        except Exception:
            # left unacked: another consumer (or this one) reclaims it after the idle time
            log.exception(
                "delivery_crashed",
                event_id=entry.task.event_id,
                destination_id=entry.task.destination_id,
            )
        finally:
            self._inflight_ids.discard(entry.entry_id)
            self._release(entry)
            self._unbatched_inflight -= 1
            self._slots.release()

    async def _reclaim_loop(self) -> None:
        interval = max(self.reclaim_idle_ms / 2000, 0.5)
        while not self._stopping.is_set():
            await asyncio.sleep(interval)
            try:
                entries = await self.queue.reclaim(self.name, self.reclaim_idle_ms)
                # XAUTOCLAIM also returns our own slow sends: never run an entry twice here
                entries = [e for e in entries if e.entry_id not in self._inflight_ids]
                if entries:
                    log.info("tasks_reclaimed", count=len(entries))
                    self._hold(entries)
                    try:
                        await self._dispatch(entries)
                    finally:
                        self._release_unstarted(entries)
            except REDIS_DOWN:
                continue

    async def _wait_inflight(self) -> None:
        while self._inflight:  # a dispatch still loading starts more tasks: wait for them
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()
        self.ordered.stop()

    async def run_until_empty(self, limit: float = 30.0) -> None:
        """Test helper: deliver until no task is queued, in flight or due for retry."""
        deadline = time.monotonic() + limit
        await self.queue.ensure_groups()
        while time.monotonic() < deadline:
            await self.queue.promote_due()
            await self.ordered.step()
            count = self.concurrency + (self.batch_inflight if self._batching_seen else 0)
            entries = await self._read(count, block_ms=50)
            if entries:
                await self._dispatch(entries)
                await self._wait_inflight()
                continue
            depth = await self.queue.depth()
            if depth["queued"] == 0 and depth["retrying"] == 0 and not self._inflight:
                await self.ordered.settle()
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("queue did not drain")
