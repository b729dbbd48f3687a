"""`outpost api|worker|all|dev|tail`: the one place that builds clients from settings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import secrets
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from outpost import logs
from outpost.cliparser import build_parser
from outpost.delivery.alerts import Alerts
from outpost.delivery.worker import Worker
from outpost.deps import Deps
from outpost.destinations.aws import sigv4
from outpost.flow.source import SourceReader
from outpost.queue.connection import StartupError, check_redis, connect_redis, listen_error
from outpost.retry import RetryPolicy
from outpost.runtime import create_app
from outpost.settings import Settings, describe_errors

log = structlog.get_logger("outpost")
DEMO_STREAM = "my-stream"  # the stream name in the README's example body, so it works verbatim


def load_settings(require_secrets: bool = True) -> Settings:
    """Settings from the environment, or exit 2 with one line per bad value."""
    try:
        settings = Settings()
    except ValidationError as exc:
        _fail(describe_errors(exc))
    if require_secrets and (missing := settings.check_service_secrets()):
        _fail(missing)
    return settings


def _fail(lines: list[str]) -> None:
    for line in lines:
        print(f"outpost: config error: {line}", file=sys.stderr)
    raise SystemExit(2)


def build_alerts(settings: Settings) -> Alerts:
    return Alerts(
        url=settings.operator_events_http_url,
        secret=settings.operator_events_http_signing_secret,
        limit=settings.alert_consecutive_failure_count,
        auto_disable=settings.alert_auto_disable_destination,
    )


def build_worker(
    deps: Deps, settings: Settings, policy: RetryPolicy | None = None, **options: Any
) -> Worker:
    """The worker as settings describe it; tests pass a policy or options to override."""
    policy = policy or RetryPolicy(
        max_retries=settings.max_retry_limit,
        interval=settings.retry_interval_seconds,
        schedule=tuple(settings.retry_schedule),
    )
    defaults: dict[str, Any] = {
        "concurrency": settings.delivery_max_concurrency,
        "batch_inflight": settings.delivery_batch_max_inflight,
        "reclaim_idle_seconds": settings.delivery_reclaim_idle_seconds,
        "alerts": build_alerts(settings),
        "store": deps.store,
        "endpoints": deps.endpoints,
    }
    return Worker(
        deps.redis,
        deps.keys,
        deps.queue,
        deps.registry,
        deps.cipher,
        policy,
        **{**defaults, **options},
    )


async def settle_heap() -> None:
    """Load botocore's Kinesis model now, then move everything alive at start-up out of
    the garbage collector's way (gc.freeze), so full collections do not walk the imported
    modules and service models each time (measured with gc.callbacks: full collections of
    50-75 ms in the API and worker under load, the largest part of the publish -> send
    p99)."""
    await sigv4.resolve_endpoint("us-east-1", None)
    gc.collect()
    gc.freeze()


async def serve(
    settings: Settings,
    api: bool,
    worker: bool,
    on_ready: Callable[[], None] | None = None,
    source: bool = False,
    stop_on: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    await check_redis(settings.redis_dsn())
    redis = connect_redis(settings.redis_dsn(), settings.delivery_max_concurrency + 32)
    deps = Deps.build(settings, redis)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in stop_on:
        loop.add_signal_handler(sig, stop.set)
    runner = None
    worker_obj = build_worker(deps, settings) if worker else None
    worker_task = None
    await settle_heap()
    reader: SourceReader | None = None
    reader_task: asyncio.Task[None] | None = None
    try:
        if api:
            # one retry promoter per process: the worker runs it when both are here
            runner = web.AppRunner(
                create_app(settings, deps, run_promoter=not worker), access_log=None
            )
            await runner.setup()
            try:
                await web.TCPSite(runner, settings.api_host, settings.api_port).start()
            except OSError as exc:
                raise listen_error(settings.api_host, settings.api_port, exc) from None
            log.info("api_listening", host=settings.api_host, port=settings.api_port)
        if worker_obj:
            worker_task = asyncio.create_task(worker_obj.run())
        if source:
            reader = SourceReader(
                deps,
                lease_ms=int(settings.source_lease_seconds * 1000),
                poll_seconds=settings.source_poll_seconds,
                batch=settings.source_batch_limit,
            )
            reader_task = asyncio.create_task(reader.run())
        if on_ready:
            on_ready()
        stopped = asyncio.create_task(stop.wait())
        waiters = [stopped] + ([worker_task] if worker_task else [])
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if worker_task and worker_task.done() and worker_task.exception():
            raise RuntimeError(
                "the delivery worker stopped unexpectedly"
            ) from worker_task.exception()
        log.info("shutting_down")
    finally:
        if reader and reader_task:
            reader.stop()
            await asyncio.gather(reader_task, return_exceptions=True)
        if worker_obj and worker_task:
            worker_obj.stop()
            await asyncio.gather(worker_task, return_exceptions=True)
        if worker_obj and worker_obj.alerts:
            await worker_obj.alerts.close()
        if runner:
            await runner.cleanup()
        await deps.registry.close()
        await redis.aclose()


def run_dev(args: argparse.Namespace) -> None:
    """`make run`: start whatever is not configured, then the whole service."""
    from outpost.dev import devstack

    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    _dev_secrets(state)
    os.environ.setdefault("API_HOST", "127.0.0.1")
    # the local stack lives on 127.0.0.1: let destinations point at it
    os.environ.setdefault("DESTINATIONS_ALLOW_PRIVATE_ENDPOINTS", "true")
    stack_file = state / "stack.json"  # where `outpost tail` finds the local endpoint
    servers = []
    try:
        if not any(os.environ.get(k) for k in ("REDIS_URL", "REDIS_HOST")):
            (state / "redis").mkdir(exist_ok=True)
            redis = devstack.redis_server(
                port=devstack.free_port(), data_dir=str((state / "redis").resolve()), aof=True
            )
            servers.append(redis.start(own_group=True))
            os.environ["REDIS_URL"] = redis.redis_url
            print(f"redis      private redis-server (AOF on) at {redis.redis_url}")
        if not any(os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KINESIS")):
            moto = devstack.moto_server()
            servers.append(moto.start(own_group=True))
            os.environ["AWS_ENDPOINT_URL"] = moto.url
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
            devstack.create_stream(moto.url, DEMO_STREAM)
            print(f"kinesis/s3 moto server at {moto.url} (stream {DEMO_STREAM!r} created)")
        settings = load_settings()
        logs.configure(settings.log_level, settings.log_format)
        stack_file.write_text(json.dumps({"aws_endpoint_url": os.environ.get("AWS_ENDPOINT_URL")}))
        asyncio.run(
            serve(
                settings,
                api=True,
                worker=True,
                source=True,
                on_ready=lambda: print(_banner(settings), flush=True),
                # the servers are in their own process group: a closed terminal's SIGHUP
                # must stop them too, through the finally below
                stop_on=(signal.SIGTERM, signal.SIGINT, signal.SIGHUP),
            )
        )
    finally:
        stack_file.unlink(missing_ok=True)
        for server in reversed(servers):
            server.stop()


def _dev_secrets(state: Path) -> None:
    """Keys for a dev run, kept beside the dev Redis so its encrypted data stays readable."""
    path = state / "secrets.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    for name in ("API_KEY", "API_JWT_SECRET", "AES_ENCRYPTION_SECRET"):
        saved.setdefault(name, secrets.token_urlsafe(24))
        os.environ.setdefault(name, saved[name])
    path.write_text(json.dumps(saved))
    path.chmod(0o600)


def _banner(settings: Settings) -> str:
    base = f"http://{settings.api_host}:{settings.api_port}/api/v1"
    auth = f"-H 'Authorization: Bearer {settings.api_key}'"
    json_h = "-H 'Content-Type: application/json'"
    return f"""
