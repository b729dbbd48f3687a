"""The queue's group commit, on a real redis-server: completions that arrive together go in
one pipeline, and each caller still gets its own script's answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from outpost.models import Event
from outpost.queue.items import Outcome
from outpost.queue.keys import GROUP
from tests.topologies import command_calls, topology  # noqa: F401  (topology: both)


async def queued(deps, n: int, dest: str = "d1", start: int = 0):
    for i in range(start, start + n):
        ev = Event(id=f"e{i}", tenant_id="acme", topic="t", time=datetime.now(UTC), data={})
        await deps.queue.publish(ev, [(dest, ev.id)])
    entries = await deps.queue.read("c1", count=n, block_ms=100)
    assert len(entries) == n
    return entries


async def test_concurrent_completions_each_get_their_own_answer(deps, redis):
    entries = await queued(deps, 120)
    before = await command_calls(redis, "evalsha")
    results = await asyncio.gather(
        *(deps.queue.complete(e, Outcome("failed", "x"), 1.0) for e in entries)
    )
    scripts = await command_calls(redis, "evalsha") - before
    # the failure counter of the one destination went 1..120: each caller got its own INCR
    assert sorted(f for _, f in results) == list(range(1, 121))
    assert len({a for a, _ in results}) == 120
    assert 1 <= scripts < 10  # group commit: far fewer script calls than completions
    assert (await deps.queue.depth())["queued"] == 0
    lane = deps.queue.lane_of("acme", "d1")  # every task acked, the lane off the index
    assert (await redis.xpending(lane.stream, GROUP))["pending"] == 0
    assert not await redis.sismember(lane.index, lane.stream)


async def test_one_failing_script_does_not_fail_the_others(deps, redis):
    entries = await queued(deps, 3)
    # a wrong-typed failure counter makes that one script's INCR fail
    await redis.set(deps.keys.failures("acme", "d1"), "not-a-number")
    results = await asyncio.gather(
        deps.queue.complete(entries[1], Outcome("failed", "x"), 1.0),
        deps.queue.complete(entries[0], Outcome("success"), 1.0),
        deps.queue.complete(entries[2], Outcome("success"), 1.0),
        return_exceptions=True,
    )
    assert isinstance(results[0], Exception)
    assert results[1][1] is None and results[2][1] is None


async def test_the_failure_counter_follows_the_order_within_one_call(deps, redis):
    """Completions of one call: a success after a failure clears the counter again, a
    failure after a success starts it at 1 (the script skips repeated clears only)."""
    entries = await queued(deps, 6)
    ok, bad = Outcome("success"), Outcome("failed", "x")
    results = await asyncio.gather(
        *(
            deps.queue.complete(e, o, 1.0)
            for e, o in zip(entries, [ok, ok, bad, ok, ok, bad], strict=True)
        )
    )
    assert [f for _, f in results] == [None, None, 1, None, None, 1]
    assert await redis.get(deps.keys.failures("acme", "d1")) == b"1"
    more = await queued(deps, 2, start=6)
    await asyncio.gather(
        *(deps.queue.complete(e, o, 1.0) for e, o in zip(more, [bad, ok], strict=True))
    )
    assert await redis.get(deps.keys.failures("acme", "d1")) is None


async def test_a_failed_step_leaves_its_task_pending_and_acks_the_rest(deps, redis):
    entries = await queued(deps, 3)
    await redis.set(deps.keys.failures("acme", "d1"), "not-a-number")
    await asyncio.gather(
        deps.queue.complete(entries[0], Outcome("failed", "x"), 1.0),
        deps.queue.complete(entries[1], Outcome("success"), 1.0),
        deps.queue.complete(entries[2], Outcome("success"), 1.0),
        return_exceptions=True,
    )
    lane = deps.queue.lane_of("acme", "d1")
    rows = await redis.xpending_range(lane.stream, GROUP, min="-", max="+", count=10)
    assert [r["message_id"].decode() for r in rows] == [entries[0].entry_id]
    assert await redis.sismember(lane.index, lane.stream)  # a lane with a task stays indexed
