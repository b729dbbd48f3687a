"""Hookdeck's official SDKs (Python `outpost-sdk` and TypeScript `@hookdeck/outpost-sdk`,
pinned as in tests/test_sdk.py) create, read, update and delete `rabbitmq` and
`azure_servicebus` destinations on a live `outpost all`; each SDK validates every response
against Outpost's contract. The rabbitmq destination also delivers a published event to
the session's broker."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
from outpost_sdk import Outpost

from outpost.dev import devstack
from tests.conftest import ADMIN_KEY
from tests.servers.rabbitmq import RabbitServer
from tests.servers.service import outpost_all
from tests.servers.servicebus import connection_string
from tests.test_sdk import NODE_CACHE, wait_for


@pytest.fixture(scope="module")
def live(rabbitmq: RabbitServer) -> Iterator[str]:
    with outpost_all(TOPICS="orders,users") as url:
        yield url


async def _bound_queue(url: str, exchange: str) -> str:
    """A durable queue bound to a new topic exchange (outliving this connection)."""
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    x = await channel.declare_exchange(exchange, "topic")
    queue = await channel.declare_queue(f"{exchange}-q", auto_delete=False)
    await queue.bind(x, "#")
    await connection.close()
    return queue.name


async def _take(url: str, queue_name: str) -> list[tuple[str, bytes]]:
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    queue = await channel.get_queue(queue_name)
    out = []
    while (m := await queue.get(no_ack=True, fail=False)) is not None:
        out.append((str(m.headers["event-id"]), m.body))
    await queue.delete(if_unused=False, if_empty=False)
    await connection.close()
    return out


def test_python_sdk_rabbitmq_crud_and_delivery(live, rabbitmq):
    sdk = Outpost(api_key=ADMIN_KEY, server_url=live)
    sdk.tenants.upsert(tenant_id="sdk-rmq", body={})
    exchange = f"sdk-{uuid.uuid4().hex[:8]}"
    queue_name = asyncio.run(_bound_queue(rabbitmq.amqp_url(), exchange))
    dest = sdk.destinations.create(
        tenant_id="sdk-rmq",
        body={
            "type": "rabbitmq",
            "topics": ["orders"],
            "config": {"server_url": rabbitmq.server_url, "exchange": exchange, "tls": "false"},
            "credentials": {"username": "outpost", "password": rabbitmq.users["outpost"]},
        },
    )
    assert dest.type == "rabbitmq" and dest.target == exchange
    assert dest.credentials.password == "outp******" and dest.credentials.username == "outpost"
    assert sdk.destinations.get(tenant_id="sdk-rmq", destination_id=dest.id).config.tls == "false"
    assert [d.id for d in sdk.destinations.list(tenant_id="sdk-rmq")] == [dest.id]
    updated = sdk.destinations.update(
        tenant_id="sdk-rmq",
        destination_id=dest.id,
        body={
            "type": "rabbitmq",
            "credentials": {"username": "rotated", "password": rabbitmq.users["rotated"]},
        },
    )
    assert updated.credentials.username == "rotated"
    pub = sdk.publish(
        request={"tenant_id": "sdk-rmq", "topic": "orders", "id": "sdk-r1", "data": {"n": 1}}
    )
    assert pub.destination_ids == [dest.id]
    attempts = wait_for(lambda: sdk.attempts.list(request={"tenant_id": "sdk-rmq"}).models)
    assert attempts and attempts[0].status == "success"
    assert asyncio.run(_take(rabbitmq.amqp_url(), queue_name)) == [("sdk-r1", b'{"n":1}')]
    types = {t.type: t for t in sdk.schemas.list_destination_types()}
    assert {"rabbitmq", "azure_servicebus"} <= set(types)
    assert types["rabbitmq"].icon.startswith("<svg")
    sdk.destinations.delete(tenant_id="sdk-rmq", destination_id=dest.id)
    assert sdk.destinations.list(tenant_id="sdk-rmq") == []


def test_python_sdk_azure_servicebus_crud(live):
    sdk = Outpost(api_key=ADMIN_KEY, server_url=live)
    sdk.tenants.upsert(tenant_id="sdk-asb", body={})
    secret = connection_string("SendPolicy", "c2VjcmV0LWtleQ==")
    dest = sdk.destinations.create(
        tenant_id="sdk-asb",
        body={
            "type": "azure_servicebus",
            "topics": ["orders"],
            "config": {"name": "orders-queue"},
            "credentials": {"connection_string": secret},
        },
    )
    assert dest.type == "azure_servicebus" and dest.target == "orders-queue"
    assert dest.credentials.connection_string != secret
    got = sdk.destinations.get(tenant_id="sdk-asb", destination_id=dest.id)
    assert got.config.name == "orders-queue"
    updated = sdk.destinations.update(
        tenant_id="sdk-asb",
        destination_id=dest.id,
        body={"type": "azure_servicebus", "config": {"name": "other-topic"}},
    )
    assert updated.config.name == "other-topic"
    assert sdk.schemas.get_destination_type(type_="azure_servicebus").label == "Azure Service Bus"
    sdk.destinations.delete(tenant_id="sdk-asb", destination_id=dest.id)
    assert sdk.destinations.list(tenant_id="sdk-asb") == []


def test_typescript_sdk_broker_destinations(live, rabbitmq, tmp_path):
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the TypeScript SDK runs where node is (CI has it)")
    devstack.npm_install(NODE_CACHE, "@hookdeck/outpost-sdk", "@hookdeck/outpost-sdk@1.6.0")
    script = NODE_CACHE / "ts_sdk_brokers.mjs"  # beside node_modules, so the import resolves
    shutil.copy(Path(__file__).with_name("ts_sdk_brokers.mjs"), script)
    env = {
        **os.environ,
        "OUTPOST_URL": live,
        "OUTPOST_KEY": ADMIN_KEY,
        "RABBIT_SERVER": rabbitmq.server_url,
        "RABBIT_PASSWORD": rabbitmq.users["outpost"],
        "SB_CONNECTION": connection_string("TsPolicy", "dHMta2V5"),
    }
    run = subprocess.run([node, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "TS SDK brokers OK" in run.stdout
