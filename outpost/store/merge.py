"""Scatter-gather: the entries of several sorted indexes (each walked in order) as one
walk in that order. The admin's listings of every event and every attempt are kept per
partition (each a slot of its own on Redis Cluster) and read through this."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator
from typing import Any

Entry = tuple[float, str]  # (score, member)


class _Order:
    """An entry's place in the walk: by (score, member), or reversed."""

    __slots__ = ("descending", "entry")

    def __init__(self, entry: Entry, descending: bool):
        self.entry, self.descending = entry, descending

    def __lt__(self, other: _Order) -> bool:
        if self.descending:
            return self.entry > other.entry
        return self.entry < other.entry


async def _next(walk: AsyncIterator[Entry]) -> Entry | None:
    try:
        return await anext(walk)
    except StopAsyncIteration:
        return None


async def walk_all(walks: list[AsyncIterator[Entry]], descending: bool) -> AsyncIterator[Entry]:
    """The walks merged (each already in the order `descending` says); their first
    reads go out together."""
    if len(walks) == 1:
        async for entry in walks[0]:
            yield entry
        return
    heads = await asyncio.gather(*(_next(w) for w in walks))
    heap: list[tuple[_Order, int, Any]] = [
        (_Order(h, descending), i, h) for i, h in enumerate(heads) if h is not None
    ]
    heapq.heapify(heap)
    while heap:
        _, i, entry = heapq.heappop(heap)
        yield entry
        following = await _next(walks[i])
        if following is not None:
            heapq.heappush(heap, (_Order(following, descending), i, following))
