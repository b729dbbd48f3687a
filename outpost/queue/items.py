"""What the queue's scripts are handed, one item at a time: a publish item, a completion
item (with its attempt record and retry member), each naming its keys (`indexed` turns
them into indexes into the call's KEYS); and what the worker hands the queue back (`Entry`
read from a stream, the `Outcome` of an attempt). Pure: no Redis here."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from outpost import exactjson
from outpost.models import Event, OrderedBy, Task, iso
from outpost.queue.keys import Keys
from outpost.queue.lua import KeyTable

TRIM_SHARE = 0.02  # share of writes that also trim the log indexes
# the fields of a completion's tenant step that name a key (an index into KEYS once sent)
COMPLETE_KEYS = ("event_attempts", "destination_attempts", "failures")


# what a stored event carries beside its fields (never shown by the API): the publish
# span's traceparent and when it was stored, for the attempts' spans and latency
TRACE = "_tp"
PUBLISHED = "_pt"


def stored_event(record: dict[str, Any]) -> Event:
    """An event as the publish script stored it, with what it carries."""
    return Event.from_json(record, record.get(TRACE, ""), record.get(PUBLISHED, 0.0))


@dataclass(frozen=True)
class Entry:
    """A task as read from its lane (or a partition stream of before the lanes)."""

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
    held: bool = False  # not sent (its destination's circuit is open): no retry spent
    broken: bool = False  # the destination itself is wrong: alert (and disable) at once


def publish_call(
    queue_keys: Keys,
    tenant_id: str,
    items: list[tuple[Event, list[tuple[str, Any]], Sequence[str]]],
    caps: tuple[int, int, int],
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of the tenant step of publishing (publish.lua) for one tenant's
    events; `caps`: retention seconds, the tenant's log cap, the dead letters' MAXLEN."""
    table = KeyTable(
        *tenant_fence(queue_keys, tenant_id).values(),
        queue_keys.events_index(tenant_id),
        queue_keys.outbox(tenant_id),
        queue_keys.dead_letters(tenant_id),
    )
    events, records = [], []
    for item in items:
        call, record = publish_item(queue_keys, table, item)
        events.append(call)
        records.append(record)
    now_ms = int(time.time() * 1000)
    return table.keys, [*caps, now_ms, tenant_id, orjson.dumps(events), *records]


def publish_item(
    queue_keys: Keys,
    table: KeyTable,
    item: tuple[Event, list[tuple[str, Any]], Sequence[str]],
) -> tuple[dict[str, Any], bytes]:
    """One event of the publish script, its record's key as an index into KEYS, and its
    record (an argument of its own: JSON inside the items' JSON would be escaped)."""
    event, routes, held = item
    now = time.time()
    record = {**event.to_json(), "matched_destination_ids": [d for d, _ in routes]}
    record[PUBLISHED] = round(now, 3)
    if event.traceparent:
        record[TRACE] = event.traceparent
    call = {
        "event_key": table.index(queue_keys.event(event.tenant_id, event.id)),
        "event_id": event.id,
        "time_ms": str(int(event.time.timestamp() * 1000)),
        "trim": random.random() < TRIM_SHARE,
        "now": f"{now:.3f}",
        "routes": [dest_id for dest_id, _ in routes],
        "held": list(held),
    }
    ordered = {dest_id: key.key for dest_id, key in routes if isinstance(key, OrderedBy)}
    if ordered:  # the ordering keys travel in the outbox member to the ordered sub-lanes
        call["keys"] = ordered
    return call, exactjson.dumps_stored(record)


def tenant_fence(queue_keys: Keys, tenant_id: str) -> dict[str, str]:
    """The keys a script checks before writing for a tenant: one being deleted (its
    record marked `deleting`) or deleted (no record, a generation counter) gets nothing."""
    return {
        "tenant_key": queue_keys.tenant(tenant_id),
        "generation_key": queue_keys.tenant_generation(tenant_id),
    }


