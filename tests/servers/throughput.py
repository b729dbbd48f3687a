"""Throughput of one worker for the kafka and gcp_pubsub types (a measurement, not a test):

    .venv/bin/python -m tests.servers.throughput [N]

For each type, single sends and batched: N queued events to one destination, one worker
(in this process, as `outpost worker` runs it) drains them; prints events/s. Kafka goes
to Tansu through the SASL front (in a process of its own, so it does not share this
process's CPU); Pub/Sub to the emulator directly (its plain emulator mode)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sys
import time
from datetime import UTC, datetime
from typing import Any

from outpost import logs
from outpost.deps import Deps
from outpost.dev import devstack
from outpost.models import Event
from outpost.queue.connection import connect_redis
from outpost.runtime import build_worker
from tests.conftest import make_settings


def _serve_kafka(topics: list[str], ready: Any, stop: Any) -> None:
    from tests.servers.kafka import USERS, KafkaServer

    server = KafkaServer().start()
    for topic in topics:
        server.create_topic(topic, partitions=4)
    ready.put((server.url, USERS["alice"]))
    stop.wait()
    server.stop()


async def drain(redis_url: str, body: dict[str, Any], n: int) -> float:
    settings = make_settings(
        redis_url, delivery_timeout_seconds=10, delivery_reclaim_idle_seconds=11
    )
    redis = connect_redis(redis_url)
    await redis.flushdb()
    deps = Deps.build(settings, redis)
    await deps.store.upsert_tenant("bench", None)
    dest = deps.registry.create("bench", body, "d1")
    await deps.store.create_destination(dest)
    now = datetime.now(UTC)
    for start in range(0, n, 1000):
        chunk = []
        for i in range(start, min(n, start + 1000)):
            ev = Event(
                id=f"b{i}",
                tenant_id="bench",
                topic="orders",
                time=now,
                data={"n": i, "pad": "x" * 200},
            )
            chunk.append((ev, [(dest.id, ev.id)], ()))
        await deps.queue.publish_many(chunk)
    worker = build_worker(deps, settings)
    started = time.monotonic()
    runner = asyncio.create_task(worker.run())
    while True:  # polling the queue's depth: the worker has no "empty" signal
        if (await deps.queue.depth())["queued"] == 0:
            break
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    worker.stop()
    await runner
    attempts = await deps.queue.attempts("bench", dest.id, count=n + 10)
    ok = sum(a["status"] == "success" for a in attempts)
    await deps.registry.close()
    await redis.aclose()
    assert ok == n, f"{ok} of {n} delivered"
    return n / elapsed


def kafka_body(url: str, password: str, topic: str, batching: bool) -> dict[str, Any]:
    return {
        "type": "kafka",
        "topics": "*",
        "config": {
            "brokers": url,
            "topic": topic,
            "sasl_mechanism": "scram-sha-256",
            "tls": "false",
            "batching": batching,
        },
        "credentials": {"username": "alice", "password": password},
    }


def pubsub_body(host: str, topic: str, batching: bool) -> dict[str, Any]:
    return {
        "type": "gcp_pubsub",
        "topics": "*",
        "config": {
            "project_id": "outpost-test",
            "topic": topic,
            "endpoint": host,
            "batching": batching,
        },
        "credentials": {"service_account_json": json.dumps({"type": "service_account"})},
    }


async def measure(n: int) -> dict[str, float]:
    from tests.servers.pubsub import PubSubServer

    logs.configure("error")
    redis = devstack.redis_server().start()
    ready: Any = multiprocessing.Queue()
    stop = multiprocessing.Event()
    kafka = multiprocessing.Process(target=_serve_kafka, args=(["single", "batched"], ready, stop))
    kafka.start()
    pubsub = PubSubServer().start()
    out: dict[str, float] = {}
    try:
        url, password = ready.get(timeout=60)
        for batching in (False, True):
            mode = "batched" if batching else "single"
            out[f"kafka {mode}"] = await drain(
                redis.redis_url, kafka_body(url, password, mode, batching), n
            )
            pubsub.create_topic(f"bench-{mode}")
            body = pubsub_body(pubsub.host, f"bench-{mode}", batching)
            out[f"gcp_pubsub {mode}"] = await drain(redis.redis_url, body, n)
    finally:
        stop.set()
        kafka.join(30)
        pubsub.stop()
        redis.stop()
    return out


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    for name, rate in asyncio.run(measure(n)).items():
        print(f"{name:22} {rate:8.0f} events/s  ({n} events, one worker)")
