"""The API through the app factory, against a private real Redis."""

import io
import json

import pytest
from redis.asyncio import Redis

from outpost.deps import Deps
from outpost.runtime import create_app
from tests.conftest import AUTH, FAKE_CREDS, make_settings
from tests.topologies import topology  # noqa: F401  (single node and cluster)

SEED_BODY = {
    "type": "aws_kinesis",
    "topics": ["orders"],
    "config": {"stream_name": "my-stream", "region": "us-east-1"},
    "credentials": {"key": "<AWS_ACCESS_KEY_ID>", "secret": "<AWS_SECRET_ACCESS_KEY>"},
}


async def tenant(client, tid="acme", prefix="/api/v1"):
    r = await client.put(f"{prefix}/tenants/{tid}", headers=AUTH)
    assert r.status in (200, 201)
    return await r.json()


async def destination(client, tid="acme", body=None):
    r = await client.post(
        f"/api/v1/tenants/{tid}/destinations", json=body or SEED_BODY, headers=AUTH
    )
    assert r.status == 201, await r.text()
    return await r.json()


def assert_error(body, status):
    assert set(body) == {"status", "message", "data"}
    assert body["status"] == status and body["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic dGVzdA=="},
        {"Authorization": "Bearer"},
    ],
)
async def test_auth_required(client, headers):
    for method, path in [
        ("GET", "/api/v1/tenants"),
        ("PUT", "/api/v1/tenants/a"),
        ("POST", "/api/v1/publish"),
        ("GET", "/2025-07-01/topics"),
    ]:
        r = await client.request(method, path, headers=headers)
        assert r.status == 401, (method, path)
        assert_error(await r.json(), 401)


async def test_healthz_is_public_and_checks_redis(client, settings, aiohttp_client):
    for path in ("/healthz", "/api/v1/healthz"):
        r = await client.get(path)
        assert r.status == 200 and (await r.json())["status"] == "healthy"
    dead = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    down = await aiohttp_client(create_app(settings, Deps.build(settings, dead), False))
    r = await down.get("/api/v1/healthz")
    assert r.status == 503 and (await r.json())["status"] == "failed"
    await dead.aclose()


async def test_tenant_lifecycle(client):
    r = await client.put("/api/v1/tenants/acme", json={"metadata": {"name": "Acme"}}, headers=AUTH)
    assert r.status == 201
    created = await r.json()
    assert created["id"] == "acme" and created["metadata"] == {"name": "Acme"}
    assert created["destinations_count"] == 0 and created["topics"] == []
    r = await client.put(
        "/api/v1/tenants/acme", json={"metadata": {"name": "Acme 2"}}, headers=AUTH
    )
    assert r.status == 200
    updated = await r.json()
    assert updated["created_at"] == created["created_at"]
    assert updated["metadata"] == {"name": "Acme 2"}
    await destination(client)
    got = await (await client.get("/api/v1/tenants/acme", headers=AUTH)).json()
    assert got["destinations_count"] == 1 and got["topics"] == ["orders"]
    r = await client.delete("/api/v1/tenants/acme", headers=AUTH)
    assert (r.status, await r.json()) == (200, {"success": True})
    assert (await client.get("/api/v1/tenants/acme", headers=AUTH)).status == 404
    assert (await client.delete("/api/v1/tenants/acme", headers=AUTH)).status == 404


async def test_tenant_bad_input(client):
    r = await client.put("/api/v1/tenants/acme", json={"metadata": {"n": 1}}, headers=AUTH)
    assert r.status == 422 and "metadata.n" in json.dumps((await r.json())["data"])
    r = await client.put("/api/v1/tenants/bad%20id", headers=AUTH)
    assert r.status == 422
    r = await client.put("/api/v1/tenants/acme", data=b"{nope", headers=AUTH)
    assert r.status == 400
    assert_error(await r.json(), 400)


async def test_list_tenants_pages_with_cursor(client):
    for i in range(5):
        await tenant(client, f"t{i}")
    seen, cursor = [], None
    while True:
        q = f"?limit=2&dir=asc{f'&next={cursor}' if cursor else ''}"
        body = await (await client.get(f"/api/v1/tenants{q}", headers=AUTH)).json()
        assert body["count"] == 5 and body["pagination"]["limit"] == 2
        seen += [t["id"] for t in body["models"]]
        cursor = body["pagination"]["next"]
        if not cursor:
            break
    assert seen == ["t0", "t1", "t2", "t3", "t4"]
    p1 = await (await client.get("/api/v1/tenants?limit=2&dir=asc", headers=AUTH)).json()
    assert p1["pagination"]["prev"] is None
    p2 = await (
        await client.get(
            f"/api/v1/tenants?limit=2&dir=asc&next={p1['pagination']['next']}", headers=AUTH
        )
    ).json()
    assert [t["id"] for t in p2["models"]] == ["t2", "t3"]
    back = await (
        await client.get(
            f"/api/v1/tenants?limit=2&dir=asc&prev={p2['pagination']['prev']}", headers=AUTH
        )
    ).json()
    assert [t["id"] for t in back["models"]] == ["t0", "t1"]
    assert back["pagination"]["prev"] is None and back["pagination"]["next"]
    desc = await (await client.get("/api/v1/tenants?limit=100", headers=AUTH)).json()
    assert [t["id"] for t in desc["models"]] == ["t4", "t3", "t2", "t1", "t0"]
    assert (await client.get("/api/v1/tenants?limit=0", headers=AUTH)).status == 422
    assert (await client.get("/api/v1/tenants?dir=up", headers=AUTH)).status == 422


