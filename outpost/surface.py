"""What both HTTP surfaces (the API and the Flow Service) share: reading a JSON body, the
middleware that turns every exception into that surface's own error body, and the one that
authenticates. Each surface is its own aiohttp application with its own middlewares and
error shape; a surface's middlewares leave alone a request routed into another surface
mounted inside it (`routed_elsewhere`), so nothing is decided by looking at the path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from outpost.auth import ADMIN, PRINCIPAL, authenticate, authorize
from outpost.deps import DEPS
from outpost.errors import APIError
from outpost.health import HEALTH
from outpost.queue.connection import REDIS_DOWN

log = structlog.get_logger("outpost.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# status, message, data, headers -> the surface's error response
Render = Callable[[int, str, object, "dict[str, str] | None"], web.Response]


async def read_json(request: web.Request, required: bool = True) -> object:
    body = await request.read()
    if not body.strip():
        if required:
            raise APIError(400, "request body is required (JSON)")
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, f"malformed JSON: {exc}") from None


def routed_elsewhere(request: web.Request) -> bool:
    """The request belongs to a sub-application mounted inside this one."""
    apps = request.match_info.apps
    return bool(apps) and apps[-1] is not request.app


def errors_middleware(render: Render) -> Middleware:
    """Every failure of a request becomes one `render`ed error: our own errors with their
    status, aiohttp's (404, 405, 413) as they are, Redis being down as 503, and anything
    else as a logged 500."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if routed_elsewhere(request):
            return await handler(request)
        try:
            return await handler(request)
        except APIError as exc:
            return render(exc.status, exc.message, exc.data, exc.headers)
        except web.HTTPRequestEntityTooLarge:
            limit = request.config_dict[DEPS].settings.max_event_bytes
            return render(413, f"request body is larger than MAX_EVENT_BYTES ({limit})", None, None)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return render(exc.status, exc.reason.lower(), None, None)
        except asyncio.CancelledError:
            raise
        except REDIS_DOWN as exc:
            request.config_dict[HEALTH].failed(exc)  # logged once per outage, not per request
            message = "storage unavailable: nothing was accepted, retry later"
            return render(503, message, None, None)
        except Exception:
            log.exception("unhandled_error", method=request.method, path=request.path)
            return render(500, "internal server error", None, None)

    return errors


def auth_middleware(access_of: Callable[[web.Request], str]) -> Middleware:
    """Authenticate (the admin API key or a tenant token), then apply the route's access
    level (see auth.py)."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if routed_elsewhere(request):
            return await handler(request)
        access = access_of(request)
        if access == "public" or request.method == "OPTIONS":
            return await handler(request)
        deps = request.config_dict[DEPS]
        if deps.settings.api_auth_disabled:
            principal = ADMIN
        else:
            principal = await authenticate(
                request, deps.settings.api_key, deps.tokens, deps.store.tenant_exists
            )
        authorize(principal, access, request.match_info.get("tenant_id"))
        request[PRINCIPAL] = principal
        return await handler(request)

    return auth
