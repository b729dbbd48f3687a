"""Values Outpost's contract accepts that we used to refuse or mis-read, and a field it
returns only on request: one test per finding of the contract sweep (see
tests/test_contract_queries.py for the sweep itself)."""

import time

import pytest

from tests.conftest import AUTH, kinesis_body, make_settings
from tests.test_history import get, make_dest, publish


async def test_topics_star_list_means_every_topic(aiohttp_client, redis, redis_server):
    from outpost.deps import Deps
    from outpost.runtime import create_app

    s = make_settings(redis_server.redis_url, topics=["orders", "users.created"])
    c = await aiohttp_client(create_app(s, Deps.build(s, redis), run_promoter=False))
    await c.put("/api/v1/tenants/acme", headers=AUTH)
    body = kinesis_body("s", "http://127.0.0.1:1", topics=["*"])
    r = await c.post("/api/v1/tenants/acme/destinations", headers=AUTH, json=body)
    assert r.status == 201, await r.text()
    dest = await r.json()
    assert dest["topics"] == ["*"]  # echoed as stored
    got = await c.get(f"/api/v1/tenants/acme/destinations/{dest['id']}", headers=AUTH)
    assert (await got.json())["topics"] == ["*"]
    for topic in ("orders", "users.created"):
        r = await c.post(
            "/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "topic": topic, "data": {}}
        )
        assert (await r.json())["destination_ids"] == [dest["id"]]
    listed = await c.get("/api/v1/tenants/acme/destinations?topics=users.created", headers=AUTH)
    assert [d["id"] for d in await listed.json()] == [dest["id"]]
    partial = kinesis_body("s", "http://127.0.0.1:1", topics=["orders.*"])
    r = await c.post("/api/v1/tenants/acme/destinations", headers=AUTH, json=partial)
    assert r.status == 422 and "TOPICS_ALLOW_WILDCARDS" in await r.text()  # still governed


@pytest.fixture
async def delivered(client, worker, moto, moto_stream):
    """One event delivered to one destination: (destination id, attempt id)."""
    dest = await make_dest(client, "acme", moto_stream, moto.url)
    await publish(client, "acme", "e1", 1)
    await worker.run_until_empty()
    [attempt] = (await get(client, "/attempts?tenant_id=acme"))["models"]
    return dest, attempt["id"]


async def test_response_data_only_on_request(client, delivered):
    dest, attempt = delivered
    for path in (f"/attempts/{attempt}", f"/tenants/acme/destinations/{dest}/attempts/{attempt}"):
        assert "response_data" not in await get(client, path)
        shown = await get(client, f"{path}?include=response_data")
        assert shown["response_data"]["partition_key"] == "e1"


async def test_unknown_include_values_are_ignored(client, delivered):
    _, attempt = delivered
    got = await get(client, f"/attempts/{attempt}?include=everything&include=event")
    assert got["event"]["id"] == "e1" and "response_data" not in got


async def test_include_in_bracket_notation(client, delivered):
    """The contract's own example: `include[0]=event&include[1]=response_data`."""
    _, attempt = delivered
    got = await get(client, f"/attempts/{attempt}?include[0]=event.data&include[1]=response_data")
    assert got["event"]["data"] == {"eid": "e1"} and got["response_data"]


async def test_array_values_are_trimmed(client, delivered):
    page = await get(client, "/attempts?tenant_id=acme&status=failed,%20success")
    assert len(page["models"]) == 1


@pytest.mark.parametrize("path", ["/events", "/attempts", "/tenants"])
async def test_empty_paging_values_mean_the_default(client, path):
    query = "limit=&dir=&next=&prev=" + ("" if path == "/tenants" else "&order_by=&time[gte]=")
    page = await get(client, f"{path}?{query}")
    assert page["pagination"]["dir"] == "desc"
    assert page["pagination"]["limit"] == (20 if path == "/tenants" else 100)


@pytest.fixture
def far_east(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_date_only_bounds_are_utc(client, worker, moto, moto_stream, far_east):
    await make_dest(client, "acme", moto_stream, moto.url)
    r = await client.post(
        "/api/v1/publish",
        headers=AUTH,
        json={
            "tenant_id": "acme",
            "id": "late",
            "topic": "orders",
            "time": "2025-12-31T20:00:00Z",
            "data": {},
        },
    )
    assert r.status == 202, await r.text()
    assert (await get(client, "/events?time[gte]=2026-01-01"))["models"] == []
    assert [e["id"] for e in (await get(client, "/events?time[lt]=2026-01-01"))["models"]] == [
        "late"
    ]


async def test_metrics_date_only_bound_is_not_a_500(client):
    q = "measures=count&time[start]=2024-01-01T00:00:00Z&time[end]=2024-01-02"
    r = await client.get(f"/api/v1/metrics/events?{q}", headers=AUTH)
    assert r.status == 200, await r.text()


async def test_empty_optional_values_are_omitted(client, delivered):
    _, attempt = delivered
    assert (await get(client, f"/attempts/{attempt}?tenant_id="))["id"] == attempt
    assert "theme" not in (await get(client, "/tenants/acme/portal?theme="))["redirect_url"]
    q = "measures=count&time[start]=2024-01-01T00:00:00Z&time[end]=2099-01-01T00:00:00Z"
    assert (await get(client, f"/metrics/attempts?{q}&granularity="))["data"] is not None
