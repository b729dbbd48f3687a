"""Request handlers. Each validates, calls the store or the queue, and shapes the reply."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from outpost.api import metrics
from outpost.auth import principal_of
from outpost.deps import DEPS, Deps
from outpost.destinations.endpoints import ForbiddenEndpoint
from outpost.destinations.registry import problems
from outpost.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from outpost.health import HEALTH
from outpost.models import (
    ID_PATTERN,
    Destination,
    Event,
    Id,
    PublishRequest,
    Task,
    TenantUpsert,
    every_topic,
    iso,
    parse_iso,
    topic_matches,
    utcnow,
)
from outpost.store.history import Page, PageRequest, page, time_bounds
from outpost.surface import read_json, status_of

_ID = re.compile(ID_PATTERN)


M = TypeVar("M", bound=BaseModel)


async def parse_body(request: web.Request, model: type[M], required: bool = True) -> M:
    """The JSON body as `model`, or 400 (malformed) / 422 naming every bad field."""
    body = await read_json(request, required=required)
    try:
        return model.model_validate({} if body is None else body)
    except ValidationError as exc:
        raise ValidationFailed(problems(exc)) from None


def _deps(request: web.Request) -> Deps:
    return request.app[DEPS]


def _path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.fullmatch(value):
        raise ValidationFailed([f"{name} must match {ID_PATTERN}"])
    return value


async def _tenant_or_404(deps: Deps, tenant_id: str) -> None:
    if not await deps.store.tenant_exists(tenant_id):
        raise NotFound("tenant")


async def _destination_or_404(deps: Deps, tenant_id: str, dest_id: str) -> Destination:
    await _tenant_or_404(deps, tenant_id)
    dest = await deps.store.get_destination(tenant_id, dest_id)
    if dest is None:
        raise NotFound("destination")
    return dest


# -- health ---------------------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    """Readiness: 503 while Redis does not answer (see health.RedisWatch)."""
    now = iso(utcnow())
    if not await request.app[HEALTH].ping():
        return web.json_response(
            {"status": "failed", "timestamp": now, "workers": {"redis": {"status": "failed"}}},
            status=503,
        )
    return web.json_response(
        {"status": "healthy", "timestamp": now, "workers": {"http-server": {"status": "healthy"}}}
    )


# -- tenants --------------------------------------------------------------------------------
async def upsert_tenant(request: web.Request) -> web.Response:
    deps = _deps(request)
    tenant_id = _path_id(request, "tenant_id")
    body = await parse_body(request, TenantUpsert, required=False)
    created = await deps.store.upsert_tenant(tenant_id, body.metadata)
    tenant = await deps.store.get_tenant(tenant_id)
    return web.json_response(tenant, status=201 if created else 200)


async def get_tenant(request: web.Request) -> web.Response:
    tenant = await _deps(request).store.get_tenant(_path_id(request, "tenant_id"))
    if tenant is None:
        raise NotFound("tenant")
    return web.json_response(tenant)


async def delete_tenant(request: web.Request) -> web.Response:
    if not await _deps(request).store.delete_tenant(_path_id(request, "tenant_id")):
        raise NotFound("tenant")
    return web.json_response({"success": True})


async def tenant_token(request: web.Request) -> web.Response:
    deps = _deps(request)
    tenant_id = _path_id(request, "tenant_id")
    await _tenant_or_404(deps, tenant_id)
    return web.json_response({"token": deps.tokens.issue(tenant_id), "tenant_id": tenant_id})


async def tenant_portal(request: web.Request) -> web.Response:
    """A portal link carrying a fresh tenant token (the portal itself comes later)."""
    deps = _deps(request)
    tenant_id = _path_id(request, "tenant_id")
    await _tenant_or_404(deps, tenant_id)
    theme = request.query.get("theme") or None  # empty: omitted, as Outpost
    if theme not in (None, "light", "dark"):
        raise ValidationFailed(["theme must be light or dark"])
    base = deps.settings.portal_referer_url or f"{request.scheme}://{request.host}/portal"
    query = {"token": deps.tokens.issue(tenant_id), "tenant_id": tenant_id}
    if theme:
        query["theme"] = theme
    sep = "&" if "?" in base else "?"
    return web.json_response(
        {"redirect_url": f"{base}{sep}{urlencode(query)}", "tenant_id": tenant_id}
    )


def _own_tenant(request: web.Request) -> str | None:
    """The caller's tenant when it holds a tenant token; None for the admin."""
    return principal_of(request).tenant_id


