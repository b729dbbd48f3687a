"""The RabbitMQ destination type: the thin class the registry and the worker use. Its
parts: `config` (what it accepts, the broker URL), `format` (messages, pure),
`publisher` (aio-pika, publisher confirms), `errors` (what a failure means)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from outpost.destinations.base import DestinationType, Failure, Result
from outpost.destinations.lazy import Lazy
from outpost.destinations.rabbitmq import format as fmt
from outpost.destinations.rabbitmq.config import SCHEMA, amqp_url, endpoint
from outpost.destinations.rabbitmq.format import Record
from outpost.models import Destination, Event

if TYPE_CHECKING:
    from outpost.destinations.rabbitmq.publisher import Publisher


class RabbitMQProvider(DestinationType):
    schema = SCHEMA

    def __init__(self, timeout: float = 5.0):
        self._publisher = Lazy(lambda: _publisher(timeout))

    @property
    def publisher(self) -> Publisher:
        """aio-pika loads at the first send (`destinations.lazy`)."""
        return self._publisher.get()

    def target(self, config: dict[str, Any]) -> str:
        return str(config.get("exchange") or "(AMQP default)")

    def endpoints(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        """The broker: the SSRF guard checks it at create, update and every send."""
        return [("server_url", endpoint(config))] if config.get("server_url") else []

    def format(self, event: Event, destination: Destination) -> Record:
        return fmt.record(event, destination)

    async def send(self, record: Record, destination: Destination) -> Result:
        """Published once the broker confirms it (Basic.Ack)."""
        url = amqp_url(destination.config, destination.credentials)
        return await self.publisher.publish(url, record)

    def batching(self, destination: Destination) -> bool:
        return bool(destination.config.get("batching"))

    async def send_batch(
        self, records: Sequence[Record], destination: Destination
    ) -> list[Awaitable[Result]]:
        """Every record published at once on the exchange's channel, each waiting for its
        own confirm: a nack or a timeout fails that record alone."""
        size = len(records)
        return [asyncio.ensure_future(self._one(r, destination, size)) for r in records]

    async def _one(self, record: Record, destination: Destination, size: int) -> Result:
        return {**await self.send(record, destination), "batch_size": size}

    def classify(self, exc: BaseException) -> Failure:
        from outpost.destinations.rabbitmq import errors  # aiormq's exception types

        return errors.classify(exc)

    async def close(self) -> None:
        await self._publisher.close()


def _publisher(timeout: float) -> Publisher:
    from outpost.destinations.rabbitmq.publisher import Publisher  # aio-pika

    return Publisher(timeout)
