"""The delivery queue: partition streams, retries, dead letters, attempts.

Publishing, completing a delivery and promoting retries are each one atomic step (Lua or
MULTI), so a crash between any two steps loses nothing; at worst a task runs twice.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import zlib
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from outpost import envelope
from outpost.errors import Invalid, Unavailable
from outpost.models import Event, Task, iso
from outpost.queue.coalesce import Coalescer
from outpost.queue.keys import GROUP, Keys

_PUBLISH = """
-- Many publishes in one call, each its own protected step. KEYS: the global event index.
-- ARGV: retention, tenant log cap, total log cap, dead-letter MAXLEN, then the events as
-- one JSON array (see Queue._publish_call). Per event: 1 if stored and queued, 0 if the
-- tenant already had an event with this id (nothing queued), 'ERR ...' if its step failed.
local out = {}
local function publish(e)
  if not redis.call('SET', e[1], e[5], 'NX', 'EX', ARGV[1]) then return 0 end
  redis.call('SADD', e[2], e[6])
  redis.call('EXPIRE', e[2], ARGV[1])
  redis.call('ZADD', e[3], e[8], e[7])
  redis.call('ZADD', KEYS[1], e[8], e[6] .. '/' .. e[7])
  if e[9] == '1' then
    redis.call('ZREMRANGEBYRANK', e[3], 0, -(tonumber(ARGV[2]) + 1))
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
  end
  for _, r in ipairs(e[11]) do
    redis.call('XADD', r[1], '*', 't', e[6], 'e', e[7], 'd', r[2], 'a', '1', 'm', '0')
  end
  for _, d in ipairs(e[12]) do
    redis.call('XADD', e[4], 'MAXLEN', '~', ARGV[4], '*', 't', e[6], 'e', e[7], 'd', d,
               'a', '0', 'm', '0', 'code', 'destination_disabled',
               'message', 'the destination was disabled when the event was published',
               'time', e[10])
  end
  return 1
end
for i, e in ipairs(cjson.decode(ARGV[5])) do
  local ok, res = pcall(publish, e)
  if ok then out[i] = res else out[i] = 'ERR ' .. tostring(res) end
end
return out
"""

STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
TRIM_SHARE = 0.02  # share of writes that also trim the log indexes
COMMIT_BATCH = 500  # completions per script call

_COMPLETE = """
-- Many completions in one call. Each task is its own protected step: one failing (say a
-- wrong-typed key) fails only itself. KEYS: all-attempts index, retries. ARGV: group,
-- retention, log cut-off ms, per-destination cap (also the dead-letter MAXLEN), tenant
-- cap, total cap, then the tasks as one JSON array (see Queue._complete_call).
local out = {}
local tasks = cjson.decode(ARGV[7])
local caps = {ARGV[4], ARGV[5], ARGV[6]}
local acks = {}  -- stream -> entry ids
local cleared = {}  -- failure counters already deleted in this call
local function complete(t)
  local failures = -1
  if t[3] == '1' then
    redis.call('SET', t[4], t[5], 'EX', ARGV[2])
    redis.call('ZADD', t[10], t[6], t[7])
    redis.call('EXPIRE', t[10], ARGV[2])
    local indexes = {t[11], t[12], KEYS[1]}
    for j = 1, 3 do redis.call('ZADD', indexes[j], t[6], t[7]) end
    if t[9] == '1' then
      for j = 1, 3 do
        redis.call('ZREMRANGEBYSCORE', indexes[j], '-inf', ARGV[3])
        redis.call('ZREMRANGEBYRANK', indexes[j], 0, -(tonumber(caps[j]) + 1))
      end
    end
    if t[8] == '1' then
      if not cleared[t[13]] then
        redis.call('DEL', t[13])
        cleared[t[13]] = true
      end
    else
      failures = redis.call('INCR', t[13])
      cleared[t[13]] = nil
    end
  end
  if t[14] ~= '' then redis.call('ZADD', KEYS[2], t[15], t[14]) end
  if #t[17] > 0 then
    redis.call('XADD', t[16], 'MAXLEN', '~', ARGV[4], '*', unpack(t[17]))
  end
  acks[t[1]] = acks[t[1]] or {}
  table.insert(acks[t[1]], t[2])
  return failures
