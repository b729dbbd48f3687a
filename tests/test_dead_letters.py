"""Dead letters, redrive and manual retry, through the API and a real worker on moto."""

from outpost.dev import devstack
from tests.conftest import AUTH, kinesis_body
from tests.faults import KinesisProxy
from tests.topologies import topology  # noqa: F401  (single node and cluster)

BASE = "/api/v1/tenants/acme"


async def make_dest(client, stream, endpoint, tenant="acme", **config):
    await client.put(f"/api/v1/tenants/{tenant}", headers=AUTH)
    r = await client.post(
        f"/api/v1/tenants/{tenant}/destinations",
        headers=AUTH,
        json=kinesis_body(stream, endpoint, **config),
    )
    assert r.status == 201, await r.text()
    return (await r.json())["id"]


async def publish(client, tenant="acme", **body):
    r = await client.post(
        "/api/v1/publish", headers=AUTH, json={"tenant_id": tenant, "topic": "orders", **body}
    )
    assert r.status == 202, await r.text()
    return (await r.json())["id"]


async def dead(client, query=""):
    r = await client.get(f"{BASE}/dead-letters{query}", headers=AUTH)
    assert r.status == 200
    return await r.json()


async def test_permanent_failures_dead_letter_at_once_and_redrive_after_the_fix(
    client, worker, deps, moto, moto_stream
):
    proxy = await KinesisProxy(moto.url, reject_marker=b"poison").start()
    try:
        dest = await make_dest(client, moto_stream, proxy.url, partition_key_template="data.k")
        pad = {"pad": "p" * 500_000}  # the envelope carries delivery_metadata
        r = await client.patch(
            f"{BASE}/destinations/{dest}", headers=AUTH, json={"delivery_metadata": pad}
        )
        assert r.status == 200
        await publish(client, id="too_long_key", data={"k": "k" * 300})
        await publish(client, id="too_big", data={"k": "big", "blob": "x" * 600_000})
        await publish(client, id="rejected", data={"k": "poison"})
        await publish(client, id="fine", data={"k": "fine"})
        await worker.run_until_empty()
        letters = (await dead(client))["models"]
        assert {(d["event_id"], d["code"]) for d in letters} == {
            ("too_long_key", "partition_key_too_long"),
            ("too_big", "record_too_large"),
            ("rejected", "validation_error"),
        }
        assert all(d["attempt_number"] == 1 for d in letters)  # not retried
        assert (await deps.queue.depth())["retrying"] == 0
        # fix the destination (and the upstream problem), then redrive everything
        r = await client.patch(
            f"{BASE}/destinations/{dest}",
            headers=AUTH,
            json={
                "config": {"partition_key_template": 'metadata."event-id"'},
                "delivery_metadata": None,
            },
        )
        assert r.status == 200
        proxy.reject_marker = None
        r = await client.post(f"{BASE}/dead-letters/redrive", headers=AUTH)
        assert r.status == 202 and await r.json() == {"redriven": 3, "skipped": []}
        await worker.run_until_empty()
    finally:
        await proxy.close()
    keys = sorted(r["PartitionKey"] for r in devstack.read_stream(moto.url, moto_stream, expect=4))
    assert keys == ["fine", "rejected", "too_big", "too_long_key"]
    assert (await dead(client))["models"] == []


async def test_list_pages_and_filters_by_destination(client, worker, deps, moto):
    a = await make_dest(client, "missing-a", moto.url)
    b = await make_dest(client, "missing-b", moto.url)
    for n in range(5):
        await publish(client, id=f"e{n}", eligible_for_retry=False, data={})
    await worker.run_until_empty()
    seen, cursor = [], None
    while True:
        page = await dead(client, f"?limit=3{f'&next={cursor}' if cursor else ''}")
        seen += page["models"]
        cursor = page["pagination"]["next"]
        if not cursor:
            break
    assert len(seen) == 10 and len({d["id"] for d in seen}) == 10
    only_a = (await dead(client, f"?destination_id={a}&limit=100"))["models"]
    assert {d["destination_id"] for d in only_a} == {a} and len(only_a) == 5
    assert {d["code"] for d in seen} == {"stream_not_found"}
    assert b in {d["destination_id"] for d in seen}


async def test_redrive_by_event_ids_or_destination_skips_disabled(
    client, worker, deps, moto, moto_stream
):
    a = await make_dest(client, "nowhere", moto.url)
    for n in range(4):
        await publish(client, id=f"e{n}", eligible_for_retry=False, data={})
    await worker.run_until_empty()
    await client.patch(
        f"{BASE}/destinations/{a}", headers=AUTH, json={"config": {"stream_name": moto_stream}}
    )
    r = await client.post(
        f"{BASE}/dead-letters/redrive", headers=AUTH, json={"event_ids": ["e1", "e3"]}
    )
    assert (await r.json())["redriven"] == 2
    await worker.run_until_empty()
    assert sorted(
        x["PartitionKey"] for x in devstack.read_stream(moto.url, moto_stream, expect=2)
    ) == ["e1", "e3"]
    await client.put(f"{BASE}/destinations/{a}/disable", headers=AUTH)
    r = await client.post(f"{BASE}/dead-letters/redrive", headers=AUTH, json={"destination_id": a})
    body = await r.json()
    assert body["redriven"] == 0
    assert {(s["event_id"], s["reason"]) for s in body["skipped"]} == {
        ("e0", "destination_disabled"),
        ("e2", "destination_disabled"),
    }
    await client.put(f"{BASE}/destinations/{a}/enable", headers=AUTH)
    r = await client.post(f"{BASE}/dead-letters/redrive", headers=AUTH, json={"destination_id": a})
    assert (await r.json())["redriven"] == 2
    r = await client.post(
        f"{BASE}/dead-letters/redrive", headers=AUTH, json={"destination_id": "nope"}
    )
    assert r.status == 404
    r = await client.post(f"{BASE}/dead-letters/redrive", headers=AUTH, json={"event_ids": []})
    assert r.status == 422


