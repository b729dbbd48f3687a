"""Moving to a cluster: `outpost drain` reports (and waits for) the queue's depth, then
`outpost migrate-redis` copies the data at rest from a single node to a real cluster
(tests/servers/redis_cluster.py): tenants and destinations arrive on the nodes owning
their slots, readable by the service there; events, tasks and shard leases are not copied;
a second run keeps what is there. The start-up check works on the cluster too."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from outpost import ops
from outpost.deps import Deps
from outpost.dev import devstack
from outpost.errors import Unavailable
from outpost.queue.connection import RedisConfig, StartupError, check_redis, connect_redis
from outpost.queue.durable import ReplicaWait
from outpost.queue.keys import Keys
from tests.conftest import AUTH, make_settings
from tests.test_processes import OUTPOST, service_env


async def tenant_with_webhook(client: Any, tenant: str, url: str) -> str:
    assert (await client.put(f"/api/v1/tenants/{tenant}", headers=AUTH)).status in (200, 201)
    body = {"type": "webhook", "topics": "*", "config": {"url": url}}
    r = await client.post(f"/api/v1/tenants/{tenant}/destinations", json=body, headers=AUTH)
    assert r.status == 201, await r.text()
    return str((await r.json())["id"])


async def publish(client: Any, tenant: str, event_id: str) -> None:
    body = {"tenant_id": tenant, "topic": "orders", "id": event_id, "data": {}}
    r = await client.post("/api/v1/publish", json=body, headers=AUTH)
    assert r.status == 202, await r.text()


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = service_env(url, 1)
    return subprocess.run([*OUTPOST, *args], env=env, capture_output=True, text=True, timeout=60)


async def test_drain_reports_then_says_drained(client, deps, worker, settings, http_receiver):
    path = http_receiver.path()
    await tenant_with_webhook(client, "d", http_receiver.url + path)
    for i in range(3):
        await publish(client, "d", f"e{i}")
    said: list[str] = []
    keys, partitions = deps.keys, settings.delivery_partitions
    assert not await ops.drain(deps.redis, keys, partitions, False, 0, said.append)
    assert said == [
        "queued or in flight: 3, waiting to be retried: 0, outbox entries not yet in a lane: 0, "
        "dead letters (kept, not drained): 0"
    ]
    run = cli("drain", url=settings.redis_url)
    assert run.returncode == 1 and "queued or in flight: 3" in run.stdout, run
    await worker.run_until_empty()
    # events their publisher stored but did not get into a lane (stopped half way): owed
    owed = orjson.dumps({"b": [{"e": "e0", "r": ["x"], "ms": "1"}], "ttl": "60"})
    await deps.queue.outbox.mark(["d"])
    await deps.redis.zadd(keys.outbox("d"), {owed: 1})
    said.clear()
    assert not await ops.drain(deps.redis, keys, partitions, False, 0, said.append)
    assert "outbox entries not yet in a lane: 1" in said[0]
    await deps.redis.zrem(keys.outbox("d"), owed)  # (as the promoter's sweep does)
    run = cli("drain", "--wait", "--timeout", "5", url=settings.redis_url)
    assert run.returncode == 0, run
    assert run.stdout.splitlines()[-1] == (
        "drained: nothing queued, in flight or waiting to be retried"
    )


async def test_check_redis_and_wait_on_the_cluster(redis_cluster):
    """The start-up check maps the cluster; REDIS_WAIT_REPLICAS's WAIT runs on the node
    owning each call's slot (tags spread over the three masters, one replica each)."""
    config = RedisConfig(redis_cluster.redis_url, cluster=True)
    await check_redis(config)
    client = connect_redis(config)
    script = client.register_script("return redis.call('SET', KEYS[1], ARGV[1])")
    try:
        for tag in range(12):
            key = f"{{t:w{tag}}}:x"
            assert await ReplicaWait(1, 1000).run(client, script, [key], ["v"]) == b"OK"
        with pytest.raises(Unavailable) as caught:
            await ReplicaWait(2, 200).run(client, script, ["{t:w0}:x"], ["v"])
        assert "stored on the Redis master, but 1 of 2 replica(s) confirmed it" in str(caught.value)
    finally:
        await client.flushall()
        await client.aclose()