outpost is running: API at {base}   admin key: {settings.api_key}

Try it (the README's Kinesis destination body works too):
  curl -X PUT {base}/tenants/acme {auth}
  curl {base}/tenants/acme/destinations {auth} {json_h} --data '{{
    "type": "aws_kinesis", "topics": ["orders"],
    "config": {{"stream_name": "{DEMO_STREAM}", "region": "us-east-1"}},
    "credentials": {{"key": "<AWS_ACCESS_KEY_ID>", "secret": "<AWS_SECRET_ACCESS_KEY>"}}}}'
  curl {base}/publish {auth} {json_h} --data '{{
    "tenant_id": "acme", "topic": "orders", "metadata": {{"source": "checkout-service"}},
    "data": {{"order_id": "123", "status": "created"}}}}'
Then see the record on the local stream:
  .venv/bin/outpost tail {DEMO_STREAM}
Ctrl-C stops the service and the local servers.
"""


def run_tail(args: argparse.Namespace) -> None:
    """Print every record on a stream (for the local stack)."""
    endpoint = (
        args.endpoint
        or os.environ.get("AWS_ENDPOINT_URL_KINESIS")
        or os.environ.get("AWS_ENDPOINT_URL")
        or _dev_endpoint(Path(args.state_dir))
    )
    for r in _read_stream(endpoint, args.stream):
        data = r["Data"].decode(errors="replace")
        print(
            json.dumps(
                {
                    "shard_id": r["ShardId"],
                    "sequence_number": r["SequenceNumber"],
                    "partition_key": r["PartitionKey"],
                    "data": data,
                }
            )
        )


def _read_stream(endpoint: str, stream: str) -> list[dict[str, Any]]:
    """devstack.read_stream, with a missing stream or endpoint as a StartupError."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    from outpost.dev import devstack

    try:
        return devstack.read_stream(endpoint, stream)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise StartupError(f"stream {stream!r} does not exist at {endpoint}") from None
        raise StartupError(f"Kinesis at {endpoint} refused to read {stream!r}: {exc}") from None
    except EndpointConnectionError:
        raise StartupError(f"cannot reach Kinesis at {endpoint}") from None
    except BotoCoreError as exc:
        raise StartupError(f"cannot read {stream!r} at {endpoint}: {exc}") from None


def _dev_endpoint(state: Path) -> str:
    """The local Kinesis endpoint of a running `outpost dev`."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        endpoint = json.loads((state / "stack.json").read_text())["aws_endpoint_url"]
        if endpoint:
            return str(endpoint)
    raise StartupError("tail found no running `make run`; set AWS_ENDPOINT_URL or pass --endpoint")


async def rotate_key(settings: Settings) -> None:
    await check_redis(settings.redis_dsn())
    redis = connect_redis(settings.redis_dsn())
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


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except StartupError as exc:
        print(f"outpost: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # Ctrl-C before the service installed its own handler
        raise SystemExit(130) from None


def run(args: argparse.Namespace) -> None:
    if args.command == "dev":
        run_dev(args)
        return
    if args.command == "tail":
        run_tail(args)
        return
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "rotate-key":
        asyncio.run(rotate_key(settings))
        return
    api = args.command in ("api", "all")
    worker = args.command in ("worker", "all")
    source = args.command in ("source", "all")
    asyncio.run(serve(settings, api=api, worker=worker, source=source))


if __name__ == "__main__":
    main()
