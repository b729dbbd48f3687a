"""What a destination missed: list it (dead-lettered, kept while it was disabled, failed
and waiting for a retry, not yet attempted) and replay it ("everything since T").

A replay queues the destination's dead letters through the queue's redrive (the same
step as `POST .../dead-letters/redrive`): each dead letter is removed in the step that
queues it, so a replay asked twice, even at once, queues each event once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from outpost.api.routes.common import (
    _deps,
    _destination_or_404,
    _limit,
    _path_id,
    exact_response,
    parse_body,
)
from outpost.deps import Deps
from outpost.errors import Invalid, ValidationFailed
from outpost.models import Destination, ReplayRequest, Task, iso
from outpost.store.history import time_bounds

HELD = "destination_disabled"  # the code of a dead letter kept while it was disabled
STATUSES = {"dead_lettered", "missed", "failed", "pending"}
LOG_SCAN = 5_000  # events of the log read for one listing (beyond: `truncated`)


async def _dead(
    deps: Deps, dest: Destination, lo: float, hi: float, codes: set[str] | None = None
) -> list[tuple[dict[str, str], Task, Any]]:
    """The destination's dead letters whose event time is in [lo, hi] (ms) with their
    tasks and events (an expired event's is None), oldest first; an event the destination
    received since (a manual retry) is not missed."""
    out: list[tuple[dict[str, str], Task, Any]] = []
    cursor = None
    while True:
        page, cursor = await deps.queue.dead_letter_page(dest.tenant_id, 500, cursor, dest.id)
        page = [item for item in page if codes is None or item["code"] in codes]
        tasks = [Task.from_fields(item) for item in page]
        ids = [t.event_id for t in tasks]
        events = await deps.queue.load_events(dest.tenant_id, ids)
        tried = await deps.history.outcomes(dest.tenant_id, dest.id, ids)
        for item, task, event, last in zip(page, tasks, events, tried, strict=True):
            if last is not None and last["status"] == "success":
                continue  # delivered since it was kept (a manual retry)
            ms = event.time.timestamp() * 1000 if event is not None else None
            if ms is None or lo <= ms <= hi:
                out.append((item, task, event))
        if cursor is None:
            return out


async def redeliver(
    deps: Deps, dest: Destination, lo: float, hi: float, codes: set[str] | None = None
) -> tuple[int, int]:
    """Queue again the destination's dead letters in [lo, hi]: (queued, expired events)."""
    found = await _dead(deps, dest, lo, hi, codes)
    provider = deps.registry.get(dest.type)
    batch = [
        (item["id"], task, provider.lane_key(event, dest))
        for item, task, event in found
        if event is not None
    ]
    queued = 0
    for i in range(0, len(batch), 500):
        queued += await deps.queue.redrive(dest.tenant_id, batch[i : i + 500])
    return queued, len(found) - len(batch)


async def replay_destination(request: web.Request) -> web.Response:
    """Queue again what the destination missed since a time (its dead letters)."""
    deps = _deps(request)
    dest = await _destination_or_404(
        deps, _path_id(request, "tenant_id"), _path_id(request, "destination_id")
    )
    req = await parse_body(request, ReplayRequest)
    if not dest.enabled:
        raise Invalid("destination is disabled: enable it first")
    lo = _ms(req.since)
    hi = _ms(req.until) - 1 if req.until is not None else float("inf")
    if hi < lo:
        raise ValidationFailed(["until must be later than since"])
    queued, expired = await redeliver(deps, dest, lo, hi)
    return web.json_response({"replayed": queued, "expired": expired}, status=202)


async def list_undelivered(request: web.Request) -> web.Response:
    """What the destination has not received, oldest event first."""
    deps = _deps(request)
    dest = await _destination_or_404(
        deps, _path_id(request, "tenant_id"), _path_id(request, "destination_id")
    )
    statuses = set(request.query.getall("status", [])) - {""}
    if statuses - STATUSES:
        raise ValidationFailed([f"status must be one of {', '.join(sorted(STATUSES))}"])
    lo, hi = time_bounds(request.query)
    limit = _limit(request)
    rows = [_dead_row(item, task, event) for item, task, event in await _dead(deps, dest, lo, hi)]
    held = {r["event_id"] for r in rows}
    log, truncated = await deps.history.last_outcomes(dest.tenant_id, dest.id, lo, hi, LOG_SCAN)
    for event, attempt in log:
        if event["id"] in held or (attempt is not None and attempt["status"] == "success"):
            continue
        rows.append(_log_row(dest.id, event, attempt))
    rows = [r for r in rows if not statuses or r["status"] in statuses]
    rows.sort(key=lambda r: (r["event_time"] or "", r["event_id"]))
    more = truncated or len(rows) > limit
    return exact_response({"models": rows[:limit], "truncated": more})


def _dead_row(item: dict[str, str], task: Task, event: Any) -> dict[str, Any]:
    return {
        "event_id": task.event_id,
        "destination_id": task.destination_id,
        "status": "missed" if item["code"] == HELD else "dead_lettered",
        "event_time": iso(event.time) if event is not None else None,
        "topic": event.topic if event is not None else None,
        "attempts": int(item["a"]),
        "code": item["code"],
        "dead_letter_id": item["id"],
        "since": iso(datetime.fromtimestamp(float(item["time"]), UTC)),
    }


def _log_row(dest_id: str, event: dict[str, Any], attempt: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "event_id": event["id"],
        "destination_id": dest_id,
        "status": "failed" if attempt else "pending",
        "event_time": event["time"],
        "topic": event.get("topic"),
        "attempts": attempt["attempt_number"] if attempt else 0,
        "code": attempt["code"] if attempt else None,
        "dead_letter_id": None,
        "since": attempt["time"] if attempt else None,
    }


def _ms(moment: datetime) -> float:
    if moment.tzinfo is None:  # no offset: UTC, never local time
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000
