"""Operator alerts: consecutive failures per destination, exhausted retries, auto-disable.

The failure counter lives in Redis and is updated in the same step that records an
attempt (queue.complete), so every process sees one count. Alerts are POSTed to
`OPERATOR_EVENTS_HTTP_URL` in the background, signed with HMAC-SHA256; a slow or failing
operator endpoint never delays event delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import uuid
from typing import Any

import aiohttp
import structlog

from outpost.models import Task, iso, utcnow

log = structlog.get_logger("outpost.alerts")
LEVELS = (50, 70, 90, 100)
MAX_PENDING = 100


def thresholds(limit: int) -> dict[int, int]:
    """Failure count at which each level (percent of `limit`) is reached."""
    return {max(1, math.ceil(limit * pct / 100)): pct for pct in LEVELS}


def sign(secret: str, body: bytes) -> str:
    return "v0=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Alerts:
    def __init__(
        self,
        url: str = "",
        secret: str = "",
        limit: int = 100,
        auto_disable: bool = False,
        timeout: float = 5.0,
    ):
        self.url = url
        self.secret = secret
        self.levels = thresholds(limit)
        self.limit = limit
        self.auto_disable = auto_disable
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def level(self, failures: int | None) -> int | None:
        """The percent level this failure count has just reached, if any."""
        return None if failures is None else self.levels.get(failures)

    def alert(self, topic: str, task: Task, data: dict[str, Any]) -> None:
        """Queue an alert for sending; returns at once."""
        about = {
            "destination_id": task.destination_id,
            "event_id": task.event_id,
            "attempt_number": task.attempt,
        }
        self.operator_event(topic, task.tenant_id, {**about, **data})

    def operator_event(self, topic: str, tenant_id: str, data: dict[str, Any]) -> None:
        """Queue any operator event (an alert, a flow run's end) for sending; returns at
        once."""
        if not self.url:
            return
        if len(self._pending) >= MAX_PENDING:
            log.warning("alert_dropped", topic=topic, reason="too many alerts in flight")
            return
        body = {
            "id": f"alt_{uuid.uuid4().hex}",
            "topic": topic,
            "time": iso(utcnow()),
            "tenant_id": tenant_id,
            "data": data,
        }
        t = asyncio.create_task(self._post(body))
        self._pending.add(t)
        t.add_done_callback(self._pending.discard)

    async def _post(self, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers["X-Outpost-Signature"] = sign(self.secret, raw)
        try:
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout)
                )
            async with self._session.post(self.url, data=raw, headers=headers) as resp:
                if resp.status >= 300:
                    log.warning("alert_rejected", topic=body["topic"], status=resp.status)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("alert_failed", topic=body["topic"], error=str(exc))

    async def flush(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        await self.flush()
        if self._session is not None:
            await self._session.close()
            self._session = None