async def test_destination_crud_masks_secrets(client):
    await tenant(client)
    d = await destination(client)
    assert d["id"].startswith("des_") and d["type"] == "aws_kinesis"
    assert d["credentials"] == {"key": "<AWS_ACCESS_KEY_ID>", "secret": "<AWS******"}
    assert d["disabled_at"] is None and d["target"] == "my-stream"
    listed = await (await client.get("/api/v1/tenants/acme/destinations", headers=AUTH)).json()
    assert [x["id"] for x in listed] == [d["id"]]
    got = await (
        await client.get(f"/api/v1/tenants/acme/destinations/{d['id']}", headers=AUTH)
    ).json()
    assert got == d
    r = await client.patch(
        f"/api/v1/tenants/acme/destinations/{d['id']}",
        headers=AUTH,
        json={"topics": "*", "config": {"partition_key_template": "data.id"}},
    )
    assert r.status == 200
    patched = await r.json()
    assert patched["topics"] == "*"
    assert patched["config"] == {
        "stream_name": "my-stream",
        "region": "us-east-1",
        "partition_key_template": "data.id",
    }
    r = await client.delete(f"/api/v1/tenants/acme/destinations/{d['id']}", headers=AUTH)
    assert (r.status, await r.json()) == (200, {"success": True})
    r = await client.get(f"/api/v1/tenants/acme/destinations/{d['id']}", headers=AUTH)
    assert r.status == 404
    assert_error(await r.json(), 404)


async def test_destination_validation_names_fields(client):
    await tenant(client)
    r = await client.post(
        "/api/v1/tenants/acme/destinations",
        headers=AUTH,
        json={
            "type": "aws_kinesis",
            "topics": ["orders"],
            "config": {"stream_name": "ok", "region": "us-east-1", "partition_key_template": "a["},
            "credentials": FAKE_CREDS,
        },
    )
    body = await r.json()
    assert r.status == 422 and body["message"] == "validation error"
    assert any(p.startswith("config.partition_key_template") for p in body["data"])
    d = await destination(client)
    r = await client.patch(
        f"/api/v1/tenants/acme/destinations/{d['id']}",
        headers=AUTH,
        json={"config": {"partition_key_template": "join("}},
    )
    assert r.status == 422 and "config.partition_key_template" in (await r.text())
    r = await client.patch(
        f"/api/v1/tenants/acme/destinations/{d['id']}", headers=AUTH, json={"type": "webhook"}
    )
    assert r.status == 422 and "type cannot change" in (await r.text())
    for bad in (b"[]", b'"x"', b"null"):
        r = await client.post("/api/v1/tenants/acme/destinations", data=bad, headers=AUTH)
        assert r.status == 422 and (await r.json())["data"] == ["body must be a JSON object"]


async def test_destination_conflicts_limits_and_unknown_tenant(client, deps):
    r = await client.post("/api/v1/tenants/ghost/destinations", json=SEED_BODY, headers=AUTH)
    assert r.status == 404
    await tenant(client)
    await destination(client, body={**SEED_BODY, "id": "mine"})
    r = await client.post(
        "/api/v1/tenants/acme/destinations", json={**SEED_BODY, "id": "mine"}, headers=AUTH
    )
    assert r.status == 409
    deps.store.max_destinations = 2
    await destination(client)
    r = await client.post("/api/v1/tenants/acme/destinations", json=SEED_BODY, headers=AUTH)
    assert r.status == 400 and "MAX_DESTINATIONS_PER_TENANT" in (await r.json())["message"]


async def test_enable_disable(client):
    await tenant(client)
    d = await destination(client)
    base = f"/api/v1/tenants/acme/destinations/{d['id']}"
    r = await client.put(f"{base}/disable", headers=AUTH)
    assert r.status == 200 and (await r.json())["disabled_at"] is not None
    pub = await client.post(
        "/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "topic": "orders", "data": {}}
    )
    assert (await pub.json())["destination_ids"] == []
    r = await client.put(f"{base}/enable", headers=AUTH)
    assert r.status == 200 and (await r.json())["disabled_at"] is None
    pub = await client.post(
        "/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "topic": "orders", "data": {}}
    )
    assert (await pub.json())["destination_ids"] == [d["id"]]


