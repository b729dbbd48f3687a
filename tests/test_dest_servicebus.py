"""The azure_servicebus destination, tested at the client boundary: no Service Bus runs
outside Docker, so the provider's sender is the recording fake of
tests/servers/servicebus.py wherever a send has to succeed. What it checks: the SDK
message our code hands the client for each of 5 events published through the API and
the worker (body bytes, application properties, message id, nothing else), Outpost's
config rules, what each of the SDK's exceptions means, batches, the SSRF guard, and the
real SDK client failing against a refused port (no fake there)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.servicebus import exceptions as sb

from outpost.deps import Deps
from outpost.destinations.azure_servicebus.provider import ServiceBusProvider
from outpost.destinations.base import Kind
from outpost.destinations.endpoints import EndpointPolicy
from outpost.models import Destination, Event
from outpost.runtime import create_app
from tests.conftest import AUTH, make_settings
from tests.servers.servicebus import FakeServiceBus, connection_string

EVENTS = [
    {"id": "evt_s1", "data": {"z": 1, "a": "é日本", "n": [1.5, -20, 0]}, "metadata": {"s": "1"}},
    {"id": "evt_s2", "data": {"order_id": "123", "status": "created"}},
    {"id": "evt_s3", "data": {"nested": {"b": True, "a": None}}, "metadata": {"team": "x"}},
    {"id": "evt_s4", "data": {}, "metadata": {"event-id": "forged", "region": "mine"}},
    {"id": "evt_s5", "data": {"quote": '"<&>" \\ /'}},
]
# every property a ServiceBusMessage can carry besides its body and application properties
OTHER_PROPERTIES = (
    "session_id",
    "content_type",
    "correlation_id",
    "subject",
    "partition_key",
    "to",
    "reply_to",
    "reply_to_session_id",
    "time_to_live",
    "scheduled_enqueue_time_utc",
)


@pytest.fixture
def bus(deps: Deps) -> FakeServiceBus:
    fake = FakeServiceBus()
    deps.registry.get("azure_servicebus").senders.opener = fake.open  # type: ignore[attr-defined]
    return fake


def body(**config: Any) -> dict[str, Any]:
    return {
        "type": "azure_servicebus",
        "topics": ["orders"],
        "config": {"name": "orders-queue", **config},
        "credentials": {"connection_string": connection_string("SendPolicy")},
        "delivery_metadata": {"app-id": "shop", "region": "eu"},
    }


async def create(client: Any, dest_body: dict[str, Any]) -> dict[str, Any]:
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post("/api/v1/tenants/acme/destinations", json=dest_body, headers=AUTH)
    assert r.status == 201, await r.text()
    return dict(await r.json())


@pytest.mark.parametrize("batching", [False, True])
async def test_five_events_hand_the_client_what_outpost_sends(client, worker, deps, bus, batching):
    dest = await create(client, body(batching=batching))
    assert dest["target"] == "orders-queue"
    assert dest["credentials"]["connection_string"].endswith("******")
    for event in EVENTS:
        sent = {"tenant_id": "acme", "topic": "orders", "time": "2024-01-01T00:00:00Z", **event}
        r = await client.post("/api/v1/publish", json=sent, headers=AUTH)
        assert r.status == 202
    await worker.run_until_empty()
    got = {s.message.message_id: s for s in bus.sent}
    assert sorted(got) == sorted(e["id"] for e in EVENTS)
    for event in EVENTS:
        s = got[event["id"]]
        assert (s.entity, s.policy) == ("orders-queue", "SendPolicy")
        data = json.dumps(event["data"], separators=(",", ":"), ensure_ascii=False).encode()
        assert b"".join(s.message.body) == data
        own = {k: v for k, v in event.get("metadata", {}).items() if k != "event-id"}
        assert s.message.application_properties == {
            "event-id": event["id"],
            "topic": "orders",
            "timestamp": "1704067200",
            **{"app-id": "shop", "region": "eu"},
            **own,  # the event's own metadata wins over the destination's
        }
        assert [getattr(s.message, p) for p in OTHER_PROPERTIES] == [None] * len(OTHER_PROPERTIES)
    assert (max(bus.calls) > 1) is batching  # gathered into ServiceBusMessageBatch sends
    attempts = await deps.queue.attempts("acme", dest["id"])
    assert [a["status"] for a in attempts] == ["success"] * 5


async def test_bad_config_and_credentials_are_named(client):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    bad = body(name="no spaces")
    bad["credentials"] = {"connection_string": "Endpoint=sb://ns.servicebus.windows.net/"}
    r = await client.post("/api/v1/tenants/acme/destinations", json=bad, headers=AUTH)
    assert r.status == 422
    found = (await r.json())["data"]
    assert any(p.startswith("config.name: must be a queue or topic name") for p in found)
    assert any(
        p.startswith("credentials.connection_string: is not a Service Bus connection string")
        and "SharedAccessKey" in p
        for p in found
    ), found
    assert not any("ns.servicebus" in p and "Key=" in p for p in found)  # no secret echoed


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (sb.MessagingEntityNotFoundError(message="gone"), Kind.PERMANENT, "entity_not_found"),
        (sb.MessageSizeExceededError(message="big"), Kind.PERMANENT, "message_too_large"),
        (sb.ServiceBusAuthenticationError(message="bad key"), Kind.AUTH, "auth_failed"),
        (sb.ServiceBusAuthorizationError(message="no Send"), Kind.AUTH, "access_denied"),
        (sb.MessagingEntityDisabledError(message="off"), Kind.RETRY, "entity_disabled"),
        (sb.ServiceBusQuotaExceededError(message="full"), Kind.RETRY, "quota_exceeded"),
        (sb.ServiceBusServerBusyError(message="busy"), Kind.RETRY, "server_busy"),
        (sb.OperationTimeoutError(message="slow"), Kind.RETRY, "timeout"),
        (sb.ServiceBusConnectionError(message="down"), Kind.RETRY, "connection_error"),
        (sb.ServiceBusCommunicationError(message="dns"), Kind.RETRY, "communication_error"),
        (sb.ServiceBusError(message="other"), Kind.RETRY, "servicebus_error"),
    ],
)
def test_what_each_sdk_exception_means(exc, kind, code):
    failure = ServiceBusProvider().classify(exc)
    assert (failure.kind, failure.code) == (kind, code)


def destination(cs: str, **config: Any) -> Destination:
    return Destination(
        id="des_sb",
        tenant_id="acme",
        type="azure_servicebus",
        topics=["orders"],
        config={"name": "q", **config},
        credentials={"connection_string": cs},
        created_at="2024-01-01T00:00:00Z",
        updated_at="2024-01-01T00:00:00Z",
    )


def event(i: int = 0, size: int = 0) -> Event:
    data = {"pad": "x" * size}
    return Event(id=f"e{i}", tenant_id="acme", topic="orders", time=datetime.now(UTC), data=data)


async def test_a_batch_splits_by_size_and_a_record_too_large_fails_alone():
    bus = FakeServiceBus()
    provider = ServiceBusProvider(policy=EndpointPolicy(allow_private=True), opener=bus.open)
    dest = destination(connection_string(), batching=True, batch_linger_ms=0)
    records = [provider.format(event(i, 100_000), dest) for i in range(5)]
    records.append(provider.format(event(9, 300_000), dest))  # over the 256 KiB limit
    results = await provider.send_batch(records, dest)
    outcomes = []
    for result in results:
        try:
            outcomes.append((await result)["batch_size"])
        except Exception as exc:
            outcomes.append(provider.classify(exc).code)
    assert outcomes == [2, 2, 2, 2, 1, "message_too_large"]  # 2 x 100 kB fit in 256 KiB
    assert bus.calls == [2, 2, 1]
    await provider.close()


async def test_the_namespace_is_guarded_at_create_and_at_send(aiohttp_client, redis, redis_server):
    settings = make_settings(redis_server.redis_url, destinations_allow_private_endpoints=False)
    deps = Deps.build(settings, redis)
    client = await aiohttp_client(create_app(settings, deps, run_promoter=False))
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    private = "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=a;SharedAccessKey=b"
    dest_body = {**body(), "credentials": {"connection_string": private}}
    r = await client.post("/api/v1/tenants/acme/destinations", json=dest_body, headers=AUTH)
    assert r.status == 422
    [problem] = (await r.json())["data"]
    assert problem.startswith("credentials.connection_string: '127.0.0.1' is a non-public")
    provider = deps.registry.get("azure_servicebus")
    dest = destination(private)
    with pytest.raises(Exception) as caught:
        await provider.send(provider.format(event(), dest), dest)
    assert provider.classify(caught.value).code == "endpoint_forbidden"
    await deps.registry.close()


async def test_rotated_credentials_get_their_own_sender():
    bus = FakeServiceBus()
    provider = ServiceBusProvider(policy=EndpointPolicy(allow_private=True), opener=bus.open)
    for policy in ("First", "Second", "First"):
        dest = destination(connection_string(policy))
        await provider.send(provider.format(event(), dest), dest)
    assert [s.policy for s in bus.sent] == ["First", "Second", "First"]
    assert len(provider.senders.handles) == 2
    await provider.close()
    assert bus.closed == 2


async def test_the_real_client_against_a_refused_port_is_retried():
    """The SDK itself (no fake): its AMQP connection to a port nothing listens on fails
    with ServiceBusConnectionError within the delivery timeout."""
    provider = ServiceBusProvider(timeout=1.0, policy=EndpointPolicy(allow_private=True))
    refused = (
        "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=a;SharedAccessKey=b;"
        "UseDevelopmentEmulator=true"
    )
    dest = destination(refused)
    with pytest.raises(sb.ServiceBusConnectionError) as caught:
        await provider.send(provider.format(event(), dest), dest)
    failure = provider.classify(caught.value)
    assert (failure.kind, failure.code) == (Kind.RETRY, "connection_error")
    await provider.close()