async def list_tenants(request: web.Request) -> web.Response:
    q = request.query
    limit = _limit(request, default=20, most=100)
    direction = q.get("dir") or "desc"
    if direction not in ("asc", "desc"):
        raise ValidationFailed(["dir must be asc or desc"])
    own, ids = _own_tenant(request), _values(request, "id")
    if own is not None or ids:  # a tenant token sees its own tenant only (the contract)
        wanted = sorted(ids & {own} if own is not None and ids else ids or {own or ""})
        found = [await _deps(request).store.get_tenant(t) for t in wanted]
        tenants, nxt, prev = [t for t in found if t], None, None
        count = len(tenants)
    else:
        tenants, nxt, prev, count = await _deps(request).store.list_tenants(
            limit, q.get("next") or None, q.get("prev") or None, direction == "desc"
        )
    return web.json_response(
        {
            "models": tenants,
            "pagination": {
                "order_by": "created_at",
                "dir": direction,
                "limit": limit,
                "next": nxt,
                "prev": prev,
            },
            "count": count,
        }
    )


# -- destinations ---------------------------------------------------------------------------
async def list_destinations(request: web.Request) -> web.Response:
    deps = _deps(request)
    tenant_id = _path_id(request, "tenant_id")
    await _tenant_or_404(deps, tenant_id)
    types = _values(request, "type")
    topics = _values(request, "topics")
    out = []
    for dest in await deps.store.list_destinations(tenant_id):
        if types and dest.type not in types:
            continue
        if topics and not every_topic(dest.topics) and not topics & set(dest.topics):
            continue
        out.append(deps.registry.to_response(dest))
    return web.json_response(out)


async def create_destination(request: web.Request) -> web.Response:
    deps = _deps(request)
    tenant_id = _path_id(request, "tenant_id")
    await _tenant_or_404(deps, tenant_id)
    body = await read_json(request)
    if (
        isinstance(body, dict)
        and _own_tenant(request)
        and (body.get("created_at") or body.get("updated_at"))
    ):
        raise Forbidden("created_at and updated_at overrides need the admin API key")
    dest = deps.registry.create(tenant_id, body, new_id=f"des_{uuid.uuid4().hex[:20]}")
    _check_topics(deps, dest.topics)
    await _check_endpoint(deps, dest)
    await deps.store.create_destination(dest)
    return web.json_response(deps.registry.to_response(dest), status=201)


async def get_destination(request: web.Request) -> web.Response:
    deps = _deps(request)
    dest = await _destination_or_404(
        deps, _path_id(request, "tenant_id"), _path_id(request, "destination_id")
    )
    return web.json_response(deps.registry.to_response(dest))


async def update_destination(request: web.Request) -> web.Response:
    deps = _deps(request)
    dest = await _destination_or_404(
        deps, _path_id(request, "tenant_id"), _path_id(request, "destination_id")
    )
    updated = deps.registry.update(dest, await read_json(request))
    _check_topics(deps, updated.topics)
    await _check_endpoint(deps, updated)
    return await _save(deps, updated)


async def delete_destination(request: web.Request) -> web.Response:
    deps = _deps(request)
    tenant_id = _path_id(request, "tenant_id")
    await _tenant_or_404(deps, tenant_id)
    if not await deps.store.delete_destination(tenant_id, _path_id(request, "destination_id")):
        raise NotFound("destination")
    return web.json_response({"success": True})


async def enable_destination(request: web.Request) -> web.Response:
    return await _set_disabled(request, None)


async def disable_destination(request: web.Request) -> web.Response:
    return await _set_disabled(request, iso(utcnow()))


async def _set_disabled(request: web.Request, disabled_at: str | None) -> web.Response:
    deps = _deps(request)
    dest = await _destination_or_404(
        deps, _path_id(request, "tenant_id"), _path_id(request, "destination_id")
    )
    if (dest.disabled_at is None) == (disabled_at is None):
        return web.json_response(deps.registry.to_response(dest))  # already so: no change
    dest.disabled_at = disabled_at
    dest.updated_at = iso(utcnow())
    return await _save(deps, dest)


