"""Service Bus messages from events, as Outpost's provider sends them. Pure: the same
event and destination give the same record on every attempt.

- body: the event's `data` as compact JSON (key order, digits and unicode kept)
- application properties: the metadata envelope (`event-id`, `topic`, `timestamp`, the
  destination's delivery_metadata, the event's metadata)
- message id: the event id (the client library otherwise assigns a random one; the event
  id keeps a retried message identical and lets duplicate detection drop a redelivery)
"""

from __future__ import annotations

from dataclasses import dataclass

from outpost.envelope import event_document, record_bytes
from outpost.models import Destination, Event

MAX_MESSAGE_ID = 128  # the client refuses longer message ids


@dataclass(frozen=True)
class Record:
    data: bytes
    properties: tuple[tuple[str, str], ...]  # in the envelope's order
    message_id: str | None


def record(event: Event, destination: Destination) -> Record:
    doc = event_document(event, destination.delivery_metadata)
    return Record(
        data=record_bytes(doc, False),
        properties=tuple(doc["metadata"].items()),
        message_id=event.id if len(event.id) <= MAX_MESSAGE_ID else None,
    )
