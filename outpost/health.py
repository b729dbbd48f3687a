"""Whether the API's Redis answers: one warning when an outage starts, one info line when
it ends, however many requests fail in between.

`GET /healthz` (readiness: 503 while Redis does not answer, or is full: at its maxmemory
with noeviction it refuses every write) and the error middleware report
here; while Redis is down, a background check notices its return even without probes.

`probe_app` is the probe port (HEALTH_PORT) of every serving process: `/healthz` answers
while the process runs (liveness: never touches Redis, so an outage restarts nothing) and
`/readyz` while Redis answers and the process's loops run (readiness).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from aiohttp import web
from redis.asyncio import Redis

from outpost.queue.connection import redis_address, redis_reason

log = structlog.get_logger("outpost.api")
PING_TIMEOUT = 2.0  # a readiness answer within a probe's patience, even if Redis hangs
RECHECK_SECONDS = 2.0


class RedisWatch:
    def __init__(self, redis: Redis, url: str):
        self.redis = redis
        self.address = redis_address(url)
        self.down_since: float | None = None

    async def ping(self) -> bool:
        """Ping Redis, record the outcome; True if it answered."""
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                await self.redis.ping()
                memory = await self.redis.info("memory")
        except TimeoutError:  # the client was still retrying its connection
            self._down(f"no answer within {PING_TIMEOUT:g} s")
            return False
        except Exception as exc:  # any failure to reach Redis is "down", never a 500
            self.failed(exc)
            return False
        if full(memory):
            self._down("out of memory (maxmemory reached)")
            return False
        self.answered()
        return True

    def failed(self, exc: BaseException) -> None:
        self._down(redis_reason(exc))

    def _down(self, reason: str) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("redis_unavailable", address=self.address, error=reason)

    def answered(self) -> None:
        if self.down_since is not None:
            down = round(time.monotonic() - self.down_since, 1)
            self.down_since = None
            log.info("redis_available", address=self.address, down_seconds=down)

    async def recheck(self, interval: float = RECHECK_SECONDS) -> None:
        """While an outage lasts, ping now and then to see it end."""
        while True:
            await asyncio.sleep(interval)
            if self.down_since is not None:
                await self.ping()


def full(memory: dict[str, Any]) -> bool:
    """Redis refuses writes: at its maxmemory with nothing it may evict (noeviction)."""
    limit = int(memory.get("maxmemory", 0) or 0)
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    return bool(limit) and policy == "noeviction" and int(memory["used_memory"]) >= limit


HEALTH = web.AppKey("health", RedisWatch)


async def watching(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the background recheck, for the app's lifetime."""
    task = asyncio.create_task(app[HEALTH].recheck())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


LIVE_PATH = "/healthz"
READY_PATH = "/readyz"


def probe_app(watch: RedisWatch, loops: Callable[[], dict[str, bool]]) -> web.Application:
    """The probe port's application. `loops` names each loop of the process (worker,
    source, api) and whether it still runs."""

    async def alive(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def ready(request: web.Request) -> web.Response:
        checks = {"redis": await watch.ping(), **loops()}
        ok = all(checks.values())
        body = {
            "status": "ready" if ok else "not_ready",
            "checks": {name: "ok" if up else "failed" for name, up in checks.items()},
        }
        return web.json_response(body, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get(LIVE_PATH, alive)
    app.router.add_get(READY_PATH, ready)
    return app
