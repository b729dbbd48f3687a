"""Pub/Sub messages from events, as Outpost's destgcppubsub provider builds them. Pure.

- data: the event's data, JSON;
- attributes: every metadata entry (`event-id`, `topic`, `timestamp`, the destination's
  delivery_metadata, the event's metadata), as strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from outpost.destinations.gcp_pubsub.config import MAX_BATCH_BYTES
from outpost.envelope import event_document, record_bytes
from outpost.errors import PermanentError
from outpost.models import Destination, Event


@dataclass(frozen=True)
class Record:
    data: bytes
    key: str  # the event id (Outpost sets no ordering key)
    attributes: tuple[tuple[str, str], ...]

    @property
    def size(self) -> int:
        return len(self.data) + sum(len(k) + len(v.encode()) for k, v in self.attributes)


def record(event: Event, destination: Destination) -> Record:
    doc = event_document(event, destination.delivery_metadata)
    out = Record(record_bytes(doc, False), event.id, tuple(doc["metadata"].items()))
    if out.size > MAX_BATCH_BYTES:
        raise PermanentError(
            "message_too_large", f"message is {out.size} bytes; Pub/Sub allows 10 MB"
        )
    return out
