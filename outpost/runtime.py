"""Builds the clients from settings and wires the processes: the HTTP application (the API
with the Flow Service mounted inside it, and the retry promoter beside them), the delivery
worker, the Kinesis source reader; `serve` runs any of them in one process until a stop
signal. Also the OpenAPI document of both surfaces and `rotate-key`. The CLI parses and
hands over to `serve` / `rotate_key`."""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog
from aiohttp import web
from redis.asyncio import Redis

from outpost.api.app import create_api_app
from outpost.api.openapi import OpenAPIPart, build
from outpost.api.routes import ROUTES
from outpost.delivery import gauges
from outpost.delivery.alerts import Alerts
from outpost.delivery.promoter import promote_loop
from outpost.delivery.worker import Worker, WorkerConfig
from outpost.deps import DEPS, Deps
from outpost.destinations.aws import sigv4
from outpost.destinations.endpoints import EndpointPolicy
from outpost.flow import openapi as flow_openapi
from outpost.flow.app import PREFIX as FLOW_PREFIX
from outpost.flow.app import create_flow_app
from outpost.flow.handlers import FLOW_ROUTES
from outpost.flow.source import SourceReader
from outpost.health import RedisWatch, probe_app
from outpost.queue.connection import (
    RedisConfig,
    StartupError,
    check_redis,
    connect_redis,
)
from outpost.retry import RetryPolicy
from outpost.settings import Settings
from outpost.telemetry import Telemetry

log = structlog.get_logger("outpost")


def flow_document() -> OpenAPIPart:
    return OpenAPIPart(
        paths=flow_openapi.paths(FLOW_PREFIX, FLOW_ROUTES),
        schemas=flow_openapi.SCHEMAS,
        description=f"The Flow Service connection API is under {FLOW_PREFIX}.",
    )


def openapi_document() -> dict[str, Any]:
    """The document `/api/v1/openapi.json` serves: the API's operations and the Flow
    Service's."""
    return build(ROUTES, parts=[flow_document()])


def create_app(settings: Settings, deps: Deps, run_promoter: bool = True) -> web.Application:
    """The API with the Flow Service mounted at its prefix; with `run_promoter`, the retry
    promoter runs for the application's lifetime (an `outpost api` process)."""
    app = create_api_app(settings, deps, documents=[flow_document()])
    app.add_subapp(FLOW_PREFIX, create_flow_app(deps))
    if run_promoter:
        app.cleanup_ctx.append(_retry_promoter)
    return app


async def _retry_promoter(app: web.Application) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(promote_loop(app[DEPS].queue, stopping))
    yield
    stopping.set()
    await task


def build_alerts(settings: Settings) -> Alerts:
    return Alerts(
        url=settings.operator_events_http_url,
        secret=settings.operator_events_http_signing_secret,
        limit=settings.alert_consecutive_failure_count,
        auto_disable=settings.alert_auto_disable_destination,
    )


def build_worker(
    deps: Deps,
    settings: Settings,
    policy: RetryPolicy | None = None,
    *,
    alerts: Alerts | None = None,
    endpoints: EndpointPolicy | None = None,
    **knobs: Any,
) -> Worker:
    """The worker as settings describe it. Tests override the retry policy, the alerts,
    the endpoint policy (else the settings' one, deps.endpoints) or a knob of
    WorkerConfig (concurrency, batch_inflight, reclaim_idle_seconds,
    max_inflight_per_destination, name)."""
    config = WorkerConfig(
        policy=policy
        or RetryPolicy(
            max_retries=settings.max_retry_limit,
            interval=settings.retry_interval_seconds,
            schedule=tuple(settings.retry_schedule),
        ),
        concurrency=settings.delivery_max_concurrency,
        batch_inflight=settings.delivery_batch_max_inflight,
        reclaim_idle_seconds=settings.delivery_reclaim_idle_seconds,
        max_inflight_per_destination=settings.delivery_max_inflight_per_destination,
    )
    return Worker(
        deps,
        replace(config, **knobs),
        endpoints=deps.endpoints if endpoints is None else endpoints,
        alerts=build_alerts(settings) if alerts is None else alerts,
    )


GC_YOUNG = 20_000  # allocations between young collections (settle_heap)


async def settle_heap() -> None:
    """Load botocore's Kinesis model now, then move everything alive at start-up out of
    the garbage collector's way (gc.freeze), so full collections do not walk the imported
    modules and service models each time (measured with gc.callbacks: full collections of
    50-75 ms in the API and worker under load, the largest part of the publish -> send
    p99). Young collections run every GC_YOUNG allocations instead of 700: a worker
    allocates a few dozen objects per event, almost none of them in cycles, and the
    default threshold spent ~7 µs per event of a batched drain in collections (~10% of
    its CPU; 0.3 µs at this one, measured with gc.callbacks over 40,000 events)."""
    await sigv4.resolve_endpoint("us-east-1", None)
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])


