"""A real local Redis Cluster for the session (outpost.dev.cluster: 3 masters + 3
replicas on 127.0.0.1), and the topology fixture: a test module that touches the Redis
layout overrides `topology` with `TOPOLOGIES` so its tests run on the single node and on
the cluster (tests/conftest.py's `redis` gives the client of the topology): it imports
`topology` from tests/topologies.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from outpost.dev.cluster import RedisCluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    cluster = RedisCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def topology() -> str:
    """The single node unless a module asks for both (see TOPOLOGIES)."""
    return "single"
