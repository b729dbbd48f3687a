"""Kinesis records from events. Pure: the same event and destination give the same bytes
and partition key on every attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outpost.destinations.kinesis.config import ABSOLUTE_MAX_RECORD_BYTES, MAX_RECORD_BYTES
from outpost.destinations.kinesis.partition_key import compile_template, partition_key
from outpost.envelope import event_document, record_bytes
from outpost.errors import PermanentError, RetryableError
from outpost.models import Destination, Event


@dataclass(frozen=True)
class Record:
    data: bytes
    partition_key: str
    hash_key: str | None = None  # ExplicitHashKey (an aggregated record's shard)


def template(destination: Destination) -> Any:
    """The compiled partition-key template (None: the event id), compiled once per
    destination version (the destination cache keeps the parsed object)."""
    compiled = destination.compiled
    if "template" not in compiled:
        source = destination.config.get("partition_key_template")
        compiled["template"] = compile_template(source) if source else None
    return compiled["template"]


def document(event: Event, destination: Destination) -> dict[str, Any]:
    return event_document(event, destination.delivery_metadata)


def ordering_key(event: Event, destination: Destination) -> str:
    """The partition key alone (publish picks the task's stream with it); the record is
    serialized once, at send time."""
    compiled = template(destination)
    if compiled is None:
        return event.id
    try:
        return partition_key(compiled, document(event, destination), event.id)
    except PermanentError:
        return event.id  # the send will fail permanently and say why


def record(event: Event, destination: Destination, metadata_in_payload: bool) -> Record:
    """`metadata_in_payload`: the deployment's default, which `config.metadata_in_payload`
    overrides per destination."""
    doc = document(event, destination)
    key = partition_key(template(destination), doc, event.id)
    wrap = destination.config.get("metadata_in_payload")
    data = record_bytes(doc, metadata_in_payload if wrap is None else wrap)
    out = Record(data, key)
    check_size(out, ABSOLUTE_MAX_RECORD_BYTES)
    return out


def size(record: Record) -> int:
    """A record's size as Kinesis counts it: data plus partition key."""
    return len(record.data) + len(record.partition_key.encode())


def check_size(record: Record, limit: int | None) -> None:
    """A record over `limit` (its stream's maximum record size) fails for good; with the
    limit unknown for now (None), a record over the 1 MiB every stream allows is retried."""
    n = size(record)
    if limit is None and n > MAX_RECORD_BYTES:
        raise RetryableError(
            "server_error",
            f"record is {n} bytes and the stream's maximum record size could not be read",
        )
    limit = MAX_RECORD_BYTES if limit is None else limit
    if n > limit:
        raise PermanentError(
            "record_too_large",
            f"record is {n} bytes with its partition key; the stream allows {limit} bytes "
            f"({limit // 1024} KiB)",
        )
