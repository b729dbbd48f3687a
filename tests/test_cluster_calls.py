"""queue/calls.py on the real Redis Cluster: a step's calls of many slots cost one pipeline
per node (not one call each), answers in order; a call a node did not run (NOSCRIPT after
the node forgot its scripts, MOVED when the client's slot map is out of date) is made
again through the cluster client and answered once (after the others of its pipeline)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.commands.core import AsyncScript

from outpost.dev.cluster import RedisCluster
from outpost.queue.calls import Calls
from outpost.queue.connection import RedisConfig, connect_redis
from tests.test_round_trips import RoundTrips

# returns its key's value after setting it once (a second run of one call would say so)
ONCE = "return redis.call('INCR', KEYS[1])"


@pytest.fixture
async def cluster(redis_cluster: RedisCluster) -> AsyncIterator[Any]:
    redis_cluster.flush()
    client: Any = connect_redis(RedisConfig(redis_cluster.redis_url, cluster=True))
    await client.initialize()
    yield client
    await client.aclose()
    redis_cluster.flush()


def step(script: AsyncScript, tags: int) -> Calls:
    calls = Calls()
    for n in range(tags):
        calls.script(script, [f"{{t:c{n}}}:n"], [])
        calls.command("GET", f"{{t:c{n}}}:n")
    return calls


async def test_a_step_is_one_pipeline_per_node(cluster, monkeypatch):
    script = cluster.register_script(ONCE)
    await step(script, 40).run(cluster)  # (the script loaded, a connection to each node)
    trips = RoundTrips(monkeypatch)
    sent, answers = await trips.of(step(script, 40).run(cluster))
    assert sent == len(cluster.get_primaries()) == 3  # 80 calls over 40 tags
    assert answers == [2, b"2"] * 40  # each in its place


async def test_a_call_not_run_is_made_again_once(cluster):
    script = cluster.register_script(ONCE)
    await step(script, 1).run(cluster)
    await cluster.script_flush()  # (every master's): NOSCRIPT everywhere
    answers = await step(script, 12).run(cluster)
    assert answers[0::2] == [2] + [1] * 11  # each script call ran once (INCR counts)
    assert answers[1::2] == [b"1"] + [None] * 11  # (the GETs ran in their pipelines, first)
    slot = cluster.keyslot("{t:c3}:n")
    owner = cluster.nodes_manager.slots_cache[slot][0]
    stranger = next(n for n in cluster.get_primaries() if n.name != owner.name)
    cluster.nodes_manager.slots_cache[slot] = [stranger]  # a slot map out of date: MOVED
    answers = await step(script, 12).run(cluster)
    assert answers[0::2] == [3] + [2] * 11
    assert answers[1::2] == [b"3"] + [b"2"] * 2 + [answers[7]] + [b"2"] * 8
    assert answers[7] in (b"1", b"2")  # ({t:c3}'s two calls made again at once)
    assert cluster.nodes_manager.slots_cache[slot][0].name == owner.name  # (mapped again)
