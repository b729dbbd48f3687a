"""EventBridge entries from events, as Outpost's aws_eventbridge provider builds them:
Source (the deployment's), DetailType (the topic), Detail `{"data": ..., "metadata":
{...}}` and the bus when one is configured. Pure: the same entry on every attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outpost.destinations.aws.wire import data_and_metadata
from outpost.destinations.eventbridge.config import MAX_BATCH_BYTES
from outpost.envelope import event_document, record_bytes
from outpost.errors import PermanentError
from outpost.models import Destination, Event


@dataclass(frozen=True)
class Entry:
    data: bytes  # the Detail
    source: str
    detail_type: str
    event_bus_name: str | None
    event_id: str

    @property
    def size(self) -> int:
        """EventBridge's count: Source, DetailType and Detail in UTF-8 (no Time sent)."""
        return len(self.source.encode()) + len(self.detail_type.encode()) + len(self.data)

    def request(self) -> dict[str, Any]:
        entry = {
            "Source": self.source,
            "DetailType": self.detail_type,
            "Detail": self.data.decode(),
        }
        if self.event_bus_name:
            entry["EventBusName"] = self.event_bus_name
        return entry


def entry(event: Event, destination: Destination, source: str) -> Entry:
    doc = event_document(event, destination.delivery_metadata)
    detail = data_and_metadata(record_bytes(doc, False), doc["metadata"])
    out = Entry(detail, source, event.topic, destination.config.get("event_bus_name"), event.id)
    if out.size > MAX_BATCH_BYTES:
        raise PermanentError(
            "record_too_large", f"entry is {out.size} bytes; EventBridge allows 256 KiB"
        )
    return out
