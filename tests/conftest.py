"""Fixtures: real servers on 127.0.0.1, started and stopped here.

- `redis_server`: a private redis-server for the session (never the machine's 6379);
  `redis` flushes it per test. Fault tests start their own.
- `kinesis`: parametrized over moto server and kinesis-local (the engine LocalStack runs;
  needs node, which CI has). Delivery tests that take it run against both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from outpost.delivery.worker import Worker
from outpost.deps import Deps
from outpost.dev import devstack
from outpost.runtime import build_worker, create_app
from outpost.settings import Settings
from tests import slots

ADMIN_KEY = "test-admin-key"
AES_SECRET = "test-aes-secret-of-16+-bytes"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
FAKE_CREDS = {"key": "AKIAIOSFODNN7EXAMPLE", "secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
# one module per kind of server (tests/servers/), each a set of session fixtures
pytest_plugins: list[str] = [
    "tests.servers.stalling",
    "tests.servers.http_receiver",
    "tests.servers.kafka",
    "tests.servers.pubsub",
    "tests.servers.otlp",
    "tests.servers.rabbitmq",
    "tests.servers.s3_objects",
    "tests.servers.kinesis_shards",
    "tests.servers.redis_cluster",
]
NODE_CACHE = Path(os.environ.get("OUTPOST_NODE_CACHE", Path.home() / ".cache" / "outpost-node"))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[devstack.RedisServer]:
    server = devstack.redis_server()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def one_slot_per_script_call() -> Iterator[None]:
    """Every script call of the session keeps the cluster's rule (tests/slots.py)."""
    with slots.one_slot_per_call() as broken:
        yield
    assert not broken, f"script calls spanning slots: {broken[:3]}"


@pytest.fixture
async def redis(request: pytest.FixtureRequest, topology: str) -> AsyncIterator[Any]:
    """A flushed client of the test's topology: the private redis-server, or (modules
    that run on both, tests/servers/redis_cluster.py) the local Redis Cluster."""
    if topology == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        cluster.flush()
        client: Any = RedisCluster(host="127.0.0.1", port=cluster.port)
    else:
        server = request.getfixturevalue("redis_server")
        client = Redis.from_url(server.redis_url)
        await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def moto() -> Iterator[devstack.Server]:
    server = devstack.moto_server().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kinesis_local_server() -> Iterator[devstack.Server]:
    server = devstack.kinesis_local(NODE_CACHE)
    if server is None:
        pytest.skip("node/npm not installed: kinesis-local runs where node is (CI has it)")
    server.start(timeout=60)
    yield server
    server.stop()


@pytest.fixture(params=["moto", "kinesis-local"])
def kinesis(request: pytest.FixtureRequest) -> devstack.Server:
    """The Kinesis endpoint a delivery test runs against."""
    name = "moto" if request.param == "moto" else "kinesis_local_server"
    server: devstack.Server = request.getfixturevalue(name)
    return server


@pytest.fixture
def stream(kinesis: devstack.Server) -> str:
    name = f"s-{uuid.uuid4().hex[:12]}"
    devstack.create_stream(kinesis.url, name, shards=2)
    return name


@pytest.fixture
def moto_stream(moto: devstack.Server) -> str:
    """A fresh stream on moto, for tests that are about our logic rather than the server."""
    name = f"m-{uuid.uuid4().hex[:12]}"
    devstack.create_stream(moto.url, name, shards=2)
    return name


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "api_key": ADMIN_KEY,
        "api_jwt_secret": "test-jwt-secret-of-at-least-32-bytes",
        "destinations_allow_private_endpoints": True,  # the local servers are on 127.0.0.1
        "aes_encryption_secret": AES_SECRET,
        "redis_url": redis_url,
        "retry_interval_seconds": 0.05,
        "max_retry_limit": 3,
        "delivery_timeout_seconds": 5,
        "delivery_reclaim_idle_seconds": 6,
        "delivery_partitions": 4,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(redis_server: devstack.RedisServer) -> Settings:
    return make_settings(redis_server.redis_url)


@pytest.fixture
async def deps(settings: Settings, redis: Redis) -> AsyncIterator[Deps]:
    d = Deps.build(settings, redis)
    yield d
    await d.registry.close()


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, deps: Deps) -> Any:
    return await aiohttp_client(create_app(settings, deps, run_promoter=False))


@pytest.fixture
def worker(deps: Deps, settings: Settings) -> Worker:
    return build_worker(deps, settings)


def kinesis_body(
    stream: str, endpoint: str, topics: Any = ("orders",), **config: Any
) -> dict[str, Any]:
    """Seed 002's create body, pointed at a local endpoint."""
    return {
        "type": "aws_kinesis",
        "topics": list(topics) if topics != "*" else "*",
        "config": {"stream_name": stream, "region": "us-east-1", "endpoint": endpoint, **config},
        "credentials": dict(FAKE_CREDS),
    }
