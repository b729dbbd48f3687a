"""Publish: one event, or a batch answered event by event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from outpost.api.access import TENANT
from outpost.api.routes.common import _deps, parse_body
from outpost.deps import Deps
from outpost.destinations.registry import problems
from outpost.errors import DomainError, RateLimited, ValidationFailed
from outpost.models import Event, PublishRequest, new_event_id, utcnow
from outpost.surface import read_json, status_of


async def publish(request: web.Request) -> web.Response:
    deps = _deps(request)
    req = await parse_body(request, PublishRequest, exact=True)  # data keeps its digits
    request[TENANT] = req.tenant_id  # for the access log line
    _check_event_topic(deps, req.topic)
    limit = deps.settings.publish_rate_limit_per_second
    if limit and not await deps.store.take_publish_slot(req.tenant_id, limit):
        raise RateLimited(
            f"tenant is over PUBLISH_RATE_LIMIT_PER_SECOND ({limit}); nothing was accepted",
            retry_after=1,
        )
    event = _event_of(req)
    fresh, matched = await deps.ingest.publish(event)
    return web.json_response(
        {"id": event.id, "duplicate": not fresh, "destination_ids": matched}, status=202
    )


def _event_of(req: PublishRequest) -> Event:
    return Event(
        id=req.id or new_event_id(),
        tenant_id=req.tenant_id,
        topic=req.topic or "",
        time=_event_time(req),
        data=req.data,
        metadata=req.metadata or {},
        eligible_for_retry=req.eligible_for_retry,
        destination_id=req.destination_id,
    )


MAX_BATCH = 1000


async def publish_batch(request: web.Request) -> web.Response:
    """Up to 1,000 events in one request, each validated and answered on its own; the
    accepted ones are queued in one pipelined round trip (each still atomic)."""
    deps = _deps(request)
    body = await read_json(request, exact=True)
    if not isinstance(body, list) or not 1 <= len(body) <= MAX_BATCH:
        raise ValidationFailed([f"body must be a JSON array of 1 to {MAX_BATCH} events"])
    results: list[dict[str, Any]] = [{} for _ in body]
    events: list[tuple[int, Event]] = []
    for i, item in enumerate(body):
        try:
            req = PublishRequest.model_validate(item)
            _check_event_topic(deps, req.topic)
            events.append((i, _event_of(req)))
        except ValidationError as exc:
            results[i] = _item_error(ValidationFailed(problems(exc)))
        except DomainError as exc:
            results[i] = _item_error(exc)
    events = await _within_rate(deps, events, results)
    outcomes = await deps.ingest.publish_batch([e for _, e in events])
    for (i, event), out in zip(events, outcomes, strict=True):
        if isinstance(out, DomainError):
            results[i] = _item_error(out)
        elif isinstance(out, Exception):  # logged by ingest; this event only
            results[i] = {"status": 500, "message": "internal server error", "data": None}
        else:
            fresh, ids = out
            results[i] = {
                "status": 202,
                "id": event.id,
                "duplicate": not fresh,
                "destination_ids": ids,
            }
    accepted = sum(r["status"] == 202 for r in results)
    return web.json_response({"accepted": accepted, "results": results}, status=202)


async def _within_rate(
    deps: Deps, events: list[tuple[int, Event]], results: list[dict[str, Any]]
) -> list[tuple[int, Event]]:
    """The per-tenant publish rate counts every event of a batch."""
    limit = deps.settings.publish_rate_limit_per_second
    if not limit:
        return events
    counts: dict[str, int] = {}
    for _, e in events:
        counts[e.tenant_id] = counts.get(e.tenant_id, 0) + 1
    over = {t for t, n in counts.items() if not await deps.store.take_publish_slot(t, limit, n)}
    for i, e in events:
        if e.tenant_id in over:
            results[i] = _item_error(RateLimited("tenant is over PUBLISH_RATE_LIMIT_PER_SECOND"))
    return [(i, e) for i, e in events if e.tenant_id not in over]


def _item_error(exc: DomainError) -> dict[str, Any]:
    """One event's error in a batch answer, with the status the surfaces would give it."""
    return {"status": status_of(exc), "message": exc.message, "data": exc.data}


def _check_event_topic(deps: Deps, topic: str | None) -> None:
    allowed = deps.settings.topics
    if allowed and topic is None:
        raise ValidationFailed(["topic is required (TOPICS is configured)"])
    if allowed and topic not in allowed:
        raise ValidationFailed([f"topic: {topic!r} is not one of the configured TOPICS"])


def _event_time(req: PublishRequest) -> datetime:
    if req.time is None:
        return utcnow()
    if req.time.tzinfo is None:
        raise ValidationFailed(["time: must carry a time zone (e.g. 2024-01-15T10:30:00Z)"])
    return req.time
