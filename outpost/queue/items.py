"""What the queue's scripts are handed, one item at a time: a publish item, a completion
item (with its attempt record and retry member), each naming its keys (`indexed` turns
them into indexes into the call's KEYS); and what the worker hands the queue back (`Entry`
read from a stream, the `Outcome` of an attempt). Pure: no Redis here."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from outpost import exactjson
from outpost.models import Event, OrderedBy, Task, iso
from outpost.queue.keys import Keys
from outpost.queue.lua import KeyTable

TRIM_SHARE = 0.02  # share of writes that also trim the log indexes
# the fields of a publish / completion item that name a key (an index into KEYS once sent)
COMPLETE_KEYS = (
    "tenant_key",
    "generation_key",
    "stream",
    "lanes",
    "attempt_key",
    "event_attempts",
    "destination_attempts",
    "tenant_attempts",
    "failures",
    "dead_key",
    "state",
)


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


def publish_item(
    queue_keys: Keys,
    lane_of: Callable[[str, str, Any], Any],
    table: KeyTable,
    tenant: dict[str, int],
    item: tuple[Event, list[tuple[str, Any]], Sequence[str]],
) -> dict[str, Any]:
    """One event of the publish script, its keys as indexes into the call's KEYS
    (`tenant`: the indexes of its tenant's keys, shared by the tenant's events)."""
    event, routes, held = item
    now = time.time()
    record = {**event.to_json(), "matched_destination_ids": [d for d, _ in routes]}
    record[PUBLISHED] = round(now, 3)
    if event.traceparent:
        record[TRACE] = event.traceparent
    call: dict[str, Any] = {
        **tenant,
        "event_key": table.index(queue_keys.event(event.tenant_id, event.id)),
        "owners_key": table.index(queue_keys.event_owners(event.id)),
        "record": exactjson.dumps_stored(record).decode(),
        "tenant_id": event.tenant_id,
        "event_id": event.id,
        "time_ms": str(int(event.time.timestamp() * 1000)),
        "trim": random.random() < TRIM_SHARE,
        "now": f"{now:.3f}",
        "routes": [
            _route(table, lane_of(event.tenant_id, dest_id, key), dest_id, key)
            for dest_id, key in routes
        ],
        "held": list(held),
    }
    if not held:
        call.pop("dead_key")
    return call


def _route(table: KeyTable, lane: Any, destination_id: str, key: Any) -> dict[str, Any]:
    """One task of a publish: its lane's keys (queue/lanes.Lane) as indexes into KEYS, and
    the ordering key it carries in an ordered sub-lane (`key` an OrderedBy)."""
    route = {
        "stream": table.index(lane.stream),
        "lanes": table.index(lane.index),
        "bell": table.index(lane.bell),
        "destination_id": destination_id,
    }
    if isinstance(key, OrderedBy):
        route["key"] = key.key
    return route


def publish_tenant(queue_keys: Keys, table: KeyTable, tenant_id: str) -> dict[str, int]:
    """The indexes of the keys every publish item of one tenant names."""
    named = {
        **tenant_fence(queue_keys, tenant_id),
        "index_key": queue_keys.events_index(tenant_id),
        "dead_key": queue_keys.dead_letters(tenant_id),
    }
    return {name: table.index(key) for name, key in named.items()}


def tenant_fence(queue_keys: Keys, tenant_id: str) -> dict[str, str]:
    """The keys a script checks before writing for a tenant: one being deleted (its
    record marked `deleting`) or deleted (no record, a generation counter) gets nothing."""
    return {
        "tenant_key": queue_keys.tenant(tenant_id),
        "generation_key": queue_keys.tenant_generation(tenant_id),
    }


def complete_item(
    queue_keys: Keys, attempt_id: str, entry: Entry, outcome: Outcome, attempt_time: float
) -> dict[str, Any]:
    """One task of the completion script, its keys by name (`indexed` turns
    them into indexes into KEYS)."""
    task = entry.task
    call: dict[str, Any] = {
        **tenant_fence(queue_keys, task.tenant_id),
        "stream": entry.stream,
        "entry_id": entry.entry_id,
    }
    lanes = queue_keys.lanes_of(entry.stream)
    if lanes is not None:
        call["lanes"] = lanes
    if outcome.record_attempt:
        call |= _attempt_fields(queue_keys, attempt_id, task, outcome, attempt_time)
    state = queue_keys.state_of(entry.stream)
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
        call["dead_key"] = queue_keys.dead_letters(task.tenant_id)
        call["dead"] = [x for pair in fields.items() for x in pair]
    return call


def _attempt_fields(
    queue_keys: Keys, attempt_id: str, task: Task, outcome: Outcome, attempt_time: float
) -> dict[str, Any]:
    """What the completion script needs to keep the attempt and count failures."""
    record = attempt_record(attempt_id, task, outcome, attempt_time)
    return {
        "record": True,
        "attempt_key": queue_keys.attempt(attempt_id),
        "attempt": exactjson.dumps_stored(record).decode(),
        "attempt_id": attempt_id,
        "time_ms": str(int(attempt_time * 1000)),
        "success": outcome.status == "success",
        "trim": random.random() < TRIM_SHARE,
        "event_attempts": queue_keys.event_attempts(task.tenant_id, task.event_id),
        "destination_attempts": queue_keys.attempts(task.tenant_id, task.destination_id),
        "tenant_attempts": queue_keys.tenant_attempts(task.tenant_id),
        "failures": queue_keys.failures(task.tenant_id, task.destination_id),
    }


def attempt_record(
    attempt_id: str, task: Task, outcome: Outcome, attempt_time: float
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


def indexed(item: dict[str, Any], fields: Sequence[str], table: KeyTable) -> dict[str, Any]:
    """The item with each key it names (in `fields`) replaced by that key's index in the
    call's KEYS."""
    for name in fields:
        if name in item:
            item[name] = table.index(item[name])
    return item
