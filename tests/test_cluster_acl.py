"""README's minimal ACL user on the real Redis Cluster (tests/servers/redis_cluster.py):
the service starts, publishes and delivers as that user (ACL users are per node: the user
is set on every node, masters and replicas), and what the cluster client asks of a node
beyond the data commands (CLUSTER SLOTS, COMMAND, READONLY) is within the rule."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from outpost.deps import Deps
from outpost.dev.cluster import RedisCluster
from outpost.queue.connection import check_redis
from outpost.runtime import build_worker, create_app, redis_client, redis_config
from tests.conftest import AUTH, make_settings
from tests.servers.redis_tls import ACL_PASSWORD, ACL_USER, MINIMAL_ACL


@pytest.fixture
def acl_user(redis_cluster: RedisCluster) -> Iterator[str]:
    """README's minimal ACL user on every node of the session's cluster, for one test."""
    for node in redis_cluster.nodes:
        with redis_cluster.client(node.port) as admin:
            admin.acl_setuser(ACL_USER, reset=True)
            admin.execute_command("ACL", "SETUSER", ACL_USER, *MINIMAL_ACL)
    yield ACL_USER
    for node in redis_cluster.nodes:
        with redis_cluster.client(node.port) as admin:
            admin.acl_deluser(ACL_USER)


async def test_the_service_publishes_and_delivers_on_the_cluster_as_the_acl_user(
    aiohttp_client, redis_cluster, acl_user, http_receiver
):
    redis_cluster.flush()
    settings = make_settings(
        redis_cluster.redis_url,
        redis_cluster_enabled=True,
        redis_username=acl_user,
        redis_password=ACL_PASSWORD,
    )
    await check_redis(redis_config(settings))  # the start-up check: every node answers
    redis = redis_client(settings)
    deps = Deps.build(settings, redis)
    try:
        client = await aiohttp_client(create_app(settings, deps, run_promoter=False))
        path = http_receiver.path()
        tenants = [f"acl{i}" for i in range(6)]  # (their slots on every master)
        for tenant in tenants:
            assert (await client.put(f"/api/v1/tenants/{tenant}", headers=AUTH)).status == 201
            body = {"type": "webhook", "topics": "*", "config": {"url": http_receiver.url + path}}
            r = await client.post(f"/api/v1/tenants/{tenant}/destinations", json=body, headers=AUTH)
            assert r.status == 201, await r.text()
            event = {"tenant_id": tenant, "topic": "orders", "id": f"e-{tenant}", "data": {}}
            r = await client.post("/api/v1/publish", json=event, headers=AUTH)
            assert r.status == 202, await r.text()
        await build_worker(deps, settings).run_until_empty()
        got = http_receiver.delivered(path, len(tenants))
        assert sorted(g.event_id for g in got) == [f"e-{t}" for t in tenants]
        for node in redis.get_primaries():  # type: ignore[attr-defined]
            assert await node.execute_command("ACL", "WHOAMI") == acl_user.encode()
    finally:
        await deps.registry.close()
        await redis.aclose()
        redis_cluster.flush()
