"""Throughput of one `outpost worker` process delivering to a local RabbitMQ broker, single
and batched (pipelined confirms): a measurement, not a test.

    .venv/bin/python -m tests.bench_rabbitmq [events]

Starts a private redis-server and rabbitmq-server (the test fixtures' launchers), queues
`events` events for one rabbitmq destination whose exchange has a bound queue, then
times a worker process draining them; prints one JSON line per mode."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

import aio_pika

from outpost.dev import bench, devstack
from outpost.models import Event
from tests.servers.rabbitmq import RabbitServer, rabbit_server


async def prefill(redis_url: str, server: RabbitServer, n: int, batching: bool) -> Any:
    from outpost.deps import Deps
    from outpost.queue.connection import connect_redis
    from outpost.settings import Settings

    settings = Settings(api_key=bench.KEY, aes_encryption_secret=bench.SECRET, redis_url=redis_url)
    redis = connect_redis(redis_url)
    deps = Deps.build(settings, redis)
    await redis.flushdb()
    await deps.store.upsert_tenant("bench", None)
    body = {
        "type": "rabbitmq",
        "topics": "*",
        "config": {"server_url": server.server_url, "exchange": "bench", "batching": batching},
        "credentials": {"username": "outpost", "password": server.users["outpost"]},
    }
    dest = deps.registry.create("bench", body, "d1")
    await deps.store.create_destination(dest)
    now = datetime.now(UTC)
    for start in range(0, n, 1000):
        chunk: list[Any] = []
        for i in range(start, min(n, start + 1000)):
            data = {"n": i, "pad": "x" * 200}
            ev = Event(id=f"b{i}", tenant_id="bench", topic="orders", time=now, data=data)
            chunk.append((ev, [(dest.id, ev.id)], ()))
        await deps.queue.publish_many(chunk)
    return deps


async def bound_queue(server: RabbitServer) -> int:
    connection = await aio_pika.connect(server.amqp_url())
    channel = await connection.channel()
    exchange = await channel.declare_exchange("bench", "topic")
    queue = await channel.declare_queue("bench-q")
    await queue.bind(exchange, "#")
    await queue.purge()
    count = queue.declaration_result.message_count or 0
    await connection.close()
    return count


async def queued(server: RabbitServer) -> int:
    connection = await aio_pika.connect(server.amqp_url())
    channel = await connection.channel()
    queue = await channel.declare_queue("bench-q", passive=True)
    await connection.close()
    return int(queue.declaration_result.message_count or 0)


async def main(n: int) -> None:
    redis = devstack.redis_server().start()
    server = rabbit_server().start()
    try:
        for batching in (False, True):
            await bound_queue(server)
            deps = await prefill(redis.redis_url, server, n, batching)
            env = bench.service_env(redis.redis_url, devstack.free_port(), 64)
            rate, rss, done = await bench.drain(deps, env, n, limit=300)
            arrived = await queued(server)
            mode = "batched" if batching else "single"
            figures = {"mode": mode, "events": n, "delivered": done, "in_queue": arrived}
            print(json.dumps({**figures, "events_per_s": round(rate), "worker_rss_mib": rss}))
            await deps.redis.aclose()
    finally:
        server.stop()
        redis.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
