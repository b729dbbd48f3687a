"""Dead letters (list, redrive) and manual retries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from outpost.api.routes.common import (
    _deps,
    _limit,
    _own_tenant,
    _owner_of,
    _path_id,
    _tenant_or_404,
    parse_body,
)
from outpost.errors import Forbidden, Invalid, NotFound
from outpost.models import Destination, Event, RedriveRequest, RetryRequest, Task, iso


def _dead_letter(item: dict[str, str]) -> dict[str, Any]:
    return {
        "id": item["id"],
        "event_id": item["e"],
        "destination_id": item["d"],
        "attempt_number": int(item["a"]),
        "manual": item["m"] == "1",
        "code": item["code"],
        "message": item["message"],
        "time": iso(datetime.fromtimestamp(float(item["time"]), UTC)),
    }


async def list_dead_letters(request: web.Request) -> web.Response:
    deps = _deps(request)
    tenant_id = _path_id(request, "tenant_id")
    await _tenant_or_404(deps, tenant_id)
    limit = _limit(request)
    page, nxt = await deps.queue.dead_letter_page(
        tenant_id, limit, request.query.get("next"), request.query.get("destination_id")
    )
    return web.json_response(
        {
            "models": [_dead_letter(i) for i in page],
            "pagination": {
                "order_by": "time",
                "dir": "asc",
                "limit": limit,
                "next": nxt,
                "prev": None,
            },
        }
    )


async def redrive_dead_letters(request: web.Request) -> web.Response:
    """Back into the queue with a fresh retry budget: all, one destination's, or some
    events'. Entries of disabled or deleted destinations and of expired events stay."""
    deps = _deps(request)
    tenant_id = _path_id(request, "tenant_id")
    await _tenant_or_404(deps, tenant_id)
    req = await parse_body(request, RedriveRequest, required=False)
    dests = {d.id: d for d in await deps.store.list_destinations(tenant_id)}
    if req.destination_id and req.destination_id not in dests:
        raise NotFound("destination")
    wanted = set(req.event_ids) if req.event_ids else None
    redriven, skipped, cursor = 0, [], None
    while True:
        page, cursor = await deps.queue.dead_letter_page(
            tenant_id, 500, cursor, req.destination_id, wanted
        )
        tasks = [Task.from_fields(item) for item in page]
        events = await deps.queue.load_events(tenant_id, [t.event_id for t in tasks])  # one MGET
        batch = []
        for item, task, event in zip(page, tasks, events, strict=True):
            dest = dests.get(task.destination_id)
            reason = _redrive_blocker(dest, event)
            if reason:
                skipped.append(
                    {
                        "id": item["id"],
                        "event_id": task.event_id,
                        "destination_id": task.destination_id,
                        "reason": reason,
                    }
                )
                continue
            assert dest is not None and event is not None
            batch.append((item["id"], task, deps.registry.get(dest.type).lane_key(event, dest)))
        redriven += await deps.queue.redrive(tenant_id, batch)
        if cursor is None:
            break
    return web.json_response({"redriven": redriven, "skipped": skipped}, status=202)


def _redrive_blocker(dest: Destination | None, event: Event | None) -> str | None:
    if dest is None:
        return "destination_deleted"
    if not dest.enabled:
        return "destination_disabled"
    if event is None:
        return "event_expired"
    return None


async def retry(request: web.Request) -> web.Response:
    """One manual attempt of an event to a destination (`manual: true` on the attempt)."""
    deps = _deps(request)
    req = await parse_body(request, RetryRequest)
    own = _own_tenant(request)
    if own is not None and req.tenant_id not in (None, own):
        raise Forbidden("the token is for another tenant")
    tenant_id = own or req.tenant_id or await _owner_of(deps, req.event_id)
    event = await deps.queue.load_event(tenant_id, req.event_id)
    if event is None:
        raise NotFound("event")
    dest = await deps.store.get_destination(tenant_id, req.destination_id)
    if dest is None:
        raise NotFound("destination")
    if not dest.enabled:
        raise Invalid("destination is disabled")
    if not dest.matches(event.topic or None):
        raise Invalid("destination does not match the event's topic")
    task = Task(tenant_id, event.id, dest.id, attempt=1, manual=True)
    await deps.queue.enqueue(task, deps.registry.get(dest.type).lane_key(event, dest))
    return web.json_response({"success": True}, status=202)