async def test_a_single_node_is_not_a_cluster(redis_server):
    with pytest.raises(StartupError) as caught:
        await check_redis(RedisConfig(redis_server.redis_url, cluster=True))
    assert str(caught.value) == (
        f"Redis at 127.0.0.1:{redis_server.port} is not a cluster "
        "(REDIS_CLUSTER_ENABLED=true), or user default may not run CLUSTER SLOTS"
    )


async def source_keys(redis: Redis, keys: Keys) -> set[bytes]:
    found: set[bytes] = set()
    for pattern in ops.copied_patterns(keys):
        found |= {
            k async for k in redis.scan_iter(match=pattern) if not ops.skipped(keys, k.decode())
        }
    return found


async def test_migrate_a_single_node_to_the_cluster(
    client, deps, settings, redis, redis_cluster, http_receiver
):
    ids = {t: await tenant_with_webhook(client, t, http_receiver.url + "/m") for t in "abcdef"}
    await publish(client, "a", "not-copied")
    lease = deps.keys.flow_state("flow-1", "lease:shard-0")
    checkpoints = deps.keys.flow_state("flow-1", "checkpoints")
    await redis.set(lease, "reader-1", px=60_000)
    await redis.hset(
        checkpoints, "shard-0", "49590338271490256608559692538361571095921575989136588898"
    )
    copied = await source_keys(redis, deps.keys)
    assert checkpoints.encode() in copied and lease.encode() not in copied

    run = cli(
        "migrate-redis",
        "--from",
        settings.redis_url,
        "--to",
        redis_cluster.redis_url,
        "--to-cluster",
        url=settings.redis_url,
    )
    assert run.returncode == 0, run
    assert run.stdout.strip() == (
        f"copied {len(copied)} key(s); 0 already on the target (kept: --replace overwrites "
        "them); 0 gone meanwhile"
    )
    target = connect_redis(RedisConfig(redis_cluster.redis_url, cluster=True))
    try:
        for key in copied:
            assert await target.dump(key) == await redis.dump(key), key
        assert not await target.exists(deps.keys.event("a", "not-copied"))
        assert not await target.exists(lease)
        on_cluster = Deps.build(
            make_settings(redis_cluster.redis_url, redis_cluster_enabled=True), target
        )
        for tenant, dest_id in ids.items():
            dest = await on_cluster.store.get_destination(tenant, dest_id)
            assert dest is not None and dest.config["url"] == http_receiver.url + "/m"
        await on_cluster.registry.close()
        again = await ops.migrate(redis, target, deps.keys)
        assert (again.keys, again.existing) == (0, len(copied))
    finally:
        await target.flushall()
        await target.aclose()


def test_outpost_all_runs_on_the_cluster(redis_cluster, http_receiver):
    """The real process with REDIS_CLUSTER_ENABLED and REDIS_WAIT_REPLICAS=1: it starts,
    takes a tenant, a destination and a publish (202), delivers it, and stops cleanly."""
    redis_cluster.flush()
    port = devstack.free_port()
    env = service_env(
        redis_cluster.redis_url, port, REDIS_CLUSTER_ENABLED="true", REDIS_WAIT_REPLICAS="1"
    )
    proc = subprocess.Popen([*OUTPOST, "all"], env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/v1"

    def call(method: str, path: str, body: Any = None) -> int:
        data = json.dumps(body).encode() if body is not None else None
        headers = {**AUTH, "Content-Type": "application/json"}
        request = urllib.request.Request(base + path, data, headers, method=method)
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)

    try:
        devstack.wait_for_port(port, proc)
        path = http_receiver.path()
        assert call("PUT", "/tenants/k") == 201
        body = {"type": "webhook", "topics": "*", "config": {"url": http_receiver.url + path}}
        assert call("POST", "/tenants/k/destinations", body) == 201
        assert (
            call("POST", "/publish", {"tenant_id": "k", "topic": "t", "id": "e1", "data": {}})
            == 202
        )
        [got] = http_receiver.delivered(path, 1)
        assert got.event_id == "e1"
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        redis_cluster.flush()