def refusal(limit: int) -> bytes:
    """The whole answer to a connection beyond API_MAX_CONNECTIONS (the API's error body)."""
    message = f"too many connections ({limit}, API_MAX_CONNECTIONS): retry later"
    body = json.dumps({"status": 503, "message": message, "data": None}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Refused(asyncio.Protocol):
    """A connection beyond the cap: answered at once, then closed."""

    def __init__(self, answer: bytes):
        self.answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.answer)
        transport.close()


def capped(server: web.Server, limit: int) -> Callable[[], asyncio.Protocol]:
    """The listening socket's protocol factory: aiohttp's while fewer than `limit`
    connections are open, else one that answers 503 and closes (a refusal the client can
    read, instead of a connection that waits unserved or an accept loop out of files)."""
    answer = refusal(limit)

    def factory() -> asyncio.Protocol:
        if len(server.connections) >= limit:
            return _Refused(answer)
        return server()

    return factory


def redis_config(settings: Settings) -> RedisConfig:
    """Where and how every process reaches Redis: the REDIS_* settings."""
    return RedisConfig(
        settings.redis_dsn(),
        cluster=settings.redis_cluster_enabled,
        tls=settings.redis_tls_enabled,
        ca_file=settings.redis_tls_ca_file,
        cert_file=settings.redis_tls_cert_file,
        key_file=settings.redis_tls_key_file,
        verify=settings.redis_tls_verify,
        username=settings.redis_username,
        password=settings.redis_password,
    )


async def check_redis_settings(settings: Settings) -> None:
    """The start-up check of every process (StartupError when Redis cannot be used); an
    unverified TLS connection is said loudly first."""
    config = redis_config(settings)
    if config.uses_tls and not config.verify:
        log.warning(
            "redis_tls_not_verified",
            message="REDIS_TLS_VERIFY=false: any certificate is accepted for Redis, so "
            "anyone on the path can read and change the traffic; set it to true in production",
        )
    await check_redis(config)


def redis_client(
    settings: Settings, max_connections: int = 128, telemetry: Telemetry | None = None
) -> Redis:
    """The process's Redis client; with `telemetry`, its failed commands are counted."""
    counter = None if telemetry is None else telemetry.redis_errors
    return connect_redis(
        redis_config(settings),
        max_connections,
        socket_timeout=settings.redis_socket_timeout_seconds,
        connect_timeout=settings.redis_connect_timeout_seconds,
        on_error=(lambda: counter.inc()) if counter is not None else lambda: None,
    )


def listen_error(host: str, port: int, exc: OSError, setting: str = "API") -> StartupError:
    """The API (or the probe port: setting "HEALTH") could not bind its HOST:PORT."""
    reasons = {
        errno.EADDRINUSE: f"address already in use; set {setting}_PORT or stop what uses it",
        errno.EACCES: f"permission denied; use a {setting}_PORT above 1023",
        errno.EADDRNOTAVAIL: f"no such local address; check {setting}_HOST",
    }
    reason = reasons.get(exc.errno or 0, (exc.strerror or str(exc)).lower())
    return StartupError(f"cannot listen on {host}:{port} ({reason})")


