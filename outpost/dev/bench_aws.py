"""Throughput of one worker per AWS destination type (SQS, S3, EventBridge), single and
batched, against a local moto server (the tests' server, one request at a time): a
backlog of N events is queued, then one in-process worker drains it. Not a test: prints
one line per case and, last, one JSON object. `python -m outpost.dev.bench_aws [N]`;
`... bench_aws ceiling [N]` runs the same against a minimal endpoint that answers every
send at once (the client's ceiling: one process's CPU)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

KEY, SECRET = "bench-key", "bench-secret-value"


def resources(url: str, name: str = "bench") -> dict[str, dict[str, Any]]:
    """A queue, a bucket and a bus (with a rule to a queue) on moto; each type's config."""
    kw: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1"}
    kw.update(aws_access_key_id=KEY, aws_secret_access_key=SECRET)
    sqs = boto3.client("sqs", **kw)
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **kw)
    events = boto3.client("events", **kw)
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    s3.create_bucket(Bucket=f"{name}-bucket")
    events.create_event_bus(Name=name)
    routed = sqs.create_queue(QueueName=f"{name}-routed")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=routed, AttributeNames=["QueueArn"])
    events.put_rule(Name="all", EventBusName=name, EventPattern='{"source": ["outpost"]}')
    target = {"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}
    events.put_targets(Rule="all", EventBusName=name, Targets=[target])
    return {
        "aws_sqs": {"queue_url": queue, "endpoint": url},
        "aws_s3": {"bucket": f"{name}-bucket", "region": "us-east-1", "endpoint": url},
        "aws_eventbridge": {"event_bus_name": name, "region": "us-east-1", "endpoint": url},
    }


async def backlog(deps: Any, type_: str, config: dict[str, Any], n: int) -> None:
    """One destination of the type, and n events queued for it."""
    from outpost.models import Event

    await deps.redis.flushdb()
    await deps.store.upsert_tenant("bench", None)
    creds = {"key": KEY, "secret": SECRET}
    body = {"type": type_, "topics": "*", "config": config, "credentials": creds}
    dest = deps.registry.create("bench", body, "d1")
    await deps.store.create_destination(dest)
    now, pad = datetime.now(UTC), "x" * 200
    events = [
        Event(id=f"b{i}", tenant_id="bench", topic="orders", time=now, data={"n": i, "pad": pad})
        for i in range(n)
    ]
    await deps.queue.publish_many([(e, [(dest.id, e.id)], ()) for e in events])


async def case(redis_url: str, type_: str, config: dict[str, Any], n: int) -> float:
    """Events/s of one worker draining n queued events for one destination."""
    from outpost.deps import Deps
    from outpost.queue.connection import connect_redis
    from outpost.runtime import build_worker
    from outpost.settings import Settings

    settings = Settings(
        api_key=KEY * 2,
        aes_encryption_secret=SECRET,
        redis_url=redis_url,
        destinations_allow_private_endpoints=True,
        # moto answers one request at a time: a worker's 30+ concurrent batch calls queue
        # there, and the wait would count against the default 5 s timeout
        delivery_timeout_seconds=30,
    )
    redis = connect_redis(redis_url)
    deps = Deps.build(settings, redis)
    await backlog(deps, type_, config, n)
    worker = build_worker(deps, settings)
    started = time.monotonic()
    await worker.run_until_empty(limit=600)
    elapsed = time.monotonic() - started
    await deps.registry.close()
    await redis.aclose()
    return n / elapsed


async def run(n: int) -> dict[str, float]:
    """Each case on a fresh moto: its sends slow down as what it holds grows."""
    from outpost.dev import devstack

    redis = devstack.redis_server()
    redis.start()
    out: dict[str, float] = {}
    try:
        for type_ in ("aws_sqs", "aws_s3", "aws_eventbridge"):
            for batching in [False] if type_ == "aws_s3" else [False, True]:
                moto = devstack.moto_server().start()
                try:
                    config = resources(moto.url)[type_]
                    cfg = {**config, "batching": True} if batching else config
                    name = f"{type_}{'_batched' if batching else ''}_per_s"
                    out[name] = round(await case(redis.redis_url, type_, cfg, n), 1)
                finally:
                    moto.stop()
                print(f"{name:32} {out[name]:8.1f} events/s", flush=True)
    finally:
        redis.stop()
    return out


async def _answer(request: Any) -> Any:
    """A minimal AWS endpoint: every send succeeds at once (the client's ceiling)."""
    from aiohttp import web

    op = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
    if request.method == "PUT":
        await request.read()
        return web.Response(headers={"ETag": '"e"'})
    doc = json.loads(await request.read())
    if op == "SendMessageBatch":
        ok = [{"Id": e["Id"], "MessageId": e["Id"]} for e in doc["Entries"]]
        body: dict[str, Any] = {"Successful": ok, "Failed": []}
    elif op == "PutEvents":
        body = {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in doc["Entries"]]}
    else:
        body = {"MessageId": "m"}
    return web.json_response(body, content_type="application/x-amz-json-1.0")


async def ceiling(n: int) -> dict[str, float]:
    """The same cases against `_answer` on 127.0.0.1: what one worker can send at most."""
    from aiohttp import web

    from outpost.dev import devstack

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", _answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    configs = {
        "aws_sqs": {"queue_url": f"{url}/1/q", "endpoint": url},
        "aws_s3": {"bucket": "b-1", "region": "us-east-1", "endpoint": url},
        "aws_eventbridge": {"event_bus_name": "b", "region": "us-east-1", "endpoint": url},
    }
    redis = devstack.redis_server()
    redis.start()
    out: dict[str, float] = {}
    try:
        for type_, config in configs.items():
            for batching in [False] if type_ == "aws_s3" else [False, True]:
                name = f"ceiling_{type_}{'_batched' if batching else ''}_per_s"
                cfg = {**config, "batching": True} if batching else config
                out[name] = round(await case(redis.redis_url, type_, cfg, n), 1)
                print(f"{name:40} {out[name]:8.1f} events/s", flush=True)
    finally:
        redis.stop()
        await runner.cleanup()
    return out


def main(argv: list[str]) -> None:
    """`[N]` events per case against moto; `ceiling [N]` against a minimal endpoint."""
    if argv[:1] == ["ceiling"]:
        print(json.dumps(asyncio.run(ceiling(int(argv[1]) if argv[1:] else 2000))))
        return
    print(json.dumps(asyncio.run(run(int(argv[0]) if argv else 500))))


if __name__ == "__main__":
    main(sys.argv[1:])
