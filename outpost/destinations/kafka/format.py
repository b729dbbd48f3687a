"""Kafka messages from events, as Outpost's destkafka provider builds them. Pure: the same
event and destination give the same key, value and headers on every attempt.

- value: the event's data, JSON (metadata never goes into the value);
- key: the partition key template evaluated on `{metadata, data}`; the event id when there
  is no template, or when it fails or yields nothing (Outpost falls back the same way);
- headers: `content-type: application/json`, then every metadata entry (`event-id`,
  `topic`, `timestamp`, the destination's delivery_metadata, the event's metadata).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outpost.destinations.kinesis.partition_key import compile_template, partition_key
from outpost.envelope import event_document, record_bytes
from outpost.errors import PermanentError
from outpost.models import Destination, Event

CONTENT_TYPE = ("content-type", b"application/json")


@dataclass(frozen=True)
class Record:
    data: bytes  # the message value
    key: str
    headers: tuple[tuple[str, bytes], ...]


def template(destination: Destination) -> Any:
    """The compiled template (None: the event id), once per destination version."""
    compiled = destination.compiled
    if "kafka_key" not in compiled:
        source = destination.config.get("partition_key_template")
        compiled["kafka_key"] = compile_template(source) if source else None
    return compiled["kafka_key"]


def message_key(expression: Any, document: dict[str, Any], event_id: str) -> str:
    try:
        return partition_key(expression, document, event_id)
    except PermanentError:  # a failing template or an over-long key: the event id
        return event_id


def ordering_key(event: Event, destination: Destination) -> str:
    expression = template(destination)
    if expression is None:
        return event.id
    return message_key(expression, event_document(event, destination.delivery_metadata), event.id)


def record(event: Event, destination: Destination) -> Record:
    doc = event_document(event, destination.delivery_metadata)
    headers = (CONTENT_TYPE, *((k, v.encode()) for k, v in doc["metadata"].items()))
    return Record(
        data=record_bytes(doc, False),
        key=message_key(template(destination), doc, event.id),
        headers=headers,
    )