async def serve(
    settings: Settings,
    api: bool,
    worker: bool,
    on_ready: Callable[[], None] | None = None,
    source: bool = False,
    stop_on: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """Run the API, a delivery worker and/or the Kinesis source reader in this process
    until one of `stop_on` arrives (or the worker crashes); then stop them in reverse."""
    await check_redis_settings(settings)
    telemetry = Telemetry(per_tenant=settings.metrics_per_tenant)
    redis = redis_client(settings, settings.delivery_max_concurrency + 32, telemetry)
    deps = Deps.build(settings, redis, telemetry=telemetry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in stop_on:
        loop.add_signal_handler(sig, stop.set)
    running = _Running(worker=build_worker(deps, settings) if worker else None)
    await settle_heap()
    try:
        await running.start(settings, deps, api=api, source=source)
        if on_ready:
            on_ready()
        await running.wait(stop)
        log.info("shutting_down")
    finally:
        await running.stop()
        await deps.registry.close()
        await redis.aclose()
        deps.tracing.shutdown()  # the spans still buffered are sent


@dataclass
class _Running:
    """What one `serve` started, so that it stops exactly that."""

    worker: Worker | None = None
    runner: web.AppRunner | None = None
    listener: asyncio.Server | None = None
    worker_task: asyncio.Task[None] | None = None
    reader: SourceReader | None = None
    reader_task: asyncio.Task[None] | None = None
    probes: web.AppRunner | None = None
    gauges: asyncio.Task[None] | None = None
    stopping: asyncio.Event | None = None

    async def start(self, settings: Settings, deps: Deps, api: bool, source: bool) -> None:
        if api:
            await self._listen(settings, deps)
        if self.worker:
            self.worker_task = asyncio.create_task(self.worker.run())
        if source:
            self.reader = SourceReader(
                deps,
                lease_ms=int(settings.source_lease_seconds * 1000),
                poll_seconds=settings.source_poll_seconds,
                batch=settings.source_batch_limit,
                alerts=build_alerts(settings),  # run notifications: the operator events
            )
            self.reader_task = asyncio.create_task(self.reader.run())
        if settings.health_port:
            await self._probe(settings, deps)
        if settings.metrics_refresh_seconds:
            self.stopping = asyncio.Event()
            loop = gauges.refresh_loop(deps, self.stopping, settings.metrics_refresh_seconds)
            self.gauges = asyncio.create_task(loop)

    def loops(self) -> dict[str, bool]:
        """Each loop this process runs, and whether it still does (readiness)."""
        tasks = {"worker": self.worker_task, "source": self.reader_task}
        running = {name: not task.done() for name, task in tasks.items() if task}
        if self.listener:
            running["api"] = self.listener.is_serving()
        return running

    async def _probe(self, settings: Settings, deps: Deps) -> None:
        watch = RedisWatch(deps.redis, settings.redis_dsn())
        app = probe_app(watch, self.loops, deps.telemetry)
        self.probes = web.AppRunner(app, access_log=None)
        await self.probes.setup()
        host, port = settings.health_host, settings.health_port
        try:
            await web.TCPSite(self.probes, host, port).start()
        except OSError as exc:
            raise listen_error(host, port, exc, "HEALTH") from None
        log.info("probes_listening", host=host, port=port)

    async def _listen(self, settings: Settings, deps: Deps) -> None:
        # one retry promoter per process: the worker runs it when both are here
        self.runner = web.AppRunner(
            create_app(settings, deps, run_promoter=self.worker is None),
            access_log=None,
            # also bounds how long a request's head may take to arrive
            keepalive_timeout=settings.api_header_timeout_seconds,
        )
        await self.runner.setup()
        assert self.runner.server is not None
        factory = capped(self.runner.server, settings.api_max_connections)
        try:
            self.listener = await asyncio.get_running_loop().create_server(
                factory, settings.api_host, settings.api_port, backlog=128
            )
        except OSError as exc:
            raise listen_error(settings.api_host, settings.api_port, exc) from None
        log.info("api_listening", host=settings.api_host, port=settings.api_port)

    async def wait(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; a crashed worker is raised as a RuntimeError."""
        stopped = asyncio.create_task(stop.wait())
        waiters = [stopped] + ([self.worker_task] if self.worker_task else [])
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        task = self.worker_task
        if task and task.done() and task.exception():
            raise RuntimeError("the delivery worker stopped unexpectedly") from task.exception()

    async def stop(self) -> None:
        """The source reader, then the worker (its in-flight sends finish), its alerts,
        then the API, then the probe port."""
        if self.stopping and self.gauges:
            self.stopping.set()
            await self.gauges
        if self.reader and self.reader_task:
            self.reader.stop()
            await asyncio.gather(self.reader_task, return_exceptions=True)
            if self.reader.alerts:
                await self.reader.alerts.close()
        if self.worker and self.worker_task:
            self.worker.stop()
            await asyncio.gather(self.worker_task, return_exceptions=True)
        if self.worker and self.worker.alerts:
            await self.worker.alerts.close()
        if self.listener:
            self.listener.close()
        if self.runner:
            await self.runner.cleanup()
        if self.probes:
            await self.probes.cleanup()


async def rotate_key(settings: Settings) -> None:
    await check_redis_settings(settings)
    redis = redis_client(settings)
    deps = Deps.build(settings, redis)
    try:
        done, raced = await deps.store.reencrypt_all()
    finally:
        await redis.aclose()
    print(
        f"re-encrypted {done} destination(s) with the current AES_ENCRYPTION_SECRET"
        + (f"; {raced} changed meanwhile: run again" if raced else "")
    )
    if raced:
        raise SystemExit(1)
