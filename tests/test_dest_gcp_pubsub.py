"""The gcp_pubsub type end to end: API -> Redis -> worker -> Publish -> the Pub/Sub
emulator, pulled back with a subscriber and compared field by field with what Outpost's
destgcppubsub provider sends; and what its failures mean."""

import json
import uuid

import pytest
from google.api_core import exceptions as api
from google.auth import exceptions as auth

from outpost.destinations.base import Kind
from outpost.destinations.gcp_pubsub import errors
from outpost.destinations.gcp_pubsub.config import endpoint_address
from outpost.dev import devstack
from tests.conftest import AUTH, make_settings
from tests.servers.pubsub import PROJECT, service_account

EVENTS = [
    ("p-1", {"z": 1, "a": "first"}, b'{"z":1,"a":"first"}'),
    ("p-2", {"text": "caf\u00e9 \u2603 \U0001f600"}, '{"text":"café ☃ 😀"}'.encode()),
    ("p-3", {"big": 9007199254740993}, b'{"big":9007199254740993}'),
    (
        "p-4",
        {"nested": {"b": [1, {"c": None}], "a": True}},
        b'{"nested":{"b":[1,{"c":null}],"a":true}}',
    ),
    ("p-5", {"n": -0.5}, b'{"n":-0.5}'),
]
KEY = service_account(f"e2e@{PROJECT}.iam.gserviceaccount.com")


def body(topic, endpoint, **config):
    return {
        "type": "gcp_pubsub",
        "topics": ["orders"],
        "config": {"project_id": PROJECT, "topic": topic, "endpoint": endpoint, **config},
        "credentials": {"service_account_json": json.dumps(KEY)},
        "delivery_metadata": {"app": "outpost-test", "region": "eu-1"},
    }


async def create(client, payload, status=201):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post("/api/v1/tenants/acme/destinations", json=payload, headers=AUTH)
    assert r.status == status, await r.text()
    return await r.json()


async def publish(client, event_id, data, **extra):
    body = {"tenant_id": "acme", "topic": "orders", "id": event_id, "data": data, **extra}
    r = await client.post("/api/v1/publish", json=body, headers=AUTH)
    assert r.status == 202, await r.text()


@pytest.mark.parametrize("via", ["emulator", "proxy+batching"])
async def test_five_events_arrive_as_outpost_sends_them(client, worker, deps, pubsub_server, via):
    """Straight to the emulator (Outpost's emulator mode), and through the proxy, batched,
    where the service account's JWT shows who published."""
    topic = f"e2e-{uuid.uuid4().hex[:8]}"
    subscription = pubsub_server.create_topic(topic)
    proxied = via.startswith("proxy")
    endpoint = pubsub_server.proxy_address if proxied else pubsub_server.host
    seen = len(pubsub_server.proxy.identities)
    dest = await create(client, body(topic, endpoint, batching=proxied))
    for event_id, data, _ in EVENTS:
        await publish(
            client,
            event_id,
            data,
            time="2024-01-01T00:00:00Z",
            metadata={"source": "from-event", "trace": event_id},
        )
    await worker.run_until_empty()
    found = {m.attributes["event-id"]: m for m in pubsub_server.read(subscription, expect=5)}
    assert sorted(found) == [e[0] for e in EVENTS]  # each exactly once
    for event_id, _, data in EVENTS:
        assert found[event_id].data == data
        assert dict(found[event_id].attributes) == {
            "event-id": event_id,
            "topic": "orders",
            "timestamp": "1704067200",
            "app": "outpost-test",
            "region": "eu-1",
            "source": "from-event",
            "trace": event_id,
        }
    if proxied:
        assert set(pubsub_server.proxy.identities[seen:]) == {KEY["client_email"]}
    [attempt, *_] = await deps.queue.attempts("acme", dest["id"])
    assert attempt["status"] == "success"


async def test_a_stopped_emulator_is_retried(client, worker, deps):
    await create(client, body("some-topic", f"127.0.0.1:{devstack.free_port()}"))
    await publish(client, "evt-down", {"n": 1})
    [entry] = await deps.queue.read(worker.name, count=10, block_ms=100)
    outcome = await worker.process(entry)
    assert (outcome.code, outcome.dead, outcome.retry_in is not None) == (
        "server_error",
        False,
        True,
    )


async def test_without_an_endpoint_the_key_must_be_key_json(client):
    payload = body("some-topic", None)
    payload["config"].pop("endpoint")
    payload["credentials"]["service_account_json"] = "not json"
    r = await create(client, payload, status=422)
    assert r["data"] == ["credentials.service_account_json: must be the service account key's JSON"]
    payload["credentials"]["service_account_json"] = '{"project_id": "x"}'
    r = await create(client, payload, status=422)
    assert r["data"] == ['credentials.service_account_json: must be a key JSON with a "type"']


async def test_the_endpoint_is_guarded_at_create(aiohttp_client, redis_server, redis):
    from outpost.deps import Deps
    from outpost.runtime import create_app

    settings = make_settings(redis_server.redis_url, destinations_allow_private_endpoints=False)
    deps = Deps.build(settings, redis)
    client = await aiohttp_client(create_app(settings, deps, run_promoter=False))
    r = await create(client, body("some-topic", "10.1.2.3:8085"), status=422)
    [problem] = r["data"]
    assert problem.startswith("config.endpoint:") and "10.1.2.3" in problem
    await deps.registry.close()


@pytest.mark.parametrize(
    ("endpoint", "address"),
    [
        ("localhost:8085", ("localhost", 8085, False)),
        ("http://127.0.0.1:8085", ("127.0.0.1", 8085, False)),
        (
            "https://europe-west1-pubsub.googleapis.com",
            ("europe-west1-pubsub.googleapis.com", 443, True),
        ),
        ("localhost", None),
        ("ftp://x:1", None),
        ("https://x/some/path", None),
    ],
)
def test_endpoint_forms(endpoint, address):
    assert endpoint_address(endpoint) == address


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (api.NotFound("topic"), Kind.PERMANENT, "topic_not_found"),
        (api.PermissionDenied("no"), Kind.AUTH, "auth_failed"),
        (api.Unauthenticated("no"), Kind.AUTH, "auth_failed"),
        (auth.MalformedError("bad key"), Kind.AUTH, "auth_failed"),
        (api.InvalidArgument("too big"), Kind.PERMANENT, "invalid_argument"),
        (api.ResourceExhausted("slow down"), Kind.RETRY, "throttled"),
        (api.DeadlineExceeded("late"), Kind.RETRY, "timeout"),
        (api.ServiceUnavailable("down"), Kind.RETRY, "server_error"),
        (api.InternalServerError("oops"), Kind.RETRY, "server_error"),
    ],
)
def test_the_failure_table(exc, kind, code):
    failure = errors.classify(exc)
    assert (failure.kind, failure.code) == (kind, code)
