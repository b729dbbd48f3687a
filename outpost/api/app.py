"""The HTTP API as an aiohttp application: `create_api_app(settings, deps)`, its error body
and route table (ROUTES). The runtime mounts the Flow Service inside it."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from aiohttp import web

from outpost.api import docs as apidocs
from outpost.api.openapi import OPENAPI, Document, OpenAPIPart, build
from outpost.api.portal import portal_asset, portal_page
from outpost.api.routes import ROUTES
from outpost.api.routes.catalog import healthz
from outpost.api.routes.publish import publish, publish_batch
from outpost.deps import DEPS, Deps
from outpost.health import HEALTH, RedisWatch, watching
from outpost.settings import Settings
from outpost.surface import auth_middleware, errors_middleware, shedding_middleware

log = structlog.get_logger("outpost.api")
PREFIXES = ("/api/v1", "/2025-07-01")
ACCESS = web.AppKey("access", dict)
SHED = frozenset({publish, publish_batch})  # beyond API_MAX_INFLIGHT_PUBLISHES: 503 at once


def error_response(
    status: int, message: str, data: object = None, headers: dict[str, str] | None = None
) -> web.Response:
    """The API's error body (Outpost's): {status, message, data}."""
    body = {"status": status, "message": message, "data": data}
    return web.json_response(body, status=status, headers=headers)


def _shed(request: web.Request) -> bool:
    return request.match_info.handler in SHED


def _access(request: web.Request) -> str:
    return request.app[ACCESS].get(request.match_info.handler, "any")


def create_api_app(
    settings: Settings, deps: Deps, documents: Sequence[OpenAPIPart] = ()
) -> web.Application:
    """The API (Outpost's routes under both prefixes, `/healthz`, the docs page).
    `documents` are the OpenAPI parts of surfaces mounted beside it, for the served
    document."""
    app = web.Application(
        middlewares=[
            errors_middleware(error_response),
            shedding_middleware(settings.api_max_inflight_publishes, _shed),
            auth_middleware(_access),
        ],
        client_max_size=settings.max_event_bytes,
    )
    app[DEPS] = deps
    app[HEALTH] = RedisWatch(deps.redis, settings.redis_dsn())
    app[OPENAPI] = Document(lambda: build(ROUTES, parts=documents))
    app.cleanup_ctx.append(watching)
    app[ACCESS] = {handler: access for _, _, handler, access in ROUTES}
    app[ACCESS][apidocs.docs_asset] = "public"
    app[ACCESS] |= {portal_page: "public", portal_asset: "public"}  # the page holds the token
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/portal", portal_page)  # the target of GET /tenants/{id}/portal
    app.router.add_get("/portal/{asset}", portal_asset)
    for prefix in PREFIXES:
        for method, path, handler, _ in ROUTES:
            app.router.add_route(method, prefix + path, handler)
        app.router.add_get(prefix + "/docs/{asset}", apidocs.docs_asset)  # the page's files
    return app
