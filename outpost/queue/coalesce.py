"""Group commit for Redis round trips.

Calls that arrive while a batch is in flight wait and go together in the next one: under
load one round trip (and one command to pack) serves many callers, and an idle caller waits
for nothing extra. Each caller gets its own result or its own exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    def __init__(
        self, run_many: Callable[[list[T]], Awaitable[Sequence[Any]]], max_batch: int = 500
    ):
        """`run_many(items)` returns one result per item; an exception instance in the
        results is raised to that item's caller only. If it raises, every caller of the
        batch gets the exception."""
        self._run_many = run_many
        self._max = max_batch
        self._pending: list[tuple[T, asyncio.Future[Any]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> Any:
        return await self.submit_soon(item)

    def submit_soon(self, item: T) -> asyncio.Future[Any]:
        """Queue the item now, await its result later (callers with many items queue them
        all first, so they share one batch)."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return done

    async def _run(self) -> None:
        while self._pending:
            batch = self._pending[: self._max]
            del self._pending[: self._max]
            try:
                results = await self._run_many([item for item, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), result in zip(batch, results, strict=True):
                if done.done():
                    continue
                if isinstance(result, BaseException):
                    done.set_exception(result)
                else:
                    done.set_result(result)
