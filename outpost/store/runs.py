"""A flow's runs as the source readers count them (store/sources.py writes them): one run
per window (FLOW_RUN_WINDOW_SECONDS, hourly by default) with its record counts and its
failed records per error code, forgotten after EVENT_RETENTION_SECONDS; and the run
notifications of an org's sandbox, the latest kept."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from outpost.queue.keys import Keys
from outpost.queue.lua import register

NOTIFICATIONS_KEPT = 1000  # per org and sandbox (approximate)


class RunStore:
    def __init__(self, redis: Redis, keys: Keys, window_ms: int):
        self.redis = redis
        self.keys = keys
        self.window_ms = window_ms
        self._close = register(redis, "outpost.store", "close_runs")

    def _key(self, flow_id: str, what: str) -> str:
        return self.keys.flow_state(flow_id, what)

    async def windows(self, flow_id: str) -> list[int]:
        raw: Any = await self.redis.zrange(self._key(flow_id, "runs"), 0, -1)
        return [int(w) for w in raw]

    async def runs(self, flow_id: str, windows: list[int]) -> list[dict[str, Any]]:
        """Each window's counts (windows whose run has expired are left out)."""
        pipe = self.redis.pipeline(transaction=False)
        for w in windows:
            pipe.hgetall(self._key(flow_id, f"run:{w}"))
        found = await pipe.execute()
        return [
            _counts(w, raw, self.window_ms) for w, raw in zip(windows, found, strict=True) if raw
        ]

    async def close_ended(self, flow_id: str, now_ms: int) -> list[dict[str, Any]]:
        """The runs whose window has ended and that nobody has closed yet: each is handed
        to exactly one caller, across all processes."""
        ended: Any = await self._close(
            keys=[self._key(flow_id, "runs_open")], args=[now_ms - self.window_ms]
        )
        return await self.runs(flow_id, [int(w) for w in ended])

    async def notify(self, org: str, sandbox: str, note: dict[str, Any]) -> None:
        fields = {k: str(v) for k, v in note.items()}
        await self.redis.xadd(
            self.keys.flow_notifications(org, sandbox),
            fields,  # type: ignore[arg-type]
            maxlen=NOTIFICATIONS_KEPT,
            approximate=True,
        )

    async def notifications(self, org: str, sandbox: str, count: int) -> list[dict[str, str]]:
        """The latest first."""
        raw: Any = await self.redis.xrevrange(
            self.keys.flow_notifications(org, sandbox), count=count
        )
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in raw]


def _counts(window: int, raw: dict[bytes, bytes], window_ms: int) -> dict[str, Any]:
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    errors = {k[6:]: int(v) for k, v in fields.items() if k.startswith("error:")}
    return {
        "window": window,
        "windowEnd": window + window_ms,
        "started": int(fields.get("started_ms", window)),
        "last": int(fields.get("last_ms", window)),
        "input": int(fields.get("input", 0)),
        "output": int(fields.get("output", 0)),
        "failed": int(fields.get("failed", 0)),
        "errors": errors,
    }
