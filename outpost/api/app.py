"""The HTTP API: `create_app(settings, deps)`, its middlewares and route table."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from outpost import filters
from outpost.api.auth import ADMIN, PRINCIPAL, Tokens, authenticate, authorize
from outpost.api.health import HEALTH, RedisWatch, watching
from outpost.crypto import Cipher
from outpost.delivery.worker import REDIS_DOWN, promote_loop
from outpost.destinations.endpoints import EndpointPolicy
from outpost.destinations.kinesis.provider import KinesisProvider
from outpost.destinations.registry import DestinationCache, Registry
from outpost.errors import APIError, NotFound
from outpost.models import Event, iso
from outpost.queue.coalesce import Coalescer
from outpost.queue.keys import Keys
from outpost.queue.streams import Queue
from outpost.settings import Settings
from outpost.store.flows import FlowStore
from outpost.store.history import History
from outpost.store.tenants import Store

log = structlog.get_logger("outpost.api")
PREFIXES = ("/api/v1", "/2025-07-01")


@dataclass
class Deps:
    """Everything the API and the workers share. Built from settings and a Redis client;
    opens no connection itself."""

    settings: Settings
    redis: Redis
    keys: Keys
    cipher: Cipher
    registry: Registry
    store: Store
    queue: Queue
    destinations: DestinationCache
    history: History
    tokens: Tokens
    endpoints: EndpointPolicy
    flows: FlowStore

    @classmethod
    def build(cls, settings: Settings, redis: Redis) -> Deps:
        keys = Keys(settings.deployment_id)
        cipher = Cipher(settings.aes_encryption_secret, settings.aes_encryption_secret_previous)
        registry = Registry(
            [
                KinesisProvider(
                    metadata_in_payload=settings.destinations_aws_kinesis_metadata_in_payload,
                    timeout=settings.delivery_timeout_seconds,
                    max_connections=settings.delivery_max_concurrency,
                )
            ]
        )
        return cls(
            settings=settings,
            redis=redis,
            keys=keys,
            cipher=cipher,
            registry=registry,
            store=Store(redis, keys, registry, cipher, settings.max_destinations_per_tenant),
            queue=Queue(
                redis,
                keys,
                settings.delivery_partitions,
                settings.event_retention_seconds,
                settings.attempts_max_per_destination,
                settings.log_max_per_tenant,
                settings.log_max_total,
            ),
            destinations=DestinationCache(registry, cipher),
            history=History(redis, keys),
            tokens=Tokens(settings.api_jwt_secret, settings.api_jwt_ttl_seconds),
            endpoints=EndpointPolicy(settings.destinations_allow_private_endpoints),
            flows=FlowStore(redis, keys, cipher),
        )

    def __post_init__(self) -> None:
        self._publishes: Coalescer[Event] = Coalescer(self.publish_many)

    async def publish(self, event: Event) -> tuple[bool, list[str]]:
        """Match the tenant's destinations and queue the event in one atomic step (the publish
        route and the Kinesis source reader both come here). Returns (fresh, matched ids).
        Publishes arriving together share their round trips (group commit); each is still
        its own script, and returns once its event is in Redis."""
        result: tuple[bool, list[str]] = await self._publishes.submit(event)
        return result

    async def publish_many(self, events: list[Event]) -> list[tuple[bool, list[str]] | APIError]:
        """Many events: one round trip for every tenant's destinations, one for the
        publish scripts."""
        targets = await self.store.publish_targets_many(list({e.tenant_id for e in events}))
        plans: list[tuple[list[tuple[str, str]], list[str], list[str]] | APIError] = []
        for event in events:
            try:
                plans.append(self.route(event, *targets[event.tenant_id]))
            except APIError as exc:
                plans.append(exc)
        ok = [(e, p) for e, p in zip(events, plans, strict=True) if not isinstance(p, APIError)]
        stored = iter(await self.queue.publish_many([(e, p[0], p[1]) for e, p in ok]))
        out: list[tuple[bool, list[str]] | APIError] = []
        for p in plans:
            if isinstance(p, APIError):
                out.append(p)
                continue
            fresh = next(stored)
            out.append(fresh if isinstance(fresh, APIError) else (fresh, p[2]))
        return out

    def route(
        self, event: Event, exists: bool, raws: list[bytes]
    ) -> tuple[list[tuple[str, str]], list[str], list[str]]:
        """(tasks to queue as (destination, ordering key), disabled destinations to keep as
        dead letters, matched destination ids) for one event."""
        if not exists:
            raise NotFound("tenant")
        dests = [self.destinations.parse(r) for r in raws]
        if event.destination_id is not None:
            dests = [d for d in dests if d.id == event.destination_id]
            if not dests:
                raise NotFound("destination")
        doc = {
            "id": event.id,
            "topic": event.topic,
            "time": iso(event.time),
            "metadata": event.metadata,
            "data": event.data,
        }
        hits = sorted(
            (d for d in dests if d.matches(event.topic or None) and filters.matches(d.filter, doc)),
            key=lambda d: d.id,
        )
        enabled = [d for d in hits if d.enabled]
        held = [d.id for d in hits if not d.enabled]  # kept as dead letters, not lost
        routes = [(d.id, self.registry.get(d.type).ordering_key(event, d)) for d in enabled]
        return routes, held, [d.id for d in enabled]


def connect_redis(url: str, max_connections: int = 128) -> Redis:
    """A client that reconnects and retries a command whose connection broke (Redis
    restarted or failed over). Repeating our writes is safe: publish is a SET NX claim,
    acks and retry entries are idempotent; at worst an attempt is recorded twice."""
    return Redis.from_url(
        url,
        max_connections=max_connections,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=5),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


DEPS = web.AppKey("deps", Deps)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


FLOW_PREFIX = "/data/foundation/flowservice"
_FLOW_CODES = {
    400: 1101,
    401: 1104,
    403: 1105,
    404: 1102,
    405: 1107,
    409: 1106,
    412: 1103,
    413: 1108,
    422: 1101,
    429: 1109,
    500: 1199,
    503: 1198,
}
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    422: "Unprocessable entity",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


def flow_error(status: int, message: str, data: object = None) -> web.Response:
    """The Flow Service error body: {type, title, status, report}."""
    code = _FLOW_CODES.get(status, 1100)
    report: dict[str, object] = {"detailed-message": message, "request-id": uuid.uuid4().hex}
    if isinstance(data, list):
        report["details"] = data
    body = {
        "type": f"https://ns.adobe.com/aep/errors/FLOW-{code}-{status}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "report": report,
    }
    return web.json_response(body, status=status)


def _error(
    request: web.Request,
    status: int,
    message: str,
    data: object = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    if request.path.startswith(FLOW_PREFIX):
        return flow_error(status, message, data)
    return error_response(status, message, data, headers)


def error_response(
    status: int, message: str, data: object = None, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"status": status, "message": message, "data": data}
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except APIError as exc:
        return _error(request, exc.status, exc.message, exc.data, exc.headers)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[DEPS].settings.max_event_bytes
        return _error(request, 413, f"request body is larger than MAX_EVENT_BYTES ({limit})")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(request, exc.status, exc.reason.lower())
    except asyncio.CancelledError:
        raise
    except REDIS_DOWN as exc:
        request.app[HEALTH].failed(exc)  # logged once per outage, not per request
        return _error(request, 503, "storage unavailable: nothing was accepted, retry later")
    except Exception:
        log.exception("unhandled_error", method=request.method, path=request.path)
        return _error(request, 500, "internal server error")


ACCESS = web.AppKey("access", dict)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, then apply the route's declared access level (see auth.py)."""
    access = request.app[ACCESS].get(request.match_info.handler, "any")
    if access == "public" or request.method == "OPTIONS":
        return await handler(request)
    deps = request.app[DEPS]
    if deps.settings.api_auth_disabled:
        principal = ADMIN
    else:
        principal = await authenticate(
            request, deps.settings.api_key, deps.tokens, deps.store.tenant_exists
        )
    authorize(principal, access, request.match_info.get("tenant_id"))
    request[PRINCIPAL] = principal
    return await handler(request)


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


