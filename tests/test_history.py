"""The event and attempt log, through the API, after real deliveries on moto."""

import pytest

from outpost.deps import Deps
from outpost.queue import items as queue_module
from outpost.runtime import create_app
from tests.conftest import AUTH, kinesis_body, make_settings
from tests.faults import KinesisProxy
from tests.topologies import topology  # noqa: F401  (single node and cluster)


async def make_dest(client, tenant, stream, endpoint, topics=("orders",)):
    await client.put(f"/api/v1/tenants/{tenant}", headers=AUTH)
    r = await client.post(
        f"/api/v1/tenants/{tenant}/destinations",
        headers=AUTH,
        json=kinesis_body(stream, endpoint, topics=topics),
    )
    assert r.status == 201
    return (await r.json())["id"]


async def publish(client, tenant, eid, minute, topic="orders"):
    r = await client.post(
        "/api/v1/publish",
        headers=AUTH,
        json={
            "tenant_id": tenant,
            "id": eid,
            "topic": topic,
            "time": f"2026-01-01T00:{minute:02d}:00Z",
            "data": {"eid": eid},
            "metadata": {"m": eid},
        },
    )
    assert r.status == 202


async def get(client, path):
    r = await client.get(f"/api/v1{path}", headers=AUTH)
    assert r.status == 200, await r.text()
    return await r.json()


async def test_events_listing_filters_and_paging(client, worker, moto, moto_stream):
    a = await make_dest(client, "acme", moto_stream, moto.url)
    await make_dest(client, "globex", moto_stream, moto.url, topics=["users"])
    for n in range(5):
        await publish(client, "acme", f"a{n}", n)
    await publish(client, "globex", "g0", 10, topic="users")
    await publish(client, "acme", "a-other", 11, topic="billing")
    everything = await get(client, "/events?limit=100")
    assert [e["id"] for e in everything["models"]] == [
        "a-other",
        "g0",
        "a4",
        "a3",
        "a2",
        "a1",
        "a0",
    ]
    first = everything["models"][-1]
    assert first == {
        "id": "a0",
        "tenant_id": "acme",
        "matched_destination_ids": [a],
        "topic": "orders",
        "time": "2026-01-01T00:00:00.000Z",
        "metadata": {"m": "a0"},
        "data": {"eid": "a0"},
    }
    acme = await get(client, "/events?tenant_id=acme&topic=orders&dir=asc")
    assert [e["id"] for e in acme["models"]] == ["a0", "a1", "a2", "a3", "a4"]
    assert [e["id"] for e in (await get(client, f"/events?destination_id={a}"))["models"]] == [
        "a4",
        "a3",
        "a2",
        "a1",
        "a0",
    ]
    assert [e["id"] for e in (await get(client, "/events?id=a1&id=g0"))["models"]] == ["g0", "a1"]
    ranged = await get(
        client, "/events?time[gte]=2026-01-01T00:01:00Z&time[lt]=2026-01-01T00:04:00Z"
    )
    assert [e["id"] for e in ranged["models"]] == ["a3", "a2", "a1"]
    # forward with next, back with prev
    p1 = await get(client, "/events?tenant_id=acme&limit=2")
    assert [e["id"] for e in p1["models"]] == ["a-other", "a4"] and p1["pagination"]["prev"] is None
    p2 = await get(client, f"/events?tenant_id=acme&limit=2&next={p1['pagination']['next']}")
    assert [e["id"] for e in p2["models"]] == ["a3", "a2"]
    back = await get(client, f"/events?tenant_id=acme&limit=2&prev={p2['pagination']['prev']}")
    assert [e["id"] for e in back["models"]] == ["a-other", "a4"]
    assert back["pagination"]["prev"] is None and back["pagination"]["next"]
    assert (await get(client, "/events/a2"))["data"] == {"eid": "a2"}


