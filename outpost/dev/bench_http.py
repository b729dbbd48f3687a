"""Throughput of one worker delivering to the HTTP types (webhook, hookdeck) against a
local receiver (not a test: figures for the issue's closing note). HTTP has no batch
call, so there is one figure per type: every event is its own signed POST.

    python -m outpost.dev.bench_http [N]          # N events per type (default 5000)
    python -m outpost.dev.bench_http receiver PORT  # the receiver alone (a 200 to any POST)
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from outpost.dev.bench_parts import KEY

SECRET = "bench-aes-secret-16+"
TOKEN = base64.b64encode(b"src_bench:key").decode()


def receiver_app() -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", ok)
    return app


def bodies(url: str) -> dict[str, dict[str, Any]]:
    return {
        "webhook": {"type": "webhook", "topics": "*", "config": {"url": f"{url}/hook"}},
        "hookdeck": {"type": "hookdeck", "topics": "*", "credentials": {"token": TOKEN}},
    }


async def one(type_: str, url: str, redis_url: str, n: int) -> float:
    """`n` events queued for one destination of `type_`, drained by one worker: events/s."""
    from outpost.deps import Deps
    from outpost.models import Event
    from outpost.queue.connection import connect_redis
    from outpost.runtime import build_worker
    from outpost.settings import Settings

    settings = Settings(
        api_key=KEY,
        aes_encryption_secret=SECRET,
        redis_url=redis_url,
        destinations_allow_private_endpoints=True,
        destinations_hookdeck_url=url,
    )
    redis = connect_redis(redis_url)
    deps = Deps.build(settings, redis)
    await redis.flushdb()
    await deps.store.upsert_tenant("bench", None)
    dest = deps.registry.create("bench", bodies(url)[type_], "d1")
    await deps.store.create_destination(dest)
    now = datetime.now(UTC)
    for start in range(0, n, 1000):
        chunk: list[Any] = []
        for i in range(start, min(n, start + 1000)):
            ev = Event(f"b{i}", "bench", "orders", now, {"n": i, "pad": "x" * 200})
            chunk.append((ev, [(dest.id, ev.id)], ()))
        await deps.queue.publish_many(chunk)
    worker = build_worker(deps, settings)
    started = time.monotonic()
    runner = asyncio.create_task(worker.run())
    while True:
        if (await deps.queue.depth())["queued"] == 0:
            break
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    worker.stop()
    await runner
    await deps.registry.close()
    await redis.aclose()
    return n / elapsed


async def run(n: int) -> dict[str, float]:
    from outpost import logs
    from outpost.dev import devstack

    logs.configure("error")
    port = devstack.free_port()
    rx = devstack.Server(
        [sys.executable, "-m", "outpost.dev.bench_http", "receiver", str(port)], port
    )
    rx.start()
    redis = devstack.redis_server()
    redis.start()
    try:
        return {t: round(await one(t, rx.url, redis.redis_url, n)) for t in bodies(rx.url)}
    finally:
        rx.stop()
        redis.stop()


def main(argv: list[str]) -> None:
    if argv and argv[0] == "receiver":
        web.run_app(receiver_app(), host="127.0.0.1", port=int(argv[1]), print=None)
        return
    n = int(argv[0]) if argv else 5000
    figures = asyncio.run(run(n))
    print(f"{n} events per type, one worker, events/s: {figures}")


if __name__ == "__main__":
    main(sys.argv[1:])
