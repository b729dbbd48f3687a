"""The queue gauges of /metrics (each partition's depth and oldest task's age, the retry
schedule, the dead letters), refreshed every METRICS_REFRESH_SECONDS by every serving
process: one pipelined read each time, never one per scrape. Every process reports the
same values; dashboards take their max."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from outpost.deps import Deps
from outpost.queue.connection import REDIS_DOWN
from outpost.queue.sizes import read_sizes
from outpost.telemetry import Telemetry

log = structlog.get_logger("outpost")


async def refresh(deps: Deps) -> None:
    """Read the queue's sizes once into the gauges."""
    sizes = await read_sizes(deps.redis, deps.keys, deps.settings.delivery_partitions)
    set_sizes(deps.telemetry, sizes.depth, sizes.oldest_age, sizes.retries, sizes.dead_letters)


def set_sizes(
    telemetry: Telemetry,
    depth: dict[int, int],
    ages: dict[int, float],
    retries: int,
    dead_letters: int,
) -> None:
    for n, tasks in depth.items():
        telemetry.queue_depth.labels(str(n)).set(tasks)
        telemetry.queue_age.labels(str(n)).set(round(ages[n], 3))
    telemetry.retry_size.set(retries)
    telemetry.dead_size.set(dead_letters)


async def refresh_loop(deps: Deps, stopping: asyncio.Event, interval: float) -> None:
    """Refresh the gauges until `stopping`; a Redis outage leaves their last values."""
    while not stopping.is_set():
        try:
            await refresh(deps)
        except REDIS_DOWN:
            pass
        except Exception:  # a gauge is never worth a crash: said, tried again next time
            log.exception("metrics_refresh_failed")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