def create_app(settings: Settings, deps: Deps, run_promoter: bool = True) -> web.Application:
    from outpost.api import docs as apidocs
    from outpost.api import views

    app = web.Application(
        middlewares=[errors_middleware, auth_middleware], client_max_size=settings.max_event_bytes
    )
    app[DEPS] = deps
    app[HEALTH] = RedisWatch(deps.redis, settings.redis_dsn())
    app.cleanup_ctx.append(watching)
    from outpost.flow import handlers as flowservice

    app[ACCESS] = {handler: access for _, _, handler, access in views.ROUTES}
    app[ACCESS].update({handler: "any" for _, _, handler in flowservice.FLOW_ROUTES})
    app[ACCESS][apidocs.docs_asset] = "public"
    for method, path, handler in flowservice.FLOW_ROUTES:
        app.router.add_route(method, FLOW_PREFIX + path, handler)
    app.router.add_get("/healthz", views.healthz)
    for prefix in PREFIXES:
        for method, path, handler, _ in views.ROUTES:
            app.router.add_route(method, prefix + path, handler)
        app.router.add_get(prefix + "/docs/{asset}", apidocs.docs_asset)  # the page's files
    if run_promoter:
        app.cleanup_ctx.append(_retry_promoter)
    return app


async def _retry_promoter(app: web.Application) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(promote_loop(app[DEPS].queue, stopping))
    yield
    stopping.set()
    await task
