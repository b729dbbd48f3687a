"""What both HTTP surfaces (the API and the Flow Service) share: reading a JSON body, the
middleware that turns every exception into that surface's own error body, and the one that
authenticates. Each surface is its own aiohttp application with its own middlewares and
error shape; a surface's middlewares leave alone a request routed into another surface
mounted inside it (`routed_elsewhere`), so nothing is decided by looking at the path."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from outpost import exactjson
from outpost.auth import ADMIN, PRINCIPAL, authenticate, authorize
from outpost.deps import DEPS
from outpost.errors import (
    AlreadyExists,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    LimitReached,
    NotConfigured,
    NotFound,
    PreconditionFailed,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)
from outpost.health import HEALTH
from outpost.queue.connection import FULL_MESSAGE, REDIS_DOWN, redis_full

log = structlog.get_logger("outpost.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# seconds a client waits before trying again after a 503 (Redis down or full, overload)
RETRY_AFTER_UNAVAILABLE = 1
# status, message, data, headers -> the surface's error response
Render = Callable[[int, str, object, "dict[str, str] | None"], web.Response]

# The one place a domain error becomes an HTTP status, for both surfaces. Closed: a class
# missing here is a bug, answered as a logged 500 (a test checks every class has a row).
STATUS: dict[type[DomainError], int] = {
    Invalid: 400,
    LimitReached: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    AlreadyExists: 409,
    Conflict: 409,
    PreconditionFailed: 412,
    TooLarge: 413,
    ValidationFailed: 422,
    RateLimited: 429,
    NotConfigured: 501,
    Unavailable: 503,
}


def status_of(exc: DomainError) -> int:
    """The HTTP status of a domain error (500 for a class the table lacks)."""
    return STATUS.get(type(exc), 500)


def headers_of(exc: DomainError) -> dict[str, str] | None:
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, Unavailable):
        return {"Retry-After": str(RETRY_AFTER_UNAVAILABLE)}
    return None


async def read_json(request: web.Request, required: bool = True, exact: bool = False) -> object:
    """The body as JSON, or Invalid (400) saying why: malformed, nested deeper than
    MAX_JSON_DEPTH, NaN/Infinity (not JSON), or a lone UTF-16 surrogate (`"\\ud800"`: no
    UTF-8 can carry it, so nothing downstream could). `exact` (a publish): every number
    keeps its digits (exactjson), 1e400 included; otherwise numbers are ints and floats
    and one past the float range (1e999, Infinity as a float) is refused."""
    body = await request.read()
    if not body.strip():
        if required:
            raise Invalid("request body is required (JSON)")
        return None
    max_depth = request.config_dict[DEPS].settings.max_json_depth
    try:
        value = _parse(body, exact)
    except RecursionError:
        raise Invalid(f"JSON nested deeper than MAX_JSON_DEPTH ({max_depth})") from None
    except _NotFinite:
        raise Invalid("a number is out of range (JSON numbers must be finite)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(f"malformed JSON: {exc}") from None
    if _too_deep(value, max_depth):
        raise Invalid(f"JSON nested deeper than MAX_JSON_DEPTH ({max_depth})")
    # a lone surrogate arrives as a \uD8xx-\uDFxx escape or as its (invalid) UTF-8 bytes
    surrogate = _SURROGATE_ESCAPE.search(body) or _SURROGATE_BYTES.search(body)
    if surrogate and not _all_utf8(value):
        raise Invalid('a string holds a lone UTF-16 surrogate (e.g. "\\ud800"): not valid Unicode')
    return value


# two patterns, not one alternation: each has a literal prefix, which re finds at C speed
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]")


def _parse(body: bytes, exact: bool) -> object:
    if exact:
        return exactjson.loads(body)
    return json.loads(body, parse_constant=_not_json, parse_float=_finite)


class _NotFinite(ValueError):
    pass


def _not_json(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    """A JSON number with a fraction or exponent (1e999 would be Infinity)."""
    number = float(text)
    if not math.isfinite(number):
        raise _NotFinite(text)
    return number


def _too_deep(value: object, max_depth: int) -> bool:
    """Containers nested deeper than `max_depth`, walked without recursion; only
    containers are visited, so the walk costs a fraction of the parse."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack += [(c, depth + 1) for c in children if isinstance(c, dict | list)]
    return False


