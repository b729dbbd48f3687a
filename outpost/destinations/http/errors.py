"""The one closed table of HTTP send failures (webhook, hookdeck): what each means next.
Codes are Outpost's: the HTTP status as a string for an answer, its network codes
(dns_error, connection_refused, connection_reset, network_unreachable, timeout,
tls_error, network_error) for a send that got none."""

from __future__ import annotations

import asyncio
import errno

import aiohttp

from outpost.destinations.base import Failure, Kind, unexpected
from outpost.destinations.endpoints import ForbiddenEndpoint
from outpost.destinations.http.client import HTTPStatusError
from outpost.errors import DeliveryError

# 4xx answers the same request may get past later: retried like a 5xx
RETRYABLE_4XX = frozenset({408, 425, 429})
AUTH_4XX = frozenset({401, 403})  # retried; they count toward the failure alerts

# (exception class, code, unanswered), first match wins: subclasses before their bases.
# Unanswered: the endpoint said nothing (timed out, refused, dropped the connection), what
# the worker's circuit breakers count; any HTTP answer, even a 4xx, says it is alive.
_NETWORK: tuple[tuple[type[BaseException], str, bool], ...] = (
    (aiohttp.ClientConnectorDNSError, "dns_error", True),
    (aiohttp.ClientSSLError, "tls_error", True),
    (aiohttp.ServerTimeoutError, "timeout", True),
    (asyncio.TimeoutError, "timeout", True),
    (aiohttp.ServerDisconnectedError, "connection_reset", True),
    (ConnectionResetError, "connection_reset", True),
    (ConnectionRefusedError, "connection_refused", True),
    (aiohttp.ClientConnectionError, "network_error", True),
    (aiohttp.ClientPayloadError, "network_error", True),
    (OSError, "network_error", True),
    (aiohttp.ClientError, "network_error", False),
)


def status_failure(exc: HTTPStatusError) -> Failure:
    answer = exc.answer
    status, code = answer.status, str(answer.status)
    if 300 <= status < 400:
        where = f" to {answer.location}" if answer.location else ""
        return Failure(
            Kind.PERMANENT,
            code,
            f"HTTP {status}: redirect{where} not followed (point the destination at the final URL)",
            answer.response(),
        )
    if status in AUTH_4XX:
        kind = Kind.AUTH
    elif 400 <= status < 500 and status not in RETRYABLE_4XX:
        kind = Kind.PERMANENT
    else:
        kind = Kind.RETRY
    return Failure(kind, code, f"HTTP {status}", answer.response())


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, HTTPStatusError):
        return status_failure(exc)
    if isinstance(exc, ForbiddenEndpoint):
        return Failure(Kind.PERMANENT, "endpoint_forbidden", str(exc))
    if isinstance(exc, DeliveryError):
        return Failure.of(exc)
    if isinstance(exc, aiohttp.InvalidURL):
        return Failure(Kind.PERMANENT, "invalid_url", f"invalid URL: {exc}")
    for cls, code, unanswered in _NETWORK:
        if isinstance(exc, cls):
            message = f"{type(exc).__name__}: {exc}"
            return Failure(Kind.RETRY, _refined(exc, code), message, unanswered=unanswered)
    return unexpected(exc)


def _refined(exc: BaseException, code: str) -> str:
    """What a connector error wraps says more than its class."""
    cause = getattr(exc, "os_error", None) or exc.__cause__
    if code == "network_error" and isinstance(cause, ConnectionRefusedError):
        return "connection_refused"
    if code == "network_error" and isinstance(cause, OSError):
        if cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "network_unreachable"
        if cause.errno == errno.ECONNRESET:
            return "connection_reset"
    return code
