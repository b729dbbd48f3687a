"""Publishing is two calls (the tenant's slot, then the partitions' slots: queue/outbox.py)
made crash-safe by the tenant's outbox: a publisher killed (SIGKILL) between the steps
loses no acknowledged event, nor any stored one; the sweep queues what it owed. Killed
after the tasks are queued but before the outbox is cleared, it duplicates at most."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import orjson
import pytest

from outpost.queue import outbox as outbox_module
from outpost.queue.calls import is_cluster
from tests.publisher_crash import BATCH, DESTINATIONS
from tests.topologies import topology  # noqa: F401  (single node and cluster)

KILLED_AT = 5  # the batch whose publish dies


def publisher(target: str, mode: str) -> set[str]:
    """Run the publisher until it kills itself: the ids it acknowledged."""
    run = [sys.executable, "-m", "tests.publisher_crash", target, mode, str(KILLED_AT)]
    done = subprocess.run(run, capture_output=True, timeout=120, text=True)
    assert done.returncode == -9, done.stderr[-2000:]
    return set(done.stdout.split())


async def queued_tasks(deps) -> Counter[tuple[str, str]]:
    """Every task in the lanes: (event id, destination id) -> how many times."""
    await deps.queue.ensure_groups()
    found: Counter[tuple[str, str]] = Counter()
    while entries := await deps.queue.read("c1", count=500, block_ms=None):
        found.update((e.task.event_id, e.task.destination_id) for e in entries)
    return found


@pytest.mark.parametrize("mode", ["stored", "drained"])
async def test_kill_9_publisher_between_steps_loses_nothing(
    deps, redis, redis_server, request, monkeypatch, mode
):
    await deps.store.upsert_tenant("acme", None)
    if is_cluster(redis):
        target = f"cluster:{request.getfixturevalue('redis_cluster').port}"
    else:
        target = redis_server.redis_url
    acked = publisher(target, mode)
    assert len(acked) == (KILLED_AT - 1) * BATCH  # the batches before the killed one
    stored = {m.decode() for m in await redis.zrange(deps.keys.events_index("acme"), 0, -1)}
    assert len(stored) == KILLED_AT * BATCH and acked < stored
    [member] = await redis.zrange(deps.keys.outbox("acme"), 0, -1)  # the dead one's call
    assert len(orjson.loads(member)["b"]) == BATCH  # owes its events' tasks
    monkeypatch.setattr(outbox_module, "OUTBOX_AGE_SECONDS", 0.0)
    await deps.queue.promote_due()  # the promoter's sweep: what the dead publisher owed
    assert await redis.zcard(deps.keys.outbox("acme")) == 0
    tasks = await queued_tasks(deps)
    assert set(tasks) == {(e, d) for e in stored for d in DESTINATIONS}  # none lost
    duplicated = sum(n - 1 for n in tasks.values())
    assert duplicated == (0 if mode == "stored" else BATCH * len(DESTINATIONS))
