"""RabbitMQ messages from events, as Outpost's provider publishes them. Pure: the same
event and destination give the same message on every attempt.

- exchange: `config.exchange` ("" is the default exchange); routing key: the topic
- body: the event's `data` as compact JSON (key order, digits and unicode kept)
- properties: `content_type: application/json`, `headers`: the metadata envelope
  (`event-id`, `topic`, `timestamp`, the destination's delivery_metadata, the event's
  metadata), and `message_id`: the event id (the client library always sets a message id;
  the event id keeps a retried message identical and lets consumers deduplicate)
"""

from __future__ import annotations

from dataclasses import dataclass

from outpost.envelope import event_document, record_bytes
from outpost.errors import PermanentError
from outpost.models import Destination, Event

MAX_SHORTSTR = 255  # AMQP routing keys and header names are short strings (bytes)


@dataclass(frozen=True)
class Record:
    data: bytes
    exchange: str
    routing_key: str
    headers: tuple[tuple[str, str], ...]  # in the envelope's order
    message_id: str


def record(event: Event, destination: Destination) -> Record:
    doc = event_document(event, destination.delivery_metadata)
    if len(event.topic.encode()) > MAX_SHORTSTR:
        raise PermanentError(
            "routing_key_too_long",
            f"the topic is {len(event.topic.encode())} bytes; an AMQP routing key is at most "
            f"{MAX_SHORTSTR}",
        )
    long_names = [k for k in doc["metadata"] if len(k.encode()) > MAX_SHORTSTR]
    if long_names:
        raise PermanentError(
            "header_name_too_long",
            f"metadata key {long_names[0][:40]!r}... is over {MAX_SHORTSTR} bytes, the most "
            "an AMQP header name can be",
        )
    return Record(
        data=record_bytes(doc, False),
        exchange=destination.config.get("exchange") or "",
        routing_key=event.topic,
        headers=tuple(doc["metadata"].items()),
        message_id=event.id,
    )
