"""Batches for a batching Pub/Sub destination: the worker hands over one record per event,
and records bound for the same topic with the same client gather here into one Publish
call, sent when it holds `batch_max_records`, when the next record would take it past
10 MB, or `batch_linger_ms` after its first record. Each record's sender waits for its
own result; a failed call fails its records alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from outpost.destinations.gcp_pubsub.config import MAX_BATCH_BYTES
from outpost.destinations.gcp_pubsub.format import Record
from outpost.errors import RetryableError

Publish = Callable[[list[Record]], Awaitable[list[str]]]


@dataclass
class _Batch:
    publish: Publish
    records: list[Record] = field(default_factory=list)
    waiters: list[asyncio.Future[tuple[str, int]]] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher:
    def __init__(self) -> None:
        self._open: dict[str, _Batch] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def add(
        self, key: str, record: Record, publish: Publish, max_records: int, linger: float
    ) -> asyncio.Future[tuple[str, int]]:
        """`key`: the client and topic; the future of (message id, records in its call)."""
        batch = self._open.get(key)
        if batch is not None and batch.size + record.size > MAX_BATCH_BYTES:
            self._flush(key)
            batch = None
        loop = asyncio.get_running_loop()
        if batch is None:
            batch = self._open[key] = _Batch(publish)
            batch.timer = loop.call_later(linger, self._flush, key)
        done: asyncio.Future[tuple[str, int]] = loop.create_future()
        batch.records.append(record)
        batch.waiters.append(done)
        batch.size += record.size
        if len(batch.records) >= max_records:
            self._flush(key)
        return done

    def _flush(self, key: str) -> None:
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Batch) -> None:
        n = len(batch.records)
        try:
            ids = await batch.publish(batch.records)
            for waiter, message_id in zip(batch.waiters, ids, strict=False):
                if not waiter.done():
                    waiter.set_result((message_id, n))
        except Exception as exc:
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
        finally:  # no sender waits on a call that is over, whatever it answered
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(
                        RetryableError("server_error", "Publish answered fewer message ids")
                    )

    async def close(self) -> None:
        for key in list(self._open):
            self._flush(key)
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
