"""Limits with clear errors: body size, per-tenant publish rate, ids, metadata values."""

import asyncio
import io
import time

import pytest

from outpost.app import Deps, create_app
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
