"""Delivery workers: read tasks, send them, record the outcome.

`process()` handles one task end to end so tests can call it; `run()` is the loop with
bounded concurrency, periodic reclaim of crashed consumers' tasks and retry promotion;
`drain()` stops reading and waits for what is in flight.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from outpost.delivery.alerts import Alerts
from outpost.delivery.promoter import promote_loop
from outpost.deps import Deps
from outpost.destinations.base import Failure
from outpost.destinations.endpoints import EndpointPolicy, ForbiddenEndpoint
from outpost.destinations.registry import DestinationCache
from outpost.errors import PermanentError
from outpost.models import Destination, Event, Task, iso, utcnow
from outpost.queue.connection import REDIS_DOWN
from outpost.queue.streams import Entry, Outcome
from outpost.retry import RetryPolicy

log = structlog.get_logger("outpost.delivery")
READ_AHEAD = 2  # reads whose events are being loaded while the next read waits
GROUP_MAX = 250  # batched deliveries run together in one coroutine; groups overlap


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker runs: its retry policy and its tuning knobs (the DELIVERY_* settings;
    `runtime.build_worker` reads them)."""

    policy: RetryPolicy
    concurrency: int = 64  # unbatched deliveries in flight
    batch_inflight: int = 2000  # batched deliveries in flight
    reclaim_idle_seconds: float = 60.0  # a pending task idle this long is reclaimed
    name: str | None = None  # the consumer name; unique to this process when None