end
for i, t in ipairs(tasks) do
  local ok, res = pcall(complete, t)
  if ok then out[i] = res else out[i] = 'ERR ' .. tostring(res) end
end
-- acked (and deleted) per stream, only the tasks whose step succeeded
for stream, ids in pairs(acks) do
  redis.call('XACK', stream, ARGV[1], unpack(ids))
  redis.call('XDEL', stream, unpack(ids))
end
return out
"""

_REDRIVE = """
local n = 0
for i = 2, #KEYS do
  local base = (i - 2) * 4
  if redis.call('XDEL', KEYS[1], ARGV[base + 1]) == 1 then
    redis.call('XADD', KEYS[i], '*', 't', ARGV[base + 2], 'e', ARGV[base + 3],
               'd', ARGV[base + 4], 'a', '1', 'm', '0')
    n = n + 1
  end
end
return n
"""

_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  local t = cjson.decode(member)
  redis.call('XADD', t.s, '*', 't', t.t, 'e', t.e, 'd', t.d, 'a', t.a, 'm', t.m)
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""


@dataclass(frozen=True)
class Entry:
    """A task as read from a partition stream."""

    stream: str
    entry_id: str
    task: Task


@dataclass
class Outcome:
    """What one attempt came to, and what happens next."""

    status: str  # "success" | "failed"
    code: str = ""
    message: str = ""
    response: dict[str, Any] = field(default_factory=dict)
    retry_in: float | None = None  # seconds; None = no retry
    dead: bool = False  # keep as a dead letter
    record_attempt: bool = True
    topic: str = ""  # the event's, kept on the attempt record for filtering
    destination_type: str = ""
    exhausted: bool = False  # dead because the retries ran out


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
    ):
        self.log_cap_tenant = log_cap_tenant
        self.log_cap_total = log_cap_total
        self.redis = redis
        self.keys = keys
        self.partitions = partitions
        self.retention = retention_seconds
        self.attempts_cap = attempts_cap
        self.streams = [keys.partition(n) for n in range(partitions)]
        self._publish = redis.register_script(_PUBLISH)
        self._promote = redis.register_script(_PROMOTE)
        self._redrive = redis.register_script(_REDRIVE)
        self._complete = redis.register_script(_COMPLETE)
        self._completions = Coalescer(self._complete_many, COMMIT_BATCH)

    def partition_of(self, destination_id: str, ordering_key: str) -> str:
        """Stable across processes and restarts (crc32, not Python's salted hash)."""
        n = zlib.crc32(f"{destination_id}\0{ordering_key}".encode()) % self.partitions
        return self.streams[n]

    # -- producer ---------------------------------------------------------------------
    async def publish(
        self, event: Event, routes: list[tuple[str, str]], held: Sequence[str] = ()
    ) -> bool:
        """Store and index the event, add one task per (destination id, ordering key) and
        keep a dead letter for each `held` (disabled) destination, atomically. False when
        the tenant already has an event with this id (nothing is queued)."""
        [fresh] = await self.publish_many([(event, routes, held)])
        if isinstance(fresh, Unavailable):
            raise fresh
        return fresh

    async def publish_many(
        self, items: list[tuple[Event, list[tuple[str, str]], Sequence[str]]]
    ) -> list[bool | Unavailable]:
        """Many publishes in one script call (one command, one JSON argument); each event
        is still its own step, and one whose step failed gets its own Unavailable while the
        others keep their answers (their events are stored)."""
        if not items:
            return []
        args: list[Any] = [
            self.retention,
            self.log_cap_tenant,
            self.log_cap_total,
            self.attempts_cap,
            orjson.dumps([self._publish_call(*item) for item in items]),
        ]
        results = await self._publish(keys=[self.keys.events_index()], args=args)
        return [
            Unavailable(f"the event could not be stored ({r.decode(errors='replace')})")
            if isinstance(r, bytes)
            else bool(r)
            for r in results
        ]

    def _publish_call(
        self, event: Event, routes: list[tuple[str, str]], held: Sequence[str]
    ) -> list[Any]:
        """One event of the publish script (positions as the script reads them)."""
        record = {**event.to_json(), "matched_destination_ids": [d for d, _ in routes]}
        return [
            self.keys.event(event.tenant_id, event.id),
            self.keys.event_owners(event.id),
            self.keys.events_index(event.tenant_id),
            self.keys.dead_letters(event.tenant_id),
            envelope.dumps(record).decode(),
            event.tenant_id,
            event.id,
            str(int(event.time.timestamp() * 1000)),
            "1" if random.random() < TRIM_SHARE else "0",
            f"{time.time():.3f}",
            [[self.partition_of(dest_id, okey), dest_id] for dest_id, okey in routes],
            list(held),
        ]

    async def load_event(self, tenant_id: str, event_id: str) -> Event | None:
        raw = await self.redis.get(self.keys.event(tenant_id, event_id))
        return None if raw is None else Event.from_json(json.loads(raw))

    # -- consumer ---------------------------------------------------------------------
    async def ensure_groups(self) -> None:
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read(self, consumer: str, count: int, block_ms: int) -> list[Entry]:
        streams: dict[Any, Any] = {s: ">" for s in self.streams}
        try:
            reply: Any = await self.redis.xreadgroup(
                GROUP, consumer, streams, count=count, block=block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # first read on a new Redis, or Redis lost its data (no persistence)
            await self.ensure_groups()
            reply = await self.redis.xreadgroup(
                GROUP, consumer, streams, count=count, block=block_ms
            )
        return [_entry(stream, eid, f) for stream, items in reply or [] for eid, f in items]

    async def reclaim(self, consumer: str, min_idle_ms: int, count: int = 100) -> list[Entry]:
        """Take over tasks another consumer read and never acked (it crashed)."""
        out: list[Entry] = []
        for stream in self.streams:
            try:
                reply: Any = await self.redis.xautoclaim(
                    stream, GROUP, consumer, min_idle_ms, start_id="0-0", count=count
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self.ensure_groups()
                continue
            out.extend(_entry(stream, eid, f) for eid, f in reply[1] if f)
        return out

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
        task = self._complete_call(attempt_id, entry, outcome, attempt_time)
        return self._completed(attempt_id, self._completions.submit_soon(task))

    @staticmethod
    async def _completed(attempt_id: str, done: Awaitable[Any]) -> tuple[str, int | None]:
        failures = await done
        return attempt_id, None if failures < 0 else int(failures)

    async def _complete_many(self, tasks: list[list[Any]]) -> list[Any]:
        args: list[Any] = [
            GROUP,
            self.retention,
            int((time.time() - self.retention) * 1000),
            self.attempts_cap,
            self.log_cap_tenant,
            self.log_cap_total,
            orjson.dumps(tasks),
        ]
        keys = [self.keys.all_attempts(), self.keys.retries()]
        results = await self._complete(keys=keys, args=args)
        # 'ERR ...' (bytes): that task's step failed, and only its caller hears of it
        return [
            ResponseError(r.decode(errors="replace")) if isinstance(r, bytes) else r
            for r in results
        ]

    def _complete_call(
        self, attempt_id: str, entry: Entry, outcome: Outcome, attempt_time: float
    ) -> list[Any]:
        """One task of the completion script (positions as the script reads them)."""
        task = entry.task
        dead: list[str] = []
        if outcome.dead:
            fields = {
                **task.fields(),
                "code": outcome.code,
                "message": outcome.message[:1000],
                "time": f"{attempt_time:.3f}",
            }
            dead = [x for pair in fields.items() for x in pair]
        retry = "" if outcome.retry_in is None else self._retry_member(entry)
        return [
            entry.stream,
            entry.entry_id,
            "1" if outcome.record_attempt else "0",
            self.keys.attempt(attempt_id),
            envelope.dumps(self._attempt_record(attempt_id, task, outcome, attempt_time)).decode(),
            str(int(attempt_time * 1000)),
            attempt_id,
            "1" if outcome.status == "success" else "0",
            "1" if random.random() < TRIM_SHARE else "0",
            self.keys.event_attempts(task.tenant_id, task.event_id),
            self.keys.attempts(task.tenant_id, task.destination_id),
            self.keys.tenant_attempts(task.tenant_id),
            self.keys.failures(task.tenant_id, task.destination_id),
            retry,
            str(int((time.time() + (outcome.retry_in or 0)) * 1000)),
            self.keys.dead_letters(task.tenant_id),
            dead,
        ]

    def _attempt_record(
        self, attempt_id: str, task: Task, outcome: Outcome, attempt_time: float
    ) -> dict[str, Any]:
        return {
            "id": attempt_id,
            "tenant_id": task.tenant_id,
            "event_id": task.event_id,
            "destination_id": task.destination_id,
            "attempt_number": task.attempt,
            "status": outcome.status,
            "code": outcome.code or "ok",
            "response_data": outcome.response,
            "manual": task.manual,
            "time": iso(datetime.fromtimestamp(attempt_time, UTC)),
            "topic": outcome.topic,
            "destination_type": outcome.destination_type,
        }

    def _retry_member(self, entry: Entry) -> str:
        t = entry.task
        return json.dumps(
            {
                "s": entry.stream,
                "t": t.tenant_id,
                "e": t.event_id,
                "d": t.destination_id,
                "a": str(t.attempt + 1),
                "m": "1" if t.manual else "0",
            },
            separators=(",", ":"),
        )

    async def promote_due(self, limit: int = 500) -> int:
        """Move retries whose time has come back into their partition streams."""
        now_ms = int(time.time() * 1000)
        return int(await self._promote(keys=[self.keys.retries()], args=[now_ms, limit]))

    async def depth(self) -> dict[str, int]:
        """Tasks not yet finished: queued or in flight, and waiting to be retried."""
        pipe = self.redis.pipeline(transaction=False)
        for stream in self.streams:
            pipe.xlen(stream)
        pipe.zcard(self.keys.retries())
        *lengths, retries = await pipe.execute()
        return {"queued": sum(lengths), "retrying": retries}

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

    async def redrive(self, tenant_id: str, items: list[tuple[str, Task, str]]) -> int:
        """Put dead letters back in the queue with a fresh retry budget. `items` are
        (dead-letter id, task, ordering key). Only entries this call removes from the
        dead letters are queued, so concurrent redrives cannot queue one twice."""
        if not items:
            return 0
        keys = [self.keys.dead_letters(tenant_id)]
        args: list[Any] = []
        for dead_id, task, okey in items:
            keys.append(self.partition_of(task.destination_id, okey))
            args += [
                dead_id,
                task.tenant_id,
                task.event_id,
                task.destination_id,
            ]
        return int(await self._redrive(keys=keys, args=args))

    async def enqueue(self, task: Task, ordering_key: str) -> None:
        """One task straight into its partition stream (manual retry)."""
        fields: dict[Any, Any] = task.fields()
        await self.redis.xadd(self.partition_of(task.destination_id, ordering_key), fields)

    async def event_owners(self, event_id: str) -> list[str]:
        """Tenants that have an event with this id (ids are unique per tenant only)."""
        members: Any = await self.redis.smembers(self.keys.event_owners(event_id))
        return sorted(_s(m) for m in members)


def _entry(stream: bytes | str, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Entry:
    decoded = {k.decode(): v.decode() for k, v in fields.items()}
    return Entry(_s(stream), _s(entry_id), Task.from_fields(decoded))


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