async def test_credentials_encrypted_at_rest(client, redis):
    await tenant(client)
    await destination(
        client,
        body={
            **SEED_BODY,
            "credentials": {
                "key": "AKIAEXAMPLEKEY",
                "secret": "very-secret-value-123",
                "session": "sess-token-xyz",
            },
        },
    )
    found = []
    async for key in redis.scan_iter():
        kind = (await redis.type(key)).decode()
        values = {"string": lambda k: redis.get(k), "hash": lambda k: redis.hgetall(k)}
        if kind in values:
            found.append(repr(await values[kind](key)))
    blob = " ".join(found)
    assert "very-secret-value-123" not in blob and "sess-token-xyz" not in blob
    assert "AKIAEXAMPLEKEY" not in blob  # the whole credentials object is sealed


async def test_publish_queues_one_task_per_matching_destination(client, redis, deps):
    await tenant(client)
    orders = await destination(client)
    everything = await destination(client, body={**SEED_BODY, "topics": "*"})
    await destination(client, body={**SEED_BODY, "topics": ["users"]})
    r = await client.post(
        "/api/v1/publish",
        headers=AUTH,
        json={
            "id": "evt_1",
            "tenant_id": "acme",
            "topic": "orders",
            "data": {"b": 1, "a": 2},
            "metadata": {"source": "crm"},
        },
    )
    assert r.status == 202
    body = await r.json()
    assert body == {
        "id": "evt_1",
        "duplicate": False,
        "destination_ids": sorted([orders["id"], everything["id"]]),
    }
    stored = json.loads(await redis.get(deps.keys.event("acme", "evt_1")))
    assert list(stored["data"]) == ["b", "a"] and stored["metadata"] == {"source": "crm"}
    assert (await deps.queue.depth())["queued"] == 2


async def test_publish_duplicate_is_not_queued_twice_but_is_per_tenant(client, deps):
    for t in ("acme", "globex"):
        await tenant(client, t)
        await destination(client, t)
    ev = {"id": "evt_same", "tenant_id": "acme", "topic": "orders", "data": {}}
    first = await (await client.post("/api/v1/publish", json=ev, headers=AUTH)).json()
    again = await (await client.post("/api/v1/publish", json=ev, headers=AUTH)).json()
    other = await (
        await client.post("/api/v1/publish", json={**ev, "tenant_id": "globex"}, headers=AUTH)
    ).json()
    assert (first["duplicate"], again["duplicate"], other["duplicate"]) == (False, True, False)
    assert (await deps.queue.depth())["queued"] == 2


async def test_publish_targets_one_destination(client, deps):
    await tenant(client)
    a = await destination(client)
    await destination(client)
    r = await client.post(
        "/api/v1/publish",
        headers=AUTH,
        json={"tenant_id": "acme", "topic": "orders", "destination_id": a["id"], "data": {}},
    )
    assert (await r.json())["destination_ids"] == [a["id"]]
    r = await client.post(
        "/api/v1/publish",
        headers=AUTH,
        json={"tenant_id": "acme", "topic": "orders", "destination_id": "nope", "data": {}},
    )
    assert r.status == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"topic": "orders", "data": {}}, 422, "tenant_id"),
        ({"tenant_id": "acme", "topic": "orders"}, 422, "data"),
        ({"tenant_id": "acme", "data": []}, 422, "data"),
        ({"tenant_id": "acme", "data": {}, "metadata": {"a": 1}}, 422, "metadata.a"),
        ({"tenant_id": "acme", "data": {}, "id": "has space"}, 422, "id"),
        ({"tenant_id": "acme", "data": {}, "time": "yesterday"}, 422, "time"),
        (
            {"tenant_id": "acme", "data": {}, "eligible_for_retry": "maybe"},
            422,
            "eligible_for_retry",
        ),
        ({"tenant_id": "ghost", "data": {}}, 404, None),
    ],
)
async def test_publish_bad_input(client, body, status, field):
    await tenant(client)
    r = await client.post("/api/v1/publish", json=body, headers=AUTH)
    assert r.status == status
    err = await r.json()
    assert_error(err, status)
    if field:
        assert any(p.startswith(field) for p in err["data"]), err


async def test_publish_malformed_and_oversized(client):
    r = await client.post("/api/v1/publish", data=b'{"tenant_id": ', headers=AUTH)
    assert r.status == 400
    big = b'{"tenant_id":"acme","data":{"x":"' + b"x" * (2 * 1024 * 1024) + b'"}}'
    r = await client.post("/api/v1/publish", data=io.BytesIO(big), headers=AUTH)
    assert r.status == 413
    assert_error(await r.json(), 413)