def _all_utf8(value: object) -> bool:
    """Every string, keys included, encodes to UTF-8 (walked without recursion)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack += list(node)
            stack += node.values()
        elif isinstance(node, list):
            stack += node
        elif isinstance(node, str) and not _utf8(node):
            return False
    return True


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def routed_elsewhere(request: web.Request) -> bool:
    """The request belongs to a sub-application mounted inside this one."""
    apps = request.match_info.apps
    return bool(apps) and apps[-1] is not request.app


class SlowBody(Exception):
    """The request body did not arrive within API_BODY_TIMEOUT_SECONDS: answered 408."""


async def read_body_in_time(request: web.Request) -> None:
    """Read the whole body now (handlers then get it from aiohttp's cache) within
    API_BODY_TIMEOUT_SECONDS, so a client trickling it cannot hold a request forever."""
    deps = request.config_dict.get(DEPS)
    if deps is None or not request.can_read_body:
        return
    seconds = deps.settings.api_body_timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            await request.read()
    except TimeoutError:
        message = f"the request body did not arrive within API_BODY_TIMEOUT_SECONDS ({seconds:g})"
        raise SlowBody(message) from None
    except ConnectionError:  # the client went away: not Redis being down
        raise Invalid("the request body was cut off") from None


def errors_middleware(render: Render) -> Middleware:
    """Every failure of a request becomes one `render`ed error: domain errors with their
    status from STATUS, aiohttp's own (404, 405) as they are, a too large body and Redis
    being down through the domain errors they mean, and anything else as a logged 500."""

    def domain(request: web.Request, exc: DomainError) -> web.Response:
        status = STATUS.get(type(exc))
        if status is None:
            log.error("unmapped_domain_error", error=type(exc).__name__, path=request.path)
            return render(500, "internal server error", None, None)
        return render(status, exc.message, exc.data, headers_of(exc))

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if routed_elsewhere(request):
            return await handler(request)
        try:
            await read_body_in_time(request)
            return await handler(request)
        except SlowBody as exc:
            return render(408, str(exc), None, {"Connection": "close"})
        except DomainError as exc:
            return domain(request, exc)
        except web.HTTPRequestEntityTooLarge:
            limit = request.config_dict[DEPS].settings.max_event_bytes
            message = f"request body is larger than MAX_EVENT_BYTES ({limit})"
            return domain(request, TooLarge(message))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return render(exc.status, exc.reason.lower(), None, None)
        except asyncio.CancelledError:
            raise
        except REDIS_DOWN as exc:
            request.config_dict[HEALTH].failed(exc)  # logged once per outage, not per request
            message = "storage unavailable: nothing was accepted, retry later"
            return domain(request, Unavailable(message))
        except Exception as exc:
            if redis_full(exc):  # a refused write, not a bug: never Redis's own text
                request.config_dict[HEALTH].failed(exc)
                return domain(request, Unavailable(FULL_MESSAGE))
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
                request, deps.settings.api_key, deps.tokens, deps.store.tenant_generation
            )
        authorize(principal, access, request.match_info.get("tenant_id"))
        request[PRINCIPAL] = principal
        return await handler(request)

    return auth


def shedding_middleware(limit: int, applies: Callable[[web.Request], bool]) -> Middleware:
    """At most `limit` requests that `applies` to in progress at once (0: no limit); one
    more is answered 503 + Retry-After at once, before its body is read or Redis is asked,
    so that the accepted ones keep a short queue (and a low latency) behind them."""
    inflight = 0
    message = (
        f"over capacity ({limit} publishes in progress, API_MAX_INFLIGHT_PUBLISHES): "
        "nothing was accepted, retry later"
    )

    @web.middleware
    async def shed(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal inflight
        if not limit or routed_elsewhere(request) or not applies(request):
            return await handler(request)
        if inflight >= limit:
            raise Unavailable(message)
        inflight += 1
        try:
            return await handler(request)
        finally:
            inflight -= 1

    return shed
