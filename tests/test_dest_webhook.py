"""The webhook type end to end: events published through the API, delivered by the real
worker to the real HTTP receiver (tests/servers/http_receiver.py), compared byte by byte
and header by header with what Outpost's webhook provider sends, signatures verified with
the destination's secret (also across a rotation)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from outpost.settings import Settings
from tests.conftest import AUTH, make_settings

DATA = [  # key order, number digits and unicode as published
    {"z": 1, "a": [1.50, 2e3], "name": "Zoë ☃", "id": f"o{i}", "big": 12345678901234567890}
    for i in range(5)
]
EPOCH = "2024-05-01T12:00:00Z"  # 1714564800


@pytest.fixture
def settings(redis_server: Any, http_receiver: Any) -> Settings:
    return make_settings(
        redis_server.redis_url,
        destinations_hookdeck_url=http_receiver.url,
        destinations_hookdeck_api_url=http_receiver.url,
    )


def sig(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signatures(header: str) -> list[str]:
    assert header.startswith("v0="), header
    return header[3:].split(",")


async def tenant_and_destination(client: Any, url: str, **extra: Any) -> dict[str, Any]:
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    body = {"type": "webhook", "topics": ["orders"], "config": {"url": url}, **extra}
    r = await client.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
    assert r.status == 201, await r.text()
    return dict(await r.json())


async def publish(client: Any, event_id: str, data: Any, **extra: Any) -> None:
    body = {"tenant_id": "acme", "topic": "orders", "id": event_id, "data": data, **extra}
    r = await client.post("/api/v1/publish", json=body, headers=AUTH)
    assert r.status == 202, await r.text()


async def test_five_events_arrive_as_outpost_sends_them(client, deps, worker, http_receiver):
    path = http_receiver.path()
    dest = await tenant_and_destination(
        client,
        http_receiver.url + path,
        config={"url": http_receiver.url + path, "custom_headers": '{"x-api-key":"k-1"}'},
        delivery_metadata={"app": "shop", "event-id": "forged"},
    )
    secret = dest["credentials"]["secret"]  # generated, shown in full as Outpost does
    assert re.fullmatch(r"whsec_[0-9a-f]{64}", secret)
    assert dest["target"] == http_receiver.url + path
    for i, data in enumerate(DATA):
        await publish(client, f"e{i}", data, time=EPOCH, metadata={"source": "s", "topic": "x"})
    await worker.run_until_empty()
    got = sorted(http_receiver.delivered(path, 5), key=lambda r: r.event_id)
    assert [r.event_id for r in got] == [f"e{i}" for i in range(5)]
    for i, r in enumerate(got):
        body = json.dumps(DATA[i], separators=(",", ":"), ensure_ascii=False).encode()
        assert (r.method, r.body) == ("POST", body)
        h = r.headers
        assert h["content-type"] == "application/json" and h["x-api-key"] == "k-1"
        assert (h["x-outpost-event-id"], h["x-outpost-topic"]) == (f"e{i}", "orders")
        assert h["x-outpost-timestamp"] == "1714564800"
        assert (h["x-outpost-app"], h["x-outpost-source"]) == ("shop", "s")
        assert signatures(h["x-outpost-signature"]) == [sig(secret, body)]
    [attempt] = await deps.queue.attempts("acme", dest["id"], count=1)
    assert attempt["status"] == "success"
    assert attempt["response_data"] == {"status": 200, "body": {"ok": True}}


async def test_a_rotated_secret_signs_beside_the_previous_one_until_its_window_ends(
    client, worker, http_receiver
):
    path = http_receiver.path()
    dest = await tenant_and_destination(client, http_receiver.url + path)
    first = dest["credentials"]["secret"]
    where = f"/api/v1/tenants/acme/destinations/{dest['id']}"
    r = await client.patch(where, json={"credentials": {"rotate_secret": True}}, headers=AUTH)
    assert r.status == 200, await r.text()
    creds = (await r.json())["credentials"]
    second = creds["secret"]
    assert second != first and creds["previous_secret"] == first
    ends = datetime.fromisoformat(creds["previous_secret_invalid_at"].replace("Z", "+00:00"))
    assert timedelta(hours=23) < ends - datetime.now(UTC) <= timedelta(hours=24)
    await publish(client, "during", {"n": 1})
    await worker.run_until_empty()
    [r1] = http_receiver.delivered(path, 1)
    assert signatures(r1.headers["x-outpost-signature"]) == [
        sig(second, r1.body),
        sig(first, r1.body),
    ]
    past = {"credentials": {"previous_secret_invalid_at": "2020-01-01T00:00:00Z"}}
    r = await client.patch(where, json=past, headers=AUTH)
    assert r.status == 200
    assert (await r.json())["credentials"] == {"secret": second}  # the ended one: not shown
    await publish(client, "after", {"n": 2})
    await worker.run_until_empty()
    r2 = http_receiver.delivered(path, 2)[-1]
    assert signatures(r2.headers["x-outpost-signature"]) == [sig(second, r2.body)]


async def test_only_the_admin_sets_a_secret_and_a_tenant_may_rotate(client, http_receiver):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    token = (await (await client.get("/api/v1/tenants/acme/token", headers=AUTH)).json())["token"]
    me = {"Authorization": f"Bearer {token}"}
    url = http_receiver.url + http_receiver.path()
    body = {"type": "webhook", "topics": ["orders"], "config": {"url": url}}
    r = await client.post(
        "/api/v1/tenants/acme/destinations",
        json={**body, "credentials": {"secret": "mine"}},
        headers=me,
    )
    assert r.status == 422
    assert (await r.json())["data"] == [
        "credentials.secret: only the admin may set it (rotate with rotate_secret)"
    ]
    r = await client.post("/api/v1/tenants/acme/destinations", json=body, headers=me)
    dest = await r.json()
    assert r.status == 201 and dest["credentials"]["secret"].startswith("whsec_")
    where = f"/api/v1/tenants/acme/destinations/{dest['id']}"
    r = await client.patch(where, json={"credentials": {"secret": "mine"}}, headers=me)
    assert r.status == 422
    r = await client.patch(where, json={"credentials": {"rotate_secret": "true"}}, headers=me)
    assert r.status == 200
    assert (await r.json())["credentials"]["previous_secret"] == dest["credentials"]["secret"]


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ('{"Content-Type": "text/plain"}', "'Content-Type' is reserved"),
        ('{"host": "evil"}', "'host' is reserved"),
        ('{"bad name": "x"}', "'bad name' is not a valid header name"),
        ('{"x-a": ""}', "'x-a' needs a non-empty string value"),
        ('{"x-a": "1\\r\\nx-b: 2"}', "'x-a' has a line break"),
        ("[1]", "must be a JSON object"),
    ],
)
async def test_custom_headers_that_cannot_be_sent_are_422(client, http_receiver, headers, named):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    config = {"url": http_receiver.url + "/x", "custom_headers": headers}
    body = {"type": "webhook", "topics": ["orders"], "config": config}
    r = await client.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
    assert r.status == 422
    [problem] = (await r.json())["data"]
    assert problem.startswith("config.custom_headers: ") and named in problem


async def test_the_timestamp_header_can_be_rfc3339_as_outposts_default_mode(
    redis_server, redis, aiohttp_client, http_receiver
):
    from outpost.deps import Deps
    from outpost.runtime import build_worker, create_app

    settings = make_settings(
        redis_server.redis_url, destinations_webhook_timestamp_format="rfc3339"
    )
    deps = Deps.build(settings, redis)
    client = await aiohttp_client(create_app(settings, deps, run_promoter=False))
    path = http_receiver.path()
    await tenant_and_destination(client, http_receiver.url + path)
    await publish(client, "ts", {"n": 1}, time=EPOCH)
    await build_worker(deps, settings).run_until_empty()
    [r] = http_receiver.delivered(path, 1)
    assert r.headers["x-outpost-timestamp"] == EPOCH
    await deps.registry.close()


async def test_metadata_keys_are_header_tokens_and_one_that_cannot_be_dead_letters(
    client, deps, worker, http_receiver
):
    path = http_receiver.path()
    await tenant_and_destination(client, http_receiver.url + path)
    await publish(client, "dotted", {"n": 1}, metadata={"app.version": "1.2"})
    await publish(client, "spaced", {"n": 2}, metadata={"bad key": "x"})
    await worker.run_until_empty()
    [r] = http_receiver.delivered(path, 1)
    assert (r.event_id, r.headers["x-outpost-app.version"]) == ("dotted", "1.2")
    [dead] = await deps.queue.dead_letters("acme")
    assert (dead["e"], dead["code"]) == ("spaced", "invalid_header")


async def test_system_header_names_follow_outposts_settings(
    redis_server, redis, aiohttp_client, http_receiver
):
    from outpost.deps import Deps
    from outpost.runtime import build_worker, create_app

    settings = make_settings(
        redis_server.redis_url,
        destinations_webhook_header_prefix="x-acme-",
        destinations_webhook_event_id_header_name="webhook-id",
        destinations_webhook_topic_header_name="",
        destinations_webhook_disable_default_timestamp_header=True,
    )
    deps = Deps.build(settings, redis)
    client = await aiohttp_client(create_app(settings, deps, run_promoter=False))
    path = http_receiver.path()
    dest = await tenant_and_destination(client, http_receiver.url + path)
    await publish(client, "named", {"n": 1}, metadata={"k": "v"})
    await build_worker(deps, settings).run_until_empty()
    [r] = http_receiver.delivered(path, 1)
    h = r.headers
    assert (h["webhook-id"], h["x-acme-k"]) == ("named", "v")
    assert not {"x-acme-topic", "x-acme-timestamp", "x-acme-event-id"} & set(h)
    secret = dest["credentials"]["secret"]
    assert h["x-acme-signature"] == "v0=" + sig(secret, r.body)
    await deps.registry.close()


@pytest.mark.parametrize(
    ("names", "says"),
    [
        ({"destinations_webhook_event_id_header_name": "Host"}, "is reserved"),
        ({"destinations_webhook_topic_header_name": "bad name"}, "is not a header name"),
        (
            {
                "destinations_webhook_topic_header_name": "x-a",
                "destinations_webhook_event_id_header_name": "X-A",
            },
            "headers are both",
        ),
    ],
)
def test_header_names_that_cannot_work_stop_start_up(names, says):
    with pytest.raises(ValueError, match=says):
        Settings(**names)