async def test_attempts_log(client, worker, deps, moto, moto_stream):
    ok = await make_dest(client, "acme", moto_stream, moto.url)
    # every PutRecord throttled: a retried failure (a missing stream now fails at once)
    throttled = await KinesisProxy(moto.url, throttle=1.0).start()
    bad = await make_dest(client, "acme", moto_stream, throttled.url)
    await publish(client, "acme", "e1", 1)
    await worker.run_until_empty()  # bad: 1 + 3 retries, all failed; ok: 1 success
    await throttled.close()
    all_attempts = await get(client, "/attempts?tenant_id=acme")
    assert len(all_attempts["models"]) == 5
    failed = await get(client, f"/tenants/acme/destinations/{bad}/attempts?status=failed")
    assert [a["attempt_number"] for a in failed["models"]] == [4, 3, 2, 1]
    assert {a["code"] for a in failed["models"]} == {"throughput_exceeded"}
    [success] = (await get(client, f"/tenants/acme/destinations/{ok}/attempts"))["models"]
    assert success["status"] == "success" and success["manual"] is False
    assert "response_data" not in success  # only on request, as Outpost
    path = f"/tenants/acme/destinations/{ok}/attempts?include=response_data"
    [shown] = (await get(client, path))["models"]
    assert set(shown["response_data"]) == {"shard_id", "sequence_number", "partition_key"}
    assert success["tenant_id"] == "acme" and success["event_id"] == "e1"
    got = await get(client, f"/attempts/{success['id']}?include=event.data")
    assert got["event"]["data"] == {"eid": "e1"} and got["event"]["destination_id"] == ok
    scoped = f"/tenants/acme/destinations/{ok}/attempts/{success['id']}"
    assert (await get(client, scoped))["id"] == success["id"]
    wrong = f"/tenants/acme/destinations/{bad}/attempts/{success['id']}"
    assert (await client.get(f"/api/v1{wrong}", headers=AUTH)).status == 404
    by_event = await get(client, "/attempts?tenant_id=acme&event_id=e1&status=success")
    assert [a["id"] for a in by_event["models"]] == [success["id"]]
    assert "topic" not in by_event["models"][0]
    assert len((await get(client, "/attempts?topic=orders"))["models"]) == 5
    assert (await get(client, "/attempts?topic=users"))["models"] == []
    with_dest = await get(
        client, f"/attempts?tenant_id=acme&destination_id={ok}&include=destination"
    )
    assert with_dest["models"][0]["destination"]["credentials"]["secret"].endswith("******")


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "dir=up",
        "order_by=size",
        "time[gte]=yesterday",
        "status=maybe",
    ],
)
async def test_bad_log_queries_are_422(client, query):
    r = await client.get(f"/api/v1/attempts?{query}", headers=AUTH)
    assert r.status == 422
    assert set(await r.json()) == {"status", "message", "data"}


async def test_bad_cursor_is_400(client):
    r = await client.get("/api/v1/events?next=!!notacursor", headers=AUTH)
    assert r.status == 400


async def test_log_is_bounded_and_expires(aiohttp_client, redis, redis_server, monkeypatch):
    monkeypatch.setattr(queue_module, "TRIM_SHARE", 1.0)
    s = make_settings(
        redis_server.redis_url,
        log_max_per_tenant=100,
        log_max_total=150,
        event_retention_seconds=3600,
    )
    deps = Deps.build(s, redis)
    c = await aiohttp_client(create_app(s, deps, run_promoter=False))
    await c.put("/api/v1/tenants/acme", headers=AUTH)
    for n in range(130):
        r = await c.post(
            "/api/v1/publish",
            headers=AUTH,
            json={"tenant_id": "acme", "id": f"e{n:03d}", "data": {}},
        )
        assert r.status == 202
    assert await redis.zcard(deps.keys.events_index("acme")) <= 101
    # the admin's listing: each partition keeps its share of the total (150 / 4 partitions)
    admin = [await redis.zcard(deps.keys.admin_events(n)) for n in range(4)]
    assert sum(admin) <= 151 and max(admin) <= 38
    ttl = await redis.ttl(deps.keys.event("acme", "e129"))
    assert 0 < ttl <= 3600
    newest = await c.get("/api/v1/events?tenant_id=acme&limit=1", headers=AUTH)
    assert (await newest.json())["models"][0]["id"] == "e129"


async def test_contract_filters_tenants_by_id_and_attempts_by_type(
    client, worker, moto, moto_stream
):
    for t in ("t1", "t2", "t3"):
        await client.put(f"/api/v1/tenants/{t}", headers=AUTH)
    body = await get(client, "/tenants?id=t1&id=t3&id=ghost")
    assert [t["id"] for t in body["models"]] == ["t1", "t3"] and body["count"] == 2
    await make_dest(client, "t1", moto_stream, moto.url)
    await publish(client, "t1", "e1", 1)
    await worker.run_until_empty()
    hits = await get(client, "/attempts?destination_type=aws_kinesis")
    assert len(hits["models"]) == 1 and "destination_type" not in hits["models"][0]
    assert (await get(client, "/attempts?destination_type=webhook"))["models"] == []
    aid = hits["models"][0]["id"]
    assert (await get(client, f"/attempts/{aid}?tenant_id=t1"))["id"] == aid
    r = await client.get(f"/api/v1/attempts/{aid}?tenant_id=t2", headers=AUTH)
    assert r.status == 404
