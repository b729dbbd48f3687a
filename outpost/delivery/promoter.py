"""The retry promoter: due retries back into their partition streams. Runs beside the API
(and inside every worker); the promote script is safe in many processes at once."""

from __future__ import annotations

import asyncio
import contextlib

from outpost.queue.connection import REDIS_DOWN
from outpost.queue.streams import Queue


async def promote_loop(queue: Queue, stopping: asyncio.Event, interval: float = 0.5) -> None:
    """Due retries back into their streams; safe to run in many processes at once."""
    while not stopping.is_set():
        with contextlib.suppress(*REDIS_DOWN):
            while await queue.promote_due() > 0:
                pass
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
