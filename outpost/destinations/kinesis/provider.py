"""The AWS Kinesis destination type: the thin class the registry and the worker use.
Its parts: `config` (what it accepts), `format` (records, pure), `writer` (PutRecord and
PutRecords batching on `aws.sigv4`'s signed path), `aws.errors` (what a failure means)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from typing import Any

from pydantic import BaseModel

from outpost.destinations.aws import errors, sigv4
from outpost.destinations.aws.auth import RoleAuth, resource_arn
from outpost.destinations.aws.roles import Roles
from outpost.destinations.base import DestinationType, Failure, Result
from outpost.destinations.kinesis import explore, preflight
from outpost.destinations.kinesis import format as fmt
from outpost.destinations.kinesis.config import (
    DEFAULT_BATCH_LINGER_MS,
    MAX_BATCH_RECORDS,
    MAX_RECORD_BYTES,
    SCHEMA,
    KinesisArnConfig,
)
from outpost.destinations.kinesis.format import Record
from outpost.destinations.kinesis.writer import Writer, stream_id
from outpost.models import Destination, Event

CHAINS_KEPT = 100_000  # partition keys whose last sequence number is remembered


class KinesisProvider(RoleAuth, DestinationType):
    schema = SCHEMA

    def __init__(
        self,
        metadata_in_payload: bool = True,
        timeout: float = 5.0,
        max_connections: int = 64,
        connect_timeout: float | None = None,
        roles: Roles | None = None,
    ):
        self.metadata_in_payload = metadata_in_payload
        self.timeout = timeout
        self.max_connections = max_connections
        self.writer = Writer(timeout, max_connections, connect_timeout)
        self.roles = self.writer.roles = roles or Roles()
        # (stream, partition key) -> the sequence number of its last record put by PutRecord
        # from this process, for an ordered destination's next SequenceNumberForOrdering
        self.chains: OrderedDict[tuple[str, str], str] = OrderedDict()

    async def explore(
        self, destination: Destination, stream: str | None, limit: int
    ) -> dict[str, Any] | None:
        """The streams these credentials see, or a stream's latest records."""
        try:
            if stream is None:
                found = await explore.streams(self.writer, destination)
                return {"ok": True, "message": f"{len(found)} streams", "streams": found}
            records = await explore.preview(self.writer, destination, stream, limit)
            return {"ok": True, "message": f"{len(records)} records", "records": records}
        except preflight.ERRORS as exc:
            op = "ListStreams" if stream is None else "GetRecords"
            return {"ok": False, **preflight.failed("explore", op, exc, destination)}

    def config_model_for(self, config: dict[str, Any]) -> type[BaseModel] | None:
        return KinesisArnConfig if config.get("stream_arn") else None

    def role_permissions(self, destination: Destination) -> tuple[list[str], str]:
        cfg = destination.config
        arn = cfg.get("stream_arn") or resource_arn(
            "kinesis", cfg["region"], destination, f"stream/{cfg['stream_name']}"
        )
        actions = ["PutRecord", "PutRecords", "DescribeStreamSummary", "ListShards"]
        return [f"kinesis:{a}" for a in actions], str(arn)

    async def preflight(self, destination: Destination) -> list[dict[str, Any]]:
        role = await self.role_check(destination)
        if role is not None and not role["ok"]:
            return [role]
        checks = await preflight.stream_checks(self.writer, destination, self.format)
        return [role, *checks] if role is not None else checks

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

    def ordered(self, destination: Destination) -> bool:
        return destination.config.get("ordering") == "partition_key"

    def format(self, event: Event, destination: Destination) -> Record:
        return fmt.record(event, destination, self.metadata_in_payload)

    async def send(self, record: Record, destination: Destination) -> Result:
        """PutRecord; with `config.batching`, the record joins its stream's next
        PutRecords call instead. Held to the stream's own maximum record size first."""
        if self.batching(destination):
            [result] = await self.send_batch([record], destination)
            return await result
        target = await self.writer.target(destination)
        if fmt.size(record) > MAX_RECORD_BYTES:  # every stream takes 1 MiB: ask only past it
            fmt.check_size(record, await self.writer.record_limit(destination, target))
        if self.ordered(destination):
            return await self._put_chained(record, destination)
        return await self.writer.put_record(record, destination)

    async def _put_chained(self, record: Record, destination: Destination) -> Result:
        """PutRecord with SequenceNumberForOrdering the key's previous record (one record
        of a key in flight at a time: delivery/ordered.py). The chain lives in memory: a
        key's first record after a restart, or on another worker, starts a new one."""
        chain = (stream_id(destination), record.partition_key)
        result = await self.writer.put_record(record, destination, self.chains.get(chain))
        if result.get("sequence_number"):
            self.chains[chain] = str(result["sequence_number"])
            self.chains.move_to_end(chain)
            while len(self.chains) > CHAINS_KEPT:
                self.chains.popitem(last=False)
        return result

    def batching(self, destination: Destination) -> bool:
        cfg = destination.config
        return bool(cfg.get("batching") or cfg.get("aggregation"))

    def patience(self, destination: Destination) -> float:
        """A batched record may wait for its shard's tokens or a free call: the linger
        (`batch_linger_ms`, now an allowance only: batches are sent as soon as a call is
        free) or the default allowance."""
        if not self.batching(destination):
            return 0.0
        linger_ms = destination.config.get("batch_linger_ms")
        return (DEFAULT_BATCH_LINGER_MS if linger_ms is None else linger_ms) / 1000

    async def send_batch(
        self, records: Sequence[Record], destination: Destination
    ) -> list[Awaitable[Result]]:
        """The records join their stream's shard queues (with other callers' records for
        the same stream and credentials); one future per record."""
        cfg = destination.config
        target = await self.writer.target(destination)
        max_records = cfg.get("batch_max_records") or MAX_BATCH_RECORDS
        agg = bool(cfg.get("aggregation"))
        fits = [fmt.size(record) <= MAX_RECORD_BYTES for record in records]
        small = [record for record, ok in zip(records, fits, strict=True) if ok]
        added = iter(
            self.writer.batches.add_many(target, stream_id(destination), small, max_records, agg)
        )
        # a record over 1 MiB (a stream that allows more) goes alone, by PutRecord
        return [
            next(added) if ok else asyncio.ensure_future(self._put_large(r, destination, target))
            for r, ok in zip(records, fits, strict=True)
        ]

    async def _put_large(
        self, record: Record, destination: Destination, target: sigv4.Target
    ) -> Result:
        """The stream's own limit is asked for only here: every stream takes 1 MiB, so a
        destination that never sends more never calls DescribeStreamSummary."""
        fmt.check_size(record, await self.writer.record_limit(destination, target))
        return await self.writer.put_record(record, destination)

    def classify(self, exc: BaseException) -> Failure:
        return errors.classify(exc)

    async def close(self) -> None:
        await self.writer.close()
