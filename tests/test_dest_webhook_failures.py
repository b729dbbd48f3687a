"""What a webhook send that does not end in a 2xx means (the closed table in
destinations/http/errors.py), against the real HTTP receiver: redirects are not followed,
slow receivers time out, answers are kept bounded, and the endpoint guard holds at create
and at send."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from outpost.deps import Deps
from outpost.destinations.base import Kind
from outpost.destinations.endpoints import ForbiddenEndpoint
from outpost.destinations.http import errors
from outpost.destinations.http.client import Answer, GuardedResolver, HTTPStatusError
from outpost.retry import RetryPolicy
from outpost.runtime import build_worker
from tests.conftest import AUTH, make_settings


async def _create(client: Any, url: str) -> str:
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    body = {"type": "webhook", "topics": ["orders"], "config": {"url": url}}
    r = await client.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
    assert r.status == 201, await r.text()
    return str((await r.json())["id"])


async def _publish(client: Any, event_id: str) -> None:
    body = {"tenant_id": "acme", "topic": "orders", "id": event_id, "data": {"n": 1}}
    assert (await client.post("/api/v1/publish", json=body, headers=AUTH)).status == 202


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (301, Kind.PERMANENT),
        (307, Kind.PERMANENT),
        (400, Kind.PERMANENT),
        (404, Kind.PERMANENT),
        (410, Kind.PERMANENT),
        (401, Kind.AUTH),
        (403, Kind.AUTH),
        (408, Kind.RETRY),
        (409, Kind.PERMANENT),
        (429, Kind.RETRY),
        (500, Kind.RETRY),
        (503, Kind.RETRY),
    ],
)
def test_each_status_has_one_meaning_and_is_the_attempt_code(status, kind):
    failure = errors.classify(HTTPStatusError(Answer(status, "nope")))
    assert (failure.kind, failure.code) == (kind, str(status))
    assert failure.response == {"status": status, "body": "nope"}


async def test_a_redirect_is_not_followed_and_dead_letters(client, deps, worker, http_receiver):
    path, elsewhere = http_receiver.path(), http_receiver.path()
    http_receiver.answer(path, 307, headers={"Location": http_receiver.url + elsewhere})
    dest_id = await _create(client, http_receiver.url + path)
    await _publish(client, "redirected")
    await worker.run_until_empty()
    assert http_receiver.requests(elsewhere) == []  # the redirect's target never contacted
    [dead] = await deps.queue.dead_letters("acme")
    assert dead["code"] == "307"
    [attempt] = await deps.queue.attempts("acme", dest_id)
    assert attempt["status"] == "failed"


async def test_a_slow_receiver_times_out_and_is_retried(
    redis_server, redis, aiohttp_client, http_receiver
):
    from outpost.runtime import create_app

    settings = make_settings(
        redis_server.redis_url, delivery_timeout_seconds=0.3, delivery_reclaim_idle_seconds=5
    )
    deps = Deps.build(settings, redis)
    client = await aiohttp_client(create_app(settings, deps, run_promoter=False))
    worker = build_worker(deps, settings, policy=RetryPolicy(max_retries=3, interval=0.02))
    path = http_receiver.path()
    http_receiver.answer(path, 200, delay=2.0, times=1)
    dest_id = await _create(client, http_receiver.url + path)
    await _publish(client, "slow")
    await worker.run_until_empty()
    codes = [a["code"] for a in await deps.queue.attempts("acme", dest_id)]
    assert codes[-1] == "timeout" and len(codes) == 2  # newest first: timed out, then sent
    assert len(http_receiver.delivered(path, 2)) == 2  # the slow one did arrive, late
    await deps.registry.close()


async def test_the_answer_kept_on_the_attempt_is_bounded(client, deps, worker, http_receiver):
    path = http_receiver.path()
    http_receiver.answer(path, 500, body=b"x" * 100_000, times=1)
    dest_id = await _create(client, http_receiver.url + path)
    await _publish(client, "big")
    await worker.run_until_empty()
    failed = [a for a in await deps.queue.attempts("acme", dest_id) if a["status"] == "failed"]
    body = failed[0]["response_data"]["body"]
    assert failed[0]["code"] == "500" and body.endswith("[truncated at 4096 bytes]")
    assert len(body) < 4200


async def test_the_endpoint_guard_holds_at_create_and_at_send(
    redis_server, redis, aiohttp_client, http_receiver
):
    from outpost.runtime import create_app

    settings = make_settings(redis_server.redis_url, destinations_allow_private_endpoints=False)
    deps = Deps.build(settings, redis)
    client = await aiohttp_client(create_app(settings, deps, run_promoter=False))
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    path = http_receiver.path()
    body = {"type": "webhook", "topics": ["orders"], "config": {"url": http_receiver.url + path}}
    r = await client.post("/api/v1/tenants/acme/destinations", json=body, headers=AUTH)
    assert r.status == 422
    assert (await r.json())["data"][0].startswith("config.url: '127.0.0.1' resolves to")
    # stored behind the API's back (or DNS changed since): the send refuses it too
    dest = deps.registry.create("acme", body, "d1")
    await deps.store.create_destination(dest)
    await _publish(client, "guarded")
    await build_worker(deps, settings).run_until_empty()
    [dead] = await deps.queue.dead_letters("acme")
    assert dead["code"] == "endpoint_forbidden"
    assert http_receiver.requests(path) == []
    await deps.registry.close()


async def test_a_name_resolving_to_a_private_address_is_refused_at_connect():
    resolver = GuardedResolver()
    with pytest.raises(ForbiddenEndpoint, match="non-public address"):
        await resolver.resolve("localhost", 80)
    await resolver.close()


def test_network_failures_have_outposts_codes():
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
        ConnectionRefusedError(111, "refused"),
    )
    assert errors.classify(refused).code == "connection_refused"
    assert errors.classify(TimeoutError()).code == "timeout"
    assert errors.classify(aiohttp.ServerDisconnectedError()).code == "connection_reset"
    assert errors.classify(ForbiddenEndpoint("no")).kind is Kind.PERMANENT
    # what the circuit breakers count: no answer at all, never an HTTP answer
    for silent in (refused, TimeoutError(), aiohttp.ServerDisconnectedError()):
        assert errors.classify(silent).unanswered
    for status in (400, 500, 503):
        assert not errors.classify(HTTPStatusError(Answer(status, ""))).unanswered
