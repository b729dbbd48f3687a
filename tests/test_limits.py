"""Limits with clear errors: body size, per-tenant publish rate, ids, metadata values."""

import asyncio
import io
import time

import pytest

from outpost.deps import Deps
from outpost.runtime import create_app
from tests.conftest import AUTH, make_settings


async def app_with(aiohttp_client, redis, redis_server, **settings):
    s = make_settings(redis_server.redis_url, **settings)
    c = await aiohttp_client(create_app(s, Deps.build(s, redis), run_promoter=False))
    for t in ("acme", "globex"):
        await c.put(f"/api/v1/tenants/{t}", headers=AUTH)
    return c


async def test_max_event_bytes(aiohttp_client, redis, redis_server):
    c = await app_with(aiohttp_client, redis, redis_server, max_event_bytes=4096)
    small = b'{"tenant_id":"acme","data":{"x":"' + b"x" * 3000 + b'"}}'
    big = b'{"tenant_id":"acme","data":{"x":"' + b"x" * 5000 + b'"}}'
    assert (await c.post("/api/v1/publish", data=small, headers=AUTH)).status == 202
    r = await c.post("/api/v1/publish", data=io.BytesIO(big), headers=AUTH)
    body = await r.json()
    assert r.status == 413 and "MAX_EVENT_BYTES (4096)" in body["message"]
    assert set(body) == {"status", "message", "data"}


async def test_publish_rate_limit_per_tenant(aiohttp_client, redis, redis_server):
    c = await app_with(aiohttp_client, redis, redis_server, publish_rate_limit_per_second=5)
    await asyncio.sleep(1.02 - time.time() % 1)  # start the burst at a window's beginning
    statuses = []
    for _ in range(8):
        r = await c.post("/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "data": {}})
        statuses.append(r.status)
        if r.status == 429:
            assert r.headers["Retry-After"] == "1"
            assert "PUBLISH_RATE_LIMIT_PER_SECOND" in (await r.json())["message"]
    assert statuses.count(202) == 5 and statuses.count(429) == 3
    r = await c.post("/api/v1/publish", headers=AUTH, json={"tenant_id": "globex", "data": {}})
    assert r.status == 202  # another tenant has its own budget


async def test_rate_limit_off_by_default(client):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    for _ in range(30):
        r = await client.post(
            "/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "data": {}}
        )
        assert r.status == 202


@pytest.mark.parametrize("bad_id", ["a/b", "a b", "x" * 129, "é", ""])
async def test_ids_are_checked(client, bad_id):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post(
        "/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "id": bad_id, "data": {}}
    )
    assert r.status == 422 and any(p.startswith("id") for p in (await r.json())["data"])


@pytest.mark.parametrize("value", [1, True, None, {"a": "b"}, ["x"]])
async def test_metadata_values_are_strings(client, value):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post(
        "/api/v1/publish",
        headers=AUTH,
        json={"tenant_id": "acme", "metadata": {"k": value}, "data": {}},
    )
    assert r.status == 422 and "metadata.k" in await r.text()


async def test_publish_batch_answers_each_event(client, redis, deps):
    for t in ("acme", "globex"):
        await client.put(f"/api/v1/tenants/{t}", headers=AUTH)
    r = await client.post(
        "/api/v1/tenants/acme/destinations",
        headers=AUTH,
        json={
            "type": "aws_kinesis",
            "topics": "*",
            "config": {"stream_name": "s", "region": "us-east-1", "endpoint": "http://127.0.0.1:1"},
            "credentials": {"key": "k", "secret": "secret-value-1"},
        },
    )
    dest = (await r.json())["id"]
    batch = [
        {"tenant_id": "acme", "id": "b1", "topic": "orders", "data": {"n": 1}},
        {"tenant_id": "globex", "id": "b2", "topic": "orders", "data": {"n": 2}},
        {"tenant_id": "acme", "id": "b1", "topic": "orders", "data": {"n": 1}},  # duplicate
        {"tenant_id": "acme", "data": "not an object"},
        {"tenant_id": "ghost", "data": {}},
    ]
    r = await client.post("/api/v1/publish/batch", headers=AUTH, json=batch)
    body = await r.json()
    assert r.status == 202 and body["accepted"] == 3
    statuses = [x["status"] for x in body["results"]]
    assert statuses == [202, 202, 202, 422, 404]
    first, second, dup = body["results"][:3]
    assert first == {"status": 202, "id": "b1", "duplicate": False, "destination_ids": [dest]}
    assert second["destination_ids"] == [] and dup["duplicate"] is True
    assert any(p.startswith("data") for p in body["results"][3]["data"])
    assert await redis.exists(deps.keys.event("acme", "b1"), deps.keys.event("globex", "b2")) == 2
    assert (await deps.queue.depth())["queued"] == 1  # b1 once, to acme's destination
    for bad in ([], [{}] * 1001, {"tenant_id": "acme"}):
        r = await client.post("/api/v1/publish/batch", headers=AUTH, json=bad)
        assert r.status == 422


async def test_batch_counts_every_event_against_the_rate_limit(aiohttp_client, redis, redis_server):
    c = await app_with(aiohttp_client, redis, redis_server, publish_rate_limit_per_second=5)
    await asyncio.sleep(1.02 - time.time() % 1)
    r = await c.post(
        "/api/v1/publish/batch",
        headers=AUTH,
        json=[{"tenant_id": "acme", "data": {}}] * 6 + [{"tenant_id": "globex", "data": {}}],
    )
    statuses = [x["status"] for x in (await r.json())["results"]]
    assert statuses == [429] * 6 + [202]
