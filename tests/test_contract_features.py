"""Outpost contract features: destination filters, import timestamps, topic wildcards,
the portal link."""

from urllib.parse import parse_qs, urlparse

import jwt
import pytest

from outpost.deps import Deps
from outpost.filters import matches, problems
from outpost.runtime import create_app
from tests.conftest import AUTH, kinesis_body, make_settings

EVENT = {
    "id": "e1",
    "topic": "orders.created",
    "metadata": {"source": "crm"},
    "data": {
        "amount": 150,
        "customer": {"tier": "premium", "email": "a@acme.io"},
        "tags": ["vip", "eu"],
        "note": None,
    },
}


@pytest.mark.parametrize(
    ("flt", "hit"),
    [
        ({}, True),
        ({"data": {"amount": {"$gte": 100}, "customer": {"tier": "premium"}}}, True),
        ({"data": {"amount": {"$gt": 150}}}, False),
        ({"data": {"amount": {"$lt": 200, "$gte": 150}}}, True),
        ({"data": {"amount": {"$lte": 149}}}, False),
        ({"data": {"amount": 150}}, True),
        ({"data": {"amount": {"$eq": "150"}}}, False),
        ({"data": {"customer": {"tier": {"$neq": "basic"}}}}, True),
        ({"data": {"customer": {"tier": {"$in": ["gold", "premium"]}}}}, True),
        ({"data": {"customer": {"tier": {"$nin": ["gold", "premium"]}}}}, False),
        ({"data": {"tags": {"$in": ["eu"]}}}, True),
        ({"data": {"customer": {"email": {"$endsWith": "@acme.io"}}}}, True),
        ({"topic": {"$startsWith": "orders."}}, True),
        ({"data": {"missing": {"$exist": False}}}, True),
        ({"data": {"note": {"$exist": True}}}, True),
        ({"data": {"missing": {"$exist": True}}}, False),
        ({"$or": [{"data": {"amount": {"$gt": 1000}}}, {"metadata": {"source": "crm"}}]}, True),
        ({"$and": [{"data": {"amount": {"$gt": 100}}}, {"metadata": {"source": "web"}}]}, False),
        ({"$not": {"topic": "orders.created"}}, False),
        ({"data": {"amount": {"$or": [{"$lt": 10}, {"$gt": 100}]}}}, True),
        ({"data": {"customer": {"tier": {"$gt": 5}}}}, False),  # type mismatch never matches
    ],
)
def test_filter_language(flt, hit):
    assert problems(flt) == []
    assert matches(flt, EVENT) is hit


@pytest.mark.parametrize(
    "bad",
    [
        {"data": {"x": {"$regex": "a"}}},
        {"$xor": []},
        {"$or": {}},
        {"data": {"x": {"$in": "a"}}},
        ["not", "obj"],
    ],
)
def test_bad_filters_are_named(bad):
    assert problems(bad)


async def make_tenant(client, tid="acme"):
    await client.put(f"/api/v1/tenants/{tid}", headers=AUTH)


async def test_filter_applies_at_publish_and_replaces_on_update(client):
    await make_tenant(client)
    body = {
        **kinesis_body("s", "http://127.0.0.1:1"),
        "filter": {"data": {"amount": {"$gte": 100}}},
    }
    r = await client.post("/api/v1/tenants/acme/destinations", headers=AUTH, json=body)
    dest = await r.json()
    assert r.status == 201 and dest["filter"] == body["filter"]

    async def matched(amount):
        r = await client.post(
            "/api/v1/publish",
            headers=AUTH,
            json={"tenant_id": "acme", "topic": "orders", "data": {"amount": amount}},
        )
        return (await r.json())["destination_ids"]

    assert await matched(150) == [dest["id"]] and await matched(50) == []
    url = f"/api/v1/tenants/acme/destinations/{dest['id']}"
    r = await client.patch(url, headers=AUTH, json={"filter": {"data": {"amount": {"$lt": 100}}}})
    assert (await r.json())["filter"] == {"data": {"amount": {"$lt": 100}}}  # replaced whole
    assert await matched(50) == [dest["id"]] and await matched(150) == []
    r = await client.patch(url, headers=AUTH, json={"topics": "*"})  # omitted: unchanged
    assert (await r.json())["filter"] == {"data": {"amount": {"$lt": 100}}}
    r = await client.patch(url, headers=AUTH, json={"filter": None})  # null clears
    assert (await r.json())["filter"] is None and await matched(150) == [dest["id"]]
    r = await client.patch(url, headers=AUTH, json={"filter": {"data": {"a": {"$nope": 1}}}})
    assert r.status == 422 and "filter.data.a.$nope" in await r.text()


