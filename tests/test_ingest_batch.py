"""A publish batch (ingest.publish_many, the source reader's path) routes each event as a
publish of its own would, though it parses and selects a tenant's destinations once per
(destination id, topic) it names: filters still match event by event."""

from datetime import UTC, datetime

from outpost.errors import NotFound
from outpost.models import Event
from tests.conftest import AUTH, kinesis_body

BASE = "/api/v1/tenants/acme/destinations"


def _event(n: int, topic: str, x: int, destination_id: str | None = None) -> Event:
    return Event(
        id=f"e{n}",
        tenant_id="acme" if n < 100 else "nobody",
        topic=topic,
        time=datetime.now(UTC),
        data={"x": x},
        destination_id=destination_id,
    )


async def _destinations(client) -> dict[str, str]:
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    ids = {}
    bodies = {
        "orders": kinesis_body("s", "http://127.0.0.1:9"),
        "filtered": {**kinesis_body("s", "http://127.0.0.1:9", "*"), "filter": {"data": {"x": 1}}},
        "disabled": kinesis_body("s", "http://127.0.0.1:9", ("orders", "refunds")),
    }
    for name, body in bodies.items():
        r = await client.post(BASE, headers=AUTH, json=body)
        assert r.status == 201, await r.text()
        ids[name] = (await r.json())["id"]
    assert (await client.put(f"{BASE}/{ids['disabled']}/disable", headers=AUTH)).status == 200
    return ids


async def test_a_batch_routes_each_event_as_its_own_publish_would(client, deps):
    ids = await _destinations(client)
    events = [
        _event(1, "orders", 1),  # orders + filtered, disabled held
        _event(2, "orders", 2),  # orders only (the filter refuses x=2), disabled held
        _event(3, "refunds", 1),  # filtered, disabled held
        _event(4, "refunds", 2),  # nothing but the held disabled one
        _event(5, "orders", 1, ids["orders"]),  # that destination only
        _event(6, "orders", 1, "nope"),  # no such destination
        _event(7, "other", 3),  # matches nothing
        _event(100, "orders", 1),  # no such tenant
    ]
    out = await deps.ingest.publish_many(events)
    matched = [sorted(o[1]) if isinstance(o, tuple) else type(o).__name__ for o in out]
    two = sorted([ids["orders"], ids["filtered"]])
    assert matched == [
        two,
        [ids["orders"]],
        [ids["filtered"]],
        [],
        [ids["orders"]],
        "NotFound",
        [],
        "NotFound",
    ]
    assert [str(o) for o in out if isinstance(o, NotFound)] == [
        str(NotFound("destination")),
        str(NotFound("tenant")),
    ]
    targets = await deps.store.publish_targets_many(["acme"])
    for event, result in zip(events[:5], out[:5], strict=True):  # the single path agrees
        routes, held, matched_ids, _ = deps.ingest.route(event, *targets["acme"])
        assert isinstance(result, tuple) and matched_ids == result[1]
        assert [d for d, _ in routes] == matched_ids
        assert held == ([ids["disabled"]] if event.destination_id is None else [])
