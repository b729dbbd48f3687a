"""The access log and the HTTP metrics: one JSON log line per request (method, route
template, status, duration, tenant) and one histogram sample, from the outermost
middleware, so every answer is seen as sent (errors rendered, Flow Service routes
included). Probe and scrape requests (`/healthz`, `/metrics`) are logged at debug."""

from __future__ import annotations

import asyncio
import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from outpost.auth import PRINCIPAL
from outpost.telemetry import Telemetry

log = structlog.get_logger("outpost.access")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
QUIET = frozenset({"/healthz", "/metrics"})  # polled by probes and scrapers: debug lines
CLIENT_GONE = 499  # the client closed the connection before the answer (nginx's code)


def route_of(request: web.Request) -> str:
    """The matched route's template (`/api/v1/tenants/{tenant_id}`): bounded, no ids."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


# the tenant a route learnt from the body (a publish), for the access log line
TENANT = web.RequestKey("tenant", str)


def tenant_of(request: web.Request) -> str | None:
    """Whose request: the tenant's token, the path's tenant, or the one the route read."""
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.tenant_id is not None:
        return str(principal.tenant_id)
    return request.match_info.get("tenant_id") or request.get(TENANT)


def access_middleware(telemetry: Telemetry, log_requests: bool = True) -> Middleware:
    """The outermost middleware: times each request and reports it once."""

    @web.middleware
    async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_GONE
            raise
        finally:
            seconds = time.perf_counter() - started
            report(request, status, seconds, telemetry, log_requests)

    return access


def report(
    request: web.Request, status: int, seconds: float, telemetry: Telemetry, log_requests: bool
) -> None:
    route = route_of(request)
    method = request.method if request.method in METHODS else "other"
    telemetry.of(telemetry.requests, method, route, f"{status // 100}xx").observe(seconds)
    if not log_requests:
        return
    (log.debug if route in QUIET else log.info)(
        "request",
        method=request.method[:16],
        route=route,
        status=status,
        duration_ms=round(seconds * 1000, 2),
        tenant_id=tenant_of(request),
    )
