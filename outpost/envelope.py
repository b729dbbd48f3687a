"""The record a destination receives: `{"metadata": {...}, "data": ...}` or the bare data.

Pure functions of the stored event and the destination, so a retried record is
byte-identical to the first one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outpost.exactjson import dumps
from outpost.models import Event

__all__ = ["build_document", "build_metadata", "dumps", "event_document", "record_bytes"]
SYSTEM_KEYS = ("event-id", "topic", "timestamp")


def build_metadata(
    event_id: str,
    topic: str,
    timestamp: int,
    event_metadata: Mapping[str, str] | None,
    delivery_metadata: Mapping[str, str] | None,
) -> dict[str, str]:
    """System keys first and always winning, then the destination's, then the event's.

    A publisher cannot forge `event-id`; under a key both set, the event's value wins
    over the destination's delivery_metadata (as Outpost merges them), in the place the
    destination's key holds.
    """
    meta = {"event-id": event_id, "topic": topic, "timestamp": str(timestamp)}
    for source in (delivery_metadata, event_metadata):
        for key, value in (source or {}).items():
            if key not in SYSTEM_KEYS:
                meta[key] = value
    return meta


def build_document(metadata: dict[str, str], data: Any) -> dict[str, Any]:
    """The `{metadata, data}` document; also what partition key templates are evaluated on."""
    return {"metadata": metadata, "data": data}


def record_bytes(document: dict[str, Any], metadata_in_payload: bool) -> bytes:
    return dumps(document if metadata_in_payload else document["data"])


def event_document(event: Event, delivery_metadata: Mapping[str, str] | None) -> dict[str, Any]:
    """`{metadata, data}` of an event for one destination: what every destination type
    sends (or sends the data of), and what partition-key templates are evaluated on."""
    meta = build_metadata(
        event.id, event.topic, int(event.time.timestamp()), event.metadata, delivery_metadata
    )
    return build_document(meta, event.data)
