"""Readiness and the catalogue: `/healthz`, destination types, the configured topics."""

from __future__ import annotations

from aiohttp import web

from outpost.api.routes.common import _deps
from outpost.errors import NotFound
from outpost.health import HEALTH
from outpost.models import iso, utcnow


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


async def destination_types(request: web.Request) -> web.Response:
    return web.json_response(_deps(request).registry.type_schemas())


async def destination_type(request: web.Request) -> web.Response:
    for schema in _deps(request).registry.type_schemas():
        if schema["type"] == request.match_info["type"]:
            return web.json_response(schema)
    raise NotFound("destination type")


async def topics(request: web.Request) -> web.Response:
    return web.json_response(list(_deps(request).settings.topics))
