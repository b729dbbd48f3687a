"""Alerts: consecutive-failure levels, exhausted retries, HMAC signatures, auto-disable."""

import hashlib
import hmac
import json
import time

from aiohttp import web

from outpost.delivery.alerts import Alerts, sign, thresholds
from outpost.dev import devstack
from outpost.retry import RetryPolicy
from outpost.runtime import build_worker
from tests.conftest import AUTH, kinesis_body
from tests.faults import KinesisProxy


def test_levels_of_the_limit():
    assert thresholds(100) == {50: 50, 70: 70, 90: 90, 100: 100}
    assert thresholds(10) == {5: 50, 7: 70, 9: 90, 10: 100}
    assert thresholds(1) == {1: 100}


def test_signature_is_hmac_sha256_of_the_body():
    body = b'{"id":"alt_1"}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert sign("s3cret", body) == f"v0={expected}"
    assert sign("other", body) != sign("s3cret", body)


async def receiver(aiohttp_server):
    got = []

    async def handle(request):
        got.append((request.headers.get("X-Outpost-Signature"), await request.read()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/alerts", handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return got, f"http://127.0.0.1:{server.port}/alerts"


def make_worker(deps, alerts, retries=0):
    return build_worker(
        deps,
        deps.settings,
        policy=RetryPolicy(max_retries=retries, interval=0.01),
        alerts=alerts,
    )


async def test_alert_levels_auto_disable_and_reset(client, deps, moto, moto_stream, aiohttp_server):
    got, url = await receiver(aiohttp_server)
    alerts = Alerts(url=url, secret="op-secret", limit=10, auto_disable=True)
    worker = make_worker(deps, alerts)
    # every PutRecord throttled: a failure that is retried, so it counts up (a missing
    # stream is `broken`: alerted at once, see test_aws_roles)
    proxy = await KinesisProxy(moto.url, throttle=1.0).start()
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post(
        "/api/v1/tenants/acme/destinations",
        headers=AUTH,
        json=kinesis_body(moto_stream, proxy.url),
    )
    dest = (await r.json())["id"]
    for n in range(10):
        await client.post(
            "/api/v1/publish",
            headers=AUTH,
            json={"tenant_id": "acme", "topic": "orders", "id": f"e{n}", "data": {}},
        )
        await worker.run_until_empty()  # one at a time: a deterministic failure count
    await alerts.flush()
    bodies = []
    for signature, raw in got:
        assert signature == sign("op-secret", raw)
        bodies.append(json.loads(raw))
    assert all(set(b) == {"id", "topic", "time", "tenant_id", "data"} for b in bodies)
    levels = [
        (b["data"]["consecutive_failures"], b["data"]["percent"])
        for b in bodies
        if b["topic"] == "alert.consecutive_failure"
    ]
    assert levels == [(5, 50), (7, 70), (9, 90), (10, 100)]
    last = next(b for b in bodies if b["data"].get("percent") == 100)
    assert last["data"]["destination_disabled"] is True and last["tenant_id"] == "acme"
    assert last["data"]["last_error"]["code"] == "throughput_exceeded"
    assert sum(b["topic"] == "alert.retries_exhausted" for b in bodies) == 10
    shown = await (
        await client.get(f"/api/v1/tenants/acme/destinations/{dest}", headers=AUTH)
    ).json()
    assert shown["disabled_at"] is not None
    # enable, fix, succeed: the count starts again from zero
    await client.patch(
        f"/api/v1/tenants/acme/destinations/{dest}",
        headers=AUTH,
        json={"config": {"endpoint": moto.url}, "disabled_at": None},
    )
    await client.post(
        "/api/v1/publish", headers=AUTH, json={"tenant_id": "acme", "topic": "orders", "data": {}}
    )
    await worker.run_until_empty()
    assert await deps.redis.get(deps.keys.failures("acme", dest)) is None
    await alerts.close()
    await proxy.close()


async def test_dead_operator_endpoint_never_blocks_delivery(client, deps, moto, moto_stream):
    dead_port = devstack.free_port()
    alerts = Alerts(url=f"http://127.0.0.1:{dead_port}/alerts", limit=1, timeout=5)
    worker = make_worker(deps, alerts)
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    await client.post(
        "/api/v1/tenants/acme/destinations", headers=AUTH, json=kinesis_body("missing", moto.url)
    )
    await client.post(
        "/api/v1/tenants/acme/destinations", headers=AUTH, json=kinesis_body(moto_stream, moto.url)
    )
    started = time.monotonic()
    for n in range(20):
        await client.post(
            "/api/v1/publish",
            headers=AUTH,
            json={"tenant_id": "acme", "topic": "orders", "data": {"n": n}},
        )
    await worker.run_until_empty()
    assert time.monotonic() - started < 10
    assert len(devstack.read_stream(moto.url, moto_stream, expect=20)) == 20
    await alerts.close()
