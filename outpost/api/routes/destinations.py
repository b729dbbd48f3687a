"""A tenant's destinations: create, read, update, delete, enable and disable; their topics
and endpoints checked against the settings and the endpoint policy."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from outpost.api.routes.common import (
    _deps,
    _destination_or_404,
    _own_tenant,
    _path_id,
    _tenant_or_404,
    _values,
)
from outpost.api.routes.replay import HELD, redeliver
from outpost.deps import Deps
from outpost.destinations.endpoints import ForbiddenEndpoint
from outpost.errors import Forbidden, NotFound, ValidationFailed
from outpost.models import Destination, every_topic, iso, topic_matches, utcnow
from outpost.retry import MAX_DELAY_SECONDS
from outpost.surface import read_json


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
    dest = deps.registry.create(
        tenant_id,
        body,
        new_id=f"des_{uuid.uuid4().hex[:20]}",
        admin=_own_tenant(request) is None,
    )
    _check_topics(deps, dest.topics)
    _check_overrides(deps, dest.overrides)
    await _check_endpoint(deps, dest)
    dest = await deps.registry.get(dest.type).verify(dest, None)
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
    updated = deps.registry.update(
        dest, await read_json(request), admin=_own_tenant(request) is None
    )
    _check_topics(deps, updated.topics)
    _check_overrides(deps, updated.overrides)
    await _check_endpoint(deps, updated)
    updated = await deps.registry.get(dest.type).verify(updated, dest)
    return await _save(deps, updated, enabling=not dest.enabled and updated.enabled)


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
    return await _save(deps, dest, enabling=disabled_at is None)


async def _save(deps: Deps, dest: Destination, enabling: bool = False) -> web.Response:
    """Store it; enabled again and opted in (`deliver_missed_on_enable`): what was kept
    while it was disabled is queued now."""
    if not await deps.store.replace_destination(dest):
        raise NotFound("destination")  # deleted while we were updating it
    if enabling and dest.deliver_missed_on_enable:
        await redeliver(deps, dest, float("-inf"), float("inf"), {HELD})
    return web.json_response(deps.registry.to_response(dest))


async def _check_endpoint(deps: Deps, dest: Destination) -> None:
    """Every address the tenant gave (the type says which config fields hold them)."""
    for field, url in deps.registry.get(dest.type).endpoints(dest.config):
        try:
            await deps.endpoints.check(url)
        except ForbiddenEndpoint as exc:
            raise ValidationFailed([f"config.{field}: {exc}"]) from None


def _check_overrides(deps: Deps, overrides: dict[str, Any] | None) -> None:
    """A destination's own retry limit, schedule and timeout, within the operator's
    bounds (DESTINATION_MAX_RETRY_LIMIT, DESTINATION_MAX_TIMEOUT_SECONDS)."""
    if not overrides:
        return
    most, longest = (
        deps.settings.destination_max_retry_limit,
        deps.settings.destination_max_timeout_seconds,
    )
    found = []
    if overrides.get("retry_limit", 0) > most:
        found.append(
            f"delivery_overrides.retry_limit: at most {most} (DESTINATION_MAX_RETRY_LIMIT)"
        )
    schedule = overrides.get("retry_schedule") or []
    if len(schedule) > most:
        found.append(
            f"delivery_overrides.retry_schedule: at most {most} delays"
            " (DESTINATION_MAX_RETRY_LIMIT)"
        )
    if any(s > MAX_DELAY_SECONDS for s in schedule):
        found.append(
            f"delivery_overrides.retry_schedule: each delay at most {MAX_DELAY_SECONDS:.0f}s"
        )
    reclaim = deps.settings.delivery_reclaim_idle_seconds
    if overrides.get("timeout_seconds", 0) > longest:
        found.append(
            f"delivery_overrides.timeout_seconds: at most {longest:g}"
            " (DESTINATION_MAX_TIMEOUT_SECONDS)"
        )
    elif overrides.get("timeout_seconds", 0) >= reclaim:  # else claimed twice while sent
        found.append(
            f"delivery_overrides.timeout_seconds: under {reclaim:g} (DELIVERY_RECLAIM_IDLE_SECONDS)"
        )
    if found:
        raise ValidationFailed(found)


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