class Worker:
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
        self.endpoints = endpoints
        self.alerts = alerts
        self.store = deps.store
        self.redis = deps.redis
        self.keys = deps.keys
        self.queue = deps.queue
        self.registry = deps.registry
        self.cipher = deps.cipher
        self.policy = config.policy
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
        self.destinations = DestinationCache(deps.registry, deps.cipher)

    # -- one task -----------------------------------------------------------------------
    async def process(
        self,
        entry: Entry,
        event: Event | None = None,
        raw_dest: bytes | None = None,
        loaded: bool = False,
    ) -> Outcome:
        """Deliver one task and record its outcome. Loads what it is not given."""
        if not loaded:
            event, raw_dest = await self._load_one(entry)
        started = time.time()
        begun = await self._begin(entry, event, raw_dest)
        outcome = await self._settle(entry, event, raw_dest, begun)
        self._describe(outcome, event, raw_dest)
        _, failures = await self.queue.complete(entry, outcome, started)
        await self._after(entry, outcome, failures, started)
        return outcome

    async def process_group(
        self, items: list[tuple[Entry, Event | None, bytes | None]]
    ) -> list[Outcome]:
        """Deliver many loaded tasks from one coroutine: every record is handed over
        (batching destinations gather them into PutRecords) before any result is awaited,
        and the completions are queued together. For batching destinations, where a task
        per event would cost more than its share of the call."""
        started = time.time()
        begun = [await self._begin(e, ev, raw) for e, ev, raw in items]
        outcomes = []
        for (entry, event, raw), b in zip(items, begun, strict=True):
            outcome = await self._settle(entry, event, raw, b)
            self._describe(outcome, event, raw)
            outcomes.append(outcome)
        done = [
            self.queue.complete_soon(e, o, started)
            for (e, _, _), o in zip(items, outcomes, strict=True)
        ]
        for (entry, _, _), outcome, completion in zip(items, outcomes, done, strict=True):
            _, failures = await completion
            await self._after(entry, outcome, failures, started)
        return outcomes

    def _describe(self, outcome: Outcome, event: Event | None, raw_dest: bytes | None) -> None:
        outcome.topic = event.topic if event is not None else ""
        if raw_dest is not None:
            outcome.destination_type = self.destinations.parse(raw_dest).type

    async def _after(
        self, entry: Entry, outcome: Outcome, failures: int | None, started: float
    ) -> None:
        """Alerts, and the delivery's log line."""
        task = entry.task
        if self.alerts is not None and outcome.status == "failed":
            await self._alert(entry, outcome, failures)
        log.log(
            20 if outcome.status == "success" else 30,
            "delivery",
            event_id=task.event_id,
            tenant_id=task.tenant_id,
            destination_id=task.destination_id,
            attempt=task.attempt,
            status=outcome.status,
            code=outcome.code or None,
            retry_in=None if outcome.retry_in is None else round(outcome.retry_in, 1),
            dead=outcome.dead or None,
            duration_ms=round((time.time() - started) * 1000, 1),
        )

    async def _endpoint_allowed(self, dest: Destination) -> None:
        """The SSRF guard again at send time: the endpoint's DNS may have changed."""
        try:
            await self.endpoints.check(dest.config.get("endpoint"), at_send=True)
        except ForbiddenEndpoint as exc:
            raise PermanentError("endpoint_forbidden", str(exc)) from None

    async def _alert(self, entry: Entry, outcome: Outcome, failures: int | None) -> None:
        """Alerts at 50/70/90/100 % of the consecutive-failure limit and on exhausted
        retries; at 100 % the destination is disabled when ALERT_AUTO_DISABLE_DESTINATION."""
        assert self.alerts is not None
        task, error = entry.task, {"code": outcome.code, "message": outcome.message[:500]}
        level = self.alerts.level(failures)
        if level is not None:
            disabled = level == 100 and self.alerts.auto_disable and await self._disable(task)
            self.alerts.alert(
                "alert.consecutive_failure",
                task,
                {
                    "consecutive_failures": failures,
                    "limit": self.alerts.limit,
                    "percent": level,
                    "destination_disabled": disabled,
                    "last_error": error,
                },
            )
        if outcome.dead and outcome.exhausted:
            self.alerts.alert("alert.retries_exhausted", task, {"last_error": error})

    async def _disable(self, task: Task) -> bool:
        dest = await self.store.get_destination(task.tenant_id, task.destination_id)
        if dest is None or not dest.enabled:
            return False
        dest.disabled_at = dest.updated_at = iso(utcnow())
        await self.store.replace_destination(dest)
        log.warning(
            "destination_auto_disabled",
            tenant_id=task.tenant_id,
            destination_id=task.destination_id,
        )
        return True

    async def _begin(
        self, entry: Entry, event: Event | None, raw_dest: bytes | None
    ) -> Outcome | Awaitable[dict[str, Any]]:
        """Checks, format and hand-over: an Outcome when it ends here, else the send's
        result to await (a batching destination's record is already in its batch)."""
        if event is None:
            return Outcome("failed", "event_expired", record_attempt=False)
        if raw_dest is None:
            return Outcome("failed", "destination_deleted", record_attempt=False)
        dest = self.destinations.parse(raw_dest)
        if not dest.enabled:
            return Outcome(
                "failed",
                "destination_disabled",
                "destination is disabled",
                dead=True,
                record_attempt=False,
            )
        provider = self.registry.get(dest.type)
        try:
            record = provider.format(event, dest)
            await self._endpoint_allowed(dest)
            if provider.batching(dest):
                return (await provider.send_batch([record], dest))[0]
            return provider.send(record, dest)  # awaited in _settle
        except Exception as exc:
            return self._failure(entry, event, provider.classify(exc))

    async def _settle(
        self,
        entry: Entry,
        event: Event | None,
        raw_dest: bytes | None,
        begun: Outcome | Awaitable[dict[str, Any]],
    ) -> Outcome:
        if isinstance(begun, Outcome):
            return begun
        assert event is not None and raw_dest is not None
        try:
            return Outcome("success", response=await begun)
        except Exception as exc:
            provider = self.registry.get(self.destinations.parse(raw_dest).type)
            return self._failure(entry, event, provider.classify(exc))

    def _failure(self, entry: Entry, event: Event, failure: Failure) -> Outcome:
        """Every failed attempt counts toward the consecutive-failure alerts (queue.complete);
        a PERMANENT one is dead-lettered at once, RETRY and AUTH go on the schedule."""
        code, message = failure.code, failure.message
        response = {"error": code, "message": message[:500], **failure.response}
        # a manual retry is one attempt: on failure it is kept (dead letter), not rescheduled
        if not failure.retryable or not event.eligible_for_retry or entry.task.manual:
            return Outcome("failed", code, message, response, dead=True)
        delay = self.policy.delay(entry.task.attempt)
        if delay is None:
            return Outcome("failed", code, message, response, dead=True, exhausted=True)
        return Outcome("failed", code, message, response, retry_in=delay)

    async def _load_one(self, entry: Entry) -> tuple[Event | None, bytes | None]:
        return (await self._load([entry]))[0]

    async def _load(self, entries: list[Entry]) -> list[tuple[Event | None, bytes | None]]:
        """Events and destinations of a batch in one round trip: per tenant one MGET of
        its events and one HMGET of its destinations, each key asked for once."""
        by_tenant: dict[str, tuple[dict[str, None], dict[str, None]]] = {}
        for e in entries:
            events, dests = by_tenant.setdefault(e.task.tenant_id, ({}, {}))
            events[e.task.event_id] = None
            dests[e.task.destination_id] = None
        pipe = self.redis.pipeline(transaction=False)
        for tenant, (events, dests) in by_tenant.items():
            pipe.mget([self.keys.event(tenant, ev) for ev in events])
            pipe.hmget(self.keys.destinations(tenant), list(dests))
        raw = iter(await pipe.execute())
        found: dict[tuple[str, str, str], Event | bytes | None] = {}
        for tenant, (events, dests) in by_tenant.items():
            for ev_id, ev in zip(events, next(raw), strict=True):
                parsed = None if ev is None else Event.from_json(orjson.loads(ev))
                found[(tenant, "e", ev_id)] = parsed
            for dest_id, dest in zip(dests, next(raw), strict=True):
                found[(tenant, "d", dest_id)] = dest
        out: list[tuple[Event | None, bytes | None]] = []
        for e in entries:
            t = e.task
            event = found[(t.tenant_id, "e", t.event_id)]
            dest = found[(t.tenant_id, "d", t.destination_id)]
            assert not isinstance(event, bytes) and not isinstance(dest, Event)
            out.append((event, dest))
        return out

    # -- the loop -------------------------------------------------------------------------
    async def run(self, promote_retries: bool = True) -> None:
        while not self._stopping.is_set():
            try:
                await self.queue.ensure_groups()
                break
            except REDIS_DOWN as exc:
                log.warning("redis_unavailable", error=str(exc))
                await asyncio.sleep(0.5)
        side = [asyncio.create_task(self._reclaim_loop())]
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
                    entries = await self.queue.read(self.name, count=free, block_ms=1000)
                except REDIS_DOWN as exc:
                    self._loading.release()
                    log.warning("redis_unavailable", error=str(exc))
                    await asyncio.sleep(0.5)
                    continue
                if not entries:
                    self._loading.release()
                    continue
                self._reserved += len(entries)
                self._start(self._load_and_dispatch(entries))
        finally:
            for t in side:
                t.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            await self._wait_inflight()
            log.info("worker_stopped", worker=self.name)

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
            if self._batched(raw_dest):
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
                    await self._dispatch(entries)
            except REDIS_DOWN:
                continue

    async def _wait_inflight(self) -> None:
        while self._inflight:  # a dispatch still loading starts more tasks: wait for them
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()

    async def run_until_empty(self, limit: float = 30.0) -> None:
        """Test helper: deliver until no task is queued, in flight or due for retry."""
        deadline = time.monotonic() + limit
        await self.queue.ensure_groups()
        while time.monotonic() < deadline:
            await self.queue.promote_due()
            count = self.concurrency + (self.batch_inflight if self._batching_seen else 0)
            entries = await self.queue.read(self.name, count=count, block_ms=50)
            if entries:
                await self._dispatch(entries)
                await self._wait_inflight()
                continue
            depth = await self.queue.depth()
            if depth["queued"] == 0 and depth["retrying"] == 0 and not self._inflight:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("queue did not drain")
