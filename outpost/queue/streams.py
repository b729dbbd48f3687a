"""The delivery queue: lanes (lanes.py: one task stream per destination), retries, dead
letters, attempts.

Publishing, completing a delivery and promoting retries are each one atomic step (Lua or
MULTI), so a crash between any two steps loses nothing; at worst a task runs twice.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from outpost import exactjson
from outpost.errors import DomainError, Invalid, NotFound
from outpost.models import Event, OrderedBy, Task
from outpost.queue.coalesce import Coalescer
from outpost.queue.connection import step_failed
from outpost.queue.items import (
    COMPLETE_KEYS,
    Entry,
    Outcome,
    complete_item,
    indexed,
    publish_item,
    publish_tenant,
    stored_event,
)
from outpost.queue.keys import GROUP, Keys
from outpost.queue.lanes import BELL_MAXLEN, Lane, Lanes
from outpost.queue.lua import KeyTable, register
from outpost.queue.ordered import OrderedLanes

STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
COMMIT_BATCH = 500  # completions per script call


class Queue:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        partitions: int = 16,
        retention_seconds: int = 7 * 24 * 3600,
        attempts_cap: int = 10_000,
        log_cap_tenant: int = 100_000,
        log_cap_total: int = 1_000_000,
        ordering_buckets: int = 64,
    ):
        self.log_cap_tenant = log_cap_tenant
        self.log_cap_total = log_cap_total
        self.redis = redis
        self.keys = keys
        self.partitions = partitions
        self.retention = retention_seconds
        self.attempts_cap = attempts_cap
        self.lanes = Lanes(redis, keys, partitions)
        self.ordered = OrderedLanes(redis, keys, partitions, ordering_buckets)
        self._publish = register(redis, "outpost.queue", "publish")
        self._requeue = register(redis, "outpost.queue", "requeue")
        self._complete = register(redis, "outpost.queue", "complete")
        self._completions = Coalescer(self._complete_many, COMMIT_BATCH)

    def lane_of(self, tenant_id: str, destination_id: str, key: str | OrderedBy = "") -> Lane:
        """The lane a destination's tasks go to: every task of a destination in one stream,
        in the order queued; or, for a route `OrderedBy` its ordering key, the ordered
        sub-lane of that key (queue/ordered.py)."""
        if isinstance(key, OrderedBy):
            return self.ordered.of(tenant_id, destination_id, key.key)
        return self.lanes.of(tenant_id, destination_id)

    # -- producer ---------------------------------------------------------------------
    async def publish(
        self, event: Event, routes: list[tuple[str, str | OrderedBy]], held: Sequence[str] = ()
    ) -> bool:
        """Store and index the event, add one task per (destination id, ordering key) and
        keep a dead letter for each `held` (disabled) destination, atomically. False when
        the tenant already has an event with this id (nothing is queued)."""
        [fresh] = await self.publish_many([(event, routes, held)])
        if isinstance(fresh, DomainError):
            raise fresh
        return fresh

    async def publish_many(
        self, items: list[tuple[Event, list[tuple[str, str | OrderedBy]], Sequence[str]]]
    ) -> list[bool | DomainError]:
        """Many publishes in one script call (one command, one JSON argument); each event
        is still its own step, and one whose step failed gets its own Unavailable while the
        others keep their answers (their events are stored)."""
        if not items:
            return []
        table = KeyTable(self.keys.events_index())
        tenants: dict[str, dict[str, int]] = {}
        events = []
        for item in items:
            tenant_id = item[0].tenant_id
            if tenant_id not in tenants:
                tenants[tenant_id] = publish_tenant(self.keys, table, tenant_id)
            events.append(publish_item(self.keys, self.lane_of, table, tenants[tenant_id], item))
        args: list[Any] = [
            self.retention,
            self.log_cap_tenant,
            self.log_cap_total,
            self.attempts_cap,
            orjson.dumps(events),
            GROUP,
            BELL_MAXLEN,
        ]
        results = await self._publish(keys=table.keys, args=args)
        return [_published(r) for r in results]

    async def load_event(self, tenant_id: str, event_id: str) -> Event | None:
        [event] = await self.load_events(tenant_id, [event_id])
        return event

    async def load_events(self, tenant_id: str, event_ids: list[str]) -> list[Event | None]:
        """A tenant's events, None where expired: one MGET."""
        if not event_ids:
            return []
        raws: Any = await self.redis.mget([self.keys.event(tenant_id, e) for e in event_ids])
        return [None if r is None else stored_event(exactjson.loads_stored(r)) for r in raws]

    # -- consumer ---------------------------------------------------------------------
    async def load_work(self, entries: list[Entry]) -> list[tuple[Event | None, bytes | None]]:
        """What a read's tasks name, in one round trip (None where gone): per tenant one MGET of
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
                parsed = None if ev is None else stored_event(exactjson.loads_stored(ev))
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

    async def ensure_groups(self) -> None:
        await self.lanes.ensure_groups()

    async def read(
        self,
        consumer: str,
        count: int,
        block_ms: int | None,
        room: Callable[[str], int] | None = None,
    ) -> list[Entry]:
        """Tasks for this consumer, a fair share of each lane with room (lanes.py)."""
        return await self.lanes.read(consumer, count, block_ms, room)

    async def reclaim(self, consumer: str, min_idle_ms: int) -> list[Entry]:
        """Take over tasks another consumer read and never acked (it crashed)."""
        return await self.lanes.reclaim(consumer, min_idle_ms)

    async def complete(
        self, entry: Entry, outcome: Outcome, attempt_time: float
    ) -> tuple[str, int | None]:
        """Record the attempt (and its log indexes, and the failure counter), schedule a
        retry or keep a dead letter, ack: all in Lua, so a crash never splits a
        completion. Returns the attempt id and the consecutive-failure count.

        Group commit: completions that arrive while a call is in flight go together in the
        next script call (one command, one JSON argument for up to COMMIT_BATCH tasks), so
        a busy worker pays one round trip per batch and an idle one no added wait. Returns
        once this task's completion has run."""
        return await self.complete_soon(entry, outcome, attempt_time)

    def complete_soon(
        self, entry: Entry, outcome: Outcome, attempt_time: float
    ) -> Awaitable[tuple[str, int | None]]:
        """`complete`, queued now and awaited later: a caller completing many tasks queues
        them all first, so they share a batch."""
        attempt_id = f"att_{os.urandom(16).hex()}"  # 128 random bits, as uuid4 but cheaper
        task = complete_item(self.keys, attempt_id, entry, outcome, attempt_time)
        return self._completed(attempt_id, self._completions.submit_soon(task))

    @staticmethod
    async def _completed(attempt_id: str, done: Awaitable[Any]) -> tuple[str, int | None]:
        failures = await done
        return attempt_id, None if failures < 0 else int(failures)

    async def _complete_many(self, tasks: list[dict[str, Any]]) -> list[Any]:
        table = KeyTable(self.keys.all_attempts(), self.keys.retries())
        args: list[Any] = [
            GROUP,
            self.retention,
            int((time.time() - self.retention) * 1000),
            self.attempts_cap,
            self.log_cap_tenant,
            self.log_cap_total,
            orjson.dumps([indexed(t, COMPLETE_KEYS, table) for t in tasks]),
        ]
        results = await self._complete(keys=table.keys, args=args)
        # 'ERR ...' (bytes): that task's step failed, and only its caller hears of it
        return [
            ResponseError(r.decode(errors="replace")) if isinstance(r, bytes) else r
            for r in results
        ]

    async def promote_due(self, limit: int = 500) -> int:
        """Move retries whose time has come back into their lanes: how many this call
        moved (a retry another promoter moved first is not counted)."""
        now_ms = int(time.time() * 1000)
        due: Any = await self.redis.zrangebyscore(
            self.keys.retries(), "-inf", now_ms, start=0, num=limit
        )
        items: list[tuple[str, str, Task, str | OrderedBy]] = []
        for member in due:
            r = json.loads(member)
            task = Task(r["t"], r["e"], r["d"], int(r["a"]), r["m"] == "1")
            items.append(("retry", _s(member), task, ""))
        return await self._requeue_many(self.keys.retries(), items)

    async def _requeue_many(
        self, source: str, items: list[tuple[str, str, Task, str | OrderedBy]]
    ) -> int:
        """Tasks into their lanes (by their lane key, as at publish), each only if this
        call takes it from `source` (`take` 'retry' or 'dead'; '' takes nothing): one
        script call."""
        if not items:
            return 0
        table = KeyTable(source)
        calls = []
        for take, member, task, key in items:
            lane = self.lane_of(task.tenant_id, task.destination_id, key)
            call: dict[str, Any] = {
                "stream": table.index(lane.stream),
                "lanes": table.index(lane.index),
                "bell": table.index(lane.bell),
                **task.fields(),
            }
            if isinstance(key, OrderedBy):
                call["k"] = key.key  # carried in its ordered sub-lane
            if take:
                call |= {"take": take, "member": member}
            calls.append(call)
        args: list[Any] = [orjson.dumps(calls), GROUP, BELL_MAXLEN]
        return int(await self._requeue(keys=table.keys, args=args))

    async def depth(self) -> dict[str, int]:
        """Tasks not yet finished: queued or in flight, and waiting to be retried."""
        queued = await self.lanes.queued() + await self.ordered.queued()
        retrying: Any = await self.redis.zcard(self.keys.retries())
        return {"queued": queued, "retrying": int(retrying)}

    async def attempts(
        self, tenant_id: str, destination_id: str, count: int = 100
    ) -> list[dict[str, Any]]:
        """A destination's latest attempts, newest first."""
        ids: Any = await self.redis.zrevrange(
            self.keys.attempts(tenant_id, destination_id), 0, count - 1
        )
        if not ids:
            return []
        raws: Any = await self.redis.mget([self.keys.attempt(_s(i)) for i in ids])
        return [json.loads(r) for r in raws if r is not None]

    async def dead_letters(self, tenant_id: str, count: int = 100) -> list[dict[str, str]]:
        page, _ = await self.dead_letter_page(tenant_id, limit=count)
        return page

    async def dead_letter_page(
        self,
        tenant_id: str,
        limit: int = 100,
        after: str | None = None,
        destination_id: str | None = None,
        event_ids: set[str] | None = None,
    ) -> tuple[list[dict[str, str]], str | None]:
        """Oldest first. Each item carries its entry `id`; the cursor is the last id."""
        if after is not None and not STREAM_ID.fullmatch(after):
            raise Invalid("invalid cursor")
        key = self.keys.dead_letters(tenant_id)
        out: list[dict[str, str]] = []
        start = f"({after}" if after else "-"
        while len(out) <= limit:
            rows: Any = await self.redis.xrange(key, min=start, count=max(limit, 100))
            if not rows:
                break
            for entry_id, f in rows:
                item = {"id": _s(entry_id), **{k.decode(): v.decode() for k, v in f.items()}}
                if destination_id and item["d"] != destination_id:
                    continue
                if event_ids is not None and item["e"] not in event_ids:
                    continue
                out.append(item)
            start = f"({_s(rows[-1][0])}"
        page = out[:limit]
        return page, (page[-1]["id"] if len(out) > limit else None)

    async def redrive(self, tenant_id: str, items: list[tuple[str, Task, str | OrderedBy]]) -> int:
        """Put dead letters back in the queue with a fresh retry budget. `items` are
        (dead-letter id, task, lane key). Only entries this call removes from the
        dead letters are queued, so concurrent redrives cannot queue one twice."""
        fresh = [
            ("dead", dead_id, Task(task.tenant_id, task.event_id, task.destination_id), key)
            for dead_id, task, key in items
        ]
        return await self._requeue_many(self.keys.dead_letters(tenant_id), fresh)

    async def enqueue(self, task: Task, key: str | OrderedBy = "") -> None:
        """One task straight into its lane (manual retry): its destination's lane, or the
        ordered sub-lane of its key (at its tail)."""
        lane = self.lane_of(task.tenant_id, task.destination_id, key)
        await self._requeue_many(lane.stream, [("", "", task, key)])

    async def event_owners(self, event_id: str) -> list[str]:
        """Tenants that have an event with this id (ids are unique per tenant only)."""
        members: Any = await self.redis.smembers(self.keys.event_owners(event_id))
        return sorted(_s(m) for m in members)


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _published(result: Any) -> bool | DomainError:
    """One event's answer from the publish script."""
    if isinstance(result, bytes):
        return step_failed(result)
    if result == -1:
        return NotFound("tenant")
    return bool(result)
