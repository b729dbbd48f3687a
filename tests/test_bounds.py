"""No tenant's input can fail another's request, and no input can make the service slow
or answer 5xx: filter bounds and per-event failures in a coalesced publish, JMESPath
template bounds, linear topic wildcards, JSON body limits (depth, big numbers, NaN,
surrogates), time bounds."""

import asyncio

from outpost.models import Destination
from tests.conftest import AUTH, FAKE_CREDS

KINESIS = {"stream_name": "s", "region": "us-east-1", "endpoint": "http://127.0.0.1:1"}


def nested(depth: int, leaf: object = "x") -> dict:
    """{"data": {"data": ... leaf}} `depth` objects deep."""
    out: object = leaf
    for _ in range(depth):
        out = {"data": out}
    assert isinstance(out, dict)
    return out


def not_chain(depth: int) -> dict:
    """{"$not": {"$not": ... {"$eq": 1}}}: every level is evaluated whatever the event holds
    (about five Python frames per level while matching)."""
    out: dict = {"$eq": 1}
    for _ in range(depth):
        out = {"$not": out}
    return out


def dest_body(**extra: object) -> dict:
    return {
        "type": "aws_kinesis",
        "topics": "*",
        "config": dict(KINESIS),
        "credentials": dict(FAKE_CREDS),
        **extra,
    }


async def poisoned(deps, tenant_id: str) -> None:
    """A destination whose filter recurses past Python's limit while matching, stored
    directly (as an older release or a hand edit could have left it)."""
    dest = Destination(
        id="poison",
        tenant_id=tenant_id,
        type="aws_kinesis",
        topics="*",
        config=dict(KINESIS),
        credentials=dict(FAKE_CREDS),
        created_at="2024-01-01T00:00:00.000Z",
        updated_at="2024-01-01T00:00:00.000Z",
        filter={"data": not_chain(300)},
    )
    await deps.store.create_destination(dest)


# -- 3: filters ---------------------------------------------------------------------------


async def test_a_poisoned_filter_fails_only_its_own_event_in_a_coalesced_publish(client, deps):
    for t in ("acme", "globex"):
        await client.put(f"/api/v1/tenants/{t}", headers=AUTH)
    await poisoned(deps, "acme")
    r = await client.post("/api/v1/tenants/globex/destinations", headers=AUTH, json=dest_body())
    assert r.status == 201
    ok = {"tenant_id": "globex", "id": "g1", "topic": "orders", "data": {"n": 1}}
    bad = {"tenant_id": "acme", "id": "a1", "topic": "orders", "data": {"n": 1}}
    # two concurrent single publishes ...
    bad_r, ok_r = await asyncio.wait_for(
        asyncio.gather(
            client.post("/api/v1/publish", headers=AUTH, json=bad),
            client.post("/api/v1/publish", headers=AUTH, json=ok),
        ),
        10,
    )
    assert ok_r.status == 202, await ok_r.text()
    assert bad_r.status == 500 and "poison" not in await bad_r.text()
    # ... and one batch, which is always one coalesced call
    ok2, bad2 = dict(ok, id="g2"), dict(bad, id="a2")
    r = await client.post("/api/v1/publish/batch", headers=AUTH, json=[bad2, ok2])
    body = await r.json()
    assert r.status == 202 and [x["status"] for x in body["results"]] == [500, 202]
    assert body["accepted"] == 1


async def test_a_poisoned_filter_fails_only_its_own_event_in_one_call(client, deps):
    from outpost.models import Event, utcnow

    for t in ("acme", "globex"):
        await client.put(f"/api/v1/tenants/{t}", headers=AUTH)
    await poisoned(deps, "acme")
    events = [
        Event(id=f"e{t}", tenant_id=t, topic="o", time=utcnow(), data={})
        for t in ("acme", "globex")
    ]
    bad, ok = await deps.ingest.publish_many(events)
    assert isinstance(bad, Exception) and ok == (True, [])


async def test_filter_depth_and_size_are_bounded_at_create_and_update(client):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    url = "/api/v1/tenants/acme/destinations"
    r = await client.post(url, headers=AUTH, json=dest_body(filter=nested(40)))
    body = await r.json()
    assert r.status == 422 and any("FILTER_MAX_DEPTH (16)" in p for p in body["data"]), body
    big = {"data": {"$in": ["x" * 100] * 300}}
    r = await client.post(url, headers=AUTH, json=dest_body(filter=big))
    body = await r.json()
    assert r.status == 422 and any("FILTER_MAX_BYTES (16384)" in p for p in body["data"]), body
    r = await client.post(url, headers=AUTH, json=dest_body(filter=nested(8)))
    assert r.status == 201
    dest = (await r.json())["id"]
    r = await client.patch(f"{url}/{dest}", headers=AUTH, json={"filter": nested(40)})
    assert r.status == 422 and "FILTER_MAX_DEPTH" in await r.text()
    not_nested = {"$or": [{"data": {"$eq": i}} for i in range(5)]}
    r = await client.patch(f"{url}/{dest}", headers=AUTH, json={"filter": not_nested})
    assert r.status == 200
