"""`from tests.topologies import topology` in a test module: its tests that take `redis`
(or `deps`, `client`, `worker`: all built on it) run on the single node and on the local
Redis Cluster (tests/servers/redis_cluster.py), the same tests."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

TOPOLOGIES = ["single", "cluster"]


@pytest.fixture(params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def command_calls(redis: Any, command: str) -> int:
    """How many times the server(s) ran `command` (every master of a cluster summed)."""
    if isinstance(redis, RedisCluster):
        stats = await redis.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        per_node = list(stats.values())
    else:
        per_node = [await redis.info("commandstats")]
    return sum(int(s.get(f"cmdstat_{command}", {}).get("calls", 0)) for s in per_node)
