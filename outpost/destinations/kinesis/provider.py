"""The AWS Kinesis destination type: the thin class the registry and the worker use.
Its parts: `config` (what it accepts), `format` (records, pure), `writer` (PutRecord and
PutRecords batching on `aws.sigv4`'s signed path), `aws.errors` (what a failure means)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

from outpost.destinations.aws import errors
from outpost.destinations.base import DestinationType, Failure, Result
from outpost.destinations.kinesis import format as fmt
from outpost.destinations.kinesis.config import (
    DEFAULT_BATCH_LINGER_MS,
    MAX_BATCH_RECORDS,
    SCHEMA,
)
from outpost.destinations.kinesis.format import Record
from outpost.destinations.kinesis.writer import Writer
from outpost.models import Destination, Event


class KinesisProvider(DestinationType):
    schema = SCHEMA

    def __init__(
        self,
        metadata_in_payload: bool = True,
        timeout: float = 5.0,
        max_connections: int = 64,
        connect_timeout: float | None = None,
    ):
        self.metadata_in_payload = metadata_in_payload
        self.timeout = timeout
        self.max_connections = max_connections
        self.writer = Writer(timeout, max_connections, connect_timeout)

    def target(self, config: dict[str, Any]) -> str:
        return str(config.get("stream_name", ""))

    def target_url(self, config: dict[str, Any]) -> str | None:
        region, stream = config.get("region"), config.get("stream_name")
        return (
            f"https://{region}.console.aws.amazon.com/kinesis/home?region={region}"
            f"#/streams/details/{stream}/details"
        )

    def ordering_key(self, event: Event, destination: Destination) -> str:
        return fmt.ordering_key(event, destination)

    def format(self, event: Event, destination: Destination) -> Record:
        return fmt.record(event, destination, self.metadata_in_payload)

    async def send(self, record: Record, destination: Destination) -> Result:
        """PutRecord; with `config.batching`, the record joins its stream's next
        PutRecords call instead."""
        if destination.config.get("batching"):
            [result] = await self.send_batch([record], destination)
            return await result
        return await self.writer.put_record(record, destination)

    def batching(self, destination: Destination) -> bool:
        return bool(destination.config.get("batching"))

    def patience(self, destination: Destination) -> float:
        """A batched record waits for its batch to fill (the linger) before the call."""
        if not self.batching(destination):
            return 0.0
        linger_ms = destination.config.get("batch_linger_ms")
        return (DEFAULT_BATCH_LINGER_MS if linger_ms is None else linger_ms) / 1000

    async def send_batch(
        self, records: Sequence[Record], destination: Destination
    ) -> list[Awaitable[Result]]:
        """The records join their stream's open PutRecords batch (with other callers'
        records for the same stream and credentials); one future per record."""
        cfg = destination.config
        target = await self.writer.target(destination)
        linger_ms = cfg.get("batch_linger_ms")
        if linger_ms is None:
            linger_ms = DEFAULT_BATCH_LINGER_MS
        max_records = cfg.get("batch_max_records") or MAX_BATCH_RECORDS
        add, stream, linger = self.writer.batches.add, cfg["stream_name"], linger_ms / 1000
        return [add(target, stream, record, max_records, linger) for record in records]

    def classify(self, exc: BaseException) -> Failure:
        return errors.classify(exc)

    async def close(self) -> None:
        await self.writer.close()
