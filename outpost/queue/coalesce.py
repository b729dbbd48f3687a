"""Group commit for Redis round trips.

Calls that arrive while a batch is in flight wait and go together in the next one: under
load one round trip (and one command to pack) serves many callers, and an idle caller waits
for nothing extra. Each caller gets its own result or its own exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False)
class _Many:
    """The callers' side of `submit_many`: one future for many items' results."""

    done: asyncio.Future[list[Any]]
    results: list[Any] = field(default_factory=list)
    left: int = 0

    def put(self, at: int, result: Any) -> None:
        self.results[at] = result
        self.left -= 1
        if not self.left and not self.done.done():
            self.done.set_result(self.results)


class Coalescer(Generic[T]):
    def __init__(
        self, run_many: Callable[[list[T]], Awaitable[Sequence[Any]]], max_batch: int = 500
    ):
        """`run_many(items)` returns one result per item; an exception instance in the
        results is raised to that item's caller only. If it raises, every caller of the
        batch gets the exception."""
        self._run_many = run_many
        self._max = max_batch
        # each item with its caller: its own future, or (a `_Many`, its place in it)
        self._pending: list[tuple[T, asyncio.Future[Any] | tuple[_Many, int]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> Any:
        return await self.submit_soon(item)

    def submit_soon(self, item: T) -> asyncio.Future[Any]:
        """Queue the item now, await its result later (callers with many items queue them
        all first, so they share one batch)."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        self._wake()
        return done

    def submit_many(self, items: list[T]) -> asyncio.Future[list[Any]]:
        """Queue many items now; one future for their results in order, each a result or
        its own exception instance (never raised: the caller looks at each)."""
        many = _Many(asyncio.get_running_loop().create_future(), [None] * len(items))
        many.left = len(items)
        if not items:
            many.done.set_result([])
        self._pending += [(item, (many, i)) for i, item in enumerate(items)]
        self._wake()
        return many.done

    def _wake(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self._pending:
            batch = self._pending[: self._max]
            del self._pending[: self._max]
            try:
                results: Sequence[Any] = await self._run_many([item for item, _ in batch])
            except Exception as exc:
                results = [exc] * len(batch)
            for (_, caller), result in zip(batch, results, strict=True):
                if isinstance(caller, tuple):
                    caller[0].put(caller[1], result)
                elif caller.done():
                    continue
                elif isinstance(result, BaseException):
                    caller.set_exception(result)
                else:
                    caller.set_result(result)
