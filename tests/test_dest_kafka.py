"""The kafka type end to end: API -> Redis -> worker -> an idempotent producer -> Tansu
(behind its SASL front), read back with a Kafka consumer and compared field by field
with what Outpost's destkafka provider sends; and what its failures mean."""

import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import errors as kafka

from outpost.destinations.base import Kind
from outpost.destinations.endpoints import EndpointPolicy
from outpost.destinations.kafka import errors
from outpost.destinations.kafka.provider import KafkaProvider
from outpost.dev import devstack
from outpost.models import Destination, Event
from tests.conftest import AUTH, make_settings
from tests.servers.kafka import USERS

EVENTS = [
    # (id, data as published, the value Outpost sends: the data, compact, keys in order)
    ("k-1", {"z": 1, "a": "first"}, b'{"z":1,"a":"first"}'),
    ("k-2", {"text": "caf\u00e9 \u2603 \U0001f600"}, '{"text":"café ☃ 😀"}'.encode()),
    ("k-3", {"big": 9007199254740993}, b'{"big":9007199254740993}'),
    (
        "k-4",
        {"nested": {"b": [1, 2, {"c": None}], "a": True}},
        b'{"nested":{"b":[1,2,{"c":null}],"a":true}}',
    ),
    ("k-5", {"customer": "c-9", "n": -0.5}, b'{"customer":"c-9","n":-0.5}'),
]


def body(server, topic, user="alice", **config):
    return {
        "type": "kafka",
        "topics": ["orders"],
        "config": {
            "brokers": server.url if server else "127.0.0.1:9",
            "topic": topic,
            "sasl_mechanism": "scram-sha-512",
            "tls": "false",
            **config,
        },
        "credentials": {"username": user, "password": USERS.get(user, "wrong-password")},
        "delivery_metadata": {"app": "outpost-test", "region": "eu-1"},
    }


async def create(client, payload):
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post("/api/v1/tenants/acme/destinations", json=payload, headers=AUTH)
    assert r.status == 201, await r.text()
    return await r.json()


async def publish(client, event_id, data, **extra):
    body = {"tenant_id": "acme", "topic": "orders", "id": event_id, "data": data, **extra}
    r = await client.post("/api/v1/publish", json=body, headers=AUTH)
    assert r.status == 202, await r.text()


@pytest.mark.parametrize("batching", [False, True])
async def test_five_events_arrive_as_outpost_sends_them(client, worker, kafka_server, batching):
    topic = f"e2e-{uuid.uuid4().hex[:8]}"
    kafka_server.create_topic(topic)
    await create(client, body(kafka_server, topic, batching=batching))
    for event_id, data, _ in EVENTS:
        await publish(
            client,
            event_id,
            data,
            time="2024-01-01T00:00:00Z",
            metadata={"source": "from-event", "trace": event_id},
        )
    await worker.run_until_empty()
    found = {m.key.decode(): m for m in kafka_server.read(topic, expect=5)}
    assert sorted(found) == [e[0] for e in EVENTS]  # each exactly once, keyed by event id
    for event_id, _, value in EVENTS:
        message = found[event_id]
        assert message.value == value
        assert list(message.headers) == [
            ("content-type", b"application/json"),
            ("event-id", event_id.encode()),
            ("topic", b"orders"),
            ("timestamp", b"1704067200"),
            ("app", b"outpost-test"),
            ("region", b"eu-1"),
            ("source", b"from-event"),
            ("trace", event_id.encode()),
        ]


async def test_the_partition_key_template_picks_the_key(client, worker, kafka_server):
    topic = f"e2e-{uuid.uuid4().hex[:8]}"
    kafka_server.create_topic(topic)
    await create(client, body(kafka_server, topic, partition_key_template="data.customer"))
    await publish(client, "with-customer", {"customer": "c-42"})
    await publish(client, "without", {"other": 1})  # no value: the event id, as Outpost
    await worker.run_until_empty()
    keys = sorted(m.key for m in kafka_server.read(topic, expect=2))
    assert keys == [b"c-42", b"without"]


async def test_a_wrong_password_is_an_auth_failure_and_is_retried(
    client, worker, deps, kafka_server
):
    topic = f"e2e-{uuid.uuid4().hex[:8]}"
    kafka_server.create_topic(topic)
    dest = await create(client, body(kafka_server, topic, user="mallory"))
    await publish(client, "evt-auth", {"n": 1})
    [entry] = await deps.queue.read(worker.name, count=10, block_ms=100)
    outcome = await worker.process(entry)
    assert (outcome.code, outcome.dead, outcome.retry_in is not None) == (
        "auth_failed",
        False,
        True,
    )
    [attempt] = await deps.queue.attempts("acme", dest["id"])
    assert "Invalid username or password" in str(attempt)
    assert "wrong-password" not in str(attempt)


