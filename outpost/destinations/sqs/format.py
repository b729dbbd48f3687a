"""SQS messages from events, as Outpost's aws_sqs provider builds them: the body is the
event's data (JSON, as published), the metadata one `String` message attribute named
`metadata` holding a JSON object. Pure: the same bytes on every attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outpost.destinations.aws.wire import metadata_json
from outpost.destinations.sqs.config import MAX_MESSAGE_BYTES
from outpost.envelope import event_document, record_bytes
from outpost.errors import PermanentError
from outpost.models import Destination, Event

ATTRIBUTE = "metadata"
DATA_TYPE = "String"


@dataclass(frozen=True)
class Message:
    data: bytes  # the message body
    metadata: str  # the `metadata` attribute's value
    event_id: str

    @property
    def size(self) -> int:
        """What SQS counts toward its limits: body, attribute name, type and value."""
        return len(self.data) + len(ATTRIBUTE) + len(DATA_TYPE) + len(self.metadata.encode())

    def attributes(self) -> dict[str, Any]:
        return {ATTRIBUTE: {"DataType": DATA_TYPE, "StringValue": self.metadata}}


def message(event: Event, destination: Destination) -> Message:
    doc = event_document(event, destination.delivery_metadata)
    msg = Message(record_bytes(doc, False), metadata_json(doc["metadata"]), event.id)
    if msg.size > MAX_MESSAGE_BYTES:
        raise PermanentError(
            "record_too_large",
            f"message is {msg.size} bytes with its attributes; SQS allows 1 MiB",
        )
    return msg
