"""The Kafka destination type: the thin class the registry and the worker use. Its parts:
`config` (what it accepts), `format` (messages, pure), `writer` (the idempotent producers),
`errors` (what a failure means)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from outpost.destinations.base import DestinationType, Failure, Result
from outpost.destinations.endpoints import EndpointPolicy
from outpost.destinations.kafka import format as fmt
from outpost.destinations.kafka.config import SCHEMA, parse_brokers
from outpost.destinations.kafka.format import Record
from outpost.destinations.lazy import Lazy
from outpost.models import Destination, Event

if TYPE_CHECKING:
    from aiokafka.structs import RecordMetadata

    from outpost.destinations.kafka.writer import Producers


class KafkaProvider(DestinationType):
    schema = SCHEMA

    def __init__(self, timeout: float = 5.0, policy: EndpointPolicy | None = None):
        self._producers = Lazy(lambda: _producers(timeout, policy))

    @property
    def producers(self) -> Producers:
        """aiokafka loads at the first send (`destinations.lazy`)."""
        return self._producers.get()

    def target(self, config: dict[str, Any]) -> str:
        brokers = parse_brokers(str(config.get("brokers", "")))
        topic = str(config.get("topic", ""))
        return f"{brokers[0]} / {topic}" if brokers else topic

    def endpoints(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        return [("brokers", f"kafka://{b}") for b in parse_brokers(str(config.get("brokers", "")))]

    def ordering_key(self, event: Event, destination: Destination) -> str:
        return fmt.ordering_key(event, destination)

    def format(self, event: Event, destination: Destination) -> Record:
        return fmt.record(event, destination)

    async def send(self, record: Record, destination: Destination) -> Result:
        batched = self.batching(destination)
        sent = await self.producers.send(record, destination, batched)
        return answer(await sent, record, None)

    def batching(self, destination: Destination) -> bool:
        return bool(destination.config.get("batching"))

    async def send_batch(
        self, records: Sequence[Record], destination: Destination
    ) -> list[Awaitable[Result]]:
        """Every message is handed to the producer before any answer is awaited: it packs
        them into one Produce request per broker (a batch per partition) after lingering
        `batch_linger_ms`. One awaitable per message; a partition's batch fails alone."""
        out: list[Awaitable[Result]] = []
        for record in records:
            try:
                sent = await self.producers.send(record, destination, batched=True)
            except Exception as exc:
                out.append(_failed(exc))
                continue
            out.append(_answered(sent, record, len(records)))
        return out

    def classify(self, exc: BaseException) -> Failure:
        from outpost.destinations.kafka import errors  # aiokafka's exception types

        return errors.classify(exc)

    async def close(self) -> None:
        await self._producers.close()


def _producers(timeout: float, policy: EndpointPolicy | None) -> Producers:
    from outpost.destinations.kafka.writer import Producers  # aiokafka

    return Producers(timeout, policy)


def answer(md: RecordMetadata, record: Record, batch_size: int | None) -> Result:
    out: Result = {"topic": md.topic, "partition": md.partition, "offset": md.offset}
    out["key"] = record.key
    if batch_size is not None:
        out["batch_size"] = batch_size
    return out


async def _answered(
    sent: Coroutine[Any, Any, RecordMetadata], record: Record, batch_size: int
) -> Result:
    return answer(await sent, record, batch_size)


def _failed(exc: BaseException) -> asyncio.Future[Result]:
    done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
    done.set_exception(exc)
    return done