async def test_import_timestamps_are_admin_only(client, deps):
    await make_tenant(client)
    body = {**kinesis_body("s", "http://127.0.0.1:1"), "created_at": "2024-02-15T10:00:00Z"}
    r = await client.post("/api/v1/tenants/acme/destinations", headers=AUTH, json=body)
    d = await r.json()
    assert d["created_at"].startswith("2024-02-15T10:00:00") and d["updated_at"] == d["created_at"]
    tenant = {"Authorization": f"Bearer {deps.tokens.issue('acme')}"}
    r = await client.post("/api/v1/tenants/acme/destinations", headers=tenant, json=body)
    assert r.status == 403
    future = {**body, "created_at": "2999-01-01T00:00:00Z"}
    r = await client.post("/api/v1/tenants/acme/destinations", headers=AUTH, json=future)
    assert r.status == 422 and "created_at" in await r.text()


async def test_topic_wildcards(aiohttp_client, redis, redis_server, client):
    await make_tenant(client)
    r = await client.post(
        "/api/v1/tenants/acme/destinations",
        headers=AUTH,
        json=kinesis_body("s", "http://127.0.0.1:1", topics=["orders.*"]),
    )
    assert r.status == 422 and "TOPICS_ALLOW_WILDCARDS" in await r.text()
    s = make_settings(
        redis_server.redis_url,
        topics_allow_wildcards=True,
        topics=["orders.created", "orders.paid", "users.created"],
    )
    c = await aiohttp_client(create_app(s, Deps.build(s, redis), run_promoter=False))
    r = await c.post(
        "/api/v1/tenants/acme/destinations",
        headers=AUTH,
        json=kinesis_body("s", "http://127.0.0.1:1", topics=["orders.*"]),
    )
    assert r.status == 201
    dest = (await r.json())["id"]
    r = await c.post(
        "/api/v1/tenants/acme/destinations",
        headers=AUTH,
        json=kinesis_body("s", "http://127.0.0.1:1", topics=["billing.*"]),
    )
    assert r.status == 422  # matches none of TOPICS
    for topic, hit in (("orders.paid", True), ("users.created", False)):
        r = await c.post(
            "/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "topic": topic, "data": {}}
        )
        assert ((await r.json())["destination_ids"] == [dest]) is hit


async def test_portal_link(client, deps):
    await make_tenant(client)
    r = await client.get("/api/v1/tenants/acme/portal?theme=dark", headers=AUTH)
    body = await r.json()
    assert r.status == 200 and body["tenant_id"] == "acme"
    q = parse_qs(urlparse(body["redirect_url"]).query)
    assert q["tenant_id"] == ["acme"] and q["theme"] == ["dark"]
    claims = jwt.decode(q["token"][0], deps.tokens.secret, algorithms=["HS256"])
    assert claims["sub"] == "acme"
    assert (await client.get("/api/v1/tenants/ghost/portal", headers=AUTH)).status == 404
    tenant = {"Authorization": f"Bearer {deps.tokens.issue('acme')}"}
    assert (await client.get("/api/v1/tenants/acme/portal", headers=tenant)).status == 403
