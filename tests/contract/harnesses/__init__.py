"""The conformance suite's harnesses, one module per destination type. `HARNESSES` maps a
test id ("type@server") to a factory that starts the harness; a factory may ask pytest
for the session fixture of its server (`request.getfixturevalue`). Adding a type = one
module here and one entry below."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from outpost.destinations.memory.provider import MemoryDestination
from tests.contract.harnesses.base import Harness, same_version
from tests.contract.harnesses.eventbridge import EventBridgeHarness
from tests.contract.harnesses.gcp_pubsub import PubSubHarness
from tests.contract.harnesses.http import HookdeckHarness, WebhookHarness
from tests.contract.harnesses.kafka import KafkaHarness
from tests.contract.harnesses.kinesis import KinesisHarness
from tests.contract.harnesses.memory import MemoryHarness
from tests.contract.harnesses.rabbitmq import RabbitMQHarness
from tests.contract.harnesses.s3 import S3Harness
from tests.contract.harnesses.servicebus import ServiceBusHarness
from tests.contract.harnesses.sqs import SQSHarness
from tests.servers.servicebus import FakeServiceBus

Factory = Callable[[pytest.FixtureRequest, MemoryDestination], Awaitable[Harness]]


async def _memory(request: pytest.FixtureRequest, memory: MemoryDestination) -> Harness:
    return MemoryHarness(memory)


async def _kinesis_moto(request: pytest.FixtureRequest, memory: MemoryDestination) -> Harness:
    return await KinesisHarness(request.getfixturevalue("moto").url).start()


async def _kinesis_local(request: pytest.FixtureRequest, memory: MemoryDestination) -> Harness:
    return await KinesisHarness(request.getfixturevalue("kinesis_local_server").url).start()


async def _sqs_moto(request: pytest.FixtureRequest, memory: MemoryDestination) -> Harness:
    return await SQSHarness(request.getfixturevalue("moto").url).start()


async def _s3_moto(request: pytest.FixtureRequest, memory: MemoryDestination) -> Harness:
    return await S3Harness(request.getfixturevalue("moto").url).start()


async def _eventbridge_moto(request: pytest.FixtureRequest, memory: MemoryDestination) -> Harness:
    return await EventBridgeHarness(request.getfixturevalue("moto").url).start()


async def _webhook(request: pytest.FixtureRequest, memory: MemoryDestination) -> Harness:
    return WebhookHarness(request.getfixturevalue("http_receiver"))


async def _hookdeck(request: pytest.FixtureRequest, memory: MemoryDestination) -> Harness:
    receiver = request.getfixturevalue("http_receiver")
    # the suite's services (cdeps) send Hookdeck's requests to the local receiver
    hookdeck = request.getfixturevalue("cdeps").registry.get("hookdeck")
    hookdeck.url = hookdeck.api_url = receiver.url
    return HookdeckHarness(receiver)


async def _kafka(request: pytest.FixtureRequest, memory: MemoryDestination) -> Harness:
    return KafkaHarness(request.getfixturevalue("kafka_server"))


async def _pubsub(request: pytest.FixtureRequest, memory: MemoryDestination) -> Harness:
    return PubSubHarness(request.getfixturevalue("pubsub_server"))


async def _rabbitmq(request: pytest.FixtureRequest, memory: MemoryDestination) -> Harness:
    return await RabbitMQHarness(request.getfixturevalue("rabbitmq")).start()


async def _servicebus(request: pytest.FixtureRequest, memory: MemoryDestination) -> Harness:
    """No Service Bus runs outside Docker: the provider's sender is a recording fake (the
    client boundary; see the harness)."""
    bus = FakeServiceBus()
    request.getfixturevalue("cdeps").registry.get("azure_servicebus").senders.opener = bus.open
    return ServiceBusHarness(bus)


HARNESSES: dict[str, Factory] = {
    "memory": _memory,
    "aws_kinesis@moto": _kinesis_moto,
    "aws_kinesis@kinesis-local": _kinesis_local,
    "aws_sqs@moto": _sqs_moto,
    "aws_s3@moto": _s3_moto,
    "aws_eventbridge@moto": _eventbridge_moto,
    "webhook@http-receiver": _webhook,
    "hookdeck@http-receiver": _hookdeck,
    "kafka@tansu": _kafka,
    "gcp_pubsub@emulator": _pubsub,
    "rabbitmq@rabbitmq-server": _rabbitmq,
    "azure_servicebus@fake-sender": _servicebus,
}

__all__ = ["HARNESSES", "Harness", "same_version"]