async def _save(deps: Deps, dest: Destination) -> web.Response:
    if not await deps.store.replace_destination(dest):
        raise NotFound("destination")  # deleted while we were updating it
    return web.json_response(deps.registry.to_response(dest))


async def _check_endpoint(deps: Deps, dest: Destination) -> None:
    try:
        await deps.endpoints.check(dest.config.get("endpoint"))
    except ForbiddenEndpoint as exc:
        raise ValidationFailed([f"config.endpoint: {exc}"]) from None


def _check_topics(deps: Deps, topics: list[str] | str) -> None:
    if every_topic(topics):
        return
    patterns = [t for t in topics if "*" in t]
    if patterns and not deps.settings.topics_allow_wildcards:
        raise ValidationFailed(
            [f"topics: {t!r} uses a wildcard; set TOPICS_ALLOW_WILDCARDS" for t in patterns]
        )
    allowed = deps.settings.topics
    if not allowed:
        return
    unknown = [t for t in topics if not any(topic_matches(t, a) for a in allowed)]
    if unknown:
        raise ValidationFailed(
            [f"topics: {t!r} is not one of the configured TOPICS" for t in unknown]
        )


# -- publish --------------------------------------------------------------------------------
async def publish(request: web.Request) -> web.Response:
    deps = _deps(request)
    req = await parse_body(request, PublishRequest)
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
        id=req.id or f"evt_{uuid.uuid4().hex[:24]}",
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
    body = await read_json(request)
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
    outcomes = await deps.ingest.publish_many([e for _, e in events])
    for (i, event), out in zip(events, outcomes, strict=True):
        results[i] = (
            _item_error(out)
            if isinstance(out, DomainError)
            else {"status": 202, "id": event.id, "duplicate": not out[0], "destination_ids": out[1]}
        )
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


# -- dead letters and retries ------------------------------------------------------------
def _limit(request: web.Request, default: int = 100, most: int = 1000) -> int:
    try:
        limit = int(request.query.get("limit") or default)
    except ValueError:
        raise ValidationFailed(["limit must be an integer"]) from None
    if not 1 <= limit <= most:
        raise ValidationFailed([f"limit must be between 1 and {most}"])
    return limit


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


class RedriveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination_id: Id | None = None
    event_ids: Annotated[list[Id], Field(min_length=1, max_length=1000)] | None = None


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
            batch.append((item["id"], task, deps.registry.get(dest.type).ordering_key(event, dest)))
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


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: Id
    destination_id: Id
    tenant_id: Id | None = None


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
    await deps.queue.enqueue(task, deps.registry.get(dest.type).ordering_key(event, dest))
    return web.json_response({"success": True}, status=202)


async def _owner_of(deps: Deps, event_id: str) -> str:
    owners = await deps.queue.event_owners(event_id)
    if not owners:
        raise NotFound("event")
    if len(owners) > 1:
        raise Conflict(
            "several tenants have an event with this id: pass tenant_id",
            {"tenant_ids": owners},
        )
    return owners[0]


# -- event and attempt log ------------------------------------------------------------------
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


def _values(request: web.Request, name: str) -> set[str]:
    return set(metrics.listed(request.query, name))


def _event_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        k: record.get(k)
        for k in ("id", "tenant_id", "matched_destination_ids", "topic", "time", "metadata", "data")
    }


async def list_events(request: web.Request) -> web.Response:
    deps, req = _deps(request), _page_request(request)
    ids, tenants = _values(request, "id"), _scoped_tenants(request)
    dests, topics = _values(request, "destination_id"), _values(request, "topic")
    tenant = next(iter(tenants)) if len(tenants) == 1 else None
    index = deps.keys.events_index(tenant)

    def keep(e: dict[str, Any]) -> bool:
        return (
            (not ids or e["id"] in ids)
            and (not tenants or e["tenant_id"] in tenants)
            and (not topics or e.get("topic") in topics)
            and (not dests or bool(dests & set(e.get("matched_destination_ids") or [])))
        )

    result = await page(deps.redis, index, req, lambda m: deps.history.load_events(m, tenant), keep)
    result.models = [_event_view(e) for e in result.models]
    return web.json_response(_page_body(result, req))


async def get_event(request: web.Request) -> web.Response:
    deps = _deps(request)
    event_id = _path_id(request, "event_id")
    tenant_id = (
        _own_tenant(request) or request.query.get("tenant_id") or await _owner_of(deps, event_id)
    )
    record = await deps.history.event(tenant_id, event_id)
    if record is None:
        raise NotFound("event")
    return web.json_response(_event_view(record))