async def test_a_stopped_broker_is_retried(client, worker, deps):
    dest = body(None, "gone")
    dest["config"]["brokers"] = f"127.0.0.1:{devstack.free_port()}"  # nothing listens
    await create(client, dest)
    await publish(client, "evt-down", {"n": 1})
    [entry] = await deps.queue.read(worker.name, count=10, block_ms=100)
    outcome = await worker.process(entry)
    assert (outcome.code, outcome.dead, outcome.retry_in is not None) == (
        "connection_refused",
        False,
        True,
    )


async def test_brokers_are_guarded_at_create(aiohttp_client, redis_server, redis):
    """Without DESTINATIONS_ALLOW_PRIVATE_ENDPOINTS a broker on a private address is refused
    at create, naming the field (the kafka type's `endpoints`)."""
    from outpost.deps import Deps
    from outpost.runtime import create_app

    settings = make_settings(redis_server.redis_url, destinations_allow_private_endpoints=False)
    deps = Deps.build(settings, redis)
    client = await aiohttp_client(create_app(settings, deps, run_promoter=False))
    payload = body(None, "topic-1")
    payload["config"]["brokers"] = "8.8.8.8:9092,10.0.0.1:9092"
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post("/api/v1/tenants/acme/destinations", json=payload, headers=AUTH)
    assert r.status == 422
    [problem] = (await r.json())["data"]
    assert problem.startswith("config.brokers:") and "10.0.0.1" in problem
    await deps.registry.close()


async def test_tls_verifies_the_broker_certificate(kafka_tls_server, monkeypatch):
    """tls "true": SASL over TLS, the broker's certificate checked against the trusted
    roots; a certificate nobody vouches for is a tls_error (retried)."""
    server, cert = kafka_tls_server
    payload = body(server, "tls-topic", tls="true")
    dest = Destination(
        id="d-tls",
        tenant_id="acme",
        type="kafka",
        topics=["orders"],
        config=payload["config"],
        credentials=payload["credentials"],
        created_at="2024-01-01T00:00:00Z",
        updated_at="2024-01-01T00:00:00Z",
    )
    event = Event(id="evt-tls", tenant_id="acme", topic="orders", time=datetime.now(UTC), data={})
    untrusting = KafkaProvider(timeout=3, policy=EndpointPolicy(allow_private=True))
    with pytest.raises(Exception) as refused:
        await untrusting.send(untrusting.format(event, dest), dest)
    assert untrusting.classify(refused.value).code == "tls_error"
    await untrusting.close()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the test CA, for a fresh provider
    trusting = KafkaProvider(timeout=3, policy=EndpointPolicy(allow_private=True))
    sent = await trusting.send(trusting.format(event, dest), dest)
    await trusting.close()
    assert sent["key"] == "evt-tls"
    [message] = server.read("tls-topic", expect=1)
    assert message.key == b"evt-tls"


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (kafka.SaslAuthenticationFailed(), Kind.AUTH, "auth_failed"),
        (kafka.TopicAuthorizationFailedError(), Kind.AUTH, "auth_failed"),
        (kafka.UnknownTopicOrPartitionError(), Kind.PERMANENT, "topic_not_found"),
        (kafka.MessageSizeTooLargeError(), Kind.PERMANENT, "message_too_large"),
        (kafka.KafkaTimeoutError(), Kind.RETRY, "timeout"),
        (TimeoutError(), Kind.RETRY, "timeout"),
        (ConnectionRefusedError(), Kind.RETRY, "connection_refused"),
        (kafka.NotEnoughReplicasError(), Kind.RETRY, "kafka_error"),
        (kafka.OutOfOrderSequenceNumber(), Kind.RETRY, "kafka_error"),
        (kafka.UnknownError(), Kind.RETRY, "kafka_error"),
    ],
)
def test_the_failure_table(exc, kind, code):
    """A deleted topic is permanent: Tansu creates a topic on first use, so the table is
    checked here rather than against the broker."""
    failure = errors.classify(exc)
    assert (failure.kind, failure.code) == (kind, code)


def test_a_hidden_cause_is_classified_by_what_aiokafka_met():
    wrapped = kafka.KafkaConnectionError("Unable to bootstrap")
    wrapped.__cause__ = kafka.SaslAuthenticationFailed("Invalid username or password")
    assert errors.classify(wrapped).kind is Kind.AUTH
