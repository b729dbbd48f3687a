"""The rabbitmq destination end to end on a real broker (the session's rabbitmq-server):
API → Redis → worker → basic.publish with confirms → a queue bound to the exchange, read
back and compared field by field with what Outpost's destrabbitmq provider publishes.
Also: Outpost's config rules, what each failure of the broker means, the SSRF guard."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractQueue
from aiormq import spec

from outpost.destinations.base import Kind
from outpost.destinations.rabbitmq.config import amqp_url
from outpost.models import Destination, Event
from outpost.runtime import build_worker
from tests.conftest import AUTH
from tests.servers.rabbitmq import RabbitServer

PROPERTIES = spec.Basic.Properties().__slots__
EVENTS = [
    # key order, digits and unicode as published; metadata of the event's own
    {"id": "evt_r1", "data": {"z": 1, "a": "é日本", "n": [1.5, -20, 0]}, "metadata": {"s": "1"}},
    {"id": "evt_r2", "data": {"order_id": "123", "status": "created"}},
    {"id": "evt_r3", "data": {"nested": {"b": True, "a": None}}, "metadata": {"team": "x"}},
    {"id": "evt_r4", "data": {}, "metadata": {"event-id": "forged", "region": "mine"}},
    {"id": "evt_r5", "data": {"quote": '"<&>" \\ /'}},
]


@pytest.fixture
async def channel(rabbitmq: RabbitServer) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(rabbitmq.amqp_url())
    yield await connection.channel()
    await connection.close()


async def bound_queue(channel: AbstractChannel, exchange: str, key: str = "#") -> AbstractQueue:
    x = await channel.declare_exchange(exchange, "topic")
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(x, key)
    return queue


async def drain(queue: AbstractQueue, expect: int, within: float = 20.0) -> list[Message]:
    """The messages on the queue as the broker hands them over (aiormq's raw frames:
    aio-pika's message objects fill in defaults for properties that were never sent)."""
    raw = await queue.channel.get_underlay_channel()
    got: list[Message] = []
    deadline = asyncio.get_running_loop().time() + within
    while len(got) < expect and asyncio.get_running_loop().time() < deadline:
        frame = await raw.basic_get(queue.name, no_ack=True)
        if frame.body is None or not isinstance(frame.delivery, spec.Basic.GetOk):
            await asyncio.sleep(0.02)
        else:
            got.append(Message(frame))
    await asyncio.sleep(0.1)
    assert not isinstance((await raw.basic_get(queue.name, no_ack=True)).delivery, spec.Basic.GetOk)
    return got


class Message:
    """One message read back: its body, where it was published and which properties it
    carries (only those actually sent)."""

    def __init__(self, frame: Any):
        props = frame.header.properties
        self.body: bytes = frame.body
        self.exchange, self.routing_key = frame.delivery.exchange, frame.delivery.routing_key
        # pamqp leaves a property that was not sent None ('' for the deprecated cluster_id)
        self.sent = {
            k: getattr(props, k) for k in PROPERTIES if getattr(props, k) not in (None, "")
        }
        self.headers: dict[str, Any] = self.sent.get("headers") or {}
        self.message_id = self.sent.get("message_id")


def body(rabbitmq: RabbitServer, exchange: str = "", **config: Any) -> dict[str, Any]:
    return {
        "type": "rabbitmq",
        "topics": ["orders"],
        "config": {"server_url": rabbitmq.server_url, "exchange": exchange, **config},
        "credentials": {"username": "outpost", "password": rabbitmq.users["outpost"]},
        "delivery_metadata": {"app-id": "shop", "region": "eu"},
    }


async def create(client: Any, dest_body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post("/api/v1/tenants/acme/destinations", json=dest_body, headers=AUTH)
    assert r.status == status, await r.text()
    return dict(await r.json())


async def publish(client: Any, **event: Any) -> None:
    sent = {"tenant_id": "acme", "topic": "orders", "time": "2024-01-01T00:00:00Z", **event}
    r = await client.post("/api/v1/publish", json=sent, headers=AUTH)
    assert r.status == 202, await r.text()


@pytest.mark.parametrize("batching", [False, True])
async def test_five_events_arrive_as_outpost_publishes_them(
    client, worker, deps, rabbitmq, channel, batching
):
    exchange = f"e2e-{uuid.uuid4().hex[:8]}"
    queue = await bound_queue(channel, exchange)
    dest = await create(client, body(rabbitmq, exchange, batching=batching))
    for event in EVENTS:
        await publish(client, **event)
    await worker.run_until_empty()
    got = {m.message_id: m for m in await drain(queue, expect=5)}
    assert sorted(got) == sorted(e["id"] for e in EVENTS)
    for event in EVENTS:
        m = got[event["id"]]
        # the body: the data as published, compact, key order and unicode kept
        assert (
            m.body == json.dumps(event["data"], separators=(",", ":"), ensure_ascii=False).encode()
        )
        assert (m.exchange, m.routing_key) == (exchange, "orders")
        # headers: the system keys (never forged), delivery_metadata, the event's metadata
        own = {k: v for k, v in event.get("metadata", {}).items() if k != "event-id"}
        assert m.headers == {
            "event-id": event["id"],
            "topic": "orders",
            "timestamp": "1704067200",
            **{"app-id": "shop", "region": "eu"},
            **own,  # the event's own metadata wins over the destination's
        }
        # no other property: no persistence, priority, timestamp, ids beyond message_id
        assert m.sent == {
            "content_type": "application/json",
            "headers": m.headers,
            "message_id": event["id"],
        }
    attempts = await deps.queue.attempts("acme", dest["id"])
    assert len(attempts) == 5 and all(a["status"] == "success" for a in attempts)
    assert attempts[0]["response_data"]["confirmed"] is True


async def test_the_default_exchange_routes_the_topic_to_the_queue_of_that_name(
    client, worker, rabbitmq, channel
):
    """No exchange (Outpost's instructions: "the default RabbitMQ exchange will be used"):
    the topic is the routing key, so it names the queue."""
    topic = f"q-{uuid.uuid4().hex[:8]}"
    queue = await channel.declare_queue(topic, exclusive=True)
    dest = {**body(rabbitmq), "topics": [topic]}
    del dest["config"]["exchange"]
    created = await create(client, dest)
    assert created["target"] == "(AMQP default)"
    assert created["config"] == {"server_url": rabbitmq.server_url, "exchange": "", "tls": "false"}
    await publish(client, id="evt_default", topic=topic, data={"x": 1})
    await worker.run_until_empty()
    [m] = await drain(queue, expect=1)
    assert (m.body, m.headers["event-id"], m.exchange) == (b'{"x":1}', "evt_default", "")


@pytest.mark.parametrize(
    ("given", "stored"), [("on", "true"), ("true", "true"), ("false", "false"), (True, "true")]
)
async def test_tls_is_stored_as_outpost_stores_it(client, rabbitmq, given, stored):
    created = await create(client, body(rabbitmq, "x", tls=given))
    assert created["config"]["tls"] == stored


async def test_bad_config_is_named_field_by_field(client, rabbitmq):
    bad = body(rabbitmq, "événements", server_url="user@host:5672", tls="yes")
    bad["credentials"] = {"username": "", "password": "p"}
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post("/api/v1/tenants/acme/destinations", json=bad, headers=AUTH)
    assert r.status == 422
    found = " | ".join((await r.json())["data"])
    for field in ("config.server_url", "config.exchange", "config.tls", "credentials.username"):
        assert field in found, found


def destination(rabbitmq: RabbitServer, **config: Any) -> Destination:
    creds = config.pop("creds", {"username": "outpost", "password": rabbitmq.users["outpost"]})
    return Destination(
        id="des_x",
        tenant_id="acme",
        type="rabbitmq",
        topics=["orders"],
        config={"server_url": rabbitmq.server_url, "exchange": "", "tls": "false", **config},
        credentials=creds,
        created_at="2024-01-01T00:00:00Z",
        updated_at="2024-01-01T00:00:00Z",
    )


def event(topic: str = "orders") -> Event:
    return Event(id="evt_f", tenant_id="acme", topic=topic, time=datetime.now(UTC), data={})


@pytest.mark.parametrize(
    ("config", "kind", "code"),
    [
        ({"creds": {"username": "outpost", "password": "wrong"}}, Kind.AUTH, "auth_failed"),
        (
            {"creds": {"username": "nobody", "password": "nobody-secret"}},
            Kind.AUTH,
            "access_denied",
        ),
        ({"server_url": "{host}/no-such-vhost"}, Kind.AUTH, "access_denied"),
        ({"exchange": "missing-exchange"}, Kind.PERMANENT, "exchange_not_found"),
        ({"exchange": "amq.rabbitmq.trace"}, Kind.AUTH, "access_denied"),  # internal: refused
        ({"tls": "true"}, Kind.RETRY, "tls_error"),  # a plain AMQP port spoken to in TLS
        ({"server_url": "127.0.0.1:1"}, Kind.RETRY, "connection_refused"),
        ({"server_url": "no-such-host.invalid:5672"}, Kind.RETRY, "dns_error"),
    ],
)
async def test_what_each_broker_failure_means(deps, rabbitmq, config, kind, code):
    if "server_url" in config:
        config["server_url"] = config["server_url"].format(host=rabbitmq.server_url)
    provider = deps.registry.get("rabbitmq")
    dest = destination(rabbitmq, **config)
    with pytest.raises(Exception) as caught:
        await provider.send(provider.format(event(), dest), dest)
    failure = provider.classify(caught.value)
    assert (failure.kind, failure.code) == (kind, code), failure.message
    assert rabbitmq.users["outpost"] not in failure.message  # no password in attempt logs


async def test_a_topic_too_long_for_a_routing_key_fails_permanently(deps, rabbitmq):
    provider = deps.registry.get("rabbitmq")
    with pytest.raises(Exception) as caught:
        provider.format(event(topic="é" * 200), destination(rabbitmq))  # 400 bytes
    failure = provider.classify(caught.value)
    assert (failure.kind, failure.code) == (Kind.PERMANENT, "routing_key_too_long")


async def test_a_broker_restarting_under_a_cached_connection_costs_no_attempt(
    deps, rabbitmq, channel
):
    """The connection dies while cached (here: the broker closes it): the next send opens a
    new one at once instead of failing."""
    provider = deps.registry.get("rabbitmq")
    exchange = f"r-{uuid.uuid4().hex[:8]}"
    queue = await bound_queue(channel, exchange)
    dest = destination(rabbitmq, exchange=exchange)
    await provider.send(provider.format(event(), dest), dest)
    [link] = provider.publisher.links.values()
    await link.connection.transport.connection.close()  # type: ignore[union-attr]
    await provider.send(provider.format(event(), dest), dest)
    assert len(await drain(queue, expect=2)) == 2


async def test_a_private_broker_is_refused_at_create(client, deps, rabbitmq):
    deps.endpoints.allow_private = False
    await client.put("/api/v1/tenants/acme", headers=AUTH)
    r = await client.post("/api/v1/tenants/acme/destinations", json=body(rabbitmq), headers=AUTH)
    assert r.status == 422
    [problem] = (await r.json())["data"]
    assert problem.startswith("config.server_url: '127.0.0.1'")


async def test_a_broker_gone_private_is_refused_at_send(client, deps, rabbitmq, channel):
    """Created while private hosts were allowed, then the guard applies (the worker checks
    the type's endpoints at send): dead-lettered, nothing reaches the broker."""
    exchange = f"guard-{uuid.uuid4().hex[:8]}"
    queue = await bound_queue(channel, exchange)
    await create(client, body(rabbitmq, exchange))
    deps.endpoints.allow_private = False
    await publish(client, id="evt_guarded", data={})
    await build_worker(deps, deps.settings).run_until_empty(limit=20)
    [dead] = await deps.queue.dead_letters("acme")
    assert dead["code"] == "endpoint_forbidden"
    assert await drain(queue, expect=0, within=0.2) == []


def test_the_url_quotes_what_the_user_and_password_hold():
    url = amqp_url(
        {"server_url": "h:5671/vh", "tls": "true"}, {"username": "a@b", "password": "p:/@%"}
    )
    assert url == "amqps://a%40b:p%3A%2F%40%25@h:5671/vh"


async def test_rotated_credentials_open_a_new_connection(deps, rabbitmq, channel):
    provider = deps.registry.get("rabbitmq")
    dest = destination(rabbitmq)
    rotated = destination(rabbitmq, creds={"username": "rotated", "password": "rotated-secret-2"})
    for d in (dest, rotated):
        await provider.send(provider.format(event("nowhere"), d), d)
    links = provider.publisher.links.values()
    users = [link.connection.transport.connection.url.user for link in links]  # type: ignore[union-attr]
    assert users == ["outpost", "rotated"]


async def test_exchange_names_beyond_the_specs_characters_deliver(
    client, worker, rabbitmq, channel
):
    """Spaces and the separators our AMQP client allows (beyond the spec's letters, digits
    and - _ . :) work end to end."""
    exchange = f"events of #team/a+b, @x {uuid.uuid4().hex[:6]}"
    queue = await bound_queue(channel, exchange)
    await create(client, body(rabbitmq, exchange))
    await publish(client, id="evt_named", data={})
    await worker.run_until_empty()
    [m] = await drain(queue, expect=1)
    assert (m.exchange, m.message_id) == (exchange, "evt_named")