async def test_topics_setting_is_enforced(aiohttp_client, redis, redis_server):
    s = make_settings(redis_server.redis_url, topics=["orders", "users"])
    c = await aiohttp_client(create_app(s, Deps.build(s, redis), run_promoter=False))
    assert await (await c.get("/api/v1/topics", headers=AUTH)).json() == ["orders", "users"]
    await tenant(c)
    r = await c.post(
        "/api/v1/tenants/acme/destinations", headers=AUTH, json={**SEED_BODY, "topics": ["orderz"]}
    )
    assert r.status == 422 and "orderz" in await r.text()
    r = await c.post("/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "data": {}})
    assert r.status == 422 and "topic is required" in await r.text()
    r = await c.post(
        "/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "topic": "nope", "data": {}}
    )
    assert r.status == 422


async def test_destination_types_describe_kinesis(client):
    types = await (await client.get("/api/v1/destination-types", headers=AUTH)).json()
    kinesis = next(t for t in types if t["type"] == "aws_kinesis")
    cfg = {f["key"]: f for f in kinesis["config_fields"]}
    creds = {f["key"]: f for f in kinesis["credential_fields"]}
    assert cfg["stream_name"]["required"] and cfg["region"]["required"]
    assert not cfg["endpoint"]["required"] and "partition_key_template" in cfg
    assert creds["secret"]["sensitive"] and not creds["session"]["required"]
    one = await client.get("/api/v1/destination-types/aws_kinesis", headers=AUTH)
    assert await one.json() == kinesis
    assert (await client.get("/api/v1/destination-types/nope", headers=AUTH)).status == 404


async def test_both_prefixes_serve_the_same_api(client):
    await tenant(client, "acme", prefix="/2025-07-01")
    d = await destination(client)
    a = await (
        await client.get(f"/api/v1/tenants/acme/destinations/{d['id']}", headers=AUTH)
    ).json()
    b = await (
        await client.get(f"/2025-07-01/tenants/acme/destinations/{d['id']}", headers=AUTH)
    ).json()
    assert a == b


async def test_unknown_route_and_method_get_error_bodies(client):
    r = await client.get("/api/v1/nothing-here", headers=AUTH)
    assert r.status == 404
    assert_error(await r.json(), 404)
    r = await client.delete("/api/v1/publish", headers=AUTH)
    assert r.status == 405
    assert_error(await r.json(), 405)


async def test_publish_without_redis_is_a_clear_503(settings, aiohttp_client):
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    down = await aiohttp_client(create_app(settings, Deps.build(settings, dead), False))
    r = await down.post(
        "/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "topic": "orders", "data": {}}
    )
    assert r.status == 503
    body = await r.json()
    assert_error(body, 503)
    assert "nothing was accepted" in body["message"]
    await dead.aclose()


async def test_an_event_whose_step_fails_gets_its_own_503_and_the_others_are_stored(
    client, deps, redis
):
    """One event's publish step failing inside a batch (here: its tenant's event index
    is of the wrong type) must not turn the answers of the events stored beside it into
    errors; a key written after the event is stored (the owners set, outbox.py) failing
    does not fail the publish."""
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    await client.put("/api/v1/tenants/bad", headers=AUTH)
    await redis.set(deps.keys.events_index("bad"), "wrong type for ZADD")
    owners = deps.keys.event_owners("b", deps.queue.lanes.owners_partition("b"))
    await redis.set(owners, "wrong type for SADD")
    r = await client.post(
        "/api/v1/publish/batch",
        json=[
            {"tenant_id": t, "topic": "t", "id": i, "data": {}}
            for t, i in (("acme", "a"), ("bad", "x"), ("acme", "b"))
        ],
        headers=AUTH,
    )
    assert r.status == 202
    statuses = [item["status"] for item in (await r.json())["results"]]
    assert statuses == [202, 503, 202]
    assert await redis.exists(deps.keys.event("acme", "a")) == 1
    assert await redis.exists(deps.keys.event("acme", "b")) == 1
    assert await redis.zcard(deps.keys.outbox("acme")) == 0  # drained all the same
    r = await client.post(
        "/api/v1/publish",
        json={"tenant_id": "acme", "topic": "t", "id": "bad2", "data": {}},
        headers=AUTH,
    )
    assert r.status == 202  # an unpoisoned single publish is unaffected
    r = await client.post(
        "/api/v1/publish",
        json={"tenant_id": "bad", "topic": "t", "id": "bad3", "data": {}},
        headers=AUTH,
    )
    assert r.status == 503
    assert set(await r.json()) == {"status", "message", "data"}
