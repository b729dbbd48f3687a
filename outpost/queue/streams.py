"""The delivery queue: lanes (lanes.py: one task stream per destination), retries, dead
letters, attempts.

Every script call touches the keys of one hash tag (a tenant's `{t:..}` or a partition's
`{p:..}`), so the queue runs on Redis Cluster as on a single node. Publishing
(outbox.py) and completing a delivery (completion.py) are one call per tag they touch,
ordered so that a crash between two calls loses nothing: at worst a task runs twice.
Promoting retries is one call per partition.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import structlog

from outpost import exactjson
from outpost.errors import DomainError, Invalid, NotFound
from outpost.models import Event, OrderedBy, Task
from outpost.queue import items as qi
from outpost.queue.calls import Calls, Client, mget, raise_first
from outpost.queue.coalesce import Coalescer
from outpost.queue.completion import Completion
from outpost.queue.connection import REDIS_DOWN, step_failed
from outpost.queue.durable import NO_WAIT, ReplicaWait
from outpost.queue.items import Entry, Outcome, complete_item, publish_call, stored_event
from outpost.queue.keys import Keys
from outpost.queue.lanes import Lane, Lanes
from outpost.queue.lua import register
from outpost.queue.ordered import OrderedLanes
from outpost.queue.outbox import Outbox

log = structlog.get_logger("outpost.queue")
STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
COMMIT_BATCH = 500  # completions per script call


class Queue:
    def __init__(
        self,
        redis: Client,
        keys: Keys,
        partitions: int = 16,
        retention_seconds: int = 7 * 24 * 3600,
        attempts_cap: int = 10_000,
        log_cap_tenant: int = 100_000,
        log_cap_total: int = 1_000_000,
        wait: ReplicaWait = NO_WAIT,
        ordering_buckets: int = 64,
    ):
        self.log_cap_tenant = log_cap_tenant
        self.log_cap_total = log_cap_total
        self.redis = redis
        self.wait = wait  # REDIS_WAIT_REPLICAS: after each tenant-step call (durable.py)
        self.keys = keys
        self.partitions = partitions
        self.retention = retention_seconds
        self.attempts_cap = attempts_cap
        self.lanes = Lanes(redis, keys, partitions)
        self.ordered = OrderedLanes(redis, keys, partitions, ordering_buckets)
        self.outbox = Outbox(redis, keys, self.lanes, log_cap_total, self.lane_of)
        self._publish = register(redis, "outpost.queue", "publish")
        self._requeue = register(redis, "outpost.queue", "requeue")
        self._redrive = register(redis, "outpost.queue", "redrive")
        caps = {"retention": retention_seconds, "attempts": attempts_cap}
        caps |= {"tenant": log_cap_tenant, "total": log_cap_total}
        self._completion = Completion(redis, keys, self.lanes, caps)
        self._completions = Coalescer(self._completion.run, COMMIT_BATCH)

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
        """Many publishes: one tenant-step call per tenant (each event still its own step,
        one whose step failed gets its own Unavailable while the others keep their
        answers), then the stored events' tasks drained into their lanes (outbox.py)."""
        if not items:
            return []
        by_tenant: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            by_tenant.setdefault(item[0].tenant_id, []).append(i)
        await self.outbox.mark(list(by_tenant))
        calls = Calls()
        caps = (self.retention, self.log_cap_tenant, self.attempts_cap)
        for tenant_id, at in by_tenant.items():
            batch = [items[i] for i in at]
            calls.script(self._publish, *publish_call(self.keys, tenant_id, batch, caps))
        if self.wait.replicas:
            answers = await self.wait.run_all(self.redis, calls)
        else:
            answers = await calls.run(self.redis)
        out: list[Any] = [None] * len(items)
        owed: list[tuple[str, str]] = []
        for (tenant_id, at), answer in zip(by_tenant.items(), answers, strict=True):
            each = [answer] * len(at)
            if isinstance(answer, list):  # per event, then the call's outbox member
                *each, member = answer
                if isinstance(member, bytes):
                    owed.append((tenant_id, member.decode()))
            for i, one in zip(at, each, strict=True):
                out[i] = _published(one)
        try:
            await self.outbox.drain(owed)
        except REDIS_DOWN as exc:  # stored: the sweep queues their tasks (outbox.py)
            log.warning("outbox_drain_failed", error=str(exc), events=len(owed))
        raise_first(answers)  # a whole call failed (Redis went away): as before, raised
        return out

    async def load_event(self, tenant_id: str, event_id: str) -> Event | None:
        [event] = await self.load_events(tenant_id, [event_id])
        return event

    async def load_events(self, tenant_id: str, event_ids: list[str]) -> list[Event | None]:
        """A tenant's events, None where expired: one MGET."""
        if not event_ids:
            return []
        raws = await mget(self.redis, [self.keys.event(tenant_id, e) for e in event_ids])
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
        calls = Calls()
        for tenant, (events, dests) in by_tenant.items():
            calls.command("MGET", *[self.keys.event(tenant, ev) for ev in events])
            calls.command("HMGET", self.keys.destinations(tenant), *dests)
        raw = iter(raise_first(await calls.run(self.redis)))
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
        *,
        watch: bool = False,
    ) -> list[Entry]:
        """Tasks for this consumer, a fair share of each lane with room (lanes.py)."""
        return await self.lanes.read(consumer, count, block_ms, room, watch=watch)

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
        attempt_id = self._attempt_id(entry)
        task = complete_item(self.keys, attempt_id, entry, outcome, attempt_time)
        return self._completed(attempt_id, self._completions.submit_soon(task))

    def complete_many(
        self, done: list[tuple[Entry, Outcome]], attempt_time: float
    ) -> Awaitable[list[tuple[str, int | None] | BaseException]]:
        """`complete_soon` of many tasks, one future for all: for each, (attempt id,
        consecutive-failure count) or its own exception."""
        ids = [self._attempt_id(entry) for entry, _ in done]
        at, shared = attempt_time, qi.Shared(self.keys, attempt_time)
        tasks = [
            complete_item(self.keys, i, *d, at, shared) for i, d in zip(ids, done, strict=True)
        ]
        return self._completed_many(ids, self._completions.submit_many(tasks))

    def _attempt_id(self, entry: Entry) -> str:
        n = self.keys.partition_of(entry.stream) or 0  # (its record is written in its step)
        return self.keys.attempt_id(n, os.urandom(16).hex())  # 128 random bits

    @staticmethod
    async def _completed(attempt_id: str, done: Awaitable[Any]) -> tuple[str, int | None]:
        failures = await done
        return attempt_id, None if failures < 0 else int(failures)

    @staticmethod
    async def _completed_many(
        ids: list[str], done: Awaitable[list[Any]]
    ) -> list[tuple[str, int | None] | BaseException]:
        return [
            f if isinstance(f, BaseException) else (i, None if f < 0 else int(f))
            for i, f in zip(ids, await done, strict=True)
        ]

    async def promote_due(self, limit: int = 500) -> int:
        """Move retries whose time has come back into their lanes (one call per partition
        with any due), and drain outbox members a stopped publisher left (outbox.sweep,
        now and then): how many this call moved (a retry another promoter moved first is
        not counted)."""
        now_ms = int(time.time() * 1000)
        calls = Calls()
        for n in range(self.partitions):
            calls.command("ZRANGEBYSCORE", self.keys.retries(n), "-inf", now_ms, "LIMIT", 0, limit)
        moved = 0
        for n, due in enumerate(raise_first(await calls.run(self.redis))):
            items: list[tuple[str, str, Task, str | OrderedBy]] = []
            for member in due:
                r = json.loads(member)
                task = Task(r["t"], r["e"], r["d"], int(r["a"]), r["m"] == "1")
                items.append(("retry", _s(member), task, ""))
            moved += await self._requeue_many(self.keys.retries(n), items)
        return moved + await self.outbox.sweep()

    async def _requeue_many(
        self, source: str, items: list[tuple[str, str, Task, str | OrderedBy]]
    ) -> int:
        """Tasks into their lanes (by their lane key, as at publish), each only if this
        call takes it from `source` (`take` 'retry' or 'dead'; '' takes nothing): one
        script call per partition. A task taken from a source of another slot (a tenant's
        dead letters, a retry of before the lanes) is queued first and taken after: a
        crash between queues it twice at most."""
        if not items:
            return 0
        home = self.keys.partition_of(source)
        calls, after = Calls(), Calls()
        by_partition: dict[int, list[dict[str, Any]]] = {}
        for take, member, task, key in items:
            lane = self.lane_of(task.tenant_id, task.destination_id, key)
            item: dict[str, Any] = {"lane": lane, **task.fields()}
            if isinstance(key, OrderedBy):
                item["k"] = key.key  # carried in its ordered sub-lane
            if take and lane.partition == home:
                item |= {"take": take, "member": member}
            elif take:
                after.command(*_take(take, source, member))
            by_partition.setdefault(lane.partition, []).append(item)
        for n, group in by_partition.items():
            source_n = source if n == home else self.keys.lanes(n)
            keys, args = self.outbox.requeue_call(source_n, group)
            calls.script(self._requeue, keys, args)
        moved = sum(int(r) for r in raise_first(await calls.run(self.redis)))
        if len(after):
            taken = raise_first(await after.run(self.redis))
            moved = sum(1 for r in taken if r)  # (queued again if another took it first)
        return moved

    async def depth(self) -> dict[str, int]:
        """Tasks not yet finished: queued or in flight, and waiting to be retried."""
        queued = await self.lanes.queued() + await self.ordered.queued()
        calls = Calls()
        for n in range(self.partitions):
            calls.command("ZCARD", self.keys.retries(n))
        retrying = sum(int(r) for r in raise_first(await calls.run(self.redis)))
        return {"queued": queued, "retrying": retrying}

    async def retry_schedule(self) -> list[tuple[str, float]]:
        """Every retry waiting (member JSON, due ms) over the partitions, soonest first."""
        calls = Calls()
        for n in range(self.partitions):
            calls.command("ZRANGE", self.keys.retries(n), 0, -1, "WITHSCORES")
        found = [
            (_s(m), float(score))
            for reply in raise_first(await calls.run(self.redis))
            for m, score in _pairs(reply)
        ]
        return sorted(found, key=lambda pair: pair[1])

    async def attempts(
        self, tenant_id: str, destination_id: str, count: int = 100
    ) -> list[dict[str, Any]]:
        """A destination's latest attempts, newest first."""
        ids: Any = await self.redis.zrevrange(
            self.keys.attempts(tenant_id, destination_id), 0, count - 1
        )
        if not ids:
            return []
        raws = await mget(self.redis, [self.keys.attempt(_s(i)) for i in ids])
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
        (dead-letter id, task, lane key: an OrderedBy for an ordered sub-lane). Only
        entries this call removes from the dead letters are queued (through the tenant's
        outbox, redrive.lua), so concurrent redrives cannot queue one twice."""
        if not items:
            return 0
        await self.outbox.mark([tenant_id])
        calls = [qi.redrive_item(dead_id, task, key) for dead_id, task, key in items]
        keys = [self.keys.dead_letters(tenant_id), self.keys.outbox(tenant_id)]
        members: Any = await self._redrive(
            keys=keys, args=[int(time.time() * 1000), orjson.dumps(calls)]
        )
        await self.outbox.drain([(tenant_id, _s(m)) for m in members])
        return len(members)

    async def enqueue(self, task: Task, key: str | OrderedBy = "") -> None:
        """One task straight into its lane (manual retry): its destination's lane, or the
        ordered sub-lane of its key (at its tail)."""
        lane = self.lane_of(task.tenant_id, task.destination_id, key)
        await self._requeue_many(lane.stream, [("", "", task, key)])

    async def event_owners(self, event_id: str) -> list[str]:
        """Tenants that have an event with this id (ids are unique per tenant only)."""
        n = self.lanes.owners_partition(event_id)
        calls = Calls().command("SMEMBERS", self.keys.event_owners(event_id, n))
        calls.command("SMEMBERS", self.keys.event_owners(event_id))  # (the key of before)
        found = raise_first(await calls.run(self.redis))
        return sorted({_s(m) for members in found for m in members})


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _pairs(reply: Any) -> list[tuple[Any, Any]]:
    """ZRANGE WITHSCORES's answer as (member, score) pairs (a flat list or pairs)."""
    if reply and not isinstance(reply[0], (list, tuple)):
        return list(zip(reply[::2], reply[1::2], strict=True))
    return [tuple(p) for p in reply]


def _take(take: str, source: str, member: str) -> tuple[str, ...]:
    """The command that takes a task from a source of another slot than its lane."""
    return ("ZREM", source, member) if take == "retry" else ("XDEL", source, member)


def _published(result: Any) -> bool | DomainError:
    """One event's answer from the publish script (1: stored, 0: a duplicate)."""
    if isinstance(result, BaseException):
        return step_failed(str(result).encode())
    if isinstance(result, bytes):
        return step_failed(result)
    if result == -1:
        return NotFound("tenant")
    return bool(result)
