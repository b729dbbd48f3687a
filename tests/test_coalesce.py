"""Group commit: concurrent callers share batches, each gets its own answer."""

from __future__ import annotations

import asyncio

import pytest

from outpost.queue.coalesce import Coalescer


async def test_callers_arriving_together_share_a_batch_and_get_their_own_result():
    batches: list[list[int]] = []

    async def run_many(items: list[int]) -> list[object]:
        batches.append(items)
        await asyncio.sleep(0.01)  # a round trip
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    c: Coalescer[int] = Coalescer(run_many, max_batch=40)
    results = await asyncio.gather(*(c.submit(i) for i in range(100)), return_exceptions=True)
    assert [r for r in results if not isinstance(r, Exception)] == [
        i * 10 for i in range(0, 100, 2)
    ]
    assert [str(r) for r in results if isinstance(r, Exception)] == [
        f"odd {i}" for i in range(1, 100, 2)
    ]
    assert [len(b) for b in batches] == [40, 40, 20]  # all arrived before the first ran
    assert sorted(i for b in batches for i in b) == list(range(100))
    assert await c.submit(8) == 80  # an idle coalescer starts again
    assert batches[-1] == [8]


async def test_a_failed_batch_fails_every_caller_in_it_and_the_next_batch_runs():
    calls = 0

    async def run_many(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 2:
            raise ConnectionError("redis away")
        return items

    c: Coalescer[int] = Coalescer(run_many)
    first = asyncio.create_task(c.submit(0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(c.submit(i)) for i in range(1, 4)]
    assert await first == 0
    for t in rest:
        with pytest.raises(ConnectionError):
            await t
    assert await c.submit(9) == 9


async def test_many_items_share_one_future_across_batches_with_each_own_result():
    batches: list[list[int]] = []

    async def run_many(items: list[int]) -> list[object]:
        batches.append(items)
        await asyncio.sleep(0.01)
        if 7 in items:
            raise ConnectionError("gone")  # this whole batch fails
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    c: Coalescer[int] = Coalescer(run_many, max_batch=4)
    alone = c.submit_soon(100)
    many = c.submit_many([2, 3, 4, 5, 6, 7])  # split over two batches: [100, 2, 3, 4], [5, 6, 7]
    results = await many
    assert await alone == 1000
    assert results[0] == 20 and results[2] == 40
    assert isinstance(results[1], ValueError) and str(results[1]) == "odd 3"
    assert [type(r) for r in results[3:]] == [ConnectionError] * 3
    assert batches == [[100, 2, 3, 4], [5, 6, 7]]
    assert await c.submit_many([]) == []
