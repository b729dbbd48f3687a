"""Completing deliveries in two steps, one per hash tag, for a coalesced batch:

1. the tenant step (complete.lua, one call per tenant of the batch): the attempt's
   indexes, the failure counter, a dead letter; it answers the attempt record's time to
   live and whether the tenant is gone;
2. the partition step (ack.lua, one call per partition): the attempt records (under the
   partition's tag: an attempt id names its partition, Keys.attempt), the retry, the
   admin listing's entry, XACK/XDEL, the lane's index; for an ordered sub-lane its state
   hash (a head retried in place is `hold`: not acked, unless the tenant step answered it
   gone).

The ack comes last: a crash between the steps delivers the task again (a second attempt
recorded), never loses it. On a single node each step is one pipelined round trip.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from redis.exceptions import ResponseError

from outpost.queue.calls import Calls, Client, is_cluster
from outpost.queue.items import COMPLETE_KEYS, indexed, tenant_fence
from outpost.queue.keys import GROUP, Keys
from outpost.queue.lanes import Lanes
from outpost.queue.lua import KeyTable, register

# the fields of a completion the partition step reads
# (`hold`, `next_attempt`: an ordered sub-lane's head retried in place, queue/ordered.py)
PARTITION_FIELDS = (
    *("attempt_id", "time_ms", "trim", "retry", "retry_at_ms"),
    *("hold", "next_attempt"),
)


class Completion:
    def __init__(self, redis: Client, keys: Keys, lanes: Lanes, caps: dict[str, int]):
        """`caps`: retention (seconds), attempts (per destination), tenant, total."""
        self.redis, self.keys, self.lanes, self.caps = redis, keys, lanes, caps
        self._complete = register(redis, "outpost.queue", "complete")
        self._ack = register(redis, "outpost.queue", "ack")

    async def run(self, tasks: list[dict[str, Any]]) -> list[Any]:
        """One answer per task: its failure count (-1: none) or its own error."""
        cutoff = int((time.time() - self.caps["retention"]) * 1000)
        tenant = await self._tenant_step(tasks, cutoff)
        await self._partition_step(tasks, tenant, cutoff)
        return [r if isinstance(r, BaseException) else int(r[0]) for r in tenant]

    async def _tenant_step(self, tasks: list[dict[str, Any]], cutoff: int) -> list[Any]:
        by_tenant: dict[str, list[int]] = {}
        for i, t in enumerate(tasks):
            by_tenant.setdefault(t["tenant_id"], []).append(i)
        calls = Calls()
        for tenant_id, at in by_tenant.items():
            table = KeyTable(
                *tenant_fence(self.keys, tenant_id).values(),
                self.keys.tenant_attempts(tenant_id),
                self.keys.dead_letters(tenant_id),
            )
            items = [indexed(_tenant_part(tasks[i]), COMPLETE_KEYS, table) for i in at]
            args = [self.caps["retention"], cutoff, self.caps["attempts"], self.caps["tenant"]]
            calls.script(self._complete, table.keys, [*args, orjson.dumps(items)])
        out: list[Any] = [None] * len(tasks)
        for at, answer in zip(by_tenant.values(), await calls.run(self.redis), strict=True):
            for i, one in zip(at, _answers(answer, len(at)), strict=True):
                out[i] = one
        return out

    async def _partition_step(
        self, tasks: list[dict[str, Any]], tenant: list[Any], cutoff: int
    ) -> None:
        early, late = Calls(), Calls()
        groups: dict[int, list[dict[str, Any]]] = {}
        retries_elsewhere: dict[int, list[dict[str, Any]]] = {}
        for task, answer in zip(tasks, tenant, strict=True):
            if isinstance(answer, BaseException):
                continue  # not acked: delivered again
            _, ttl, gone = answer
            item = {k: task[k] for k in PARTITION_FIELDS if k in task and not gone}
            item |= {"entry_id": task["entry_id"], "gone": bool(gone)}
            item |= {k: task.get(k) for k in ("stream", "lanes", "state")}
            if "attempt" in task and not gone:  # (its key is in the task's partition)
                item |= {"attempt_key": task["attempt_key"], "attempt": task["attempt"]}
                item["ttl"] = int(ttl)
            n = self._partition(task)
            retry_n = self._retry_partition(task, item, n)
            if retry_n != n:  # a partition stream of before the lanes
                retries_elsewhere.setdefault(retry_n, []).append(
                    {"retry": item.pop("retry"), "retry_at_ms": item.pop("retry_at_ms")}
                )
            groups.setdefault(n, []).append(item)
        for n, items in retries_elsewhere.items():
            early.script(self._ack, *self._ack_call(n, items, cutoff))
        for n, items in groups.items():
            late.script(self._ack, *self._ack_call(n, items, cutoff))
        await self._in_order(early, late)

    async def _in_order(self, *steps: Calls) -> None:
        """Each step's calls after the previous step's: one pipeline on a single node
        (its commands run in order), one round trip per step on a cluster."""
        if not is_cluster(self.redis):
            merged = Calls()
            for step in steps:
                merged.items += step.items
            steps = (merged,)
        for step in steps:
            _raise_errors(await step.run(self.redis))

    def _ack_call(
        self, n: int, items: list[dict[str, Any]], cutoff: int
    ) -> tuple[list[str], list[Any]]:
        table = KeyTable(self.keys.retries(n), self.keys.admin_attempts(n))
        for item in items:
            for name in ("stream", "lanes", "state", "attempt_key"):
                if item.get(name) is None:
                    item.pop(name, None)
                else:
                    item[name] = table.index(item[name])
        cap = max(1, self.caps["total"] // self.lanes.partitions)
        return table.keys, [GROUP, cutoff, cap, orjson.dumps(items)]

    def _retry_partition(self, task: dict[str, Any], item: dict[str, Any], n: int) -> int:
        """The partition whose retries get the task's retry: its lane's (`n`, but for a
        task of a partition stream of before the lanes)."""
        if "retry" not in item or task.get("lanes") is not None:
            return n
        return self.lanes.of(task["tenant_id"], _dest(task)).partition

    def _partition(self, task: dict[str, Any]) -> int:
        n = self.keys.partition_of(task["stream"])
        assert n is not None, task["stream"]
        return n


def _tenant_part(task: dict[str, Any]) -> dict[str, Any]:
    names = (*COMPLETE_KEYS, "record", "attempt_id", "time_ms", "success", "trim", "dead")
    return {k: task[k] for k in names if k in task}


def _dest(task: dict[str, Any]) -> str:
    return str(orjson.loads(task["retry"])["d"])


def _answers(answer: Any, count: int) -> list[Any]:
    """A tenant call's answer per task: [failures, ttl, gone] or its own error."""
    if isinstance(answer, BaseException):
        return [answer] * count
    return [
        ResponseError(a.decode(errors="replace")) if isinstance(a, bytes) else a for a in answer
    ]


def _raise_errors(results: list[Any]) -> None:
    for result in results:
        if isinstance(result, BaseException):
            raise result