async def _attempts_page(
    request: web.Request, tenant_id: str | None, destination_id: str | None
) -> web.Response:
    deps, req = _deps(request), _page_request(request)
    statuses = _values(request, "status")
    if statuses - {"success", "failed"}:
        raise ValidationFailed(["status must be success or failed"])
    event_ids, topics = _values(request, "event_id"), _values(request, "topic")
    kinds = _values(request, "destination_type")
    tenants = _scoped_tenants(request) if tenant_id is None else {tenant_id}
    dests = _values(request, "destination_id") if destination_id is None else {destination_id}
    one_tenant = next(iter(tenants)) if len(tenants) == 1 else None
    if one_tenant and len(event_ids) == 1:
        index = deps.keys.event_attempts(one_tenant, next(iter(event_ids)))
    elif one_tenant and len(dests) == 1:
        index = deps.keys.attempts(one_tenant, next(iter(dests)))
    elif one_tenant:
        index = deps.keys.tenant_attempts(one_tenant)
    else:
        index = deps.keys.all_attempts()

    def keep(a: dict[str, Any]) -> bool:
        return (
            (not statuses or a["status"] in statuses)
            and (not event_ids or a["event_id"] in event_ids)
            and (not tenants or a["tenant_id"] in tenants)
            and (not dests or a["destination_id"] in dests)
            and (not topics or a.get("topic") in topics)
            and (not kinds or a.get("destination_type") in kinds)
        )

    result = await page(deps.redis, index, req, deps.history.load_attempts, keep)
    result.models = await _include(deps, request, result.models)
    return web.json_response(_page_body(result, req))


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
    return web.json_response(shown)


async def get_destination_attempt(request: web.Request) -> web.Response:
    deps = _deps(request)
    tenant_id, dest_id = _path_id(request, "tenant_id"), _path_id(request, "destination_id")
    record = await deps.history.attempt(_path_id(request, "attempt_id"))
    if record is None or (record["tenant_id"], record["destination_id"]) != (tenant_id, dest_id):
        raise NotFound("attempt")
    [shown] = await _include(deps, request, [record])
    return web.json_response(shown)


# -- metrics --------------------------------------------------------------------------------
async def _log_rows(
    deps: Deps, index: str, q: dict[str, Any], load: Any
) -> tuple[list[dict[str, Any]], bool]:
    """Log records in [start, end) from an index, at most metrics.ROW_LIMIT of them."""
    lo, hi = q["start"].timestamp() * 1000, q["end"].timestamp() * 1000
    members: Any = await deps.redis.zrangebyscore(
        index, lo, f"({hi}", start=0, num=metrics.ROW_LIMIT + 1
    )
    truncated = len(members) > metrics.ROW_LIMIT
    names = [m.decode() for m in members[: metrics.ROW_LIMIT]]
    records = []
    for i in range(0, len(names), 500):
        records += [r for r in await load(names[i : i + 500]) if r is not None]
    return records, truncated


async def event_metrics(request: web.Request) -> web.Response:
    """Event counts and rates, bucketed and grouped (computed from the event log)."""
    deps, started = _deps(request), time.monotonic()
    q = metrics.parse_query(request.query, metrics.EVENT_MEASURES, metrics.EVENT_DIMENSIONS)
    tenant = metrics.scope(q, _own_tenant(request))
    records, truncated = await _log_rows(
        deps, deps.keys.events_index(tenant), q, lambda m: deps.history.load_events(m, tenant)
    )
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
    index = deps.keys.tenant_attempts(tenant) if tenant else deps.keys.all_attempts()
    records, truncated = await _log_rows(deps, index, q, deps.history.load_attempts)
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


# -- catalogue ------------------------------------------------------------------------------
async def destination_types(request: web.Request) -> web.Response:
    return web.json_response(_deps(request).registry.type_schemas())


async def destination_type(request: web.Request) -> web.Response:
    for schema in _deps(request).registry.type_schemas():
        if schema["type"] == request.match_info["type"]:
            return web.json_response(schema)
    raise NotFound("destination type")


async def topics(request: web.Request) -> web.Response:
    return web.json_response(list(_deps(request).settings.topics))
