"""The event and attempt logs (pages, single records, `include=`) and the metrics
computed from them."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from outpost.api import metrics
from outpost.api.routes.common import (
    _deps,
    _destination_or_404,
    _limit,
    _own_tenant,
    _owner_of,
    _path_id,
    _values,
    exact_response,
)
from outpost.deps import Deps
from outpost.errors import NotFound, ValidationFailed
from outpost.models import Destination, parse_iso
from outpost.store.history import Page, PageRequest, time_bounds


def _page_request(request: web.Request) -> PageRequest:
    q = request.query
    direction = q.get("dir") or "desc"  # as Outpost, an empty value is the default
    if direction not in ("asc", "desc"):
        raise ValidationFailed(["dir must be asc or desc"])
    if (q.get("order_by") or "time") != "time":
        raise ValidationFailed(["order_by must be time"])
    if q.get("next") and q.get("prev"):
        raise ValidationFailed(["pass next or prev, not both"])
    since, until = time_bounds(q)
    return PageRequest(
        limit=_limit(request),
        next=q.get("next") or None,
        prev=q.get("prev") or None,
        descending=direction == "desc",
        since_ms=since,
        until_ms=until,
    )


def _page_body(result: Page, req: PageRequest) -> dict[str, Any]:
    return {
        "models": result.models,
        "pagination": {
            "order_by": "time",
            "dir": "desc" if req.descending else "asc",
            "limit": req.limit,
            "next": result.next,
            "prev": result.prev,
        },
    }


def _scoped_tenants(request: web.Request) -> set[str]:
    """The `tenant_id` filter; a tenant token always means its own tenant only."""
    own = _own_tenant(request)
    return {own} if own is not None else _values(request, "tenant_id")


def _event_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: record.get(k)
        for k in ("id", "tenant_id", "matched_destination_ids", "topic", "time", "metadata", "data")
    }


async def list_events(request: web.Request) -> web.Response:
    deps, req = _deps(request), _page_request(request)
    ids, tenants = _values(request, "id"), _scoped_tenants(request)
    dests, topics = _values(request, "destination_id"), _values(request, "topic")
    prefix = request.query.get("id_prefix") or ""
    tenant = next(iter(tenants)) if len(tenants) == 1 else None

    def keep(e: dict[str, Any]) -> bool:
        return (
            (not ids or e["id"] in ids)
            and e["id"].startswith(prefix)
            and (not tenants or e["tenant_id"] in tenants)
            and (not topics or e.get("topic") in topics)
            and (not dests or bool(dests & set(e.get("matched_destination_ids") or [])))
        )

    result = await deps.history.events_page(tenant, req, keep)
    result.models = [_event_view(e) for e in result.models]
    return exact_response(_page_body(result, req))


async def get_event(request: web.Request) -> web.Response:
    deps = _deps(request)
    event_id = _path_id(request, "event_id")
    tenant_id = (
        _own_tenant(request) or request.query.get("tenant_id") or await _owner_of(deps, event_id)
    )
    record = await deps.history.event(tenant_id, event_id)
    if record is None:
        raise NotFound("event")
    return exact_response(_event_view(record))


async def _attempts_page(
    request: web.Request, tenant_id: str | None, destination_id: str | None
) -> web.Response:
    deps, req = _deps(request), _page_request(request)
    statuses = _values(request, "status")
    if statuses - {"success", "failed"}:
        raise ValidationFailed(["status must be success or failed"])
    event_ids, topics = _values(request, "event_id"), _values(request, "topic")
    kinds = _values(request, "destination_type")
    prefix = request.query.get("event_id_prefix") or ""
    tenants = _scoped_tenants(request) if tenant_id is None else {tenant_id}
    dests = _values(request, "destination_id") if destination_id is None else {destination_id}
    one_tenant = next(iter(tenants)) if len(tenants) == 1 else None
    one_event = next(iter(event_ids)) if len(event_ids) == 1 else None
    one_dest = next(iter(dests)) if len(dests) == 1 else None

    def keep(a: dict[str, Any]) -> bool:
        return (
            (not statuses or a["status"] in statuses)
            and (not event_ids or a["event_id"] in event_ids)
            and a["event_id"].startswith(prefix)
            and (not tenants or a["tenant_id"] in tenants)
            and (not dests or a["destination_id"] in dests)
            and (not topics or a.get("topic") in topics)
            and (not kinds or a.get("destination_type") in kinds)
        )

    result = await deps.history.attempts_page(req, keep, one_tenant, one_event, one_dest)
    result.models = await _include(deps, request, result.models)
    return exact_response(_page_body(result, req))


async def _include(
    deps: Deps, request: web.Request, attempts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`include=event`, `event.data`, `response_data`, `destination`; as Outpost, any
    other value is ignored and `response_data` is shown only when asked for."""
    wanted = _values(request, "include")
    for a in attempts:  # stored for filtering; not part of an attempt's shape
        a.pop("topic", None)
        a.pop("destination_type", None)
        if "response_data" not in wanted:
            a.pop("response_data", None)
    if not wanted & {"event", "event.data", "destination"}:
        return attempts
    events: list[dict[str, Any] | None] = []
    if wanted & {"event", "event.data"}:  # one MGET for the page
        events = await deps.history.events([(a["tenant_id"], a["event_id"]) for a in attempts])
    dests: dict[tuple[str, str], Destination | None] = {}
    if "destination" in wanted:  # one pipelined round trip for the page, each one once
        ids = list(dict.fromkeys((a["tenant_id"], a["destination_id"]) for a in attempts))
        dests = dict(zip(ids, await deps.store.get_destinations(ids), strict=True))
    for i, a in enumerate(attempts):
        if wanted & {"event", "event.data"}:
            e = events[i]
            if e is not None:
                keys = ["id", "tenant_id", "topic", "time", "eligible_for_retry", "metadata"]
                a["event"] = {
                    **{k: e.get(k) for k in keys},
                    "destination_id": a["destination_id"],
                    **({"data": e["data"]} if "event.data" in wanted else {}),
                }
            else:
                a["event"] = None
        if "destination" in wanted:
            d = dests[(a["tenant_id"], a["destination_id"])]
            a["destination"] = None if d is None else deps.registry.to_response(d)
    return attempts


