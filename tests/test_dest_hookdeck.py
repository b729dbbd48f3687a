"""The hookdeck type end to end: 5 events published through the API and delivered by the
real worker to the real HTTP receiver standing in for https://hkdk.events, compared with
what Outpost's Hookdeck provider sends (the source's URL from the token, the body, the
X-Hookdeck-Signature keyed by the token, the X-Outpost-* metadata headers)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from outpost.settings import Settings
from tests.conftest import AUTH, make_settings


@pytest.fixture
def settings(redis_server: Any, http_receiver: Any) -> Settings:
    return make_settings(
        redis_server.redis_url,
        destinations_hookdeck_url=http_receiver.url,
        destinations_hookdeck_api_url=http_receiver.url,
    )


async def test_five_events_arrive_as_outpost_sends_them(client, deps, worker, http_receiver):
    token = base64.b64encode(b"src_e2e01:sk_abcdef").decode()
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    body = {"type": "hookdeck", "topics": "*", "credentials": {"token": token}}
    body["delivery_metadata"] = {"app": "shop"}
    r = await client.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
    assert r.status == 201, await r.text()
    dest = await r.json()
    assert dest["credentials"]["token"] == token[:4] + "******"  # masked: not revealed
    data = [{"b": i, "a": "ü", "nested": {"z": None, "y": [True]}} for i in range(5)]
    for i, d in enumerate(data):
        event = {"tenant_id": "acme", "topic": "orders", "id": f"h{i}", "data": d}
        event |= {"time": "2024-05-01T12:00:00Z", "metadata": {"trace": f"t{i}"}}
        assert (await client.post("/api/v1/publish", json=event, headers=AUTH)).status == 202
    await worker.run_until_empty()
    got = sorted(http_receiver.delivered("/src_e2e01", 5), key=lambda r: r.event_id)
    assert [r.event_id for r in got] == [f"h{i}" for i in range(5)]
    for i, r in enumerate(got):
        sent = json.dumps(data[i], separators=(",", ":"), ensure_ascii=False).encode()
        mac = base64.b64encode(hmac.new(token.encode(), sent, hashlib.sha256).digest()).decode()
        h = r.headers
        assert (r.method, r.body, h["Content-Type"]) == ("POST", sent, "application/json")
        assert h["X-Hookdeck-Signature"] == f"v0={mac}"
        assert (h["X-Outpost-Topic"], h["X-Outpost-Timestamp"]) == ("orders", "1714564800")
        assert (h["X-Outpost-App"], h["X-Outpost-Trace"]) == ("shop", f"t{i}")
    attempts = await deps.queue.attempts("acme", dest["id"])
    assert {a["status"] for a in attempts} == {"success"} and len(attempts) == 5


@pytest.mark.parametrize(
    "token",
    ["not base64!", base64.b64encode(b"no-colon").decode(), base64.b64encode(b"a/b:k").decode()],
)
async def test_a_token_that_names_no_source_is_422(client, token):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    body = {"type": "hookdeck", "topics": "*", "credentials": {"token": token}}
    r = await client.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
    assert r.status == 422
    assert (await r.json())["data"][0].startswith("credentials.token: is not a Hookdeck token")


async def test_the_token_is_verified_with_hookdeck_at_create_and_when_it_changes(
    client, http_receiver
):
    token = base64.b64encode(b"src_v01:k1").decode()
    verify = "/2025-01-01/sources/src_v01/managed/verify"
    http_receiver.answer(verify, 200, body=b'{"name":"orders-in"}', content_type="application/json")
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    body = {"type": "hookdeck", "topics": "*", "credentials": {"token": token}}
    r = await client.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
    dest = await r.json()
    assert r.status == 201 and dest["config"] == {"name": "orders-in"}
    assert dest["target"] == "Hookdeck source: orders-in"
    [asked] = http_receiver.requests(verify)
    assert asked.method == "GET" and asked.headers["X-Hookdeck-Source-Token"] == token
    where = f"/api/v1/tenants/acme/destinations/{dest['id']}"
    assert (await client.patch(where, json={"metadata": {"a": "b"}}, headers=AUTH)).status == 200
    assert len(http_receiver.requests(verify)) == 1  # same token: not asked again
    refused = base64.b64encode(b"src_v02:bad").decode()
    http_receiver.answer("/2025-01-01/sources/src_v02/managed/verify", 401, body=b"no")
    r = await client.patch(where, json={"credentials": {"token": refused}}, headers=AUTH)
    assert r.status == 422
    assert (await r.json())["data"] == ["credentials.token: Hookdeck did not verify it (HTTP 401)"]
