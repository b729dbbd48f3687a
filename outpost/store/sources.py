"""What the Kinesis source reader keeps in Redis, per flow: a lease per shard (one reader
across all processes), the checkpoint per shard (moved only by the lease holder, with the
flow's record counters and the current run window's counts, in one script), and the
latest records it could not turn into events. Runs are read in store/runs.py."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from outpost.queue.keys import Keys
from outpost.queue.lua import register

FAILED_KEPT = 1000  # latest failed records kept per flow (approximate)


class SourceState:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        window_seconds: float = 3600,
        retention_seconds: float = 7 * 24 * 3600,
    ):
        self.redis = redis
        self.keys = keys
        self.window_ms = max(1, int(window_seconds * 1000))  # a run is one window
        self.retention_ms = int(retention_seconds * 1000)
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
        self,
        flow_id: str,
        shard_id: str,
        owner: str,
        position: str,
        counts: tuple[int, int, int],
        errors: dict[str, int] | None = None,
        lease: str | None = None,
    ) -> bool:
        """Move the shard's checkpoint and add (read, published, failed) to the flow's
        counters and to the current run window (with the failed records per error code),
        only while `owner` holds the lease (the shard's, or `lease`); False when it does
        not. An S3 flow's "shard" is an object key."""
        now = int(time.time() * 1000)
        window = now - now % self.window_ms
        keys = [
            self._key(flow_id, f"lease:{lease or shard_id}"),
            self._key(flow_id, "checkpoints"),
            self._key(flow_id, "metrics"),
            self._key(flow_id, f"run:{window}"),
            self._key(flow_id, "runs"),
            self._key(flow_id, "runs_open"),
        ]
        args: list[str | int] = [owner, shard_id, position, *counts, now, window]
        args += [self.window_ms + self.retention_ms, now - self.retention_ms]
        for code, n in sorted((errors or {}).items()):
            args += [code, n]
        return bool(await self._checkpoint(keys=keys, args=args))

    async def last_due(self, flow_id: str) -> int | None:
        """An S3 flow's last scheduled run that finished (epoch seconds)."""
        raw: Any = await self.redis.get(self._key(flow_id, "s3_due"))
        return None if raw is None else int(raw)

    async def set_last_due(self, flow_id: str, due: int) -> None:
        await self.redis.set(self._key(flow_id, "s3_due"), due)

    async def keep_failed(self, flow_id: str, entries: list[dict[str, str]]) -> None:
        """The batch's failed records, in one round trip."""
        if not entries:
            return
        pipe = self.redis.pipeline(transaction=False)
        for fields in entries:
            entry: dict[Any, Any] = dict(fields)
            pipe.xadd(self._key(flow_id, "failed"), entry, maxlen=FAILED_KEPT, approximate=True)
        await pipe.execute()