async def list_attempts(request: web.Request) -> web.Response:
    return await _attempts_page(request, None, None)


async def list_destination_attempts(request: web.Request) -> web.Response:
    deps = _deps(request)
    tenant_id, dest_id = _path_id(request, "tenant_id"), _path_id(request, "destination_id")
    await _destination_or_404(deps, tenant_id, dest_id)
    return await _attempts_page(request, tenant_id, dest_id)


async def get_attempt(request: web.Request) -> web.Response:
    deps = _deps(request)
    record = await deps.history.attempt(_path_id(request, "attempt_id"))
    own = _own_tenant(request) or request.query.get("tenant_id") or None
    if record is None or (own is not None and record["tenant_id"] != own):
        raise NotFound("attempt")  # another tenant's attempt: its existence does not leak
    [shown] = await _include(deps, request, [record])
    return exact_response(shown)


async def get_destination_attempt(request: web.Request) -> web.Response:
    deps = _deps(request)
    tenant_id, dest_id = _path_id(request, "tenant_id"), _path_id(request, "destination_id")
    record = await deps.history.attempt(_path_id(request, "attempt_id"))
    if record is None or (record["tenant_id"], record["destination_id"]) != (tenant_id, dest_id):
        raise NotFound("attempt")
    [shown] = await _include(deps, request, [record])
    return exact_response(shown)


def _bounds(q: dict[str, Any]) -> tuple[float, float, int]:
    """A metrics query's [start, end) in ms and the row limit."""
    return q["start"].timestamp() * 1000, q["end"].timestamp() * 1000, metrics.ROW_LIMIT


async def event_metrics(request: web.Request) -> web.Response:
    """Event counts and rates, bucketed and grouped (computed from the event log)."""
    deps, started = _deps(request), time.monotonic()
    q = metrics.parse_query(request.query, metrics.EVENT_MEASURES, metrics.EVENT_DIMENSIONS)
    tenant = metrics.scope(q, _own_tenant(request))
    records, truncated = await deps.history.event_rows(tenant, *_bounds(q))
    per_destination = "destination_id" in q["dimensions"] or "destination_id" in q["filters"]
    rows = []
    for e in records:
        base = {"time": parse_iso(e["time"]), "tenant_id": e["tenant_id"], "topic": e["topic"]}
        if per_destination:  # an event counts once for each destination it matched
            rows += [
                {**base, "destination_id": d} for d in e.get("matched_destination_ids") or [""]
            ]
        else:
            rows.append(base)
    points = metrics.aggregate(rows, q)
    return web.json_response(metrics.response(points, q, started, truncated))


async def attempt_metrics(request: web.Request) -> web.Response:
    """Attempt counts, outcomes and rates, bucketed and grouped (from the attempt log)."""
    deps, started = _deps(request), time.monotonic()
    q = metrics.parse_query(request.query, metrics.ATTEMPT_MEASURES, metrics.ATTEMPT_DIMENSIONS)
    tenant = metrics.scope(q, _own_tenant(request))
    records, truncated = await deps.history.attempt_rows(tenant, *_bounds(q))
    types: dict[tuple[str, str], str] = {}
    for a in records:
        key = (a["tenant_id"], a["destination_id"])
        if key not in types:
            dest = await deps.store.get_destination(*key)
            types[key] = dest.type if dest else "unknown"
    rows = [
        {
            "time": parse_iso(a["time"]),
            "tenant_id": a["tenant_id"],
            "destination_id": a["destination_id"],
            "destination_type": types[(a["tenant_id"], a["destination_id"])],
            "topic": a.get("topic", ""),
            "status": a["status"],
            "code": a["code"],
            "manual": "true" if a["manual"] else "false",
            "attempt_number": str(a["attempt_number"]),
        }
        for a in records
    ]
    points = metrics.aggregate(rows, q)
    return web.json_response(metrics.response(points, q, started, truncated))
