"""Batch calls for the types whose service takes several records per call (SQS
SendMessageBatch, EventBridge PutEvents, Pub/Sub Publish, Service Bus batch sends).

A batch gathers the records bound for one target (same client, same queue, bus, topic or
entity): it is sent when it holds `max_items`, when the next record would take it past
`max_bytes`, or `linger` seconds after its first record. The type's `send(context, items)`
answers one result per item, in order: a dict (delivered) or an exception (that record
alone failed); if the call itself fails, every record of the batch fails with its
exception. Each caller awaits the future of its own record, whose result carries
`batch_size` (the records of its call, unless `send` says otherwise).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from outpost.errors import RetryableError

Item = TypeVar("Item")
Answer = dict[str, Any] | BaseException
Send = Callable[[Any, Sequence[Item]], Awaitable[Sequence[Answer]]]


@dataclass
class _Batch(Generic[Item]):
    context: Any
    items: list[Item] = field(default_factory=list)
    waiters: list[asyncio.Future[dict[str, Any]]] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class Batcher(Generic[Item]):
    def __init__(self, send: Send[Item], max_items: int, max_bytes: int | None = None):
        """`max_bytes`: None when the service's size limit is the type's to apply."""
        self._send_call = send
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._open: dict[Hashable, _Batch[Item]] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def add(
        self,
        key: Hashable,
        context: Any,
        item: Item,
        size: int,
        linger: float,
        max_items: int | None = None,
    ) -> asyncio.Future[dict[str, Any]]:
        """`key` names the target (batches never mix targets); `context` is what `send`
        needs to reach it (client, queue URL), taken from the batch's first record;
        `max_items`: the destination's own limit, below the type's."""
        loop = asyncio.get_running_loop()
        batch = self._open.get(key)
        if batch is not None and batch.size + size > (self.max_bytes or float("inf")):
            self._flush(key)
            batch = None
        if batch is None:
            batch = self._open[key] = _Batch(context)
            batch.timer = loop.call_later(linger, self._flush, key)
        done: asyncio.Future[dict[str, Any]] = loop.create_future()
        batch.items.append(item)
        batch.waiters.append(done)
        batch.size += size
        if len(batch.items) >= min(max_items or self.max_items, self.max_items):
            self._flush(key)
        return done

    def _flush(self, key: Hashable) -> None:
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Batch[Item]) -> None:
        try:
            answers = list(await self._send_call(batch.context, batch.items))
            if len(answers) != len(batch.items):
                raise RetryableError(
                    "server_error", f"{len(answers)} answers for {len(batch.items)} entries"
                )
        except BaseException as exc:  # the whole call failed: every entry with it
            answers = [exc] * len(batch.items)
            if not isinstance(exc, Exception):
                _settle(batch.waiters, answers, len(batch.items))
                raise
        _settle(batch.waiters, answers, len(batch.items))

    async def close(self) -> None:
        for key in list(self._open):
            self._flush(key)
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


def _settle(
    waiters: list[asyncio.Future[dict[str, Any]]], answers: list[Answer], size: int
) -> None:
    for done, answer in zip(waiters, answers, strict=True):
        if done.done():
            continue
        if isinstance(answer, BaseException):
            done.set_exception(answer)
        else:
            done.set_result({**answer, "batch_size": answer.get("batch_size", size)})
