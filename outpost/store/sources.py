"""What the Kinesis source reader keeps in Redis, per flow: a lease per shard (one reader
across all processes), the checkpoint per shard (moved only by the lease holder, with the
flow's record counters, in one script), and the latest records it could not turn into
events."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from outpost.queue.keys import Keys
from outpost.queue.lua import register

FAILED_KEPT = 1000  # latest failed records kept per flow (approximate)


class SourceState:
    def __init__(self, redis: Redis, keys: Keys):
        self.redis = redis
        self.keys = keys
        self._lease = register(redis, "outpost.store", "lease")
        self._release = register(redis, "outpost.store", "release")
        self._checkpoint = register(redis, "outpost.store", "checkpoint")

    def _key(self, flow_id: str, what: str) -> str:
        return self.keys.flow_state(flow_id, what)

    async def lease(self, flow_id: str, shard_id: str, owner: str, ms: int) -> bool:
        """Take or extend the shard's lease for `ms`; False while another owner holds it."""
        key = self._key(flow_id, f"lease:{shard_id}")
        return bool(await self._lease(keys=[key], args=[owner, ms]))

    async def release(self, flow_id: str, shard_id: str, owner: str) -> None:
        await self._release(keys=[self._key(flow_id, f"lease:{shard_id}")], args=[owner])

    async def checkpoints(self, flow_id: str) -> dict[str, str]:
        raw: Any = await self.redis.hgetall(self._key(flow_id, "checkpoints"))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def checkpoint_of(self, flow_id: str, shard_id: str) -> str | None:
        seq: Any = await self.redis.hget(self._key(flow_id, "checkpoints"), shard_id)
        return None if seq is None else str(seq.decode())

    async def checkpoint(
        self, flow_id: str, shard_id: str, owner: str, position: str, counts: tuple[int, int, int]
    ) -> bool:
        """Move the shard's checkpoint and add (read, published, failed) to the flow's
        counters, only while `owner` holds the lease; False when it does not."""
        keys = [
            self._key(flow_id, f"lease:{shard_id}"),
            self._key(flow_id, "checkpoints"),
            self._key(flow_id, "metrics"),
        ]
        args: list[str | int] = [owner, shard_id, position, *counts, int(time.time() * 1000)]
        return bool(await self._checkpoint(keys=keys, args=args))

    async def keep_failed(self, flow_id: str, fields: dict[str, str]) -> None:
        entry: dict[Any, Any] = dict(fields)
        await self.redis.xadd(
            self._key(flow_id, "failed"), entry, maxlen=FAILED_KEPT, approximate=True
        )
