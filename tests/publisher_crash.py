"""A publishing process that kills itself (SIGKILL) between the steps of a publish, for
tests/test_outbox.py: `python -m tests.publisher_crash <redis> <mode> <batch>` where
<redis> is a redis:// URL or `cluster:<port>`, <mode> `stored` (after the tenant step,
before the drain) or `drained` (after the tasks are queued, before the outbox is
cleared), <batch> the batch whose publish dies. Prints each acknowledged event id."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from outpost.deps import Deps
from outpost.models import Event
from outpost.queue.outbox import Outbox
from tests.conftest import make_settings

BATCH = 20
DESTINATIONS = ("d1", "d2")


def client(target: str) -> Any:
    if target.startswith("cluster:"):
        return RedisCluster(host="127.0.0.1", port=int(target.split(":")[1]))
    return Redis.from_url(target)


def die_in_drain(mode: str, at: int) -> None:
    original = Outbox.drain
    seen = 0

    async def drain(self: Outbox, owed: list[tuple[str, str]]) -> None:
        nonlocal seen
        seen += 1
        if seen == at:
            if mode == "drained":
                await self._queue_calls(owed).run(self.redis)
            os.kill(os.getpid(), signal.SIGKILL)
        await original(self, owed)

    Outbox.drain = drain  # type: ignore[method-assign]


async def main(target: str, mode: str, at: int) -> None:
    redis = client(target)
    deps = Deps.build(make_settings("redis://127.0.0.1:1/0"), redis)
    die_in_drain(mode, at)
    for b in range(at + 5):
        now = datetime.now(UTC)
        batch = [
            (Event(id=f"e{b}-{i}", tenant_id="acme", topic="t", time=now, data={}), routes, ())
            for i in range(BATCH)
            for routes in [[(d, f"e{b}-{i}") for d in DESTINATIONS]]
        ]
        results = await deps.queue.publish_many(batch)
        for (event, _, _), ok in zip(batch, results, strict=True):
            if ok is True:
                print(event.id, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
