"""The developer commands of the console script: `outpost dev` (`make run`: a local stack
for whatever is not configured, then the whole service) and `outpost tail` (print the
records on a local stream). Only the CLI imports this."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from outpost import logs
from outpost.dev import devstack
from outpost.queue.connection import StartupError
from outpost.runtime import serve
from outpost.settings import Settings

DEMO_STREAM = "my-stream"  # the stream name in the README's example body, so it works verbatim


def run_dev(args: argparse.Namespace, load_settings: Callable[[], Settings]) -> None:
    """`make run`: start whatever is not configured, then the whole service.
    `load_settings` reads the environment once the local stack is in it."""
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    _dev_secrets(state)
    os.environ.setdefault("API_HOST", "127.0.0.1")
    # the local stack lives on 127.0.0.1: let destinations point at it
    os.environ.setdefault("DESTINATIONS_ALLOW_PRIVATE_ENDPOINTS", "true")
    stack_file = state / "stack.json"  # where `outpost tail` finds the local endpoint
    servers: list[devstack.Server] = []
    try:
        _start_local_stack(state, servers)
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


def _start_local_stack(state: Path, servers: list[devstack.Server]) -> None:
    """A private redis-server and a moto server, each unless configured; every server
    started goes into `servers` at once, so that the caller stops it whatever follows."""
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