class Shared:
    """What the tasks of one completion batch share, worked out once: the attempt time's
    forms, each destination's keys, each stream's lane index and state hash."""

    def __init__(self, queue_keys: Keys, attempt_time: float):
        self.keys, self.time = queue_keys, attempt_time
        self.time_iso = iso(datetime.fromtimestamp(attempt_time, UTC))
        self.time_ms = str(int(attempt_time * 1000))
        self._dests: dict[tuple[str, str], tuple[str, str]] = {}
        self._streams: dict[str, tuple[str | None, str | None]] = {}

    def destination(self, task: Task) -> tuple[str, str]:
        """The destination's attempts index and failure counter."""
        ids = (task.tenant_id, task.destination_id)
        hit = self._dests.get(ids)
        if hit is None:
            hit = self._dests[ids] = (self.keys.attempts(*ids), self.keys.failures(*ids))
        return hit

    def stream(self, stream: str) -> tuple[str | None, str | None]:
        """The stream's index of lanes and, for an ordered sub-lane, its state hash."""
        hit = self._streams.get(stream)
        if hit is None:
            hit = self._streams[stream] = (
                self.keys.lanes_of(stream),
                self.keys.state_of(stream),
            )
        return hit


def complete_item(
    queue_keys: Keys,
    attempt_id: str,
    entry: Entry,
    outcome: Outcome,
    attempt_time: float,
    shared: Shared | None = None,
) -> dict[str, Any]:
    """One task of a completion: what its tenant step (complete.lua) and its partition
    step (ack.lua) need, keys by name (`indexed` turns them into indexes into KEYS);
    `shared`: what it shares with the other tasks of its batch (of this attempt time)."""
    shared = shared or Shared(queue_keys, attempt_time)
    task = entry.task
    call: dict[str, Any] = {"tenant_id": task.tenant_id, "stream": entry.stream}
    call["entry_id"] = entry.entry_id
    lanes, state = shared.stream(entry.stream)
    if lanes is not None:
        call["lanes"] = lanes
    if outcome.record_attempt:
        call |= _attempt_fields(shared, attempt_id, task, outcome)
    if state is not None:  # an ordered sub-lane: a retry stays at its head (ordered.py)
        call["state"] = state
    if outcome.retry_in is not None:
        call["retry_at_ms"] = str(int((time.time() + outcome.retry_in) * 1000))
        if state is None:
            call["retry"] = retry_member(entry, spent=not outcome.held)
        else:
            call["hold"] = True
            call["next_attempt"] = str(task.attempt if outcome.held else task.attempt + 1)
    if outcome.dead:
        fields = {
            **task.fields(),
            "code": outcome.code,
            "message": outcome.message[:1000],
            "time": f"{attempt_time:.3f}",
        }
        call["dead"] = [x for pair in fields.items() for x in pair]
    return call


def _attempt_fields(
    shared: Shared, attempt_id: str, task: Task, outcome: Outcome
) -> dict[str, Any]:
    """What the completion needs to keep the attempt and count failures."""
    record = attempt_record(attempt_id, task, outcome, shared.time_iso)
    attempts, failures = shared.destination(task)
    return {
        "record": True,
        "attempt_key": shared.keys.attempt(attempt_id),
        "attempt": exactjson.dumps_stored(record).decode(),
        "attempt_id": attempt_id,
        "time_ms": shared.time_ms,
        "success": outcome.status == "success",
        "trim": random.random() < TRIM_SHARE,
        "event_attempts": shared.keys.event_attempts(task.tenant_id, task.event_id),
        "destination_attempts": attempts,
        "failures": failures,
    }


def attempt_record(
    attempt_id: str, task: Task, outcome: Outcome, attempt_time: str
) -> dict[str, Any]:
    """`attempt_time`: RFC 3339 (models.iso)."""
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
        "time": attempt_time,
        "topic": outcome.topic,
        "destination_type": outcome.destination_type,
    }


def retry_member(entry: Entry, spent: bool = True) -> str:
    """The retry schedule's member: the next attempt, or this one again when the attempt
    was not `spent` (held back unsent)."""
    t = entry.task
    return json.dumps(
        {
            "s": entry.stream,
            "t": t.tenant_id,
            "e": t.event_id,
            "d": t.destination_id,
            "a": str(t.attempt + 1 if spent else t.attempt),
            "m": "1" if t.manual else "0",
        },
        separators=(",", ":"),
    )


def redrive_item(dead_id: str, task: Task, key: str | OrderedBy) -> dict[str, str]:
    """One dead letter of redrive.lua: its ordering key (`o`) when it goes to an ordered
    sub-lane."""
    item = {"id": dead_id, "e": task.event_id, "d": task.destination_id}
    if isinstance(key, OrderedBy):
        item["o"] = key.key
    return item


def indexed(item: dict[str, Any], fields: Sequence[str], table: KeyTable) -> dict[str, Any]:
    """The item with each key it names (in `fields`) replaced by that key's index in the
    call's KEYS."""
    for name in fields:
        if name in item:
            item[name] = table.index(item[name])
    return item
