"""Publishing across slots, crash-safe: an outbox under the tenant's hash tag.

A publish touches the tenant's slot (the event, its index, held dead letters) and the
slots of the partitions its tasks go to. No single call may span both on Redis Cluster, so:

0. the first time this process sees a tenant, the tenant joins its home partition's set of
   outboxes (`{p:n}:outboxes`) before anything of it enters its outbox;
1. the tenant step (publish.lua, one call per tenant of a coalesced batch) stores each
   event and, in the same atomic call, one outbox member naming the tasks the call's
   stored events owe (one member per call, not per event: one ZADD and one ZREM);
   the 202 may be answered from here on: the event is stored and its tasks are owed;
2. `drain`: per partition one requeue.lua call queues the tasks of the batch into their
   lanes (a task with an ordering key, the member's `o`, into its ordered sub-lane),
   with the admin listing's entries and the owners sets (one round trip);
3. the drained members leave their outboxes (one round trip).

A crash after step 1 leaves the member in the outbox; `sweep` (run by every promoter)
drains members older than OUTBOX_AGE_SECONDS again. A crash after step 2 queues the tasks
again: at most a duplicate delivery, never a lost one (delivery is at-least-once anyway).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from outpost.models import OrderedBy
from outpost.queue import items
from outpost.queue.calls import Calls, Client, raise_first
from outpost.queue.keys import GROUP, Keys
from outpost.queue.lanes import BELL_MAXLEN, Lane, Lanes
from outpost.queue.lua import KeyTable, register

log = structlog.get_logger("outpost.outbox")
OUTBOX_AGE_SECONDS = 10.0  # a member this old was left by a publisher that stopped
SWEEP_EVERY_SECONDS = 2.0  # how often a promoter looks
SWEEP_BATCH = 500  # members per tenant and sweep


class Outbox:
    def __init__(
        self,
        redis: Client,
        keys: Keys,
        lanes: Lanes,
        log_cap_total: int,
        lane_of: Callable[[str, str, Any], Lane] | None = None,
    ):
        """`lane_of(tenant, destination, key)`: a task's lane, by its ordering key (an
        OrderedBy: an ordered sub-lane, Queue.lane_of); by default the destination's."""
        self.redis = redis
        self.keys = keys
        self.lanes = lanes
        self.lane_of = lane_of or (lambda tenant_id, dest_id, _: lanes.of(tenant_id, dest_id))
        self.cap = max(1, log_cap_total // lanes.partitions)  # per partition share
        self._requeue = register(redis, "outpost.queue", "requeue")
        self._owners = register(redis, "outpost.queue", "owners")
        self._marked: set[str] = set()
        self._swept_at = 0.0

    async def mark(self, tenant_ids: list[str]) -> None:
        """Step 0: tenants this process has not marked yet join their outboxes sets."""
        new = [t for t in dict.fromkeys(tenant_ids) if t not in self._marked]
        if not new:
            return
        calls = Calls()
        for tenant_id in new:
            calls.command("SADD", self.keys.outboxes(self.lanes.home(tenant_id)), tenant_id)
        raise_first(await calls.run(self.redis))
        self._marked.update(new)

    async def drain(self, owed: list[tuple[str, str]]) -> None:
        """Steps 2 and 3 for (tenant id, outbox member) pairs. A call of step 2 that
        failed leaves the batch's members in their outboxes for the sweep (logged), but
        an owners set that could not be written (the admin's lookup by id) does not."""
        if not owed:
            return
        calls = self._queue_calls(owed)
        failed = [
            (script, answer)
            for (script, _, _), answer in zip(calls.items, await calls.run(self.redis), strict=True)
            if isinstance(answer, BaseException)
        ]
        for script, answer in failed:
            log.warning("outbox_drain_failed", owners=script is self._owners, error=str(answer))
        if any(script is not self._owners for script, _ in failed):
            return
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, member in owed:
            by_tenant.setdefault(tenant_id, []).append(member)
        calls = Calls()
        for tenant_id, members in by_tenant.items():
            calls.command("ZREM", self.keys.outbox(tenant_id), *members)
        raise_first(await calls.run(self.redis))

    def _queue_calls(self, owed: list[tuple[str, str]]) -> Calls:
        """Per partition one requeue call (its lanes' tasks), per home partition one ZADD
        of the admin listing, per event one owners call."""
        tasks: dict[int, list[dict[str, Any]]] = {}
        listed: dict[int, list[Any]] = {}
        owners: dict[int, list[tuple[str, str, Any]]] = {}
        calls = Calls()
        for tenant_id, member in owed:
            for o in _owed(orjson.loads(member)):
                for item in self._tasks(tenant_id, o):
                    tasks.setdefault(item["lane"].partition, []).append(item)
                if "ms" not in o:
                    continue  # a redriven dead letter: its event is listed and owned already
                home = listed.setdefault(self.lanes.home(tenant_id), [])
                home += [int(o["ms"]), f"{tenant_id}/{o['e']}"]
                n = self.lanes.owners_partition(o["e"])
                owners.setdefault(n, []).append((o["e"], tenant_id, o["ttl"]))
        for n, group in tasks.items():
            calls.script(self._requeue, *self.requeue_call(self.keys.lanes(n), group))
        for n, owned in owners.items():
            calls.script(self._owners, *self._owners_call(n, owned))
        for n, pairs in listed.items():
            calls.command("ZADD", self.keys.admin_events(n), *pairs)
            if random.random() < items.TRIM_SHARE:
                calls.command("ZREMRANGEBYRANK", self.keys.admin_events(n), 0, -(self.cap + 1))
        return calls

    def _tasks(self, tenant_id: str, o: dict[str, Any]) -> list[dict[str, Any]]:
        """The tasks an outbox member owes, each with its lane; a route with an ordering
        key (`o`: destination id -> key) goes to its ordered sub-lane, the key as `k`."""
        keys = o.get("o") or {}
        out = []
        for dest_id in o["r"] or ():  # (Lua encodes an empty array as {})
            key = keys.get(dest_id)
            lane = self.lane_of(tenant_id, dest_id, "" if key is None else OrderedBy(key))
            item = {"lane": lane, "t": tenant_id, "e": o["e"], "d": dest_id, "a": "1", "m": "0"}
            if key is not None:
                item["k"] = key
            out.append(item)
        return out

    def _owners_call(
        self, n: int, owned: list[tuple[str, str, Any]]
    ) -> tuple[list[str], list[Any]]:
        table = KeyTable()
        items = [
            {"k": table.index(self.keys.event_owners(event_id, n)), "t": tenant_id, "ttl": ttl}
            for event_id, tenant_id, ttl in owned
        ]
        return table.keys, [orjson.dumps(items)]

    @staticmethod
    def requeue_call(source: str, items: list[dict[str, Any]]) -> tuple[list[str], list[Any]]:
        """The KEYS and ARGV of one requeue.lua call: `items` each with its `lane` (and
        `take`/`member` when taken from `source`), all of `source`'s partition."""
        table = KeyTable(source)
        calls = []
        for item in items:
            lane = item.pop("lane")
            calls.append(
                {
                    "stream": table.index(lane.stream),
                    "lanes": table.index(lane.index),
                    "bell": table.index(lane.bell),
                    **item,
                }
            )
        return table.keys, [orjson.dumps(calls), GROUP, BELL_MAXLEN]

    async def sweep(self, age: float | None = None, force: bool = False) -> int:
        """Drain outbox members older than `age` (OUTBOX_AGE_SECONDS: their publisher
        stopped half way), at most every SWEEP_EVERY_SECONDS unless `force`: how many."""
        age = OUTBOX_AGE_SECONDS if age is None else age
        now = time.monotonic()
        if not force and now - self._swept_at < SWEEP_EVERY_SECONDS:
            return 0
        self._swept_at = now
        tenants = await marked_tenants(self.redis, self.keys, self.lanes.partitions)
        cutoff = int((time.time() - age) * 1000)
        calls = Calls()
        for tenant_id in tenants:
            key = self.keys.outbox(tenant_id)
            calls.command("ZRANGEBYSCORE", key, "-inf", cutoff, "LIMIT", 0, SWEEP_BATCH)
        answers = raise_first(await calls.run(self.redis))
        owed = [(t, _s(m)) for t, found in zip(tenants, answers, strict=True) for m in found]
        await self.drain(owed)
        return len(owed)


def _owed(member: dict[str, Any]) -> list[dict[str, Any]]:
    """The events an outbox member owes tasks for: a publish call's member holds its
    stored events (`b`, their retention `ttl` once); a redriven dead letter's (and one
    written before members were per call) is one event."""
    if "b" not in member:
        return [member]
    ttl = member["ttl"]
    return [{**o, "ttl": ttl} for o in member["b"]]


async def marked_tenants(redis: Client, keys: Keys, partitions: int) -> list[str]:
    """The tenants whose outboxes may hold events (every partition's marks), sorted."""
    calls = Calls()
    for n in range(partitions):
        calls.command("SMEMBERS", keys.outboxes(n))
    return sorted({_s(t) for found in raise_first(await calls.run(redis)) for t in found})


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