async def test_disabled_while_queued_then_redriven_after_enable(client, worker, moto, moto_stream):
    a = await make_dest(client, moto_stream, moto.url)
    await publish(client, id="held", data={})
    await client.put(f"{BASE}/destinations/{a}/disable", headers=AUTH)
    await worker.run_until_empty()
    [letter] = (await dead(client))["models"]
    assert letter["code"] == "destination_disabled"
    await client.put(f"{BASE}/destinations/{a}/enable", headers=AUTH)
    r = await client.post(f"{BASE}/dead-letters/redrive", headers=AUTH)
    assert (await r.json())["redriven"] == 1
    await worker.run_until_empty()
    assert [x["PartitionKey"] for x in devstack.read_stream(moto.url, moto_stream, expect=1)] == [
        "held"
    ]


async def test_manual_retry(client, worker, deps, moto, moto_stream):
    a = await make_dest(client, moto_stream, moto.url)
    await publish(client, id="evt_m", data={})
    await worker.run_until_empty()
    r = await client.post(
        "/api/v1/retry", headers=AUTH, json={"event_id": "evt_m", "destination_id": a}
    )
    assert (r.status, await r.json()) == (202, {"success": True})
    await worker.run_until_empty()
    attempts = await deps.queue.attempts("acme", a)
    assert sorted(x["manual"] for x in attempts) == [False, True]
    assert len(devstack.read_stream(moto.url, moto_stream, expect=2)) == 2


async def test_manual_retry_errors(client, worker, deps, moto):
    a = await make_dest(client, "missing-stream", moto.url)
    other = await make_dest(client, "s", moto.url, tenant="globex")
    await publish(client, id="evt_x", data={})
    assert (
        await client.post(
            "/api/v1/retry", headers=AUTH, json={"event_id": "nope", "destination_id": a}
        )
    ).status == 404
    assert (
        await client.post(
            "/api/v1/retry", headers=AUTH, json={"event_id": "evt_x", "destination_id": other}
        )
    ).status == 404  # another tenant's
    assert (
        await client.post("/api/v1/retry", headers=AUTH, json={"event_id": "evt_x"})
    ).status == 422
    await publish(client, tenant="globex", id="evt_x", data={})
    r = await client.post(
        "/api/v1/retry", headers=AUTH, json={"event_id": "evt_x", "destination_id": a}
    )
    assert r.status == 409 and (await r.json())["data"]["tenant_ids"] == ["acme", "globex"]
    r = await client.post(
        "/api/v1/retry",
        headers=AUTH,
        json={"event_id": "evt_x", "destination_id": a, "tenant_id": "acme"},
    )
    assert r.status == 202
    await worker.run_until_empty()
    manual = [x for x in await deps.queue.attempts("acme", a) if x["manual"]]
    assert [x["status"] for x in manual] == ["failed"]  # one attempt, not rescheduled
    await client.put(f"{BASE}/destinations/{a}/disable", headers=AUTH)
    r = await client.post(
        "/api/v1/retry",
        headers=AUTH,
        json={"event_id": "evt_x", "destination_id": a, "tenant_id": "acme"},
    )
    assert r.status == 400 and "disabled" in (await r.json())["message"]


async def test_events_published_while_disabled_are_kept_and_redriven(
    client, worker, moto, moto_stream
):
    a = await make_dest(client, moto_stream, moto.url)
    await client.put(f"{BASE}/destinations/{a}/disable", headers=AUTH)
    r = await client.post(
        "/api/v1/publish",
        headers=AUTH,
        json={"tenant_id": "acme", "topic": "orders", "id": "paused", "data": {}},
    )
    assert (await r.json())["destination_ids"] == []  # not delivered now...
    r = await client.post(
        "/api/v1/publish",
        headers=AUTH,
        json={"tenant_id": "acme", "topic": "users", "id": "other-topic", "data": {}},
    )
    await worker.run_until_empty()
    [letter] = (await dead(client))["models"]  # ...but kept (the users topic never matched)
    assert (letter["event_id"], letter["code"], letter["attempt_number"]) == (
        "paused",
        "destination_disabled",
        0,
    )
    await client.put(f"{BASE}/destinations/{a}/enable", headers=AUTH)
    r = await client.post(f"{BASE}/dead-letters/redrive", headers=AUTH)
    assert (await r.json())["redriven"] == 1
    await worker.run_until_empty()
    assert [x["PartitionKey"] for x in devstack.read_stream(moto.url, moto_stream, expect=1)] == [
        "paused"
    ]


async def test_foreign_cursor_is_400_not_500(client):
    """Found by schemathesis: another list's cursor reached Redis as a stream id."""
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    for cursor in ("MHxhY21lL2V2dA%3D%3D", "0-0-0", "abc"):
        r = await client.get(f"{BASE}/dead-letters?next={cursor}", headers=AUTH)
        assert r.status == 400 and (await r.json())["message"] == "invalid cursor"
    assert (await client.get(f"{BASE}/dead-letters?next=0-1", headers=AUTH)).status == 200
